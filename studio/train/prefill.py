"""Decide's hand-over in Train's terms: the RunConfig settings a Decide plan fills in.

Decide plans a technique on a chosen hardware; Train runs a RunConfig on this machine. This is the one place
that translates the first into the second (the Train tab shows the result in its form).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from studio.models.cost import SHARDED_STRATEGY

# Decide keys that are RunConfig fields of the same meaning.
COPIED = ("model", "epochs", "max_length", "lora_r", "lora_alpha", "batch_size")


@dataclass(frozen=True)
class Handover:
    values: dict[str, Any] = field(default_factory=dict)  # RunConfig field → value (never the dataset)
    dataset: str | None = None  # as Decide named it: the caller checks who may use it
    technique: str = ""
    gradient_checkpointing: bool | None = None  # None: the worker decides
    instead: str = ""  # what Train runs when it cannot run Decide's technique here, and why

    def summary(self) -> str:
        """'epochs 2, max length 512' — what the form now holds."""
        return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in self.values.items())


def from_decide(plan: Mapping[str, Any] | None, *, qlora_possible: bool, on_gpu: bool) -> Handover:
    """The settings a Decide plan gives Train. QLoRA only where this machine can run it (else plain LoRA, which
    the form shows); checkpointing only on a GPU: it saves GPU memory but costs a CPU run about 60 % more time
    (bundled demo: 356 s vs 222 s), so off a GPU the worker decides."""
    if not plan:
        return Handover()
    technique = str(plan.get("technique") or "").lower()
    values = {key: plan[key] for key in COPIED if plan.get(key) not in (None, "")}
    if not plan.get("dataset"):
        # Decide's max length without a dataset is a guess; the dataset, when it arrives, suggests its own (p99)
        # and that is what the form will show.
        values.pop("max_length", None)
    if technique == "dora" or plan.get("use_dora"):
        values["use_dora"] = True
    instead = ""
    if technique == "full":
        values["full_finetune"] = True
    devices = plan.get("devices")
    if isinstance(devices, int) and devices > 1:  # Decide shards a model too big for one GPU over several
        values["processes"] = devices
        values["strategy"] = SHARDED_STRATEGY
    if technique == "qlora" or plan.get("load_in_4bit"):
        if qlora_possible:
            values["qlora_4bit"] = True
        else:
            instead = "Train runs LoRA: QLoRA 4-bit cannot run on this machine"
    checkpointing = plan.get("gradient_checkpointing")
    return Handover(
        values=values,
        dataset=str(plan["dataset"]) if plan.get("dataset") else None,
        technique=technique,
        gradient_checkpointing=bool(checkpointing) if checkpointing is not None and on_gpu else None,
        instead=instead,
    )
