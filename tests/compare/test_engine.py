"""One copy of the weights: base column = adapters off, tuned column = adapter on."""

import json
import os

import pytest

from studio.compare import engine, runs
from studio.errors import StudioError

PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]


def test_disable_adapter_matches_a_separately_loaded_base(tiny_run_dir, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    session = engine.open_session(str(tiny_run_dir))
    ids = torch.tensor([session.engine.prompt_ids(PROMPT)])
    with torch.inference_mode():
        with session.engine.using(engine.BASE) as model:
            base_logits = model(input_ids=ids).logits
        with session.engine.using(session.tuned) as model:
            tuned_logits = model(input_ids=ids).logits
        separate = (
            AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()(input_ids=ids).logits
        )
    assert torch.equal(base_logits, separate)
    assert (tuned_logits - separate).abs().max() > 1e-3  # the adapter really changes the model


def test_tuned_answers_differ_from_base_after_training(tiny_run_dir):
    session = engine.open_session(str(tiny_run_dir))
    settings = engine.Settings(max_new_tokens=12, temperature=0)  # greedy: the tiny model's most likely answer
    base = session.engine.generate(engine.BASE, PROMPT, settings)
    tuned = session.engine.generate(session.tuned, PROMPT, settings)
    assert base != tuned
    assert tuned.startswith("Ahoy")  # the style it was trained on
    assert not base.startswith("Ahoy")


def test_columns_stream_interleaved(tiny_run_dir):
    session = engine.open_session(str(tiny_run_dir))
    settings = engine.Settings(max_new_tokens=6)
    rounds = []
    for columns in session.engine.stream([("Base", engine.BASE, PROMPT), ("Tuned", session.tuned, PROMPT)], settings):
        rounds.append([len(c.generated) + c.done for c in columns])
    # After every round both columns have advanced: neither waits for the other's whole answer.
    assert rounds[0] == [0, 0]
    assert rounds[1] == [1, 1]
    assert max(len(r) for r in rounds) == 2
    assert all(c.tokens_per_s > 0 for c in columns if c.generated)


def test_batched_answers_are_the_streamed_ones(tiny_run_dir):
    """Evaluation generates prompts of different lengths together; padding must not change a token."""
    session = engine.open_session(str(tiny_run_dir))
    conversations = [
        [{"role": "user", "content": text}]
        for text in ("What is 2 + 2?", "Tell me about the sea, matey, and the treasure buried deep.", "Hi")
    ]
    for settings in (
        engine.Settings(max_new_tokens=12, temperature=0),
        engine.Settings(max_new_tokens=12, seed=3),
        engine.Settings(max_new_tokens=12, temperature=0, repetition_penalty=1.0, no_repeat_ngram_size=2),
    ):
        for adapter in (engine.BASE, session.tuned):
            one_by_one = [session.engine.generate(adapter, messages, settings) for messages in conversations]
            assert session.engine.generate_batch(adapter, conversations, settings) == one_by_one
    assert session.engine.generate_batch(session.tuned, [], engine.Settings()) == []


def test_a_long_evaluation_batch_lets_other_work_in_between_tokens(tiny_run_dir, monkeypatch):
    """A chat in another browser must not wait for a whole evaluation batch: the lock is per token."""
    import threading
    import time

    session = engine.open_session(str(tiny_run_dir))
    shared = session.engine
    started = threading.Event()
    original_using = shared.using

    def using(adapter):
        started.set()
        return original_using(adapter)

    monkeypatch.setattr(shared, "using", using)
    batch = threading.Thread(
        target=shared.generate_batch, args=(engine.BASE, [PROMPT] * 4, engine.Settings(max_new_tokens=60))
    )
    batch.start()
    assert started.wait(30)
    turns = 0
    while batch.is_alive():
        if shared.lock.acquire(timeout=30):
            turns += 1  # a chat step in another session would run here
            shared.lock.release()
            time.sleep(0.002)
    batch.join()
    assert turns >= 5


def test_stop_ends_all_columns(tiny_run_dir):
    session = engine.open_session(str(tiny_run_dir))
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 2

    last = None
    for last in session.engine.stream(  # noqa: B007 - keeps the last item
        [("Base", engine.BASE, PROMPT), ("Tuned", session.tuned, PROMPT)],
        engine.Settings(max_new_tokens=50),
        should_stop,
    ):
        pass
    assert all(c.done and c.finish_reason == "stopped" for c in last)
    assert all(len(c.generated) <= 2 for c in last)


def test_sampling_is_reproducible_with_a_seed(tiny_run_dir):
    session = engine.open_session(str(tiny_run_dir))
    settings = engine.Settings(temperature=1.0, top_p=0.9, max_new_tokens=10, seed=42)
    first = session.engine.generate(session.tuned, PROMPT, settings)
    assert session.engine.generate(session.tuned, PROMPT, settings) == first


def test_the_repetition_guard_penalises_tokens_already_in_the_answer():
    import torch

    logits = torch.tensor([2.0, -1.0, 3.0, 0.5, 1.0])
    settings = engine.Settings(temperature=0, repetition_penalty=2.0, no_repeat_ngram_size=0)
    guarded = engine.guard_repetition(logits, settings, [0, 1, 1])
    assert guarded.tolist() == [1.0, -2.0, 3.0, 0.5, 1.0]  # positive halved, negative doubled, others untouched
    assert logits.tolist() == [2.0, -1.0, 3.0, 0.5, 1.0]  # the model's logits are not modified in place
    # Token 2 would win greedily; after "2 then 3 ... 2" a 2-gram ban forbids "3" again, so the next best wins.
    ban = engine.Settings(temperature=0, repetition_penalty=1.0, no_repeat_ngram_size=2)
    assert engine.pick_token(torch.tensor([0.0, 0.0, 0.0, 5.0, 1.0]), ban, None, [2, 3, 1, 2]) == 4
    # Greedy with the guard: a token the answer already holds loses to a fresh one of nearly the same score.
    assert engine.pick_token(torch.tensor([0.0, 0.0, 1.1, 0.0, 1.0]), settings, None, []) == 2
    assert engine.pick_token(torch.tensor([0.0, 0.0, 1.1, 0.0, 1.0]), settings, None, [2]) == 4


def test_fair_defaults_come_from_the_generation_config_when_it_has_them():
    from transformers import GenerationConfig

    plain = engine.default_settings(GenerationConfig(bos_token_id=1, eos_token_id=2))
    assert (
        plain.temperature == engine.DEFAULT_TEMPERATURE
        and plain.repetition_penalty > 1
        and "studio defaults" in plain.source
    )
    own = engine.default_settings(GenerationConfig(do_sample=True, temperature=0.2, top_p=0.8, repetition_penalty=1.3))
    assert (own.temperature, own.top_p, own.repetition_penalty) == (0.2, 0.8, 1.3)
    assert "generation_config" in own.source and "temperature=0.2" in own.source
    greedy_model = engine.default_settings(GenerationConfig(do_sample=False, temperature=0.2))
    assert greedy_model.temperature == engine.DEFAULT_TEMPERATURE  # sampling values of a greedy config are not used
    assert engine.default_settings(None, temperature=0, seed=4).greedy
    assert "greedy decoding" in engine.Settings(temperature=0).describe()
    assert engine.Settings().record()["decoding"] == "sampling"


def test_switching_runs_keeps_the_base_and_third_column_works(tiny_run_dir, tiny_run_b_dir):
    one = engine.open_session(str(tiny_run_dir))
    two = engine.open_session(str(tiny_run_b_dir), str(tiny_run_dir))
    assert two.engine is one.engine and two.engine.base is one.engine.base  # no reload
    assert two.tuned != two.tuned_b and set(two.engine.adapters) == {two.tuned, two.tuned_b}
    settings = engine.Settings(max_new_tokens=8)
    answers = {}
    for columns in two.engine.stream(
        [("Base", engine.BASE, PROMPT), ("Tuned", two.tuned, PROMPT), ("Run B", two.tuned_b, PROMPT)], settings
    ):
        answers = {c.label: c.text for c in columns}
    assert answers["Run B"] == two.engine.generate(two.tuned_b, PROMPT, settings)
    assert answers["Tuned"] == two.engine.generate(two.tuned, PROMPT, settings)
    # Back to run A alone: instant, same base; older adapters are dropped only beyond the bound.
    three = engine.open_session(str(tiny_run_dir))
    assert three.engine is one.engine and three.tuned in three.engine.adapters
    three.engine.trim([three.tuned], max_adapters=1)
    assert list(three.engine.adapters) == [three.tuned]
    assert three.engine.generate(three.tuned, PROMPT, settings) == answers["Run B"]  # run A of session two was run B


def test_reference_loss_is_lower_for_tuned_on_trained_style(tiny_run_dir):
    session = engine.open_session(str(tiny_run_dir))
    reference = "Ahoy! 2 + 2 is 4. — Captain Byte"
    assert session.engine.reference_loss(session.tuned, PROMPT, reference) < session.engine.reference_loss(
        engine.BASE, PROMPT, reference
    )


def test_missing_adapter_is_a_plain_message(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "half-run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"run_id": "half", "model": str(tiny_model_dir)}))
    (run_dir / "status.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(StudioError) as caught:
        engine.open_session(str(run_dir))
    assert "no adapter" in caught.value.message and caught.value.hint
    with pytest.raises(StudioError):
        runs.load_run("no-such-run-anywhere")


def test_adapter_for_another_base_is_a_plain_message(tmp_path, tiny_run_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from studio.models.tiny import build_tiny_model

    other = build_tiny_model(tmp_path / "other-base", hidden_size=64)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(other, dtype=torch.float32),
        LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    adapter_dir = tmp_path / "other-run" / "adapter"
    model.save_pretrained(adapter_dir)
    session = engine.open_session(str(tiny_run_dir))
    with pytest.raises(StudioError) as caught:
        session.engine.attach(adapter_dir)
    assert "another base model" in caught.value.message
    # Offered as run B next to a run on a different base: refused before loading anything.
    (tmp_path / "other-run" / "config.json").write_text(json.dumps({"run_id": "o", "model": str(other)}))
    with pytest.raises(StudioError) as caught:
        engine.open_session(str(tiny_run_dir), str(tmp_path / "other-run"))
    assert "same base model" in caught.value.hint


def test_one_thread_while_a_training_run_is_active(tiny_run_dir):
    """A live worker that is starting, running or still saving (stopping) takes the trainer's threads; a dead
    pid, or a live process that is not this run's worker (a reused pid), does not."""
    import subprocess
    import sys

    import torch

    from studio.train import store
    from studio.train.config import RunConfig

    record = store.create_run(RunConfig(dataset="unused"))
    # A stand-in worker: a live process whose command line names the run, as the real worker's does.
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(record.dir)])
    try:
        for state in ("starting", "running", "stopping"):
            store.update_status(record.dir, status=state, pid=worker.pid)
            assert runs.training_active(), state
        assert engine.apply_thread_policy() == 1 and torch.get_num_threads() == 1
        store.update_status(record.dir, status="running", pid=os.getpid())  # alive, but not this run's worker
        assert not runs.training_active()
        store.update_status(record.dir, status="running", pid=2**22 + 12345)  # dead pid
        assert not runs.training_active()
        store.update_status(record.dir, status="completed", pid=worker.pid)
        assert not runs.training_active()
    finally:
        worker.kill()
        worker.wait()
        store.delete_run(record.run_id)
        torch.set_num_threads(1)


def test_an_oversized_conversation_is_refused_before_it_is_tokenized(tiny_run_dir, monkeypatch):
    """20 MB of text took a minute and gigabytes to tokenize before the length check; now it is refused unread."""
    session = engine.open_session(str(tiny_run_dir))
    tokenizer = session.engine.tokenizer
    calls = []
    monkeypatch.setattr(tokenizer, "apply_chat_template", lambda *a, **k: calls.append(a) or "")
    huge = "hello world " * 1_000_000
    with pytest.raises(StudioError) as caught:
        session.engine.prompt_ids([{"role": "user", "content": huge}])
    assert "too long for this model" in caught.value.message and "Clear" in caught.value.hint
    with pytest.raises(StudioError, match="messages"):
        session.engine.prompt_ids([{"role": "user", "content": "hi"}] * (engine.MAX_MESSAGES + 1))
    assert not calls
    # The chat handler refuses it too, without echoing the message back into the input box.
    from studio.ui import compare_tab

    outputs = list(compare_tab.chat(huge, [], [], [], str(tiny_run_dir), None, "", 0.7, 0.9, 32, 0))
    last = outputs[-1]
    assert last["message"] == "" and "too long" in str(last["chat_error"]) and last["chat_base"] == []


def test_a_run_without_a_final_adapter_opens_on_its_last_checkpoint(tiny_run_dir, tmp_path):
    """A run that diverged, failed or was killed keeps its last checkpoint (diverged weights are never saved):
    Train's "Open in Compare" leads to it, and Compare says which adapter it is (it used to say "no adapter yet")."""
    import shutil

    from studio import paths
    from studio.train import store

    failed = paths.runs_dir() / "diverged-run"
    shutil.rmtree(failed, ignore_errors=True)
    shutil.copytree(tiny_run_dir, failed, ignore=shutil.ignore_patterns("compare"))
    checkpoint = failed / "checkpoints" / "checkpoint-40"
    checkpoint.mkdir(parents=True)
    for item in (failed / "adapter").iterdir():
        shutil.copy(item, checkpoint / item.name)
    (checkpoint / "trainer_state.json").write_text("{}")
    shutil.rmtree(failed / "adapter")
    store.update_status(failed, status="failed", diverged={"kind": "nan", "step": 44, "since_step": 41})
    try:
        info = runs.load_run(str(failed))
        assert info.from_checkpoint and info.adapter_dir == checkpoint
        listed = [item for item in runs.list_comparable_runs() if item["run_id"] == "diverged-run"]
        assert listed and "last checkpoint (checkpoint-40)" in listed[0]["label"]
        assert not runs.load_run(str(tiny_run_dir)).from_checkpoint
        session = engine.open_session(str(failed))
        answer = session.engine.generate(
            session.tuned, [{"role": "user", "content": "Hi"}], engine.Settings(max_new_tokens=4)
        )
        assert isinstance(answer, str)
    finally:
        shutil.rmtree(failed, ignore_errors=True)


def test_an_answer_that_ends_at_once_says_so_instead_of_waiting(tiny_run_dir, monkeypatch):
    """A tuned model can put its end-of-reply token first (seen in a walk): an empty answer is done, not a hang."""
    session = engine.open_session(str(tiny_run_dir))

    class EveryToken:
        def __contains__(self, token):
            return True

    monkeypatch.setattr(session.engine, "stop_ids", EveryToken())
    *_, last = session.engine.stream([("Tuned", session.tuned, PROMPT)], engine.Settings(max_new_tokens=20))
    (column,) = last
    assert column.done and column.generated == [] and column.finish_reason == "eos"
    assert column.stats_line() == "no answer: the model ended its reply at once (0 tokens)"
    assert engine.ColumnState("Base", None, []).stats_line() == "waiting…"


def test_base_and_tuned_passes_in_any_order_each_get_their_own_weights(tiny_run_dir, monkeypatch):
    """The adapter layers are switched only when the column changes (PEFT's per-pass switch cost ~70 ms a token),
    so the order of passes must not leak one column's mode into the next."""
    import torch

    session = engine.open_session(str(tiny_run_dir))
    shared = session.engine
    ids = torch.tensor([shared.prompt_ids(PROMPT)])
    switches = []
    lora_model = shared.model.base_model
    for name in ("disable_adapter_layers", "enable_adapter_layers"):
        original = getattr(lora_model, name)
        monkeypatch.setattr(lora_model, name, lambda original=original, name=name: (switches.append(name), original()))

    def logits(adapter):
        with torch.inference_mode(), shared.using(adapter) as model:
            return model(input_ids=ids).logits

    order = [session.tuned, engine.BASE, engine.BASE, session.tuned, session.tuned, engine.BASE]
    results = [logits(adapter) for adapter in order]
    base, tuned = results[1], results[0]
    assert (tuned - base).abs().max() > 1e-3
    for adapter, result in zip(order, results):
        assert torch.equal(result, base if adapter is engine.BASE else tuned)
    assert switches.count("disable_adapter_layers") == 2  # once per change to the base column, not per pass
    assert switches.count("enable_adapter_layers") <= 2


def test_nucleus_sampling_reads_the_same_nucleus_as_a_full_sort():
    """The most likely tokens are partially sorted first (a full sort of the vocabulary per token was a fifth of an
    evaluation); the tokens that can be drawn must be exactly those of the full sort."""
    import torch

    settings = engine.Settings(temperature=1.0, top_p=0.9, top_k=0, repetition_penalty=1.0)
    generator = torch.Generator().manual_seed(0)
    peaked = torch.randn(5000, generator=generator) * 4  # the nucleus is a few tokens: read from the head
    flat = torch.randn(5000, generator=generator) * 0.1  # the nucleus is most of the vocabulary: a full sort
    for logits in (peaked, flat):
        probs = torch.softmax(logits, dim=-1)
        sorted_probs, order = torch.sort(probs, descending=True)
        nucleus = set(order[(torch.cumsum(sorted_probs, dim=-1) - sorted_probs) < 0.9].tolist())
        head, head_order = engine._most_likely_first(probs, 0.9)
        kept = set(head_order[(torch.cumsum(head, dim=-1) - head) < 0.9].tolist())
        assert kept == nucleus
        picks = {engine.pick_token(logits, settings, torch.Generator().manual_seed(seed)) for seed in range(200)}
        assert picks <= nucleus and len(picks) > 1
    assert len(engine._most_likely_first(torch.softmax(peaked, dim=-1), 0.9)[0]) == engine.NUCLEUS_HEAD
