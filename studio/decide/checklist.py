"""The should-I-fine-tune checklist and the rules that turn its answers into a recommendation.

The questions follow Microsoft's "Generative AI for Beginners" lesson on fine-tuning (use case,
alternatives tried, costs, benefits) and OpenAI's / Azure OpenAI's fine-tuning guidance (try prompt
engineering and RAG first; at least 10 examples, 50–100 to see a clear improvement).

The scoring is the RULES table below: each rule is a condition on the answers and what it means
(verdict, reason, next step). Read it top to bottom like a checklist; add a row to change the advice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# Verdict kinds, strongest first: one "don't" rule outweighs any number of "go" rules.
DONT, NOT_YET, GO, NOTE = "dont", "not_yet", "go", "note"


@dataclass(frozen=True)
class Question:
    key: str
    section: str
    label: str
    why: str
    kind: str  # "choice" | "multi" | "number"
    choices: tuple = ()  # (value, label) pairs
    default: object = None
    short: str = ""  # how a reason names this question: "(from: few-shot baseline)"


SECTIONS = (
    ("usecase", "1 · Use case", "What should get better?"),
    ("alternatives", "2 · Alternatives tried", "Your baseline: what the model does without fine-tuning."),
    ("costs", "3 · Costs", "What fine-tuning will take."),
    ("benefits", "4 · Benefits", "What it would give back."),
)

GOALS = (
    ("format_style", "Format or style (tone, structure, output format)"),
    ("task_skill", "A task skill (classification, extraction, tool calls)"),
    ("domain", "Domain knowledge (facts, terminology)"),
    ("latency_cost", "Lower latency or cost (shorter prompts, smaller model)"),
    ("safety", "Safety behaviour (refusals, policy)"),
)
BASELINE = (
    ("not_tried", "Not tried yet"),
    ("poor", "Tried: poor (fails most cases)"),
    ("partial", "Tried: partly works (inconsistent, or needs long prompts)"),
    ("good", "Tried: good enough"),
)

QUESTIONS = (
    Question(
        "goals",
        "usecase",
        "What should improve over the current model?",
        "Fine-tuning is best at teaching form (format, style, a narrow skill) and at making a small model do "
        "a big model's job. It is a poor way to add facts.",
        "multi",
        GOALS,
        (),
        short="what should improve",
    ),
    Question(
        "knowledge_changes",
        "usecase",
        "How often does the knowledge the answers need change?",
        "A tuned model freezes what it learned at training time; facts that change need retrieval (RAG), "
        "which stays current without retraining.",
        "choice",
        (
            ("rarely", "Rarely, or no special knowledge needed"),
            ("often", "Often (monthly or faster: prices, docs, policies)"),
        ),
        "rarely",
        short="how often knowledge changes",
    ),
    Question(
        "few_shot",
        "alternatives",
        "Prompt engineering with few-shot examples: tried? how good?",
        "The cheapest baseline: minutes, no training. It defines what 'better' means and gives you the "
        "first evaluation set.",
        "choice",
        BASELINE,
        "not_tried",
        short="few-shot baseline",
    ),
    Question(
        "baseline_score",
        "alternatives",
        "Baseline score on your evaluation set (%, optional; 0 = not measured)",
        "A number to beat. Without it you cannot tell whether fine-tuning helped.",
        "number",
        (),
        None,
        short="baseline score",
    ),
    Question(
        "rag",
        "alternatives",
        "Retrieval-augmented generation (RAG): tried? how good?",
        "When the gap is missing knowledge, retrieval fills it without training and keeps answers "
        "traceable to sources.",
        "choice",
        (
            ("not_tried", "Not tried yet"),
            ("not_relevant", "Not relevant (no documents to retrieve)"),
            ("poor", "Tried: poor"),
            ("partial", "Tried: partly works"),
            ("good", "Tried: good enough"),
        ),
        "not_tried",
        short="RAG baseline",
    ),
    Question(
        "tunability",
        "costs",
        "Can the model be tuned? (weights, licence)",
        "You can only fine-tune weights you can train (or through a provider's API), and the licence must "
        "allow derived models.",
        "choice",
        (
            ("open_ok", "Open weights, licence allows fine-tuning"),
            ("open_unclear", "Open weights, licence unclear"),
            ("api", "Closed model with a fine-tuning API (OpenAI, Azure)"),
            ("closed", "Closed model, no fine-tuning offered"),
        ),
        "open_ok",
        short="tunability",
    ),
    Question(
        "effort",
        "costs",
        "Can you prepare the data and evaluate the result?",
        "Most of the work is data preparation and evaluation, not training. Without an evaluation you "
        "cannot tell whether the tuned model is better.",
        "choice",
        (
            ("yes", "Yes: people and time for data and evaluation"),
            ("data_only", "Partly: data, but no evaluation plan"),
            ("no", "No"),
        ),
        "yes",
        short="effort",
    ),
    Question(
        "compute",
        "costs",
        "What compute do you have?",
        "Training takes hours of hardware; the estimates below say how many for your dataset.",
        "choice",
        (
            ("gpu", "A GPU (own or rented) and a budget"),
            ("cpu", "CPU only, or a small budget"),
            ("none", "No budget for training"),
        ),
        "gpu",
        short="compute",
    ),
    Question(
        "examples",
        "costs",
        "How many good examples do you have?",
        "Fewer than 10 teach nothing reliable (OpenAI's minimum); 50–100 good ones is a start; hundreds to "
        "thousands is better. Quality beats quantity.",
        "number",
        (),
        0,
        short="examples",
    ),
    Question(
        "quality_gain",
        "benefits",
        "Expected quality gain over the baseline",
        "Fine-tuning must beat the baseline by enough to pay for itself and for keeping it up to date.",
        "choice",
        (
            ("large", "Large: the baseline misses a key requirement"),
            ("moderate", "Moderate"),
            ("small", "Small or unsure"),
        ),
        "moderate",
        short="expected gain",
    ),
    Question(
        "tokens_saved",
        "benefits",
        "Prompt tokens saved per request (few-shot examples you could drop)",
        "A tuned model needs no examples in its prompt: fewer tokens per request, lower cost and latency. "
        "Used in the break-even below.",
        "number",
        (),
        0,
        short="tokens saved",
    ),
    Question(
        "requests_per_month",
        "benefits",
        "Requests per month",
        "Savings per request only matter at volume.",
        "number",
        (),
        0,
        short="requests per month",
    ),
    Question(
        "reuse",
        "benefits",
        "Will the base model be reused for other tasks or domains?",
        "LoRA adapters are small: one base model can serve several tasks, which spreads the cost.",
        "choice",
        (("yes", "Yes: one base model, several adapters"), ("no", "No: one use only")),
        "no",
        short="reuse",
    ),
)
QUESTION_BY_KEY = {question.key: question for question in QUESTIONS}


def defaults() -> dict:
    return {
        question.key: (list(question.default) if question.kind == "multi" else question.default)
        for question in QUESTIONS
    }


def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number == number and number >= 0 else 0.0  # NaN and negatives count as 0


def normalise(answers: dict | None) -> dict:
    """Fill in defaults, keep only known choice values, turn numbers into numbers."""
    result = defaults()
    for key, value in (answers or {}).items():
        question = QUESTION_BY_KEY.get(key)
        if question is None or value is None:
            continue
        values = {choice for choice, _ in question.choices}
        if question.kind == "multi":
            result[key] = [item for item in (value or []) if item in values]
        elif question.kind == "choice":
            if value in values:
                result[key] = value
        elif key == "baseline_score":
            result[key] = _number(value) or None  # 0 means "not measured" (a Number field cannot be empty)
        else:
            result[key] = _number(value)
    return result


def answer_label(key: str, value) -> str:
    """The answer as the user saw it (choice labels, not keys)."""
    question = QUESTION_BY_KEY[key]
    labels = dict(question.choices)
    if question.kind == "multi":
        return ", ".join(labels.get(item, item) for item in value) or "(nothing selected)"
    if question.kind == "choice":
        return labels.get(value, str(value))
    if value is None:
        return "(not given)"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


# --- The rules table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str  # DONT | NOT_YET | GO | NOTE
    questions: tuple  # the answers that trigger it (shown next to the reason)
    when: Callable[[dict], bool]
    reason: str  # may use {answer keys} as placeholders
    next_step: str = ""
    action: str = ""  # DONT: what to use instead; NOT_YET: what to do first


def _goals(a: dict) -> set:
    return set(a["goals"])


RULES = (
    # --- Don't fine-tune ---------------------------------------------------------------------------------
    Rule(
        "closed_model",
        DONT,
        ("tunability",),
        lambda a: a["tunability"] == "closed",
        "The model cannot be fine-tuned: closed weights and no fine-tuning offered.",
        "Improve the prompt or add retrieval with this model, or move to an open-weights model.",
        action="prompt engineering or RAG with this model",
    ),
    Rule(
        "knowledge_changes_often",
        DONT,
        ("goals", "knowledge_changes"),
        lambda a: a["knowledge_changes"] == "often" and _goals(a) == {"domain"},
        "The knowledge you want changes often, and knowledge is all you want to improve: a tuned model freezes "
        "facts at training time, retrieval keeps them current.",
        "Index the documents and retrieve them into the prompt (RAG); re-index when they change.",
        action="RAG",
    ),
    Rule(
        "rag_already_works",
        DONT,
        ("goals", "rag"),
        lambda a: _goals(a) == {"domain"} and a["rag"] == "good",
        "You want domain knowledge, and RAG already answers well enough.",
        "Keep the RAG pipeline; improve retrieval quality (chunking, ranking) where it misses.",
        action="RAG (it already works)",
    ),
    Rule(
        "prompt_is_good_enough",
        DONT,
        ("few_shot", "goals", "quality_gain"),
        lambda a: a["few_shot"] == "good" and "latency_cost" not in _goals(a) and a["quality_gain"] != "large",
        "Few-shot prompting is already good enough and you are not after shorter prompts or lower latency: "
        "fine-tuning would add cost and upkeep for little gain.",
        "Keep the prompt; re-check this if request volume grows (see break-even) or requirements change.",
        action="your few-shot prompt",
    ),
    # --- Not yet -----------------------------------------------------------------------------------------
    Rule(
        "no_goal",
        NOT_YET,
        ("goals",),
        lambda a: not a["goals"],
        "No improvement target is selected: without one, nothing tells you whether fine-tuning worked.",
        "Pick what should get better (format, skill, knowledge, cost, safety) and write 20 inputs that show it.",
        action="name what should improve",
    ),
    Rule(
        "few_shot_not_tried",
        NOT_YET,
        ("few_shot",),
        lambda a: a["few_shot"] == "not_tried",
        "Few-shot prompting is not tried yet, so there is no baseline to beat.",
        "Write a prompt with 3–5 worked examples, run it on 20–50 real inputs and score the answers: that is "
        "your baseline and the start of an evaluation set.",
        action="few-shot prompting",
    ),
    Rule(
        "rag_not_tried",
        NOT_YET,
        ("goals", "rag"),
        lambda a: "domain" in _goals(a) and a["rag"] == "not_tried",
        "You want domain knowledge but have not tried RAG, which adds knowledge without training.",
        "Put the documents in a retrieval index and add the top passages to the prompt; score it on the same "
        "inputs as the few-shot baseline.",
        action="RAG",
    ),
    Rule(
        "too_few_examples",
        NOT_YET,
        ("examples",),
        lambda a: a["examples"] < 10,
        "{examples:.0f} good examples is too few to learn from (OpenAI's minimum is 10).",
        "Collect at least 50–100 good examples (real inputs with the answers you want); the Data tab checks them.",
        action="collect at least 50 good examples",
    ),
    Rule(
        "few_examples",
        NOT_YET,
        ("examples",),
        lambda a: 10 <= a["examples"] < 50,
        "{examples:.0f} examples is thin: 50–100 good ones is where a clear improvement usually starts.",
        "Grow the set to 50–100 good examples, or more; the Data tab lints and splits them.",
        action="collect 50–100 good examples",
    ),
    Rule(
        "licence_unclear",
        NOT_YET,
        ("tunability",),
        lambda a: a["tunability"] == "open_unclear",
        "The licence is unclear: a fine-tuned model is a derived work.",
        "Read the model's licence (model card) for derivative and commercial use, or pick an Apache-2.0/MIT "
        "model such as SmolLM2 or Qwen2.5.",
        action="check the licence",
    ),
    Rule(
        "no_evaluation_plan",
        NOT_YET,
        ("effort",),
        lambda a: a["effort"] == "data_only",
        "There is no evaluation plan: you could not tell a better model from a worse one.",
        "Hold out 20–50 examples as an evaluation set and decide how to score them (exact match, rubric, "
        "side-by-side votes in the Compare tab).",
        action="build an evaluation set",
    ),
    Rule(
        "no_effort",
        NOT_YET,
        ("effort",),
        lambda a: a["effort"] == "no",
        "Nobody can prepare data or evaluate: that is most of the work of fine-tuning.",
        "Plan a few days for collecting and cleaning examples and for evaluation before you train.",
        action="plan data preparation and evaluation",
    ),
    Rule(
        "no_budget",
        NOT_YET,
        ("compute",),
        lambda a: a["compute"] == "none",
        "There is no compute budget: even a small LoRA run needs hours of hardware.",
        "Check the estimates below: small models (135M–0.5B) train on a free CPU; a 7B LoRA costs a few dollars "
        "on a rented GPU.",
        action="secure a compute budget",
    ),
    # --- For fine-tuning ---------------------------------------------------------------------------------
    Rule(
        "teaches_form",
        GO,
        ("goals",),
        lambda a: bool(_goals(a) & {"format_style", "task_skill"}),
        "Format, style and narrow task skills are what fine-tuning teaches best.",
    ),
    Rule(
        "prompting_falls_short",
        GO,
        ("few_shot",),
        lambda a: a["few_shot"] in ("poor", "partial"),
        "Few-shot prompting was tried and falls short: fine-tuning is the usual next step.",
    ),
    Rule(
        "rag_falls_short",
        GO,
        ("rag", "goals"),
        lambda a: a["rag"] in ("poor", "partial") and "domain" in _goals(a),
        "RAG was tried and falls short: fine-tuning can teach the model to use retrieved context (combine both).",
    ),
    Rule(
        "enough_examples",
        GO,
        ("examples",),
        lambda a: a["examples"] >= 100,
        "{examples:,.0f} good examples: enough for a first LoRA run.",
    ),
    Rule(
        "starter_examples",
        GO,
        ("examples",),
        lambda a: 50 <= a["examples"] < 100,
        "{examples:.0f} good examples: a start; more usually helps.",
    ),
    Rule(
        "cheaper_requests",
        GO,
        ("goals",),
        lambda a: "latency_cost" in _goals(a),
        "A small tuned model can replace a large model with a long prompt: lower latency and cost per request.",
    ),
    Rule(
        "tokens_saved",
        GO,
        ("tokens_saved", "requests_per_month"),
        lambda a: a["tokens_saved"] * a["requests_per_month"] > 0,
        "Dropping {tokens_saved:,.0f} prompt tokens from {requests_per_month:,.0f} requests a month saves "
        "{monthly_tokens:,.0f} tokens a month (see the break-even below).",
    ),
    Rule(
        "large_gain",
        GO,
        ("quality_gain",),
        lambda a: a["quality_gain"] == "large",
        "You expect a large gain: the baseline misses a key requirement.",
    ),
    Rule(
        "reuse",
        GO,
        ("reuse",),
        lambda a: a["reuse"] == "yes",
        "One base model with several small LoRA adapters spreads the cost over tasks.",
    ),
    # --- Notes (advice that does not change the verdict) -------------------------------------------------
    Rule(
        "facts_and_form",
        NOTE,
        ("knowledge_changes", "goals"),
        lambda a: a["knowledge_changes"] == "often" and bool(_goals(a) - {"domain"}),
        "The facts change often: keep them in RAG and fine-tune only the form (style, format, skill). The two combine.",
        "Put changing facts in a retrieval index; fine-tune on examples that use retrieved context.",
    ),
    Rule(
        "facts_by_tuning",
        NOTE,
        ("goals",),
        lambda a: "domain" in _goals(a) and a["knowledge_changes"] == "rarely",
        "Fine-tuning adds facts poorly and can make a model state them confidently and wrongly.",
        "Test factual answers against sources after tuning; RAG often does better for facts.",
    ),
    Rule(
        "provider_api",
        NOTE,
        ("tunability",),
        lambda a: a["tunability"] == "api",
        "Closed model with a fine-tuning API: tune it through the provider. This studio trains open-weights "
        "models: use it to prototype the data and evaluation on a small open model.",
        "Prepare and lint the data here; upload the same JSONL to the provider's fine-tuning API.",
    ),
    Rule(
        "cpu_only",
        NOTE,
        ("compute",),
        lambda a: a["compute"] == "cpu",
        "CPU only: fine for small models (135M–0.5B) with LoRA; larger models need a GPU.",
        "See the estimates below for hours on this machine versus a rented GPU.",
    ),
    Rule(
        "safety",
        NOTE,
        ("goals",),
        lambda a: "safety" in _goals(a),
        "Fine-tuning can weaken a model's safety training as well as strengthen it.",
        "Evaluate refusals and harmful-request handling before and after tuning.",
    ),
    Rule(
        "small_gain",
        NOTE,
        ("quality_gain",),
        lambda a: a["quality_gain"] == "small",
        "The expected gain is small or unsure: measure the gap before investing.",
        "Score the baseline on 20–50 inputs and decide what score would justify a tuned model.",
    ),
)
RULE_BY_ID = {rule.id: rule for rule in RULES}


@dataclass
class Reason:
    rule: str
    kind: str
    text: str
    questions: tuple  # question keys behind this reason


@dataclass
class Recommendation:
    kind: str  # DONT | NOT_YET | GO
    verdict: str  # "Fine-tune" | "Not yet: try … first" | "Don't fine-tune: use …"
    reasons: list[Reason]  # the rules that decided the verdict
    supporting: list[Reason]  # what speaks for fine-tuning even when the verdict is not "go"
    notes: list[Reason]
    next_steps: list[str]
    answers: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


GO_NEXT_STEPS = (
    "Load and lint your examples in the Data tab; keep 10–20% for validation.",
    "Check the estimates below and pick the suggested technique; press “Use these settings →”.",
    "Train a first LoRA run in the Train tab, then compare it with the base model in the Compare tab.",
)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def recommend(answers: dict | None) -> Recommendation:
    """Apply every rule; the strongest kind that fired decides the verdict."""
    a = normalise(answers)
    values = dict(a, monthly_tokens=a["tokens_saved"] * a["requests_per_month"])
    fired = {DONT: [], NOT_YET: [], GO: [], NOTE: []}
    for rule in RULES:
        if rule.when(a):
            fired[rule.kind].append(rule)

    def reasons(rules):
        return [Reason(rule.id, rule.kind, rule.reason.format(**values), rule.questions) for rule in rules]

    notes = reasons(fired[NOTE])
    note_steps = [rule.next_step for rule in fired[NOTE] if rule.next_step]
    if fired[DONT]:
        uses = list(dict.fromkeys(rule.action for rule in fired[DONT]))
        return Recommendation(
            DONT,
            "Don't fine-tune: use " + _join(uses),
            reasons(fired[DONT]),
            reasons(fired[GO]),
            notes,
            [rule.next_step for rule in fired[DONT]] + note_steps,
            a,
        )
    if fired[NOT_YET]:
        actions = [rule.action for rule in fired[NOT_YET]]
        tries = [action for action in actions if action in ("few-shot prompting", "RAG")]
        others = [action for action in actions if action not in tries]
        parts = (["try " + _join(tries)] if tries else []) + others
        return Recommendation(
            NOT_YET,
            "Not yet: " + "; ".join(parts) + " first",
            reasons(fired[NOT_YET]),
            reasons(fired[GO]),
            notes,
            [rule.next_step for rule in fired[NOT_YET]] + note_steps,
            a,
        )
    # No "don't" and no "not yet": every precondition holds, and then at least one "go" rule holds too
    # (a tried-but-lacking baseline, or a cost goal, or a large expected gain — see the table).
    return Recommendation(GO, "Fine-tune", reasons(fired[GO]), [], notes, list(GO_NEXT_STEPS) + note_steps, a)
