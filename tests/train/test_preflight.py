"""Preflight: steps, tokens, time and memory estimates; blocking errors vs warnings; the CLI and JSON shown."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from studio.data.stats import suggested_max_length
from studio.models import cost, precision_probe
from studio.models.hardware import Gpu, Hardware
from studio.train import preflight
from studio.train.config import RunConfig

CPU = Hardware(kind="cpu", cpu_cores=2, ram_gb=16)


def write_dataset(
    folder: Path,
    train_rows: int = 100,
    validation_rows: int = 10,
    mean_tokens: int = 100,
    p99: int = 180,
    maximum: int = 200,
    with_stats: bool = True,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    row = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Ahoy! Hello."}]}
    (folder / "train.jsonl").write_text((json.dumps(row) + "\n") * train_rows)
    (folder / "validation.jsonl").write_text((json.dumps(row) + "\n") * validation_rows)
    rows = train_rows + validation_rows
    manifest = {
        "id": folder.name,
        "name": folder.name,
        "created_at": "2026-01-01T00:00:00+00:00",
        "counts": {"train": train_rows, "validation": validation_rows, "rejected": 0},
    }
    if with_stats:
        manifest["stats"] = {
            "model": "bundled:SmolLM2-135M-Instruct",
            "max_length": 512,
            "rows": rows,
            "tokens": {
                "total": mean_tokens * rows,
                "trainable": mean_tokens * rows // 2,
                "p50": mean_tokens,
                "p95": int(p99 * 0.9),
                "p99": p99,
                "max": maximum,
            },
            "suggested_max_length": suggested_max_length(p99),
        }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(autouse=True)
def _fp32_expected(cpu_not_measured):
    """The figures below are for a CPU whose bf16 speed is not measured yet: the run is expected in fp32."""


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "ds")


def run(config: RunConfig, **kwargs):
    kwargs.setdefault("hardware", CPU)
    kwargs.setdefault("runs", [])
    kwargs.setdefault("check_busy", False)
    kwargs.setdefault("cpu_gflops", 127.0)
    kwargs.setdefault("available_gib", 16.0)
    return preflight.run_preflight(config, **kwargs)


def test_steps_tokens_and_time_for_the_bundled_model(dataset):
    report = run(RunConfig(dataset=str(dataset), epochs=3, batch_size=8, max_length=512))
    assert report.steps_per_epoch == 13 and report.steps == 39  # ceil(100 / 8) per epoch
    assert report.tokens == pytest.approx(100 * 300, rel=1e-3)  # mean 100 tokens × 100 rows × 3 epochs
    assert report.processed_tokens > report.tokens  # padding to the longest row of each batch
    # Evaluations every ceil(39 / 5) = 8 steps: 4, and one more at the last step; a checkpoint with each.
    assert report.evaluations == 5 and report.checkpoints == 5
    # The same figures as the cost model for the same run on a 127 GFLOP/s CPU: one model, no copy of it here.
    load = RunConfig(dataset=str(dataset), epochs=3).workload(
        cost.BUNDLED_SHAPE,
        cost.TokenStats.from_stats(json.loads((dataset / "manifest.json").read_text())["stats"]),
        100,
        10,
        dtype="fp32",
        gradient_checkpointing=False,
        max_tokens_per_pass=cost.plan_passes(cost.BUNDLED_SHAPE, "fp32", 8, 512).max_tokens_per_pass,
    )
    expected = cost.estimate_run(load, cost.Device("cpu", "CPU", "cpu", 16.0, 0.127, "fp32"))
    # Nothing measured on this CPU yet: the run first times fp32 against bf16, and the estimate counts it.
    measuring = precision_probe.measuring_seconds(expected.seconds, load.train_positions)
    assert report.time_parts == pytest.approx({**expected.seconds, "precision": measuring})
    assert report.seconds == pytest.approx(expected.total_seconds + measuring)
    assert expected.seconds["start"] < measuring < expected.seconds["train"]  # a model load and 6 short steps
    assert report.tokens_per_s == pytest.approx(expected.tokens_per_s)
    assert report.memory_needed_gib == pytest.approx(expected.memory.total)
    for part in ("start", "train", "evaluation", "checkpoints", "end"):
        assert report.time_parts[part] > 0, part
    assert report.time_parts["warmup"] >= 0  # measured per precision: none beyond the first batch's size in fp32
    assert "127 GFLOP/s fp32 matmul peak" in report.rate_source and "calibrated" in report.rate_source
    assert "5 evaluations" in report.markdown() and "GiB" in report.markdown()
    assert not report.blocking
    assert report.cli_command.startswith("python -m studio train") and "--epochs 3" in report.cli_command
    assert json.loads(report.config_json)["epochs"] == 3
    assert report.learning_rate == 1e-3 and report.learning_rate_auto  # a 135 M model: the small-model rate
    assert ("Learning rate", "0.001 (automatic for this model's size)") in report.summary_rows()


def test_max_steps_caps_steps_and_tokens(dataset):
    report = run(RunConfig(dataset=str(dataset), epochs=3, max_steps=5, batch_size=4))
    assert report.steps == 5
    # 20 rows, the longest of each length-sorted mega-batch first: more than the mean of 100 tokens each.
    assert 5 * 4 * 100 < report.tokens < 5 * 4 * 200


@dataclass
class Record:
    """What measured_rate reads of a run (store.RunRecord has these too)."""

    run_id: str
    dir: Path
    config: dict
    status: dict


def test_measured_rate_from_an_earlier_run_wins(dataset, tmp_path):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    events = [{"type": "log", "step": s, "tokens_per_s": rate} for s, rate in enumerate([10.0, 50.0, 52.0, 54.0], 1)]
    (earlier / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    record = Record(
        "run-1", earlier, {"model": "bundled:SmolLM2-135M-Instruct", "name": "first try"}, {"status": "stopped"}
    )
    estimated = run(RunConfig(dataset=str(dataset)))
    report = run(RunConfig(dataset=str(dataset)), runs=[record])
    assert report.tokens_per_s == 52.0  # the median without the warm-up step
    assert "first try" in report.rate_source
    # The measured rate replaces the training steps' time; start-up, evaluations and checkpoints stay counted.
    assert report.time_parts["train"] == pytest.approx(report.tokens / 52.0)
    for part in ("start", "warmup", "evaluation", "checkpoints", "end"):
        assert report.time_parts[part] == pytest.approx(estimated.time_parts[part]), part
    assert report.seconds == pytest.approx(sum(report.time_parts.values()))


def test_a_finished_runs_training_rate_wins_over_its_step_rates(dataset, tmp_path):
    finished = tmp_path / "finished"
    finished.mkdir()
    events = [{"type": "log", "step": s, "tokens_per_s": 160.0} for s in range(1, 5)]
    (finished / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    # The worker's final status: tokens over the seconds spent in training steps (evaluations excluded).
    status = {"status": "completed", "train_tokens": 16_000, "train_runtime": 150.0, "tokens_per_s": 125.0}
    record = Record("run-2", finished, {"model": "bundled:SmolLM2-135M-Instruct", "name": "demo"}, status)
    report = run(RunConfig(dataset=str(dataset)), runs=[record])
    assert report.tokens_per_s == pytest.approx(125.0)
    assert "demo" in report.rate_source


def test_a_run_of_another_technique_or_process_count_is_not_a_measurement_of_this_one(dataset, tmp_path):
    settings = {"model": "bundled:SmolLM2-135M-Instruct", "batch_size": 8, "max_length": 512}
    full = Record("run-5", tmp_path, {**settings, "full_finetune": True}, {"status": "completed", "tokens_per_s": 9.0})
    two = Record("run-6", tmp_path, {**settings, "processes": 2}, {"status": "completed", "tokens_per_s": 7.0})
    report = run(RunConfig(dataset=str(dataset), batch_size=8, max_length=512), runs=[full, two])
    assert report.tokens_per_s not in (9.0, 7.0) and "calibrated" in report.rate_source
    same = run(RunConfig(dataset=str(dataset), batch_size=8, max_length=512, full_finetune=True), runs=[two, full])
    assert same.tokens_per_s == 9.0


def test_in_public_mode_only_runs_the_caller_may_see_give_the_rate(dataset, tmp_path, monkeypatch):
    from studio import access

    monkeypatch.setenv("STUDIO_MODE", "public")
    me, other = (access.Identity(access.new_browser_id(), access.ANONYMOUS) for _ in range(2))
    status = {"status": "completed", "tokens_per_s": 125.0, "owner": other.user_id}
    theirs = Record("run-4", tmp_path, {"model": "bundled:SmolLM2-135M-Instruct", "name": "their secret run"}, status)
    with access.acting(me):
        report = run(RunConfig(dataset=str(dataset)), runs=[theirs])
    assert report.tokens_per_s != 125.0 and "their secret run" not in report.markdown()
    with access.acting(other):  # positive control: the owner's own run measures the rate
        report = run(RunConfig(dataset=str(dataset)), runs=[theirs])
    assert report.tokens_per_s == pytest.approx(125.0) and "their secret run" in report.rate_source


def test_an_earlier_run_with_other_batches_is_not_a_measurement_of_this_one(dataset, tmp_path):
    record = Record(
        "run-3",
        tmp_path,
        {"model": "bundled:SmolLM2-135M-Instruct", "batch_size": 2, "max_length": 512},
        {"status": "completed", "tokens_per_s": 10.0},
    )
    report = run(RunConfig(dataset=str(dataset), batch_size=8), runs=[record])
    assert report.tokens_per_s != 10.0 and "calibrated" in report.rate_source


def test_gpu_estimate_uses_tensor_peak_and_gpu_memory(dataset):
    a10g = Hardware(kind="cuda", cpu_cores=4, ram_gb=30, gpus=[Gpu("NVIDIA A10G", 24.0)])
    report = run(RunConfig(dataset=str(dataset)), hardware=a10g, available_gib=None)
    assert report.memory_kind == "GPU memory" and report.memory_available_gib == 24.0 and report.dtype == "bf16"
    assert report.tokens_per_s > 10_000
    assert "A10G" in report.device and "A10G" in report.rate_source


def test_several_processes_count_their_memory_and_their_strategy(dataset):
    one = run(RunConfig(dataset=str(dataset)))
    two = run(RunConfig(dataset=str(dataset), processes=2))
    assert dict(two.summary_rows())["Processes"].startswith("2 CPU processes (gloo")
    assert two.memory_available_gib == pytest.approx(one.memory_available_gib / 2)  # they share the RAM
    assert two.steps == pytest.approx(one.steps / 2, abs=1)  # each step takes a batch per process
    assert not two.blocking
    fsdp = run(RunConfig(dataset=str(dataset), processes=2, strategy="fsdp"))
    assert [check.field for check in fsdp.errors] == ["strategy"] and "GPUs only" in fsdp.errors[0].message

    gpus = Hardware(kind="cuda", cpu_cores=8, ram_gb=60, gpus=[Gpu("NVIDIA L4", 24.0)] * 2)
    ddp = run(RunConfig(dataset=str(dataset)), hardware=gpus, available_gib=None)
    sharded = run(RunConfig(dataset=str(dataset), strategy="fsdp"), hardware=gpus, available_gib=None)
    assert "2 GPUs" in ddp.processes and not sharded.blocking
    assert sharded.memory_parts_gib["weights"] == pytest.approx(ddp.memory_parts_gib["weights"] / 2, rel=0.01)
    too_many = run(RunConfig(dataset=str(dataset), processes=4), hardware=gpus, available_gib=None)
    assert [check.field for check in too_many.errors] == ["processes"]


def test_invalid_fields_block_with_field_level_messages(dataset):
    report = run(RunConfig(dataset=str(dataset), lora_r=0, learning_rate=-1.0))
    assert report.blocking
    assert set(report.field_errors) >= {"lora_r", "learning_rate"}
    assert {check.field for check in report.errors} >= {"lora_r", "learning_rate"}


def test_missing_dataset_and_qlora_without_bitsandbytes_are_errors(tmp_path, monkeypatch):
    from studio.models import hardware

    monkeypatch.setattr(hardware, "bitsandbytes_installed", lambda: False)
    report = run(RunConfig(dataset=str(tmp_path / "nope"), qlora_4bit=True))
    messages = " ".join(check.message for check in report.errors)
    assert "not a saved dataset" in messages
    assert "QLoRA 4-bit needs the bitsandbytes package" in messages and "pip install bitsandbytes==" in messages
    assert report.blocking
    monkeypatch.setattr(hardware, "bitsandbytes_installed", lambda: True)  # a CPU with it: QLoRA runs
    report = run(RunConfig(dataset=str(tmp_path / "nope"), qlora_4bit=True))
    assert "QLoRA" not in " ".join(check.message for check in report.errors)


def test_not_enough_memory_even_at_batch_1_with_checkpointing_blocks(tmp_path):
    huge = write_dataset(tmp_path / "long", mean_tokens=30000, p99=32000, maximum=32768)
    report = run(RunConfig(dataset=str(huge), batch_size=256, max_length=32768), available_gib=2.0)
    assert report.blocking
    memory = [check for check in report.errors if "Not enough memory" in check.message]
    assert memory and memory[0].field == "max_length" and "max length" in memory[0].hint
    assert "GiB" in memory[0].message


def test_a_run_too_big_for_memory_gets_smaller_micro_batches_with_the_same_effective_batch(tmp_path):
    long_rows = write_dataset(tmp_path / "long", mean_tokens=1500, p99=1900, maximum=2000)
    # Checkpointing set by hand: the worker plans no passes, so only preflight's fit makes the batch smaller.
    config = RunConfig(dataset=str(long_rows), batch_size=16, max_length=2048, gradient_checkpointing=False)
    roomy = run(config, available_gib=200.0)
    assert not roomy.adjustments and roomy.config is config
    report = run(config, available_gib=roomy.memory_needed_gib / 2)
    assert not report.blocking and report.adjustments
    assert report.config.batch_size < 16 and report.config.batch_size * report.config.grad_accum == 16
    assert report.memory_needed_gib <= report.memory_available_gib * cost.USABLE_FRACTION
    assert report.steps == roomy.steps  # same optimizer steps: equivalent results
    assert "same effective batch of 16" in report.markdown() and "--batch-size" in report.cli_command
    assert json.loads(report.config_json)["grad_accum"] == report.config.grad_accum


def test_truncation_and_no_validation_are_warnings_only(tmp_path):
    folder = write_dataset(tmp_path / "noval", validation_rows=0, p99=900, maximum=1000)
    report = run(RunConfig(dataset=str(folder), max_length=256))
    assert not report.blocking
    texts = " ".join(check.message for check in report.warnings)
    assert "No validation rows" in texts and "cuts" in texts
    cut = next(check for check in report.warnings if "cuts" in check.message)
    assert cut.field == "max_length" and "960" in cut.hint  # p99 900 rounded up to a multiple of 64
    assert "they do not stop the run" in report.markdown()


def test_zero_gpu_space_explains_which_hardware_to_pick(dataset, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    report = run(RunConfig(dataset=str(dataset)))
    zero = [check for check in report.errors if "ZeroGPU" in check.message]
    assert zero and "T4" in zero[0].hint


def test_offline_hub_model_is_an_error(dataset, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    report = run(RunConfig(model="Qwen/Qwen2.5-0.5B-Instruct", dataset=str(dataset)))
    assert any("offline" in check.message for check in report.errors)


def test_dataset_without_stats_gets_a_rough_token_count(tmp_path):
    folder = write_dataset(tmp_path / "nostats", with_stats=False)
    report = run(RunConfig(dataset=str(folder), epochs=1))
    assert report.tokens and report.tokens > 0 and report.seconds


def test_list_datasets_reads_saved_folders(studio_home):
    from studio import paths

    folder = write_dataset(paths.datasets_dir() / "pirates-abc123")
    listed = preflight.list_datasets()
    mine = [m for m in listed if m["path"] == str(folder)]
    assert mine and mine[0]["counts"]["train"] == 100
    assert "100 train / 10 validation" in preflight.dataset_label(mine[0])


def test_cpu_speed_is_the_decide_tabs_torch_measurement(dataset):
    import torch

    from studio.decide import estimate

    torch.set_num_threads(1)
    report = run(RunConfig(dataset=str(dataset)), cpu_gflops=None)
    assert "measured now" in report.rate_source
    peak = estimate.measure_this_machine(report.dtype).peak_tflops
    assert peak == cost.measure_peak(report.dtype) > 0  # one measurement, cached per process, for both tabs
    assert f"{peak * 1000:.0f} GFLOP/s" in report.rate_source


def _model_with_template(tiny_model_dir, tmp_path, template: str) -> Path:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").write_text(template)
    return folder


def test_a_chat_template_without_answer_markers_is_a_warning_before_the_run(tiny_model_dir, dataset, tmp_path):
    model = _model_with_template(
        tiny_model_dir, tmp_path, "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )
    report = run(RunConfig(model=str(model), dataset=str(dataset)))
    warning = next(w for w in report.warnings if "Assistant-only loss is not possible" in w.message)
    assert "whole conversation" in warning.message and "supported family" in warning.hint
    assert warning.field == "assistant_only_loss"
    # The tiny model's ChatML template is supported: no such warning.
    assert not any(
        "Assistant-only" in w.message for w in run(RunConfig(model=str(tiny_model_dir), dataset=str(dataset))).warnings
    )


def test_a_template_without_system_role_says_what_happens_to_system_prompts(tiny_model_dir, dataset, tmp_path):
    import trl

    gemma = (Path(trl.__file__).parent / "chat_templates" / "gemma.jinja").read_text()
    report = run(RunConfig(model=str(_model_with_template(tiny_model_dir, tmp_path, gemma)), dataset=str(dataset)))
    assert any("merged into the first user message" in note for note in report.notes)


def test_a_hub_model_not_on_disk_is_checked_when_the_run_starts(dataset, monkeypatch):
    monkeypatch.setattr(
        "studio.models.cost.model_shape", lambda ref: cost.ModelShape(ref, None, known=False, source="unknown")
    )
    report = run(RunConfig(model="someone/not-downloaded-model", dataset=str(dataset)))
    assert any("checked when the run starts" in note for note in report.notes)


@pytest.mark.parametrize(
    "batch_size, max_length, bf16", [(8, 576, False), (8, 576, True), (1, 128, False), (8, 8192, False)]
)
def test_preflight_predicts_the_memory_of_the_passes_the_worker_will_run(tmp_path, batch_size, max_length, bf16):
    from transformers import LlamaConfig

    from studio.train import worker

    folder = write_dataset(tmp_path / "ds", mean_tokens=max_length - 10, p99=max_length, maximum=max_length)
    config = RunConfig(dataset=str(folder), batch_size=batch_size, max_length=max_length, bf16=bf16)
    report = run(config, available_gib=1000.0)
    dtype = "bf16" if bf16 else "fp32"
    assert report.dtype == dtype
    # The worker's plan from the loaded model's config (the bundled SmolLM2's config.json values) is preflight's.
    loaded = LlamaConfig(
        hidden_size=576,
        intermediate_size=1536,
        num_attention_heads=9,
        num_hidden_layers=30,
        num_key_value_heads=3,
        head_dim=64,
        vocab_size=49152,
        tie_word_embeddings=True,
    )
    plan = worker.pass_plan(config, loaded, dtype, on_cpu=True)
    assert report.pass_plan == plan == cost.plan_passes(cost.BUNDLED_SHAPE, dtype, batch_size, max_length)
    if batch_size * max_length <= 1024:
        assert plan.max_tokens_per_pass is None
    else:  # the bundled model's batch 8 × 576 (fp32 and bf16) and 8 × 8192 are over the pass budget: split
        assert 576 <= plan.max_tokens_per_pass < batch_size * max_length
        assert plan.note and plan.note[1:] in report.markdown()
    assert plan.gradient_checkpointing == (max_length == 8192)  # only when one row is over the budget
    # The memory shown is that of one pass of the plan, not of the whole batch.
    rows = cost.rows_in_pass(batch_size, max_length, plan.max_tokens_per_pass)
    parts = report.memory_parts_gib
    whole = cost.estimate_memory(
        cost.BUNDLED_SHAPE,
        dtype=dtype,
        micro_batch=batch_size,
        length=max_length,
        lora_r=8,
        gradient_checkpointing=plan.gradient_checkpointing,
    )
    one_pass = cost.estimate_memory(
        cost.BUNDLED_SHAPE,
        dtype=dtype,
        micro_batch=rows,
        length=max_length,
        lora_r=8,
        gradient_checkpointing=plan.gradient_checkpointing,
    )
    assert parts["activations"] == pytest.approx(one_pass.activations, abs=1e-3)
    assert (rows < batch_size) == (one_pass.activations < whole.activations)
    assert not report.adjustments and report.config is config  # no second shrinking on top of the plan
    assert worker.pass_plan(config.replace(gradient_checkpointing=False), loaded, dtype, on_cpu=True) is None
    assert worker.pass_plan(config, loaded, dtype, on_cpu=False) is None


def test_a_cpu_far_from_the_calibration_cpu_gets_a_rough_time_not_plus_minus_30(dataset, monkeypatch):
    reference = cost.calibration().reference_peak_gflops["fp32"]
    assert preflight.cpu_unlike_calibration(reference * 1.2, "fp32", cores=2) == ""  # close enough: the usual ±30 %
    monkeypatch.setattr(cost, "measure_peak", lambda dtype="fp32", seconds=0.6: reference * 4 / 1000)
    report = run(RunConfig(dataset=str(dataset), bf16=False), cpu_gflops=None)
    time_row = dict(report.summary_rows())["Estimated time"]
    assert "±30 %" not in time_row and "a rough estimate" in time_row
    assert "4.0x that of the CPU the speed was calibrated on" in time_row
    assert report.as_dict()["time_caveat"] == report.time_caveat != ""
    # A peak given for another machine (a Jobs flavour, --cpu-gflops) is not this CPU: no caveat about it.
    assert run(RunConfig(dataset=str(dataset), bf16=False), cpu_gflops=reference * 4).time_caveat == ""
