"""Chat templates with `{% generation %}` markers, so only the assistant's tokens are trained.

TRL's `assistant_only_loss=True` and transformers' `return_assistant_tokens_mask=True` need the
chat template to wrap each assistant answer in `{% generation %}...{% endgeneration %}`. Most
templates lack them (SmolLM2, Qwen, the tiny test model), so for ChatML templates the studio
supplies an equivalent template that renders exactly the same text, with markers around the
answer and its `<|im_end|>` (so the model learns to stop). The lint (token counts) and the
Train capability share this function.
"""

from __future__ import annotations

import re

_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")
_PROBE = [{"role": "user", "content": "PROBE-USER"}, {"role": "assistant", "content": "PROBE-ANSWER"}]


def has_generation_markers(template: str | None) -> bool:
    return bool(template and _GENERATION.search(template))


def is_chatml(template: str | None) -> bool:
    return bool(template and "<|im_start|>" in template and "<|im_end|>" in template)


def chatml_template(default_system: str | None = None) -> str:
    """A ChatML template with generation markers; injects `default_system` when no system turn is given."""
    parts = ["{% for message in messages %}"]
    if default_system:
        parts.append(
            "{% if loop.first and messages[0]['role'] != 'system' %}"
            "{% raw %}<|im_start|>system\n" + default_system + "<|im_end|>\n{% endraw %}"
            "{% endif %}"
        )
    parts.append(
        "{% if message['role'] == 'assistant' %}"
        "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
        "{% else %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    return "".join(parts)


def render(template: str, messages: list[dict], tokenizer=None, add_generation_prompt: bool = False) -> str:
    from transformers.utils.chat_template_utils import _compile_jinja_template

    kwargs = dict(getattr(tokenizer, "special_tokens_map", {}) or {}) if tokenizer is not None else {}
    return _compile_jinja_template(template).render(messages=messages, tools=None, documents=None,
                                                    add_generation_prompt=add_generation_prompt, **kwargs)


def default_system_prompt(tokenizer, template: str | None = None) -> str | None:
    """The system prompt a ChatML template injects when the conversation has none (SmolLM2 does)."""
    template = template or getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    try:
        text = render(template, _PROBE, tokenizer)
    except Exception:  # noqa: BLE001
        return None
    match = re.match(r"^(?:<\|endoftext\|>|<s>)?<\|im_start\|>system\n(.*?)<\|im_end\|>\n", text, re.S)
    return match.group(1) if match else None


def training_template(tokenizer) -> str | None:
    """The template to train with: the tokenizer's own when it has generation markers, a ChatML
    equivalent with markers for ChatML models, else None (no assistant-only mask possible)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates
        template = template.get("default") or next(iter(template.values()), None)
    if not template:
        return None
    if has_generation_markers(template):
        return template
    if not is_chatml(template):
        return None
    candidate = chatml_template(default_system_prompt(tokenizer, template))
    # Only use it if it renders exactly like the model's own template on typical conversations.
    probes = [
        _PROBE,
        [{"role": "system", "content": "Be brief."}] + _PROBE,
        _PROBE + [{"role": "user", "content": "Again?"}, {"role": "assistant", "content": "Yes."}],
    ]
    try:
        for probe in probes:
            if render(template, probe, tokenizer) != render(candidate, probe, tokenizer):
                return None
    except Exception:  # noqa: BLE001
        return None
    return candidate
