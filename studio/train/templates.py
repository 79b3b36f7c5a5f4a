"""Chat templates for assistant-only loss.

TRL's assistant_only_loss needs `{% generation %}` markers around the assistant answers in the
chat template; most templates (SmolLM2's and the tiny test model's ChatML included) have none.
Order of preference:
  1. the tokenizer's own template, when it already has the markers;
  2. `studio.data.templates.training_template(tokenizer)` (owned by Data) when that module exists;
  3. our ChatML template with markers, for ChatML models (keeps the model's default system prompt).
A replacement is used only if it renders the dataset's rows exactly like the original template
(the markers print nothing), so training sees the same text as chat will. Otherwise
assistant-only loss is turned off and the reason recorded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

GENERATION_MARK = "generation %}"

# ChatML with generation markers around each assistant answer and its <|im_end|>.
_CHATML_MARKED = (
    "{%- for message in messages -%}"
    "{%- if loop.first and messages[0]['role'] != 'system' and DEFAULT_SYSTEM -%}"
    "{{ '<|im_start|>system\\n' + DEFAULT_SYSTEM + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


@dataclass
class TemplateChoice:
    enabled: bool  # assistant-only loss possible
    template: str | None  # the template to train with (None: keep the tokenizer's)
    note: str  # what was decided and why, for status notes / log / model card


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and GENERATION_MARK in template


def chatml_marked_template(default_system: str = "") -> str:
    literal = "'" + default_system.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    return "{%- set DEFAULT_SYSTEM = " + literal + " -%}" + _CHATML_MARKED


def _render(tokenizer, template: str, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)


def _default_system_prompt(tokenizer) -> str | None:
    """The system prompt a ChatML template adds when the conversation has none ('' if none; None if not ChatML)."""
    probe = [{"role": "user", "content": "probe"}, {"role": "assistant", "content": "answer"}]
    text = _render(tokenizer, tokenizer.chat_template, probe)
    user_turn = "<|im_start|>user\nprobe<|im_end|>\n"
    if user_turn not in text:
        return None
    prefix = text[: text.index(user_turn)]
    if prefix == "":
        return ""
    if prefix.startswith("<|im_start|>system\n") and prefix.endswith("<|im_end|>\n"):
        return prefix[len("<|im_start|>system\n"): -len("<|im_end|>\n")]
    return None


def _renders_identically(tokenizer, candidate: str, samples: list[list[dict]]) -> bool:
    original = tokenizer.chat_template
    probes = samples + [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"},
         {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}],
    ]
    try:
        return all(_render(tokenizer, candidate, m) == _render(tokenizer, original, m) for m in probes)
    except Exception:  # noqa: BLE001 - a template that cannot render a row is simply not used
        return False


def _data_engineers_template(tokenizer) -> str | None:
    if importlib.util.find_spec("studio.data.templates") is None:
        return None
    from studio.data import templates  # owned by Data; optional

    function = getattr(templates, "training_template", None)
    if function is None:
        return None
    try:
        result = function(tokenizer)
    except Exception:  # noqa: BLE001
        return None
    return result if isinstance(result, str) and has_generation_markers(result) else None


def choose_template(tokenizer, samples: list[list[dict]]) -> TemplateChoice:
    """Decide how to get assistant-only loss for this tokenizer (see the module docstring)."""
    original = getattr(tokenizer, "chat_template", None)
    if not original:
        return TemplateChoice(False, None, "assistant-only loss off: the tokenizer has no chat template, so the "
                                           "whole conversation is trained on")
    if has_generation_markers(original):
        return TemplateChoice(True, None, "assistant-only loss on: the model's chat template marks the answers")
    candidates = []
    from_data = _data_engineers_template(tokenizer)
    if from_data:
        candidates.append((from_data, "the studio's training template for this model family"))
    default_system = _default_system_prompt(tokenizer)
    if default_system is not None:
        candidates.append((chatml_marked_template(default_system), "the studio's ChatML template with answer markers"))
    for candidate, label in candidates:
        if _renders_identically(tokenizer, candidate, samples[:20]):
            return TemplateChoice(True, candidate, f"assistant-only loss on: using {label} (renders exactly like the model's own)")
    return TemplateChoice(False, None, "assistant-only loss off: the model's chat template has no answer markers and "
                                       "is not a family the studio knows (ChatML), so the whole conversation is trained on")
