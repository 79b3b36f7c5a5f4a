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
- `cpu_bf16_attention(model)`: on a CPU in bf16, torch's fused attention (sdpa's flash kernel) ran a layer's
  forward and backward of the bundled model's heads in 17.5 ms at batch 8 × 128 and 21.4 ms at 8 × 160, the eager
  version's bf16 matmuls + fp32 softmax in 8.7 and 13.7 ms, and `SavedProbabilitiesAttention` (the same numbers,
  saving the bf16 probabilities instead of autograd's fp32 and bf16 copies) in 5.3 and 8.0 ms (2-core Intel Xeon
  with AMX); at 8 × 256 sdpa and it were 23.7 vs 17.5 ms. It keeps heads × queries × keys bf16 values per row per
  layer that sdpa does not (the cost model counts them), so it serves a layer only up to ATTENTION_MAX_SCORES
  scores, sdpa above, and only where it measured ATTENTION_MIN_SPEEDUP × faster than sdpa on this CPU at start.
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

import functools
import time

from studio.models.loading import release_freed_memory as release

CPU_VOCABULARY_CHUNK = 4096
ATTENTION_NAME = "studio_cpu_bf16"
ATTENTION_MAX_SCORES = 2**21  # batch × heads × queries × keys of one layer: 4 MB of saved bf16 probabilities
ATTENTION_MIN_SPEEDUP = 1.2  # below this the stock kernel stays (the measurement's own noise is ~10 %)


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
    if autocast and on_cpu:
        speedup = cpu_bf16_attention(model)
        if speedup:
            done.append(f"bf16 attention as plain matmuls ({speedup:.1f}x sdpa here)")
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


@functools.cache  # one class for every layer and call (a new class per call also defeats torch.compile's guards)
def _saved_probabilities_attention_function():
    import torch

    class SavedProbabilitiesAttention(torch.autograd.Function):
        """softmax(q k^T * scale + mask) v with bf16 matmuls and an fp32 softmax, as the eager version computes it,
        saving q, k, v and the bf16 probabilities only (the eager version's autograd also keeps the fp32 ones).
        k, v: (batch, kv heads, keys, dim), repeated over `groups` query heads; `allowed`: a boolean mask
        broadcastable to the scores (True = may attend)."""

        @staticmethod
        def forward(ctx, query, key, value, allowed, scaling, groups):
            keys, values = _repeat_heads(key, groups), _repeat_heads(value, groups)
            scores = (torch.matmul(query, keys.transpose(-1, -2)) * scaling).masked_fill(~allowed, float("-inf"))
            # a row that may attend nowhere (left padding) gets zeros instead of NaN
            probabilities = torch.softmax(scores, dim=-1, dtype=torch.float32).nan_to_num_(0.0).to(query.dtype)
            ctx.save_for_backward(query, key, value, probabilities)
            ctx.scaling, ctx.groups = scaling, groups
            return torch.matmul(probabilities, values)

        @staticmethod
        def backward(ctx, grad_output):
            query, key, value, probabilities = ctx.saved_tensors
            keys, values = _repeat_heads(key, ctx.groups), _repeat_heads(value, ctx.groups)
            grad_values = torch.matmul(probabilities.transpose(-1, -2), grad_output)
            grad_probabilities = torch.matmul(grad_output, values.transpose(-1, -2))
            row = (grad_probabilities * probabilities).sum(-1, keepdim=True)
            grad_scores = probabilities * (grad_probabilities - row) * ctx.scaling
            grad_query = torch.matmul(grad_scores, keys)
            grad_keys = torch.matmul(grad_scores.transpose(-1, -2), query)
            return (
                grad_query,
                _sum_heads(grad_keys, ctx.groups),
                _sum_heads(grad_values, ctx.groups),
                None,
                None,
                None,
            )

    return SavedProbabilitiesAttention


def _repeat_heads(states, groups: int):
    return states if groups == 1 else states.repeat_interleave(groups, dim=1)


def _sum_heads(grad, groups: int):
    if groups == 1:
        return grad
    batch, heads, length, dim = grad.shape
    return grad.view(batch, heads // groups, groups, length, dim).sum(2)


def _causal(queries: int, keys: int):
    import torch

    return torch.ones(queries, keys, dtype=torch.bool).tril(keys - queries)


def cpu_attention_keeps(dtype: str, scores: float) -> int:
    """Values per attention score a CPU layer keeps for its backward pass: 1 (its bf16 probabilities) where
    `_studio_attention` serves a layer of `scores` scores (batch × heads × queries × keys), else 0 (torch's kernel
    keeps none). Also what the cost model counts."""
    return 1 if dtype == "bf16" and scores <= ATTENTION_MAX_SCORES else 0


def _studio_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """transformers' attention interface: the saved-probabilities bf16 attention where it applies, else sdpa."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, queries, dim = query.shape
    keys = key.shape[2]
    plain = (
        query.dtype == key.dtype == value.dtype == torch.bfloat16
        and not dropout
        and kwargs.get("softcap") is None
        and kwargs.get("position_bias") is None
        and kwargs.get("cache") is None
        and (attention_mask is None or attention_mask.dtype == torch.bool)
        and cpu_attention_keeps("bf16", batch * heads * queries * keys)
        and heads % key.shape[1] == 0
    )
    if not plain:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", True) if causal is None else causal
    if attention_mask is not None:
        allowed = attention_mask
    else:  # sdpa would get is_causal (or nothing) instead of a mask
        allowed = _causal(queries, keys) if causal else torch.ones(queries, keys, dtype=torch.bool)
    output = _saved_probabilities_attention_function().apply(
        query, key, value, allowed, scaling if scaling is not None else dim**-0.5, heads // key.shape[1]
    )
    return output.transpose(1, 2).contiguous(), None


def cpu_bf16_attention(model) -> float | None:
    """Route the model's attention through `_studio_attention` when it measured ATTENTION_MIN_SPEEDUP × faster than
    sdpa here; returns the measured speed-up when switched, None when the model keeps its own attention."""
    import torch
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if getattr(config, "_attn_implementation", None) not in ("sdpa", ATTENTION_NAME):
        return None
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    dim = getattr(config, "head_dim", None) or (config.hidden_size // heads if heads else None)
    if not heads or not dim or heads % kv_heads:
        return None
    speedup = _attention_speedup(heads, kv_heads, dim, torch.get_num_threads())
    if speedup < ATTENTION_MIN_SPEEDUP:
        return None
    AttentionInterface.register(ATTENTION_NAME, _studio_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)  # the same masks sdpa gets
    base.set_attn_implementation(ATTENTION_NAME)
    return speedup


@functools.cache  # once per process and shape: the probe and the worker's own model in the same process ask again
def _attention_speedup(heads: int, kv_heads: int, dim: int, threads: int, batch: int = 4, length: int = 128) -> float:
    """sdpa's time over the saved-probabilities attention's for one layer's forward and backward in bf16 (best of 5,
    with `threads`: torch's threads when asked)."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(0)

    def tensor(count):
        return torch.randn(batch, count, length, dim, generator=generator).bfloat16().requires_grad_()

    query, key, value = tensor(heads), tensor(kv_heads), tensor(kv_heads)
    groups, allowed = heads // kv_heads, _causal(length, length)
    function = _saved_probabilities_attention_function()

    def stock():
        keys, values = _repeat_heads(key, groups), _repeat_heads(value, groups)
        return F.scaled_dot_product_attention(query, keys, values, is_causal=True)

    def saved_probabilities():
        return function.apply(query, key, value, allowed, dim**-0.5, groups)

    def best(attention) -> float:
        times = []
        for _ in range(6):
            began = time.perf_counter()
            attention().sum().backward()
            times.append(time.perf_counter() - began)
        return min(times[1:])

    return best(stock) / best(saved_probabilities)


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
