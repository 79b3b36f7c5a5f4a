"""The row view: chat and token HTML, trained tokens marked, cut tokens marked, content escaped."""

import pytest

from studio.data import rowview


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


MESSAGES = [
    {"role": "system", "content": "Be a pirate."},
    {"role": "user", "content": "What is the capital?"},
    {"role": "assistant", "content": "Paris, matey!"},
]


def test_only_the_answer_and_its_end_of_turn_are_trained(tokenizer):
    spans = rowview.token_spans(tokenizer, MESSAGES)
    trained = "".join(s["text"] for s in spans if s["trained"])
    assert trained == "Paris, matey!<|im_end|>"
    assert "".join(s["text"] for s in spans) == tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert not any(s["cut"] for s in spans)


def test_tokens_beyond_max_length_are_marked_cut(tokenizer):
    spans = rowview.token_spans(tokenizer, MESSAGES, max_length=10)
    assert [s["cut"] for s in spans] == [i >= 10 for i in range(len(spans))]
    html = rowview.tokens_html(spans)
    assert html.count('rv-cut"') + html.count("rv-cut ") >= len(spans) - 10
    assert "beyond max_length" in html


def test_html_escapes_user_content():
    evil = [{"role": "user", "content": "<script>alert(1)</script>"}, {"role": "assistant", "content": "<b>hi</b>"}]
    chat = rowview.chat_html(evil)
    assert "<script>" not in chat and "&lt;script&gt;" in chat and "&lt;b&gt;hi" in chat
    tokens = rowview.tokens_html([{"text": "<img src=x onerror=alert(1)>", "trained": True, "cut": False}])
    assert "<img" not in tokens and "&lt;img" in tokens


def test_unreadable_and_text_rows_render_a_message():
    assert "could not be read" in rowview.chat_html(None)
    assert "plain text here" in rowview.chat_html(None, "plain text here")
    assert "not a message" in rowview.chat_html(["just a string"])
