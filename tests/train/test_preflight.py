"""Preflight: steps, tokens, time and memory estimates; blocking errors vs warnings; the CLI and JSON shown."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from studio.models.hardware import Gpu, Hardware
from studio.train import preflight
from studio.train.config import RunConfig

SMOLLM2_CONFIG = {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9, "num_hidden_layers": 30,
                  "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152, "tie_word_embeddings": True}
CPU = Hardware(kind="cpu", cpu_cores=2, ram_gb=16)


def write_dataset(folder: Path, train_rows: int = 100, validation_rows: int = 10, mean_tokens: int = 100,
                  p99: int = 180, maximum: int = 200, with_stats: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    row = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Ahoy! Hello."}]}
    (folder / "train.jsonl").write_text((json.dumps(row) + "\n") * train_rows)
    (folder / "validation.jsonl").write_text((json.dumps(row) + "\n") * validation_rows)
    rows = train_rows + validation_rows
    manifest = {"id": folder.name, "name": folder.name, "created_at": "2026-01-01T00:00:00+00:00",
                "counts": {"train": train_rows, "validation": validation_rows, "rejected": 0}}
    if with_stats:
        manifest["stats"] = {"model": "bundled:SmolLM2-135M-Instruct", "max_length": 512, "rows": rows,
                             "tokens": {"total": mean_tokens * rows, "trainable": mean_tokens * rows // 2,
                                        "p50": mean_tokens, "p95": int(p99 * 0.9), "p99": p99, "max": maximum},
                             "suggested_max_length": preflight.suggested_length(p99)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "ds")


def run(config: RunConfig, **kwargs):
    kwargs.setdefault("hardware", CPU)
    kwargs.setdefault("runs", [])
    kwargs.setdefault("check_busy", False)
    kwargs.setdefault("cpu_gflops", 127.0)
    return preflight.run_preflight(config, **kwargs)


def test_params_from_config_match_smollm2_exactly():
    assert preflight._params_from_config(SMOLLM2_CONFIG) == 134_515_008


def test_params_from_name():
    assert preflight.params_from_name("Qwen/Qwen2.5-0.5B-Instruct") == 0.5e9
    assert preflight.params_from_name("HuggingFaceTB/SmolLM2-360M-Instruct") == 360e6
    assert preflight.params_from_name("gpt2") is None


def test_steps_tokens_and_time_for_the_bundled_model(dataset):
    report = run(RunConfig(dataset=str(dataset), epochs=3, batch_size=8, max_length=512))
    assert report.steps_per_epoch == 13 and report.steps == 39  # ceil(100 / 8) per epoch
    assert report.tokens == 100 * 300  # mean 100 tokens × 100 rows × 3 epochs
    assert report.processed_tokens > report.tokens  # padding to the longest row of each batch
    # CPU_EFFICIENCY of 127 GFLOP/s at 4 × 134.5 M FLOPs per token: 55 % → about 130 tokens/s
    expected = preflight.CPU_EFFICIENCY * 127e9 / (4 * 134.5e6)
    assert report.tokens_per_s == pytest.approx(expected, rel=0.01) and 100 < report.tokens_per_s < 160
    assert report.seconds == pytest.approx(report.processed_tokens / report.tokens_per_s)
    assert "estimated from this CPU" in report.rate_source
    assert not report.blocking
    assert report.cli_command.startswith("python -m studio train") and "--epochs 3" in report.cli_command
    assert json.loads(report.config_json)["epochs"] == 3
    assert report.learning_rate == 1e-3 and report.learning_rate_auto  # a 135 M model: the small-model rate
    assert ("Learning rate", "0.001 (automatic for this model's size)") in report.summary_rows()


def test_max_steps_caps_steps_and_tokens(dataset):
    report = run(RunConfig(dataset=str(dataset), epochs=3, max_steps=5, batch_size=4))
    assert report.steps == 5
    assert report.tokens == 5 * 4 * 100


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
    record = Record("run-1", earlier, {"model": "bundled:SmolLM2-135M-Instruct", "name": "first try"}, {"status": "stopped"})
    report = run(RunConfig(dataset=str(dataset)), runs=[record])
    assert report.tokens_per_s == 52.0  # the median without the warm-up step
    assert "first try" in report.rate_source
    assert report.seconds == pytest.approx(report.tokens / 52.0)


def test_a_finished_runs_whole_loop_rate_wins_over_its_step_rates(dataset, tmp_path):
    finished = tmp_path / "finished"
    finished.mkdir()
    events = [{"type": "log", "step": s, "tokens_per_s": 160.0} for s in range(1, 5)]
    (finished / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    status = {"status": "completed", "train_tokens": 16_000, "train_runtime": 150.0}  # evaluations included
    record = Record("run-2", finished, {"model": "bundled:SmolLM2-135M-Instruct", "name": "demo"}, status)
    report = run(RunConfig(dataset=str(dataset)), runs=[record])
    assert report.tokens_per_s == pytest.approx(16_000 / 150.0)
    assert "demo" in report.rate_source


def test_gpu_estimate_uses_tensor_peak_and_gpu_memory(dataset):
    a10g = Hardware(kind="cuda", cpu_cores=4, ram_gb=30, gpus=[Gpu("NVIDIA A10G", 24.0)])
    report = run(RunConfig(dataset=str(dataset)), hardware=a10g)
    assert report.memory_kind == "GPU memory" and report.memory_available_gb == 24.0
    assert report.tokens_per_s > 10_000
    assert "A10G" in report.device and "A10G" in report.rate_source


def test_invalid_fields_block_with_field_level_messages(dataset):
    report = run(RunConfig(dataset=str(dataset), lora_r=0, learning_rate=-1.0))
    assert report.blocking
    assert set(report.field_errors) >= {"lora_r", "learning_rate"}
    assert {check.field for check in report.errors} >= {"lora_r", "learning_rate"}


def test_missing_dataset_and_qlora_without_cuda_are_errors(tmp_path):
    report = run(RunConfig(dataset=str(tmp_path / "nope"), qlora_4bit=True))
    messages = " ".join(check.message for check in report.errors)
    assert "not a saved dataset" in messages
    assert "QLoRA 4-bit needs an NVIDIA GPU" in messages
    assert report.blocking


def test_not_enough_memory_blocks(tmp_path):
    huge = write_dataset(tmp_path / "long", mean_tokens=30000, p99=32000, maximum=32768)
    report = run(RunConfig(dataset=str(huge), batch_size=256, max_length=32768))
    assert report.blocking
    memory = [check for check in report.errors if "Not enough memory" in check.message]
    assert memory and memory[0].field == "batch_size" and "batch size" in memory[0].hint


def test_truncation_and_no_validation_are_warnings_only(tmp_path):
    folder = write_dataset(tmp_path / "noval", validation_rows=0, p99=900, maximum=1000)
    report = run(RunConfig(dataset=str(folder), max_length=256))
    assert not report.blocking
    texts = " ".join(check.message for check in report.warnings)
    assert "No validation rows" in texts and "cuts" in texts
    cut = next(check for check in report.warnings if "cuts" in check.message)
    assert cut.field == "max_length" and "960" in cut.hint  # p99 900 rounded up to a multiple of 64
    assert "you can start anyway" in report.markdown()


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


def test_cpu_speed_is_the_decide_tabs_torch_measurement():
    from studio.decide import estimate

    measured = preflight.measure_cpu_gflops()
    assert measured == pytest.approx(estimate.measure_this_machine().peak_tflops * 1000)


def _model_with_template(tiny_model_dir, tmp_path, template: str) -> Path:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").write_text(template)
    return folder


def test_a_chat_template_without_answer_markers_is_a_warning_before_the_run(tiny_model_dir, dataset, tmp_path):
    model = _model_with_template(tiny_model_dir, tmp_path, "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    report = run(RunConfig(model=str(model), dataset=str(dataset)))
    warning = next(w for w in report.warnings if "Assistant-only loss is not possible" in w.message)
    assert "whole conversation" in warning.message and "supported family" in warning.hint
    assert warning.field == "assistant_only_loss"
    # The tiny model's ChatML template is supported: no such warning.
    assert not any("Assistant-only" in w.message for w in run(RunConfig(model=str(tiny_model_dir), dataset=str(dataset))).warnings)


def test_a_template_without_system_role_says_what_happens_to_system_prompts(tiny_model_dir, dataset, tmp_path):
    import trl

    gemma = (Path(trl.__file__).parent / "chat_templates" / "gemma.jinja").read_text()
    report = run(RunConfig(model=str(_model_with_template(tiny_model_dir, tmp_path, gemma)), dataset=str(dataset)))
    assert any("merged into the first user message" in note for note in report.notes)


def test_a_hub_model_not_on_disk_is_checked_when_the_run_starts(dataset, monkeypatch):
    monkeypatch.setattr("studio.train.preflight.model_shape", lambda ref: preflight.ModelShape(None))
    report = run(RunConfig(model="someone/not-downloaded-model", dataset=str(dataset)))
    assert any("checked when the run starts" in note for note in report.notes)
