"""The worker's cheaper step pieces give the same loss and gradients as the stock ones (tiny Llama, CPU)."""

import contextlib

import pytest


def _model(tiny_model_dir, dtype_name="float32"):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=getattr(torch, dtype_name))
    model.config.use_cache = False
    return model


def _batch(model, rows=3, length=20):
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (rows, length), generator=generator)
    return ids


def _loss_and_grads(model, ids, autocast=False):
    import torch

    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    model.zero_grad(set_to_none=True)
    with context:
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16"])
def test_lean_rms_norm_matches_the_stock_norm_in_value_and_gradient(tiny_model_dir, dtype_name):
    import torch

    from studio.models import kernels

    model = _model(tiny_model_dir, dtype_name)
    for parameter in model.parameters():  # train the norms too, so their weight gradient is checked
        parameter.requires_grad_(True)
    ids = _batch(model)
    stock_loss, stock_grads = _loss_and_grads(model, ids)
    layers = model.config.num_hidden_layers
    assert kernels.lean_rms_norms(model) == 2 * layers + 1  # two per block and the final norm
    lean_loss, lean_grads = _loss_and_grads(model, ids)

    tolerance = {"float32": dict(rtol=1e-4, atol=1e-6), "bfloat16": dict(rtol=2e-2, atol=2e-3)}[dtype_name]
    assert torch.allclose(lean_loss.float(), stock_loss.float(), **tolerance)
    assert stock_grads.keys() == lean_grads.keys()
    for name, grad in stock_grads.items():
        other = lean_grads[name].float()
        scale = grad.float().abs().max().clamp(min=1e-6)
        assert (other - grad.float()).abs().max() / scale < (1e-4 if dtype_name == "float32" else 3e-2), name


def test_a_norm_with_other_semantics_is_left_alone(tiny_model_dir):
    import torch

    from studio.models import kernels

    class OffsetRMSNorm(torch.nn.Module):  # Gemma style: scales by (1 + weight)
        def __init__(self, size):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(size))
            self.variance_epsilon = 1e-6

        def forward(self, x):
            variance = x.float().pow(2).mean(-1, keepdim=True)
            return ((x.float() * torch.rsqrt(variance + self.variance_epsilon)) * (1 + self.weight.float())).to(x.dtype)

    holder = torch.nn.Sequential(OffsetRMSNorm(8))
    assert kernels.lean_rms_norms(holder) == 0
    x = torch.randn(2, 8)
    assert torch.allclose(holder(x), OffsetRMSNorm.forward(holder[0], x))


def test_lora_under_autocast_gives_the_same_loss_without_the_fp32_input_copies(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model

    from studio.models import kernels

    model = _model(tiny_model_dir, "bfloat16")
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    ids = _batch(model)
    original_to = torch.Tensor.to

    def run_counting_casts():
        casts = []

        def counting_to(self, *args, **kwargs):
            if kwargs.get("dtype") is torch.float32 and tuple(self.shape[:2]) == tuple(ids.shape):
                casts.append(tuple(self.shape))  # an activation copied to fp32
            return original_to(self, *args, **kwargs)

        torch.Tensor.to = counting_to
        try:
            return (*_loss_and_grads(peft_model, ids, autocast=True), casts)
        finally:
            torch.Tensor.to = original_to

    stock_loss, stock_grads, stock_casts = run_counting_casts()
    assert len(stock_casts) == 7 * model.config.num_hidden_layers  # PEFT copies each LoRA layer's input to fp32
    assert kernels.skip_lora_input_casts(peft_model) == 7 * model.config.num_hidden_layers
    lean_loss, lean_grads, lean_casts = run_counting_casts()
    assert lean_casts == []
    assert lean_loss.item() == pytest.approx(stock_loss.item(), rel=1e-3)
    for name, grad in stock_grads.items():
        cosine = torch.nn.functional.cosine_similarity(
            grad.float().flatten(), lean_grads[name].float().flatten(), dim=0
        )
        assert cosine > 0.999, name


def test_narrower_vocabulary_tiles_give_the_same_loss(tiny_model_dir, monkeypatch):
    import torch
    import trl.trainer.utils as trl_utils

    from studio.models import kernels
    from studio.train import worker

    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)  # both restored after the test
    monkeypatch.setattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE", trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE)
    model = _model(tiny_model_dir)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    worker.score_only_labelled_positions_on_cpu()
    ids = _batch(model, rows=4, length=32)
    labels = ids.clone()
    labels[:, :12] = -100
    widths = []
    original_apply = trl_utils._ChunkedLogProbFunction.apply

    def recording_apply(hidden, weight, bias, targets, temperature, chunk, *rest):
        widths.append(chunk)
        return original_apply(hidden, weight, bias, targets, temperature, chunk, *rest)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", recording_apply)
    wide = model(input_ids=ids, labels=labels, fused_lm_head=True)
    assert kernels.cpu_loss_chunks(vocabulary_chunk=64) is True  # narrower than the tiny vocabulary: several tiles
    narrow = model(input_ids=ids, labels=labels, fused_lm_head=True)
    assert widths[-1] == 64 and widths[0] > model.config.vocab_size // 2
    assert narrow.loss.item() == pytest.approx(wide.loss.item(), rel=1e-5)
    assert torch.equal(narrow.is_top1, wide.is_top1)
    assert torch.allclose(narrow.entropy, wide.entropy, rtol=1e-4, atol=1e-5)


def _padded_batch(lengths, length=None):
    import torch

    length = length or max(lengths)
    ids = torch.zeros((len(lengths), length), dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, size in enumerate(lengths):
        ids[row, :size] = torch.arange(1, size + 1) + 100 * row
        mask[row, :size] = 1
        labels[row, size // 2 : size] = ids[row, size // 2 : size]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def test_a_batch_within_the_budget_is_not_split():
    from studio.models import kernels

    batch = _padded_batch([30, 28, 25, 20])
    assert kernels.split_batch(batch, max_tokens=4 * 30)[0] is batch


def test_a_long_batch_is_cut_into_pieces_within_the_budget_each_trimmed_to_its_longest_row():
    import torch

    from studio.models import kernels

    batch = _padded_batch([576, 570, 500, 430, 300, 200, 120, 90])
    pieces = kernels.split_batch(batch, max_tokens=1200)
    assert all(p["input_ids"].numel() <= 1200 for p in pieces)
    assert [p["input_ids"].shape for p in pieces] == [(2, 576), (2, 500), (4, 300)]
    for key in batch:  # nothing lost: the real tokens of every row, in order
        rebuilt = [row[mask.bool()] for p in pieces for row, mask in zip(p[key], p["attention_mask"])]
        original = [row[mask.bool()] for row, mask in zip(batch[key], batch["attention_mask"])]
        assert all(torch.equal(a, b) for a, b in zip(rebuilt, original)) and len(rebuilt) == len(original)
    single = kernels.split_batch(_padded_batch([900, 10]), max_tokens=500)
    assert [p["input_ids"].shape for p in single] == [(1, 900), (1, 10)]  # a row longer than the budget goes alone


def test_micro_batches_give_the_same_update_as_the_whole_batch(tiny_model_dir):
    """The trainer's split step: every piece's loss over the whole batch's labelled tokens, gradients summed."""
    import torch
    from transformers import AutoModelForCausalLM

    from studio.models import kernels

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    batch = _padded_batch([60, 52, 40, 33, 20, 9])
    batch["input_ids"] = batch["input_ids"] % model.config.vocab_size
    batch["labels"] = torch.where(batch["labels"] == -100, batch["labels"], batch["input_ids"])

    class Base:
        def training_step(self, model, inputs, num_items_in_batch=None):
            out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            logits, labels = out.logits[:, :-1], inputs["labels"][:, 1:]
            total = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="sum"
            )
            loss = total / (num_items_in_batch if num_items_in_batch is not None else (labels != -100).sum())
            loss.backward()
            return loss.detach()

    trainer = kernels.micro_batching_trainer(Base)()
    whole = trainer.training_step(model, batch)
    whole_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    trainer.max_tokens_per_pass = 130
    split = trainer.training_step(model, batch)
    assert trainer.split_steps == 1
    assert split.item() == pytest.approx(whole.item(), rel=1e-5)
    for a, p in zip(whole_grads, model.parameters()):
        assert torch.allclose(a, p.grad, rtol=1e-4, atol=1e-6)


def _padded_loss_and_grads(model, ids):
    """A bf16 model's loss and gradients on a batch whose first row ends in padding (so the mask is a real one)."""
    import torch

    mask = torch.ones_like(ids)
    mask[0, -5:] = 0
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
    loss.backward()
    return loss.detach().float(), {
        n: p.grad.detach().float() for n, p in model.named_parameters() if p.grad is not None
    }


@pytest.fixture
def attention_measured_faster(monkeypatch):
    from studio.models import kernels

    monkeypatch.setattr(kernels, "_attention_speedup", lambda *args, **kwargs: 2.0)
    return kernels


def test_bf16_attention_as_matmuls_gives_sdpas_loss_and_gradients(
    tiny_model_dir, attention_measured_faster, monkeypatch
):
    import torch

    kernels = attention_measured_faster
    calls = []
    function = kernels._saved_probabilities_attention_function

    def counted():
        calls.append(1)
        return function()

    monkeypatch.setattr(kernels, "_saved_probabilities_attention_function", counted)
    stock, ours = _model(tiny_model_dir, "bfloat16"), _model(tiny_model_dir, "bfloat16")
    assert kernels.cpu_bf16_attention(ours) == 2.0
    assert ours.config._attn_implementation == kernels.ATTENTION_NAME
    assert stock.config._attn_implementation == "sdpa"
    ids = _batch(stock, rows=3, length=24)
    stock_loss, stock_grads = _padded_loss_and_grads(stock, ids)
    loss, grads = _padded_loss_and_grads(ours, ids)
    assert len(calls) == ours.config.num_hidden_layers  # every layer went through it
    assert torch.allclose(loss, stock_loss, rtol=1e-2)
    assert grads.keys() == stock_grads.keys()
    for name, grad in grads.items():  # bf16 either way: the same direction, not the same bits
        cosine = torch.nn.functional.cosine_similarity(grad.flatten(), stock_grads[name].flatten(), dim=0)
        assert cosine > 0.99, name


def test_the_attention_matches_an_fp32_reference_with_grouped_heads_and_padding(attention_measured_faster):
    import torch

    kernels = attention_measured_faster
    generator = torch.Generator().manual_seed(0)
    batch, heads, kv_heads, length, dim = 3, 6, 2, 17, 16
    query, key, value = (
        torch.randn(batch, count, length, dim, generator=generator).bfloat16().requires_grad_()
        for count in (heads, kv_heads, kv_heads)
    )
    allowed = torch.ones(length, length, dtype=torch.bool).tril().expand(batch, 1, length, length).clone()
    allowed[0, :, :, -4:] = False  # padded keys of the first row
    output = kernels._saved_probabilities_attention_function().apply(query, key, value, allowed, dim**-0.5, 3)
    upstream = torch.randn(output.shape, generator=generator)
    grads = torch.autograd.grad(output, (query, key, value), upstream.bfloat16())

    reference_inputs = [t.detach().float().requires_grad_() for t in (query, key, value)]
    q, k, v = reference_inputs
    scores = (q @ k.repeat_interleave(3, 1).transpose(-1, -2)) * dim**-0.5
    probabilities = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1).nan_to_num(0.0)
    reference = probabilities @ v.repeat_interleave(3, 1)
    reference_grads = torch.autograd.grad(reference, reference_inputs, upstream)

    def relative(a, b):
        return ((a.float() - b).norm() / b.norm()).item()

    assert relative(output, reference) < 0.01  # bf16's own rounding is ~0.4 %
    assert all(relative(g, r) < 0.02 for g, r in zip(grads, reference_grads))
    assert not any(torch.isnan(g).any() for g in grads)


def test_large_scores_and_a_slower_measurement_keep_sdpa(tiny_model_dir, attention_measured_faster, monkeypatch):
    import torch

    kernels = attention_measured_faster
    stock, ours = _model(tiny_model_dir, "bfloat16"), _model(tiny_model_dir, "bfloat16")
    kernels.cpu_bf16_attention(ours)
    monkeypatch.setattr(kernels, "ATTENTION_MAX_SCORES", 0)  # every layer's scores are above it: sdpa's own result
    ids = _batch(stock, rows=2, length=16)
    assert torch.equal(_padded_loss_and_grads(ours, ids)[0], _padded_loss_and_grads(stock, ids)[0])

    monkeypatch.setattr(kernels, "_attention_speedup", lambda *args, **kwargs: 1.1)
    slower = _model(tiny_model_dir, "bfloat16")
    assert kernels.cpu_bf16_attention(slower) is None and slower.config._attn_implementation == "sdpa"
