"""Cheaper pieces of a training step that the worker swaps in: same results, less time and memory.

`apply(model, autocast, on_cpu)` switches on every piece that fits the run (the worker, and the CPU precision
measurement so that it times the same step). Each function changes a loaded model (or TRL's CPU loss path) in
place, checks that the result is unchanged where that can be checked cheaply, and returns what it did:

- `lean_rms_norms(model)`: RMSNorm layers (Llama, Qwen, Mistral, ... style) computed by one autograd function that
  keeps only its input for the backward pass and recomputes the rest, instead of the eager version's six ops that
  keep an fp32 copy of every normed activation (about 1/6 of a LoRA step's activation memory for SmolLM2 in bf16).
  Applied per class only after the class's own forward gives the same output on a probe input, so a norm with
  other semantics (Gemma's 1 + weight) is left alone.
- `skip_lora_input_casts(model)`: under bf16 autocast PEFT casts every LoRA input to fp32 (the adapter weights'
  dtype), then autocast casts it straight back to bf16 for the matmul: two full copies of the activation per
  adapted layer, for nothing. Only for runs that train under autocast.
- `split_batch(inputs, max_tokens)`: a long batch cut into micro-batches of at most `max_tokens` padded tokens,
  each trimmed to its own longest row. The worker's trainer (`micro_batching_trainer`) runs them one after another
  into the same gradient, every piece's loss divided by the whole batch's labelled-token count: the same update as
  the whole batch at once, with the activation memory of one piece; the heap is trimmed between pieces (glibc
  otherwise keeps a piece's freed memory and the next piece allocates beside it). Short batches (the usual case)
  pass untouched, untrimmed: trimming costs page faults on the next step. How many tokens a pass may take (and
  whether checkpointing is needed) is the cost model's plan (studio.models.cost.plan_passes), so preflight
  predicts the memory of the passes that really run; this module only does the splitting.
- `cpu_loss_chunks()`: TRL's fused LM head scores the vocabulary in tiles of 4,096 tokens × 32,768 vocabulary
  entries; on a CPU its torch fallback builds several fp32 temporaries of a whole tile (512 MB each), which made
  the loss the largest memory spike of a long-sequence step. Tiles of 4,096 vocabulary entries give the same
  loss from 64 MB temporaries.
"""

from __future__ import annotations

from studio.models.loading import release_freed_memory as release

CPU_VOCABULARY_CHUNK = 4096


def apply(model, autocast: bool, on_cpu: bool) -> list[str]:
    """Swap in the pieces that apply to a run (autocast: it trains under bf16/fp16 autocast); returns what changed."""
    done = []
    if on_cpu:  # measured on CPUs only; GPU runs keep the stock (often fused) kernels
        norms = lean_rms_norms(model)
        if norms:
            done.append(f"{norms} RMSNorm layers")
        if cpu_loss_chunks():
            done.append("narrow vocabulary tiles in the loss")
    if autocast:
        casts = skip_lora_input_casts(model)
        if casts:
            done.append(f"no fp32 input copies in {casts} LoRA layers")
    return done


def _rms_norm_function():
    import torch

    class LeanRmsNorm(torch.autograd.Function):
        """y = weight * (x / rms(x)).to(x.dtype), the statistics in fp32; saves x and 1/rms only."""

        @staticmethod
        def forward(ctx, x, weight, eps):
            inverse_rms = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
            normed = (x.float() * inverse_rms).to(x.dtype)
            ctx.save_for_backward(x, weight, inverse_rms)
            return weight * normed

        @staticmethod
        def backward(ctx, grad_output):
            x, weight, inverse_rms = ctx.saved_tensors
            normed = x.float() * inverse_rms
            grad_x = grad_weight = None
            if ctx.needs_input_grad[0]:
                grad_normed = grad_output.float() * weight.float()
                grad_x = (inverse_rms * (grad_normed - normed * (grad_normed * normed).mean(-1, keepdim=True))).to(
                    x.dtype
                )
            if ctx.needs_input_grad[1]:
                product = grad_output * normed.to(x.dtype)
                grad_weight = product.reshape(-1, product.shape[-1]).sum(0).to(weight.dtype)
            return grad_x, grad_weight, None

    return LeanRmsNorm


def lean_rms_norms(model) -> int:
    """Compute every Llama-style RMSNorm of `model` with LeanRmsNorm; returns how many layers were switched."""
    import types

    import torch

    function = _rms_norm_function()

    def lean_forward(self, hidden_states):
        return function.apply(hidden_states, self.weight, self.variance_epsilon)

    verdict: dict[type, bool] = {}
    switched = 0
    for module in model.modules():
        cls = type(module)
        if not cls.__name__.endswith("RMSNorm") or not isinstance(getattr(module, "weight", None), torch.nn.Parameter):
            continue
        if not isinstance(getattr(module, "variance_epsilon", None), float) or module.weight.dim() != 1:
            continue
        if cls not in verdict:
            verdict[cls] = _same_as_stock(module, lean_forward)
        if verdict[cls]:
            module.forward = types.MethodType(lean_forward, module)
            switched += 1
    return switched


def _same_as_stock(module, lean_forward) -> bool:
    import torch

    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(2, 3, module.weight.shape[0], generator=generator).to(module.weight.dtype) * 3
    with torch.no_grad():
        stock = type(module).forward(module, probe)
        lean = lean_forward(module, probe)
    return (
        stock.shape == lean.shape
        and stock.dtype == lean.dtype
        and torch.allclose(stock.float(), lean.float(), rtol=1e-2, atol=1e-3)
    )


def skip_lora_input_casts(model) -> int:
    """Let autocast pick the LoRA matmuls' dtype instead of PEFT's fp32 copy of each input (autocast runs only)."""
    switched = 0
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled") and hasattr(module, "lora_A"):
            module.cast_input_dtype_enabled = False
            switched += 1
    return switched


def cpu_loss_chunks(vocabulary_chunk: int = CPU_VOCABULARY_CHUNK) -> bool:
    """Score the vocabulary in narrower tiles in TRL's fused LM head (its CPU path); returns whether it applied."""
    import trl.trainer.utils as trl_utils

    if not hasattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE"):
        return False
    trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = min(trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, vocabulary_chunk)
    return True


def split_batch(inputs: dict, max_tokens: int) -> list[dict]:
    """Cut a right-padded batch (input_ids [B, L] ...) into row groups of at most max_tokens padded tokens each.

    Every tensor whose first two dimensions are [B, L] is cut by rows and trimmed to the group's longest row; other
    values are shared. A batch within the budget comes back as [inputs] (the same object)."""
    ids = inputs.get("input_ids")
    if ids is None or ids.dim() != 2 or ids.numel() <= max_tokens or ids.shape[0] < 2:
        return [inputs]
    rows, length = ids.shape
    mask = inputs.get("attention_mask")
    lengths = mask.sum(1).tolist() if mask is not None and mask.dim() == 2 else [length] * rows
    pieces, start = [], 0
    while start < rows:
        end, longest = start, 0
        while end < rows:  # grow the group while its padded size stays in the budget (at least one row)
            candidate = max(longest, int(lengths[end]))
            if end > start and candidate * (end + 1 - start) > max_tokens:
                break
            longest, end = candidate, end + 1
        pieces.append(
            _rows(
                inputs,
                start,
                end,
                longest if mask is not None and _right_padded(mask[start:end], longest) else length,
                rows,
                length,
            )
        )
        start = end
    return pieces


def _right_padded(mask, longest: int) -> bool:
    return bool(mask[:, longest:].sum() == 0)


def _rows(inputs: dict, start: int, end: int, keep: int, rows: int, length: int) -> dict:
    import torch

    piece = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[0] == rows and value.shape[1] == length:
            piece[key] = value[start:end, :keep]
        elif isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == rows:
            piece[key] = value[start:end]
        else:
            piece[key] = value
    return piece


def release_freed_memory() -> bool:
    return release()


def micro_batching_trainer(base_class):
    """A subclass of the (SFT)Trainer class whose training step splits batches above `max_tokens_per_pass`."""

    class MicroBatchingTrainer(base_class):
        max_tokens_per_pass: int | None = None
        split_steps = 0  # how many training steps were split (for the log)
        positions_seen = 0  # padded positions trained on: what a step's compute follows (bench/cost.py reads it)

        def training_step(self, model, inputs, num_items_in_batch=None):
            if "input_ids" in inputs:
                self.positions_seen += int(inputs["input_ids"].numel())
            pieces = split_batch(inputs, self.max_tokens_per_pass) if self.max_tokens_per_pass else [inputs]
            if len(pieces) == 1:
                return super().training_step(model, inputs, num_items_in_batch)
            if num_items_in_batch is None and "labels" in inputs:  # one normaliser for all pieces: the whole batch's
                num_items_in_batch = int((inputs["labels"][:, 1:] != -100).sum())
            self.split_steps += 1
            total = None
            for piece in pieces:
                loss = super().training_step(model, piece, num_items_in_batch)
                total = loss if total is None else total + loss
                release_freed_memory()  # else glibc keeps the piece's freed activations beside the next piece's
            return total

    MicroBatchingTrainer.__name__ = MicroBatchingTrainer.__qualname__ = f"MicroBatching{base_class.__name__}"
    return MicroBatchingTrainer
