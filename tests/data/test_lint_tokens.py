"""Tokenizer-aware rules (G: TPL-*, H: LEN-*), token counts and the training template, on the tiny model's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.data.lint import lint_rows
from studio.data.records import Row
from studio.data.rules.tokens import Renderer, WordCounter, _render_chatml, row_tokens
from studio.models import templates
from tests.data.test_lint_rules import chat, filler, rules_at

SAMPLES = Path(__file__).resolve().parents[2] / "studio" / "data" / "samples"
# SmolLM2-135M-Instruct's own chat template (as converted from the GGUF): ChatML + a default system prompt.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yo."},
    ],
    [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": " d \n"},
    ],
    [
        {"role": "user", "content": "w?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "1", "type": "function", "function": {"name": "w", "arguments": {}}}],
        },
        {"role": "tool", "content": "sun", "tool_call_id": "1"},
        {"role": "assistant", "content": "Sunny {{ not jinja }}."},
    ],
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def smol_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = SMOLLM2_TEMPLATE
    return tokenizer


def lint(records, tokenizer, **kwargs):
    return lint_rows([Row(i + 1, r) for i, r in enumerate(records)], tokenizer=tokenizer, **kwargs)


# ---------------------------------------------------------------- the training template


def test_training_template_renders_like_the_original_with_markers(tokenizer, smol_tokenizer):
    for tok, default in (
        (tokenizer, None),
        (smol_tokenizer, "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
    ):
        template = templates.training_template(tok)
        assert templates.has_generation_markers(template)
        assert templates.default_system_prompt(tok) == default
        for conversation in CONVERSATIONS:
            plain = tok.apply_chat_template(conversation, tokenize=False)
            assert tok.apply_chat_template(conversation, chat_template=template, tokenize=False) == plain


def test_training_template_masks_answers_and_end_of_turn(smol_tokenizer):
    template = templates.training_template(smol_tokenizer)
    encoded = smol_tokenizer.apply_chat_template(
        CONVERSATIONS[2], chat_template=template, tokenize=True, return_assistant_tokens_mask=True, return_dict=True
    )
    trained = "".join(smol_tokenizer.decode([i]) for i, m in zip(encoded["input_ids"], encoded["assistant_masks"]) if m)
    assert trained == "b<|im_end|> d \n<|im_end|>"


def test_no_training_template_for_unknown_templates(tokenizer):
    tokenizer = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    assert templates.training_template(tokenizer) is None
    tokenizer.chat_template = None
    assert templates.training_template(tokenizer) is None


def test_fast_chatml_renderer_matches_jinja(smol_tokenizer, tokenizer):
    from transformers.utils.chat_template_utils import _compile_jinja_template, _render_with_assistant_indices

    for tok in (smol_tokenizer, tokenizer):
        renderer = Renderer(tok)
        assert renderer.fast_chatml
        compiled = _compile_jinja_template(renderer.template)
        for conversation in CONVERSATIONS:
            expected = _render_with_assistant_indices(
                compiled, conversation, None, None, False, **tok.special_tokens_map
            )
            assert _render_chatml(conversation, renderer.chatml_default) == (
                expected[0],
                [tuple(s) for s in expected[1]],
            )


def test_token_counts_equal_apply_chat_template(smol_tokenizer):
    template = templates.training_template(smol_tokenizer)
    records = [json.loads(line) for line in (SAMPLES / "assistant_style.jsonl").read_text().splitlines()[:40]]
    report = lint(records, smol_tokenizer)
    for record, count in zip(records, report.token_counts):
        encoded = smol_tokenizer.apply_chat_template(
            record["messages"],
            chat_template=template,
            tokenize=True,
            return_assistant_tokens_mask=True,
            return_dict=True,
        )
        assert count.total == len(encoded["input_ids"])
        assert count.trainable == sum(encoded["assistant_masks"])
        assert count.prompt == count.total - count.trainable


def test_row_tokens_highlight_the_answer(smol_tokenizer):
    row = Row(1, {}, "messages", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}])
    tokens = row_tokens(row, smol_tokenizer)
    assert "".join(text for text, _ in tokens).startswith("<|im_start|>system\nYou are a helpful AI")
    assert "".join(text for text, trained in tokens if trained) == "Hello there<|im_end|>"


# ---------------------------------------------------------------- G: template rules


def test_tpl_none(tokenizer):
    bare = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    bare.chat_template = None
    assert "TPL-NONE" in rules_at(lint(filler(), bare))
    assert "TPL-NONE" not in rules_at(lint(filler(), tokenizer))
    assert "TPL-NONE" not in rules_at(lint([{"text": f"plain text number {i} about ships."} for i in range(12)], bare))


def test_tpl_render(tokenizer):
    strict = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    strict.chat_template = (
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    )
    bad = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "Both."},
        ]
    }
    report = lint(filler() + [bad], strict)
    finding = next(f for f in report.findings if f.rule == "TPL-RENDER")
    assert finding.row == 13 and finding.severity == "E" and "alternate" in finding.message
    assert report.token_counts[12] is None and report.token_counts[0] is not None
    assert "TPL-RENDER" not in rules_at(lint(filler(), strict))


def test_tpl_eot_mask(tokenizer):
    loose = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    loose.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}"
        "{{ m['content'] }}{% endgeneration %}{{ '<|im_end|>\n' }}{% else %}"
        "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}"
    )
    assert "TPL-EOT-MASK" in rules_at(lint(filler(), loose))
    assert "TPL-EOT-MASK" not in rules_at(lint(filler(), tokenizer))


def test_tpl_double_bos(tokenizer):
    with_bos = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    with_bos.chat_template = (
        "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% generation %}{% endgeneration %}{% endfor %}"
    )
    rows = [
        {"messages": [{"role": "user", "content": "<|im_start|>Hi"}, {"role": "assistant", "content": "Hello."}]}
    ] + filler()
    assert "TPL-DOUBLE-BOS" in rules_at(lint(rows, with_bos))
    assert "TPL-DOUBLE-BOS" not in rules_at(lint(filler(), with_bos))


def test_tpl_default_sys(smol_tokenizer, tokenizer):
    finding = next(f for f in lint(filler(), smol_tokenizer).findings if f.rule == "TPL-DEFAULT-SYS")
    assert finding.severity == "I" and "SmolLM" in finding.message and "12 row(s)" in finding.message
    assert "TPL-DEFAULT-SYS" not in rules_at(lint(filler(), tokenizer))


# ---------------------------------------------------------------- H: length rules


def test_len_trunc_counts_the_trainable_tokens_cut(tokenizer):
    long_answer = chat(answer="The tide turns at nine. " * 30)
    report = lint(filler() + [long_answer], tokenizer, max_length=64)
    finding = next(f for f in report.findings if f.rule == "LEN-TRUNC" and f.row == 13)
    count = report.token_counts[12]
    assert (
        finding.severity == "W" and count.total > 64 and count.trainable_cut == count.total - 64 - 1
    )  # the final "\n" is not trained
    assert f"{count.trainable_cut} of them trainable" in finding.message
    length = report.stats["length"]
    assert length["rows_over_max_length"] >= 1 and length["trainable_tokens_cut"] >= count.trainable_cut
    assert "LEN-TRUNC" not in rules_at(lint(filler(), tokenizer, max_length=256))


def test_len_trunc_is_an_error_beyond_the_model_context(tokenizer):
    assert tokenizer.model_max_length == 512
    huge = chat(answer="The tide turns at nine. " * 200)
    report = lint(filler() + [huge], tokenizer, max_length=2048)
    assert any(f.rule == "LEN-TRUNC" and f.row == 13 and f.severity == "E" for f in report.findings)


def test_len_no_train(tokenizer):
    long_prompt = chat(user="Please consider the following. " * 40, answer="Yes, aye.")
    report = lint(filler() + [long_prompt], tokenizer, max_length=64)
    assert any(f.rule == "LEN-NO-TRAIN" and f.row == 13 and f.severity == "E" for f in report.findings)
    assert "LEN-NO-TRAIN" not in rules_at(lint(filler(), tokenizer, max_length=256))


def test_len_short(tokenizer):
    assert "LEN-SHORT" in rules_at(lint(filler() + [chat(answer="K")], tokenizer), row=13)
    assert "LEN-SHORT" not in rules_at(lint(filler(), tokenizer))


def test_len_outlier(tokenizer):
    rows = filler(30) + [chat(answer=" ".join(f"Sentence {i} about the sea and its many moods." for i in range(40)))]
    assert "LEN-OUTLIER" in rules_at(lint(rows, tokenizer), row=31)
    assert "LEN-OUTLIER" not in rules_at(lint(filler(30), tokenizer))


def test_len_pack_hint_and_stats(tokenizer):
    report = lint(filler(), tokenizer)
    hint = next(f for f in report.findings if f.rule == "LEN-PACK-HINT")
    stats = report.stats
    suggested, per_example = stats["length"]["suggested_max_length"], stats["tokens"]["per_example"]["total"]
    assert str(suggested) in hint.hint and suggested % 64 == 0 and suggested >= per_example["p99"]
    assert (
        f"median {per_example['p50']} tokens, p99 {per_example['p99']})" in hint.message
    )  # the stats' own percentiles
    assert stats["tokens"]["total"] == sum(c.total for c in report.token_counts)
    assert stats["tokens"]["trainable"] == sum(c.trainable for c in report.token_counts)
    tight = lint(filler(), tokenizer, max_length=per_example["max"])
    assert "LEN-PACK-HINT" not in rules_at(tight)


def test_text_rows_are_counted_with_eos(tokenizer):
    report = lint([{"text": f"Plain text number {i} about ships and the sea."} for i in range(12)], tokenizer)
    count = report.token_counts[0]
    assert count.trainable == count.total and count.prompt == 0
    assert (
        count.total
        == len(tokenizer("Plain text number 0 about ships and the sea.", add_special_tokens=False)["input_ids"]) + 1
    )


def test_progress_is_reported(tokenizer):
    calls = []
    lint_rows(
        [Row(i + 1, r) for i, r in enumerate(filler())],
        tokenizer=tokenizer,
        progress=lambda fraction, message: calls.append((fraction, message)),
    )
    fractions = [fraction for fraction, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and all(message for _, message in calls)


@pytest.mark.slow
def test_bundled_model_counts_match_apply_chat_template(bundled_model_dir):
    from studio.models.loading import load_tokenizer

    tokenizer = load_tokenizer(str(bundled_model_dir))
    template = templates.training_template(tokenizer)
    assert template is not None and "SmolLM" in template
    records = [json.loads(line) for line in (SAMPLES / "assistant_style.jsonl").read_text().splitlines()]
    report = lint(records, tokenizer)
    assert report.verdict != "blocked"
    for record, count in zip(records, report.token_counts):
        encoded = tokenizer.apply_chat_template(
            record["messages"],
            chat_template=template,
            tokenize=True,
            return_assistant_tokens_mask=True,
            return_dict=True,
        )
        assert (count.total, count.trainable) == (len(encoded["input_ids"]), sum(encoded["assistant_masks"]))
        assert tokenizer.apply_chat_template(record["messages"], tokenize=False) == tokenizer.apply_chat_template(
            record["messages"], chat_template=template, tokenize=False
        )


def test_word_cache_counter_is_exact(smol_tokenizer):
    counter = WordCounter(smol_tokenizer)
    assert counter.usable()
    renderer = Renderer(smol_tokenizer)
    texts = [line for line in (SAMPLES / "assistant_style_messy.jsonl").read_text().splitlines()]
    texts += [
        "  spaces  and\n\n\nnewlines\t\ttabs ",
        "ünïcödé 東京 emoji 😀 numbers 123456 'll 've",
        "<|im_start|>inline<|im_end|>x",
        "",
    ]
    for text in texts:
        assert counter.count(text) == len(smol_tokenizer(text, add_special_tokens=False)["input_ids"]), text[:80]
    for conversation in CONVERSATIONS:
        text, spans = _render_chatml(conversation, renderer.chatml_default)
        encoded = smol_tokenizer.apply_chat_template(
            conversation,
            chat_template=renderer.template,
            tokenize=True,
            return_assistant_tokens_mask=True,
            return_dict=True,
        )
        assert counter.count_row(text, spans, 10_000) == (len(encoded["input_ids"]), sum(encoded["assistant_masks"]), 0)


def test_word_cache_counter_refuses_other_tokenizers(smol_tokenizer):
    from tokenizers import normalizers

    other = type(smol_tokenizer).from_pretrained(smol_tokenizer.name_or_path)
    other._tokenizer.normalizer = normalizers.Lowercase()
    assert not WordCounter(other).usable()


def test_counting_chatml_without_rendering_equals_the_rendered_count(smol_tokenizer, tokenizer):
    """WordCounter.count_chatml gives count_row of the rendered text, for awkward spacing, specials in content,
    tool calls without content, with and without a default system prompt, and when max_length cuts the answer."""
    import random

    rng = random.Random(5)
    alphabet = ["word", " ", "  ", "\n", "\n\n", "\t", "é", "😀", "<|im_end|>", "'s", "123", ".", "!", "\u00a0", "x"]
    for tok in (smol_tokenizer, tokenizer):
        renderer, counter = Renderer(tok), WordCounter(tok)
        assert renderer.fast_chatml
        conversations = list(CONVERSATIONS)
        for _ in range(300):
            messages = (
                [{"role": "system", "content": "".join(rng.choices(alphabet, k=rng.randint(0, 6)))}]
                if rng.random() < 0.3
                else []
            )
            for _ in range(rng.randint(1, 3)):
                messages.append({"role": "user", "content": "".join(rng.choices(alphabet, k=rng.randint(0, 12)))})
                messages.append({"role": "assistant", "content": "".join(rng.choices(alphabet, k=rng.randint(0, 30)))})
            conversations.append(messages)
        for messages in conversations:
            text, spans = _render_chatml(messages, renderer.chatml_default)
            for max_length in (10_000, 12, 3):
                assert counter.count_chatml(messages, renderer.chatml_default, max_length) == counter.count_row(
                    text, spans, max_length
                )
        assert counter.count_chatml([{"role": "user", "content": 5}], None, 100) is None  # rendered instead: TPL-RENDER
