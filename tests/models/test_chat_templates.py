"""Assistant-only loss for every model family the studio supports, on each family's real chat template.

The originals come from the pinned TRL package (trl/chat_templates/) or from tests/models/chat_templates/
(see its README). Each runs on the tiny model's tokenizer with the family's special tokens added, and
must (1) get a template with answer markers, (2) render every conversation exactly like the original,
(3) mask exactly the answer and its end-of-turn token in every assistant turn, nothing of the prompt.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.models import templates

FIXTURES = Path(__file__).resolve().parent / "chat_templates"


def trl_template(name: str) -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")


LLAMA = dict(
    bos_token="<|begin_of_text|>",
    eos_token="<|eot_id|>",
    additional_special_tokens=["<|start_header_id|>", "<|end_header_id|>"],
)
GEMMA = dict(bos_token="<bos>", eos_token="<eos>", additional_special_tokens=["<start_of_turn>", "<end_of_turn>"])
PHI3 = dict(
    bos_token="<s>",
    eos_token="<|endoftext|>",
    additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
)
MISTRAL = dict(bos_token="<s>", eos_token="</s>", additional_special_tokens=["[INST]", "[/INST]"])
CHATML = dict(eos_token="<|im_end|>", additional_special_tokens=["<|im_start|>"])

# name: (template text, special tokens, who supplies the marked template for several turns, what ends a turn,
#        what precedes the answer)
FAMILIES = {
    "SmolLM2 (ChatML)": (lambda: (FIXTURES / "smollm2.jinja").read_text(), CHATML, "studio", "<|im_end|>", ""),
    "Qwen 2.5": (lambda: trl_template("qwen2_5"), CHATML, "studio", "<|im_end|>", ""),
    "Qwen 3": (lambda: trl_template("qwen3"), CHATML, "studio", "<|im_end|>\n", "<think>\n\n</think>\n\n"),
    "Llama 3": (lambda: trl_template("llama3"), LLAMA, "trl", "<|eot_id|>", ""),
    "Llama 3.1": (lambda: trl_template("llama3_1"), LLAMA, "studio", "<|eot_id|>", ""),
    "Llama 3.2": (lambda: trl_template("llama3_2"), LLAMA, "studio", "<|eot_id|>", ""),
    "Gemma 2": (lambda: trl_template("gemma"), GEMMA, "trl", "<end_of_turn>\n", ""),
    "Gemma 3": (lambda: trl_template("gemma3"), GEMMA, "trl", "<end_of_turn>\n", ""),
    "Phi-3": (lambda: trl_template("phi3"), PHI3, "trl", "<|end|>\n", ""),
    "Phi-3.5": (lambda: trl_template("phi3_5"), PHI3, "trl", "<|end|>\n", ""),
    "Phi-4": (
        lambda: (FIXTURES / "phi4.jinja").read_text(),
        dict(eos_token="<|im_end|>", additional_special_tokens=["<|im_start|>", "<|im_sep|>"]),
        "studio",
        "<|im_end|>",
        "",
    ),
    "Mistral v0.2": (lambda: (FIXTURES / "mistral_v02.jinja").read_text(), MISTRAL, "studio", "</s>", ""),
    "Mistral v0.2 (v1 template)": (lambda: (FIXTURES / "mistral_v1.jinja").read_text(), MISTRAL, "studio", "</s>", " "),
    "Mistral v0.3 (v3 template)": (lambda: (FIXTURES / "mistral_v3.jinja").read_text(), MISTRAL, "studio", "</s>", " "),
}
NO_SYSTEM_ROLE = {"Gemma 2", "Mistral v0.2"}

SINGLE = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "Arr, 4."}]
MULTI = [
    {"role": "system", "content": "Talk like a pirate."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Ahoy!"},
    {"role": "user", "content": "Bye"},
    {"role": "assistant", "content": "Fair winds."},
]


@pytest.fixture(scope="module")
def base_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def family_tokenizer(base_tokenizer, name):
    import copy

    text, specials, *_ = FAMILIES[name]
    tokenizer = copy.deepcopy(base_tokenizer)
    tokenizer.add_special_tokens(specials)
    tokenizer.chat_template = text()
    return tokenizer


def masked_runs(tokenizer, messages, template) -> list[str]:
    encoded = tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    runs, current = [], []
    for token, masked in zip(encoded["input_ids"], encoded["assistant_masks"]):
        if masked:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("conversation", [SINGLE, MULTI], ids=["one turn", "system + two turns"])
def test_family_gets_assistant_only_loss_with_exact_masks(base_tokenizer, name, conversation):
    tokenizer = family_tokenizer(base_tokenizer, name)
    _, _, source, end_of_turn, lead = FAMILIES[name]
    choice = templates.choose_template(tokenizer, [conversation])
    assert choice.enabled, choice.note
    assert choice.fold_system == (name in NO_SYSTEM_ROLE)
    messages = choice.prepare([{"messages": conversation}])[0]["messages"]
    template = choice.template or tokenizer.chat_template
    assert templates.has_generation_markers(template)
    # The rendering is the model's own, as text and as token ids, with and without the generation prompt.
    own = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False) == own
    assert tokenizer.apply_chat_template(
        messages[:-1], chat_template=template, tokenize=False, add_generation_prompt=True
    ) == tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    # Exactly the answers (and the token that ends each one) are trained.
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    expected = [lead + answer + end_of_turn for answer in answers]
    if name == "Qwen 3":  # the empty think block belongs to answers after the last user turn only
        expected = [answer + end_of_turn for answer in answers[:-1]] + [lead + answers[-1] + end_of_turn]
    if name in ("Phi-3", "Phi-3.5"):  # the conversation's final eos is trained too (TRL's choice)
        expected[-1] += "<|endoftext|>"
    assert masked_runs(tokenizer, messages, template) == expected
    if conversation is MULTI:
        assert choice.source == source, choice.note


@pytest.mark.parametrize("name", FAMILIES)
def test_the_end_of_turn_token_is_trained(base_tokenizer, name):
    from trl.chat_template_utils import is_chat_template_stop_token_trained

    tokenizer = family_tokenizer(base_tokenizer, name)
    choice = templates.choose_template(tokenizer, [SINGLE])
    assert is_chat_template_stop_token_trained(tokenizer, chat_template=choice.template or tokenizer.chat_template)


def test_trl_is_asked_first_and_its_template_used_when_exact(base_tokenizer):
    tokenizer = family_tokenizer(base_tokenizer, "Llama 3")
    choice = templates.choose_template(tokenizer, [SINGLE])
    assert choice.source == "trl" and choice.template == trl_template("llama3_training")


def test_trl_template_that_marks_the_prompt_gives_way_to_an_exact_one(base_tokenizer):
    # TRL's Qwen 2.5 template puts the newline after "assistant" (a prompt token) inside the mask.
    tokenizer = family_tokenizer(base_tokenizer, "Qwen 2.5")
    assert templates.trains_the_prompt(tokenizer, trl_template("qwen2_5_training"))
    choice = templates.choose_template(tokenizer, [SINGLE])
    assert choice.source == "studio" and "ChatML" in choice.note


def test_qwen3_gets_trls_template_with_the_original_think_block_condition(base_tokenizer):
    # TRL's Qwen3 template prints an empty think block in every answer, the model's own only after the last
    # user turn: several-turn chats would render differently, so the studio patches TRL's template.
    tokenizer = family_tokenizer(base_tokenizer, "Qwen 3")
    assert not templates.renders_identically(tokenizer, trl_template("qwen3_training"), [MULTI])
    choice = templates.choose_template(tokenizer, [SINGLE])
    assert "Qwen3 (several turns)" in choice.note
    assert choice.template == templates.MARKER_PATCHES[-1].apply(trl_template("qwen3_training"))


def test_system_prompts_fold_into_the_first_user_turn_for_templates_without_a_system_role(base_tokenizer):
    tokenizer = family_tokenizer(base_tokenizer, "Gemma 2")
    with pytest.raises(Exception, match="System role not supported"):
        tokenizer.apply_chat_template(MULTI, tokenize=False)
    assert not templates.accepts_system_role(tokenizer)
    choice = templates.choose_template(tokenizer, [MULTI])
    assert choice.fold_system and any("no system role" in note for note in choice.notes)
    folded = templates.fold_system_prompt(MULTI)
    assert folded[0] == {"role": "user", "content": "Talk like a pirate.\n\nHi"} and len(folded) == len(MULTI) - 1
    # What Gemma 3's own template does with a system turn: the same text.
    gemma3 = family_tokenizer(base_tokenizer, "Gemma 3")
    assert gemma3.apply_chat_template(MULTI, tokenize=False) == gemma3.apply_chat_template(folded, tokenize=False)
    assert templates.accepts_system_role(gemma3)


def test_a_template_no_family_matches_turns_assistant_only_loss_off_with_the_reason(base_tokenizer):
    import copy

    tokenizer = copy.deepcopy(base_tokenizer)
    tokenizer.chat_template = "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    choice = templates.choose_template(tokenizer, [SINGLE])
    assert not choice.enabled and "not a family the studio knows" in choice.note


def test_a_patch_is_used_only_when_every_edit_matches_once():
    patch = templates.MarkerPatch("test", (("A", "{% generation %}A{% endgeneration %}"),))
    assert patch.apply("xAx") == "x{% generation %}A{% endgeneration %}x"
    assert patch.apply("AA") is None and patch.apply("B") is None


def test_the_data_lint_uses_the_same_template(base_tokenizer):
    from studio.models import templates as data_templates

    tokenizer = family_tokenizer(base_tokenizer, "Llama 3.1")
    assert data_templates.training_template(tokenizer) == templates.choose_template(tokenizer, []).template
