"""Guards for every private (underscored) name of transformers / TRL the studio relies on.

An upgrade that renames or removes one of these must fail here, loudly, instead of silently turning a
feature off (the studio reads them with getattr defaults or catches their absence on purpose):

| name | used by | what breaks silently without this test |
|---|---|---|
| trl.trainer.utils._use_triton | studio/train/worker.py score_only_labelled_positions_on_cpu | the CPU speed-up (fused LM head on labelled positions only) |
| SFTTrainer._total_train_tokens | studio/train/worker.py train(), bench/train.py | training tokens and tokens/s in status.json and the model card |
| transformers.utils.chat_template_utils._compile_jinja_template | studio/models/templates.py render, studio/data/rules/tokens.py | every template check and lint token count |
| transformers.utils.chat_template_utils._render_with_assistant_indices | studio/models/templates.py trains_the_prompt, studio/data/rules/tokens.py | answer spans for lint counts; exact-mask preference |
| PreTrainedTokenizerFast._tokenizer (else .backend_tokenizer) | studio/data/rules/tokens.py | the fast token counter |
"""  # noqa: E501 - Markdown table rows cannot wrap

from __future__ import annotations

import inspect


def test_trl_fused_lm_head_switch_exists_and_is_consulted():
    import torch
    import trl.trainer.utils as trl_utils

    from studio.train.worker import score_only_labelled_positions_on_cpu

    assert callable(getattr(trl_utils, "_use_triton", None)), "TRL renamed _use_triton: update the worker's CPU switch"
    assert "_use_triton(" in inspect.getsource(trl_utils), "TRL's fused LM head no longer consults _use_triton"
    stock = trl_utils._use_triton
    try:
        assert score_only_labelled_positions_on_cpu() is True
        assert trl_utils._use_triton(torch.device("cpu")) is True
    finally:
        trl_utils._use_triton = stock


def test_sft_trainer_counts_training_tokens():
    from trl import SFTTrainer

    source = inspect.getsource(SFTTrainer)
    assert "self._total_train_tokens = 0" in source and "self._total_train_tokens +=" in source, (
        "SFTTrainer no longer keeps _total_train_tokens: the worker's train_tokens and tokens/s need another source"
    )


def test_chat_template_helpers_render_with_answer_spans():
    from transformers.utils.chat_template_utils import _compile_jinja_template, _render_with_assistant_indices

    template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}A: {% generation %}{{ m['content'] }}"
        "{% endgeneration %}\n{% else %}U: {{ m['content'] }}\n{% endif %}{% endfor %}"
    )
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    compiled = _compile_jinja_template(template)
    assert compiled.render(messages=messages) == "U: hi\nA: hello"  # trim_blocks, as chat templates expect
    text, spans = _render_with_assistant_indices(compiled, messages, None, None, False)
    assert [text[start:end] for start, end in spans] == ["hello"]


def test_fast_tokenizers_expose_their_backend(tiny_model_dir):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    backend = getattr(tokenizer, "_tokenizer", None) or getattr(tokenizer, "backend_tokenizer", None)
    assert isinstance(backend, Tokenizer)
