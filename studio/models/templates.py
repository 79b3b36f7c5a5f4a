"""Chat templates for assistant-only loss: the one place that decides how a model's chat template is trained.

TRL's `assistant_only_loss` (and transformers' `return_assistant_tokens_mask`) needs `{% generation %}`
markers around each assistant answer; most model templates have none. Used by the Train worker, the
Train tab's preflight and the Data lint (token counts), so all three see the same template.

Order of preference for a model's template:
  1. the template itself, when it already has the markers;
  2. TRL's training template for it (`trl.chat_template_utils.get_training_chat_template`: Llama 3,
     Qwen 2.5/3, Gemma 1/2/3, Phi-3/3.5 and more, matched by exact template text);
  3. the studio's own: marker patches (exact-text edits of the model's or TRL's template) for
     Llama 3.1/3.2, Mistral (v1, v3, Tekken), Phi-4 and multi-turn Qwen3; and a ChatML template for
     SmolLM2 and other ChatML models (keeps the model's default system prompt).
A candidate is used only if it renders the dataset's rows and a few probes (with and without a system
turn, several turns, the generation prompt) exactly like the model's own template: the markers print
nothing, so training sees the text that chat will. Among those, a mask that starts where the model starts
writing wins over one that also covers part of the generation prompt (TRL's Qwen 2.5 template marks the
newline after "assistant"; the studio's ChatML one does not). Otherwise assistant-only loss is off and
the reason is said (preflight warning before the run, status note during it) — never silently.

System prompts: a template that refuses a system turn (Gemma 1/2 raise "System role not supported") gets
the system text merged into the first user message, separated by a blank line — what Gemma 3's own
template does — in training rows and in Compare's prompts alike (`fold_system_prompt`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import StudioError
from studio.models import bundled, catalog

_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")
_PROBE = [{"role": "user", "content": "PROBE-USER"}, {"role": "assistant", "content": "PROBE-ANSWER"}]
# Conversations every candidate must render exactly like the model's own template (besides the data's rows).
PROBES = (
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2"},
    ],
    [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": " d \n"},
    ],
)
SAMPLE_ROWS = 50  # dataset rows checked for identical rendering (plus PROBES)


# ---------------------------------------------------------------- the studio's own templates


def has_generation_markers(template: str | None) -> bool:
    return bool(template and _GENERATION.search(template))


def is_chatml(template: str | None) -> bool:
    return bool(template and "<|im_start|>" in template and "<|im_end|>" in template)


def chatml_template(default_system: str | None = None) -> str:
    """A ChatML template with generation markers around each answer and its <|im_end|>; injects
    `default_system` when the conversation has no system turn (SmolLM2 does). The Data lint renders the
    same text in plain Python (studio.data.rules.tokens._render_chatml)."""
    parts = ["{% for message in messages %}"]
    if default_system:
        parts.append(
            "{% if loop.first and messages[0]['role'] != 'system' %}"
            "{% raw %}<|im_start|>system\n" + default_system + "<|im_end|>\n{% endraw %}"
            "{% endif %}"
        )
    parts.append(
        "{% if message['role'] == 'assistant' %}"
        "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
        "{{ '\n' }}{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    return "".join(parts)


@dataclass(frozen=True)
class MarkerPatch:
    """Exact-text edits that wrap a family's assistant output in generation markers. Applied to the
    model's own template (and to TRL's training template); used only when every edit matches exactly once."""

    family: str
    edits: tuple[tuple[str, str], ...]

    def apply(self, template: str) -> str | None:
        for old, _ in self.edits:
            if template.count(old) != 1:
                return None
        for old, new in self.edits:
            template = template.replace(old, new)
        return template


def _wrap(expression: str, dash: str = "-") -> str:
    return "{%" + dash + " generation %}" + expression + "{%" + dash + " endgeneration %}"


_LLAMA31_TURN = (
    r"""{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] |"""
    r""" trim + '<|eot_id|>' }}"""
)
_QWEN3_THINK = r"""{{- '<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}"""

MARKER_PATCHES = (
    # Llama 3.1 / 3.2 (and 3.3): one line renders every non-tool turn; split off the assistant's.
    MarkerPatch(
        "Llama 3.1/3.2",
        (
            (
                _LLAMA31_TURN,
                (
                    r"""{%- if message['role'] == 'assistant' %}"""
                    r"""{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"""
                )
                + _wrap(r"""{{- message['content'] | trim + '<|eot_id|>' }}""")
                + "{%- else %}"
                + _LLAMA31_TURN
                + "{%- endif %}",
            ),
        ),
    ),
    # Phi-4: the user turn opens the assistant header; the assistant branch prints only the answer.
    MarkerPatch(
        "Phi-4",
        (
            (
                r"""{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|im_end|>'}}""",
                r"""{% elif (message['role'] == 'assistant') %}"""
                + _wrap(r"""{{message['content'] + '<|im_end|>'}}""", ""),
            ),
        ),
    ),
    # Mistral v1 template with a system prompt (Mistral-7B-Instruct-v0.1/v0.2, Mixtral).
    MarkerPatch(
        "Mistral (v1)",
        (
            (
                r"""{{- ' ' + message['content'] + eos_token}}""",
                _wrap(r"""{{- ' ' + message['content'] + eos_token}}"""),
            ),
        ),
    ),
    # The older v0.2 template without a system prompt.
    MarkerPatch(
        "Mistral (v0.2)",
        (
            (
                r"""{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}""",
                r"""{% elif message['role'] == 'assistant' %}"""
                + _wrap(r"""{{ message['content'] + eos_token}}""", ""),
            ),
        ),
    ),
    # Mistral v3 (Mistral-7B-Instruct-v0.3, Mistral Large 2407): the answer is trimmed and prefixed by a space.
    MarkerPatch(
        "Mistral (v3)",
        (
            (
                r"""{{- " " + message["content"]|trim + eos_token}}""",
                _wrap(r"""{{- " " + message["content"]|trim + eos_token}}"""),
            ),
        ),
    ),
    # Mistral v3 Tekken (Mistral Nemo, Ministral).
    MarkerPatch(
        "Mistral (v3 Tekken)",
        (
            (
                r"""{%- elif message["role"] == "assistant" %}
        {{- message["content"] + eos_token}}""",
                r"""{%- elif message["role"] == "assistant" %}""" + _wrap(r"""{{- message["content"] + eos_token}}"""),
            ),
        ),
    ),
    # Qwen3, several turns: TRL's training template prints an empty think block in every answer; the
    # model's own prints it only after the last user turn. Put the original condition back.
    MarkerPatch(
        "Qwen3 (several turns)",
        (
            (
                _QWEN3_THINK,
                "{%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}"
                + _QWEN3_THINK
                + "{%- else %}{{- content }}{%- endif %}",
            ),
        ),
    ),
)


# ---------------------------------------------------------------- rendering


def own_template(tokenizer) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates
        template = template.get("default") or next(iter(template.values()), None)
    return template or None


@functools.lru_cache(maxsize=64)
def _compiled(template: str):
    from transformers.utils.chat_template_utils import _compile_jinja_template

    return _compile_jinja_template(template)


def render(template: str, messages: list[dict], tokenizer=None, add_generation_prompt: bool = False) -> str:
    """The text `template` gives `messages`, with the tokenizer's special tokens (bos_token, eos_token …)."""
    kwargs = dict(getattr(tokenizer, "special_tokens_map", {}) or {}) if tokenizer is not None else {}
    return _compiled(template).render(
        messages=messages, tools=None, documents=None, add_generation_prompt=add_generation_prompt, **kwargs
    )


def default_system_prompt(tokenizer, template: str | None = None) -> str | None:
    """The system prompt a ChatML template injects when the conversation has none (SmolLM2 does)."""
    template = template or own_template(tokenizer)
    if not template:
        return None
    try:
        text = render(template, _PROBE, tokenizer)
    except Exception:  # noqa: BLE001 - a template that cannot render has no default system prompt to read
        return None
    match = re.match(r"^(?:<\|endoftext\|>|<s>)?<\|im_start\|>system\n(.*?)<\|im_end\|>\n", text, re.S)
    return match.group(1) if match else None


def accepts_system_role(tokenizer, template: str | None = None) -> bool:
    """False when the template refuses a system turn (Gemma 1/2 raise 'System role not supported')."""
    template = template or own_template(tokenizer)
    if not template:
        return True
    try:
        render(template, _PROBE, tokenizer)
    except Exception:  # noqa: BLE001 - a template that cannot render at all is reported elsewhere
        return True
    try:
        render(template, [{"role": "system", "content": "S"}] + _PROBE, tokenizer)
    except Exception:  # noqa: BLE001 - renders without a system turn, fails with one: no system role
        return False
    return True


def fold_system_prompt(messages: list[dict]) -> list[dict]:
    """System text merged into the first user message (blank line between), as Gemma 3's template does."""
    if not messages or messages[0].get("role") != "system":
        return messages
    system, rest = messages[0], list(messages[1:])
    text = str(system.get("content") or "")
    for index, message in enumerate(rest):
        if message.get("role") == "user":
            rest[index] = {
                **message,
                "content": (text + "\n\n" + str(message.get("content") or "")) if text else message.get("content"),
            }
            return rest
    return [{"role": "user", "content": text}] + rest if text else rest


def prepare_messages(tokenizer, messages: list[dict]) -> list[dict]:
    """Messages as this model's template can take them (system folded into the first user turn if need be)."""
    return messages if accepts_system_role(tokenizer) else fold_system_prompt(messages)


# ---------------------------------------------------------------- choosing


@dataclass
class TemplateChoice:
    enabled: bool  # assistant-only loss possible
    template: str | None  # the template to train with (None: keep the tokenizer's)
    note: str  # what was decided and why, for status notes / log / model card / preflight
    source: str = ""  # "model" | "trl" | "studio" | ""
    fold_system: bool = False  # system prompts are merged into the first user message
    notes: list[str] = field(default_factory=list)

    def prepare(self, rows: list[dict]) -> list[dict]:
        """Training rows ({"messages": [...]}) as the template takes them."""
        if not self.fold_system:
            return rows
        return [{**row, "messages": fold_system_prompt(row["messages"])} for row in rows]


FOLD_NOTE = (
    "this model's chat template has no system role: system prompts are merged into the first user "
    "message (separated by a blank line), as Gemma 3's own template does"
)


def _trl_template(tokenizer) -> str | None:
    """TRL's training template for this exact template, or None (unknown to TRL, or TRL missing)."""
    try:
        from trl.chat_template_utils import get_training_chat_template

        result = get_training_chat_template(tokenizer)
    except Exception:  # noqa: BLE001 - ValueError for templates TRL does not know; any failure means "none"
        return None
    return result if isinstance(result, str) and has_generation_markers(result) else None


def candidates(tokenizer) -> list[tuple[str, str, str]]:
    """(template, source, label) to try, best first (see the module docstring)."""
    own = own_template(tokenizer)
    if not own:
        return []
    found: list[tuple[str, str, str]] = []
    if has_generation_markers(own):
        found.append((own, "model", "the model's own chat template (it marks the answers)"))
    trl = _trl_template(tokenizer)
    if trl:
        found.append((trl, "trl", "TRL's training template for this model family"))
    for base in [text for text in (trl, own) if text]:
        for patch in MARKER_PATCHES:
            patched = patch.apply(base)
            if patched and has_generation_markers(patched):
                found.append((patched, "studio", f"the studio's {patch.family} template with answer markers"))
    if is_chatml(own):
        default = default_system_prompt(tokenizer, own)
        found.append((chatml_template(default), "studio", "the studio's ChatML template with answer markers"))
    unique, seen = [], set()
    for item in found:
        if item[0] not in seen:
            seen.add(item[0])
            unique.append(item)
    return unique


def renders_identically(
    tokenizer, candidate: str, conversations: list[list[dict]], original: str | None = None
) -> bool:
    """Same text as the model's own template for every conversation, with and without the generation prompt."""
    original = original or own_template(tokenizer)
    try:
        for messages in conversations:
            prompt_only = messages[:-1] if messages and messages[-1].get("role") == "assistant" else messages
            variants = [(messages, False)] + ([(prompt_only, True)] if prompt_only else [])
            for shown, add_generation_prompt in variants:
                if render(candidate, shown, tokenizer, add_generation_prompt) != render(
                    original, shown, tokenizer, add_generation_prompt
                ):
                    return False
    except Exception:  # noqa: BLE001 - a template that cannot render a row is simply not used
        return False
    return True


def trains_the_prompt(tokenizer, template: str, fold: bool = False) -> bool:
    """True when the answer mask starts inside the generation prompt (e.g. TRL's Qwen 2.5 template marks
    the newline after 'assistant'): those tokens are given at inference, never generated."""
    from transformers.utils.chat_template_utils import _render_with_assistant_indices

    messages = [dict(message) for message in PROBES[0]]
    messages = fold_system_prompt(messages) if fold else messages
    kwargs = dict(getattr(tokenizer, "special_tokens_map", {}) or {})
    try:
        prompt = render(template, messages[:-1], tokenizer, add_generation_prompt=True)
        text, spans = _render_with_assistant_indices(_compiled(template), messages, None, None, False, **kwargs)
    except Exception:  # noqa: BLE001 - cannot tell: the identity check decides
        return False
    return bool(spans) and text.startswith(prompt) and spans[0][0] < len(prompt)


def choose_template(tokenizer, samples: list[list[dict]]) -> TemplateChoice:
    """Decide how to get assistant-only loss for this tokenizer and these conversations."""
    own = own_template(tokenizer)
    if not own:
        return TemplateChoice(
            False,
            None,
            "assistant-only loss off: the tokenizer has no chat template, so the whole conversation is trained on",
        )
    fold = not accepts_system_role(tokenizer, own)
    conversations = [list(messages) for messages in samples[:SAMPLE_ROWS]] + [list(probe) for probe in PROBES]
    if fold:
        conversations = [fold_system_prompt(messages) for messages in conversations]
    extra = [FOLD_NOTE] if fold else []
    identical = [
        (template, source, label)
        for template, source, label in candidates(tokenizer)
        if renders_identically(tokenizer, template, conversations, own)
    ]
    # Prefer a mask that starts where the model starts writing; one that also covers part of the
    # generation prompt still trains the answers, so it is the fallback (and said so).
    exact = [item for item in identical if not trains_the_prompt(tokenizer, item[0], fold)]
    for (template, source, label), loose in [(item, False) for item in exact] + [
        (item, True) for item in identical[:1]
    ]:
        keep = None if source == "model" else template
        note = f"assistant-only loss on: using {label}" + (
            "" if source == "model" else " (renders exactly like the model's own)"
        )
        if loose:
            note += "; its mask also covers a few prompt tokens before each answer"
        return TemplateChoice(True, keep, note, source, fold, extra)
    return TemplateChoice(
        False,
        None,
        "assistant-only loss off: the model's chat template has no answer markers and "
        "is not a family the studio knows (Llama 3.x, Qwen 2.5/3, Gemma, Phi-3/3.5/4, "
        "Mistral, ChatML/SmolLM), so the whole conversation is trained on",
        "",
        fold,
        extra,
    )


def training_template(tokenizer, samples: list[list[dict]] | None = None) -> str | None:
    """The template to count and train with: the model's own when it has markers, else the chosen marked
    one; None when no assistant mask is possible."""
    choice = choose_template(tokenizer, samples or [])
    if not choice.enabled:
        return None
    return choice.template or own_template(tokenizer)


# ---------------------------------------------------------------- before a run (preflight)


def _cached_tokenizer_source(model_ref: str) -> str | None:
    """A folder holding the model's tokenizer that loads without a download or a conversion, or None."""
    try:
        kind = catalog.classify(model_ref)
    except StudioError:
        return None
    if kind == "bundled":
        return str(bundled.converted_dir()) if bundled.is_converted() else None
    if kind == "local":
        return str(Path(model_ref).expanduser().resolve())
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_ref.strip(), "tokenizer_config.json")
    except Exception:  # noqa: BLE001 - no cache: nothing to find
        return None
    return str(Path(cached).parent) if isinstance(cached, str) else None


@functools.lru_cache(maxsize=16)
def _load_local_tokenizer(source: str, stamp: float, trust_remote_code: bool):  # noqa: ARG001 - stamp: cache key
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source, local_files_only=True, trust_remote_code=trust_remote_code)


def _sample_conversations(dataset: str, limit: int = SAMPLE_ROWS) -> list[list[dict]]:
    rows = []
    try:
        with open(Path(dataset) / "train.jsonl", encoding="utf-8") as handle:
            for line in handle:
                if len(rows) >= limit:
                    break
                try:
                    messages = json.loads(line).get("messages")
                except (ValueError, AttributeError):
                    continue
                if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
                    rows.append([{"role": m.get("role"), "content": m.get("content")} for m in messages])
    except OSError:
        return []
    return rows


def preflight_choice(model_ref: str, dataset: str = "", trust_remote_code: bool = False) -> TemplateChoice | None:
    """The decision the run will make, taken before it starts when the tokenizer is on disk; None when it
    cannot be known yet (a Hub model not downloaded, the bundled model not converted yet)."""
    source = _cached_tokenizer_source(str(model_ref or ""))
    if source is None:
        return None
    folder = Path(source)
    stamp = max((path.stat().st_mtime for path in folder.glob("tokenizer*") if path.is_file()), default=0.0)
    try:
        tokenizer = _load_local_tokenizer(source, stamp, bool(trust_remote_code))
    except Exception:  # noqa: BLE001 - the run itself reports load failures with a hint
        return None
    return choose_template(tokenizer, _sample_conversations(dataset) if dataset else [])
