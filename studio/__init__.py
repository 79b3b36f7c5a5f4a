"""Fine-Tune Studio: decide, prepare data, LoRA-train and compare, in the browser."""

__version__ = "0.1.0"
