"""The worker's CPU switch for TRL's fused LM head: only labelled positions are projected, same loss."""

import pytest


def test_only_labelled_positions_are_scored_on_cpu_with_the_same_loss(tiny_model_dir, monkeypatch):
    import torch
    import trl.trainer.utils as trl_utils
    from transformers import AutoModelForCausalLM

    from studio.train import worker

    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)  # restored after the test
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (3, 24), generator=generator)
    labels = ids.clone()
    labels[:, :10] = -100  # the prompt
    labels[2, 18:] = -100  # padding

    projected_rows = []
    original_apply = trl_utils._ChunkedLogProbFunction.apply

    def counting_apply(hidden, *rest):
        projected_rows.append(hidden.shape[0])
        return original_apply(hidden, *rest)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", counting_apply)
    stock = model(input_ids=ids, labels=labels, fused_lm_head=True).loss
    assert worker.score_only_labelled_positions_on_cpu() is True
    assert worker.score_only_labelled_positions_on_cpu() is True  # applying twice changes nothing
    compact = model(input_ids=ids, labels=labels, fused_lm_head=True).loss

    labelled = int((labels[:, 1:] != -100).sum())
    assert projected_rows == [3 * 23, labelled]  # every shifted position, then only the labelled ones
    assert compact.item() == pytest.approx(stock.item(), rel=1e-5)
