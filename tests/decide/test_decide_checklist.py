"""The should-I-fine-tune rules table: every verdict path, the reasons it gives, and its next steps."""

import itertools
import random

import pytest

from studio.decide import checklist
from studio.decide.checklist import DONT, GO, NOT_YET, recommend

READY = dict(
    goals=["format_style"],
    knowledge_changes="rarely",
    few_shot="partial",
    rag="not_relevant",
    tunability="open_ok",
    effort="yes",
    compute="gpu",
    examples=300,
    quality_gain="moderate",
    tokens_saved=0,
    requests_per_month=0,
    reuse="no",
)


def answers(**changes):
    return dict(READY, **changes)


def rule_ids(reasons):
    return [reason.rule for reason in reasons]


def test_ready_team_gets_fine_tune_with_reasons_and_next_steps():
    rec = recommend(READY)
    assert rec.kind == GO and rec.verdict == "Fine-tune"
    assert rule_ids(rec.reasons) == ["teaches_form", "prompting_falls_short", "enough_examples"]
    assert "300 good examples" in rec.reasons[2].text
    assert any("Data tab" in step for step in rec.next_steps)
    assert any("Train tab" in step for step in rec.next_steps)


def test_untouched_form_says_not_yet_try_few_shot_first():
    rec = recommend({})
    assert rec.kind == NOT_YET
    assert rec.verdict.startswith("Not yet: try few-shot prompting")
    assert rec.verdict.endswith(" first")
    assert {"no_goal", "few_shot_not_tried", "too_few_examples"} <= set(rule_ids(rec.reasons))
    # Each reason leads to a concrete next step.
    assert len(rec.next_steps) >= len(rec.reasons)


@pytest.mark.parametrize(
    "changes, rule, verdict_part",
    [
        (dict(few_shot="not_tried"), "few_shot_not_tried", "try few-shot prompting"),
        (dict(goals=["domain"], rag="not_tried"), "rag_not_tried", "try RAG"),
        (dict(examples=5), "too_few_examples", "collect at least 50 good examples"),
        (dict(examples=30), "few_examples", "collect 50–100 good examples"),
        (dict(tunability="open_unclear"), "licence_unclear", "check the licence"),
        (dict(effort="data_only"), "no_evaluation_plan", "build an evaluation set"),
        (dict(effort="no"), "no_effort", "plan data preparation"),
        (dict(compute="none"), "no_budget", "secure a compute budget"),
        (dict(goals=[]), "no_goal", "name what should improve"),
    ],
)
def test_not_yet_paths(changes, rule, verdict_part):
    rec = recommend(answers(**changes))
    assert rec.kind == NOT_YET
    assert rule_ids(rec.reasons) == [rule]
    assert verdict_part in rec.verdict
    # What already speaks for fine-tuning is kept, so the team sees what is missing and what is fine.
    if changes.get("goals") != []:
        assert "teaches_form" in rule_ids(rec.supporting) or "enough_examples" in rule_ids(rec.supporting)


def test_not_yet_combines_try_first_actions():
    rec = recommend(answers(goals=["domain"], few_shot="not_tried", rag="not_tried"))
    assert rec.verdict.startswith("Not yet: try few-shot prompting and RAG")


@pytest.mark.parametrize(
    "changes, rule, use",
    [
        (dict(tunability="closed"), "closed_model", "prompt engineering or RAG"),
        (dict(goals=["domain"], knowledge_changes="often", rag="partial"), "knowledge_changes_often", "RAG"),
        (dict(goals=["domain"], rag="good"), "rag_already_works", "RAG (it already works)"),
        (dict(few_shot="good"), "prompt_is_good_enough", "your few-shot prompt"),
    ],
)
def test_dont_paths(changes, rule, use):
    rec = recommend(answers(**changes))
    assert rec.kind == DONT
    assert rule in rule_ids(rec.reasons)
    assert rec.verdict.startswith("Don't fine-tune: use ") and use in rec.verdict


def test_dont_outweighs_not_yet_and_go():
    rec = recommend(answers(tunability="closed", few_shot="not_tried", examples=0, quality_gain="large"))
    assert rec.kind == DONT
    assert rule_ids(rec.reasons) == ["closed_model"]
    assert "large_gain" in rule_ids(rec.supporting)


def test_good_prompt_still_worth_tuning_for_cost():
    """Few-shot works, but the aim is shorter prompts: that is a reason to fine-tune, not against it."""
    rec = recommend(answers(few_shot="good", goals=["latency_cost"], tokens_saved=800, requests_per_month=50_000))
    assert rec.kind == GO
    assert "cheaper_requests" in rule_ids(rec.reasons)
    saving = next(reason for reason in rec.reasons if reason.rule == "tokens_saved")
    assert "40,000,000 tokens a month" in saving.text  # 800 × 50,000


def test_changing_facts_with_a_style_goal_is_a_note_not_a_veto():
    rec = recommend(answers(goals=["format_style", "domain"], knowledge_changes="often", rag="partial"))
    assert rec.kind == GO
    assert "facts_and_form" in rule_ids(rec.notes)
    assert any("retrieval index" in step for step in rec.next_steps)


@pytest.mark.parametrize(
    "examples, kind, rule",
    [
        (9, NOT_YET, "too_few_examples"),
        (10, NOT_YET, "few_examples"),
        (49, NOT_YET, "few_examples"),
        (50, GO, "starter_examples"),
        (99, GO, "starter_examples"),
        (100, GO, "enough_examples"),
    ],
)
def test_example_count_boundaries(examples, kind, rule):
    rec = recommend(answers(examples=examples))
    assert rec.kind == kind
    assert rule in rule_ids(rec.reasons)


def test_reasons_name_the_questions_that_caused_them():
    rec = recommend(answers(examples=5, tunability="open_unclear"))
    by_rule = {reason.rule: reason.questions for reason in rec.reasons}
    assert by_rule == {"too_few_examples": ("examples",), "licence_unclear": ("tunability",)}


def test_normalise_ignores_unknown_values_and_bad_numbers():
    a = checklist.normalise(
        {
            "few_shot": "maybe",
            "examples": "-4",
            "tokens_saved": "120",
            "goals": ["domain", "x"],
            "unknown": 1,
            "baseline_score": "",
        }
    )
    assert a["few_shot"] == "not_tried" and a["examples"] == 0 and a["tokens_saved"] == 120
    assert a["goals"] == ["domain"] and "unknown" not in a and a["baseline_score"] is None


def test_rules_table_is_well_formed():
    keys = set(checklist.QUESTION_BY_KEY)
    assert len({rule.id for rule in checklist.RULES}) == len(checklist.RULES)
    for rule in checklist.RULES:
        assert set(rule.questions) <= keys, rule.id
        if rule.kind in (DONT, NOT_YET):
            assert rule.action and rule.next_step, rule.id
    for question in checklist.QUESTIONS:
        assert question.why and question.short and question.section in {s for s, _, _ in checklist.SECTIONS}


def test_every_combination_gets_a_verdict_with_reasons_and_steps():
    """A random sample of the answer space: never an empty recommendation."""
    choices = {q.key: [value for value, _ in q.choices] for q in checklist.QUESTIONS if q.kind == "choice"}
    goal_sets = [
        list(combo) for size in range(4) for combo in itertools.combinations([g for g, _ in checklist.GOALS], size)
    ]
    rng = random.Random(6)
    kinds = set()
    for _ in range(1500):
        sample = {key: rng.choice(values) for key, values in choices.items()}
        sample.update(
            goals=rng.choice(goal_sets),
            examples=rng.choice([0, 9, 30, 60, 500]),
            tokens_saved=rng.choice([0, 500]),
            requests_per_month=rng.choice([0, 10_000]),
        )
        rec = recommend(sample)
        kinds.add(rec.kind)
        assert rec.reasons and rec.next_steps, sample
        assert rec.verdict == "Fine-tune" or rec.verdict.startswith(("Not yet: ", "Don't fine-tune: use "))
    assert kinds == {GO, NOT_YET, DONT}
