"""The cost model: shapes, FLOPs, memory parts, padding, time parts and the settings that fit — by hand."""

import json

import pytest

from studio.models import cost

SMOLLM2_CONFIG = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_hidden_layers": 30,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
}
# Round constants so every expectation below can be redone by hand.
CAL = cost.Calibration(
    cpu_train_efficiency={"fp32": 0.5},
    cpu_eval_efficiency={"fp32": 0.25},
    reference_peak_gflops={"fp32": 100.0},
    start_seconds=10.0,
    warmup_seconds={"fp32": 2.0},
    save_seconds=1.5,
    end_seconds=4.0,
    import_floor_gib=0.4,
    fixed_gib=0.2,
    activation_factor={"fp32": 1.0},
    attention_factor={"fp32": 0.5},
    head_buffers={"fp32": 2.0},
    checkpoint_ratio={"fp32": 0.3},
)


def test_the_bundled_shape_in_the_table_is_its_config():
    from_config = cost.shape_from_config(SMOLLM2_CONFIG)
    assert from_config.params == cost.BUNDLED_SHAPE.params == 134_515_008
    for name in ("hidden", "layers", "intermediate", "kv_dim", "vocab", "heads", "tied"):
        assert getattr(from_config, name) == getattr(cost.BUNDLED_SHAPE, name), name
    assert cost.find_shape("bundled:SmolLM2-135M-Instruct") is cost.BUNDLED_SHAPE
    # The body's matmul weights: everything but the (tied) embedding table, which the LM head reuses.
    assert cost.BUNDLED_SHAPE.head_params == 49152 * 576
    assert cost.BUNDLED_SHAPE.body_params == 134_515_008 - 49152 * 576


def test_params_from_name_and_known_shapes():
    assert cost.params_from_name("Qwen/Qwen2.5-0.5B-Instruct") == 0.5e9
    assert cost.params_from_name("HuggingFaceTB/SmolLM2-360M-Instruct") == 360e6
    assert cost.params_from_name("gpt2") is None
    assert cost.find_shape("Qwen/Qwen2.5-1.5B-Instruct").name == "Qwen2.5-1.5B"
    generic = cost.generic_shape(7e9)
    assert (generic.hidden, generic.layers) == (4224, 33)  # (7e9·128/12)^(1/3) = 4211 → 4224; 4224/128 = 33


def test_model_shape_reads_a_local_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM2_CONFIG))
    shape = cost.model_shape(str(tmp_path))
    assert shape.source == "config" and shape.params == 134_515_008 and shape.heads == 9


def test_lora_param_count_matches_peft_on_the_tiny_model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    shape = cost.shape_from_config(json.loads((tiny_model_dir / "config.json").read_text()))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert cost.lora_params(shape, 8) == trainable
    assert cost.params_from_config(json.loads((tiny_model_dir / "config.json").read_text())) == total - trainable


def test_training_flops_by_hand():
    shape = cost.BUNDLED_SHAPE
    body, head = shape.body_params, shape.head_params
    attention = 4 * 30 * 300 * 576  # 4·L·s·h forward at a padded length of 300
    adapter = cost.lora_params(shape, 8)
    lora = cost.train_flops_per_token(shape, "lora", adapter=adapter, length=300, scored_fraction=0.5)
    assert lora == pytest.approx(2 * (2 * body + attention + 2 * head * 0.5) + 6 * adapter)
    full = cost.train_flops_per_token(shape, "full", length=300)
    assert full == pytest.approx(3 * (2 * body + attention + 2 * head))
    checkpointed = cost.train_flops_per_token(
        shape, "lora", adapter=adapter, length=300, scored_fraction=0.5, gradient_checkpointing=True
    )
    assert checkpointed - lora == pytest.approx(2 * body + attention)  # the body's forward runs twice
    assert cost.forward_flops_per_token(shape, 300, 0.5) == pytest.approx(2 * body + attention + head)


def test_cpu_memory_from_its_parts_by_hand():
    shape = cost.BUNDLED_SHAPE
    memory = cost.estimate_memory(
        shape,
        "lora",
        dtype="fp32",
        micro_batch=8,
        length=500,
        lora_r=8,
        scored_fraction=0.5,
        kind="cpu",
        calibration_=CAL,
    )
    gib = 1024**3
    assert memory.floor == 0.4 and memory.other == 0.2
    assert memory.weights == pytest.approx(134_515_008 * 4 / gib)
    assert memory.adapter == pytest.approx(cost.lora_params(shape, 8) * 16 / gib)  # fp32 weight + grad + Adam m, v
    per_layer = 7 * 576 + 2 * 192 + 4 * 1536  # values saved per token per layer
    activations = 8 * 500 * 30 * per_layer * 4 + 0.5 * 8 * 9 * 500**2 * 4 * 30  # + the s×s scores term
    assert memory.activations == pytest.approx(activations / gib)
    assert memory.head == pytest.approx(2.0 * min(4096, 8 * 500 * 0.5) * 32768 * 4 / gib)  # chunked LM head
    assert memory.total == pytest.approx(sum(memory.as_dict()["parts_gib"].values()), abs=0.01)
    checkpointed = cost.estimate_memory(
        shape,
        "lora",
        dtype="fp32",
        micro_batch=8,
        length=500,
        lora_r=8,
        scored_fraction=0.5,
        gradient_checkpointing=True,
        kind="cpu",
        calibration_=CAL,
    )
    # A CPU process keeps a measured share of what the recomputed layers free (not the textbook one layer).
    assert checkpointed.activations == pytest.approx(memory.activations * 0.3)


def test_full_fine_tuning_and_qlora_and_sharding_on_a_gpu():
    mistral = cost.find_shape("Mistral-7B")

    def full_over(devices, strategy="ddp"):
        return cost.estimate_memory(
            mistral,
            "full",
            dtype="bf16",
            micro_batch=1,
            length=1024,
            gradient_checkpointing=True,
            kind="gpu",
            devices=devices,
            strategy=strategy,
            calibration_=CAL,
        )

    full = full_over(1)
    # the worker trains fp32 weights under bf16 autocast: weights 4 B + gradients 4 B + Adam m,v 8 B = 16 B/param
    assert full.weights + full.gradients + full.optimizer == pytest.approx(7.24e9 * 16 / 1024**3)
    assert full.weights == pytest.approx(7.24e9 * 4 / 1024**3)
    assert full.floor == CAL.cuda_context_gib and full.other == 0
    per_token = 1 * (32 * 4096 + 7 * 4096 + 2 * 1024 + 4 * 14336)  # checkpointed: layer inputs + one whole layer
    assert full.activations == pytest.approx(1024 * per_token * 2 * CAL.gpu_activation_factor / 1024**3)
    qlora = cost.estimate_memory(
        mistral, "qlora", dtype="bf16", micro_batch=1, length=1024, kind="gpu", calibration_=CAL
    )
    tables = 2 * 32_000 * 4_096  # untied embeddings and LM head: not quantised, bf16
    assert qlora.weights == pytest.approx(((7.24e9 - tables) * 4.127 / 8 + tables * 2) / 1024**3, rel=0.01)
    assert qlora.optimizer == 0

    def over_8(strategy):
        return full_over(8, strategy)

    zero3, zero2, ddp = over_8("deepspeed-zero3"), over_8("deepspeed-zero2"), over_8("ddp")
    assert zero3.optimizer == pytest.approx(full.optimizer / 8) and zero3.activations == full.activations
    assert zero3.weights == pytest.approx(full.weights / 8) and over_8("fsdp").total == pytest.approx(zero3.total)
    assert zero2.weights == full.weights and zero2.gradients == pytest.approx(full.gradients / 8)
    assert ddp.total == pytest.approx(full.total)  # DDP: every process holds a whole copy


def test_token_stats_quantiles_keep_the_mean():
    tokens = cost.TokenStats(mean=179, p50=145, p95=394, p99=678, max=760, labelled_fraction=0.66)  # Alpaca-like
    values = [tokens.quantile((i + 0.5) / 10_000) for i in range(10_000)]
    assert values == sorted(values) and values[-1] <= 760
    assert sum(values) / len(values) == pytest.approx(179, rel=0.01)
    assert tokens.quantile(0.5) == pytest.approx(145) and tokens.quantile(1.0) == pytest.approx(760)


def test_padding_of_length_grouped_and_random_batches():
    uniform = cost.batches(cost.TokenStats.uniform(100), rows=300, batch=8, max_length=512)
    assert uniform.real_per_row == pytest.approx(100) and uniform.padded_per_row == pytest.approx(100)
    spread = cost.TokenStats(mean=150, p50=120, p95=380, p99=600, max=760)
    epoch = cost.batches(spread, rows=300, batch=8, max_length=576)
    assert epoch.real_per_row < 150  # rows longer than 576 are cut
    assert epoch.longest == 576 and epoch.padded_per_row > epoch.real_per_row
    random_batches = cost.batches(spread, rows=300, batch=8, max_length=576, grouped=False)
    assert random_batches.padded_per_row > epoch.padded_per_row  # grouping by length saves padding
    # A run shorter than an epoch: the sampler takes each mega-batch's longest rows first.
    short = cost.batches(spread, rows=300, batch=8, max_length=576, rows_seen=16)
    assert short.real_per_row > 2 * epoch.real_per_row
    packed = cost.batches(spread, rows=300, batch=8, max_length=576, packing=True)
    assert packed.padded_per_row == packed.real_per_row


def workload(**changes) -> cost.Workload:
    values = dict(
        shape=cost.BUNDLED_SHAPE,
        technique="lora",
        lora_r=8,
        dtype="fp32",
        micro_batch=8,
        grad_accum=1,
        steps=20,
        train_tokens=30_000,
        train_positions=40_000,
        scored_tokens=15_000,
        attention_length=250,
        longest=500,
        scored_fraction_peak=0.5,
        evaluations=5,
        eval_positions=6_000,
        eval_scored=2_000,
        saves=5,
    )
    values.update(changes)
    return cost.Workload(**values)


def test_time_counts_start_warmup_steps_evaluations_checkpoints_and_end():
    cpu = cost.Device("cpu", "CPU", "cpu", 16, 0.1, "fp32", bf16=False)  # 100 GFLOP/s
    run = cost.estimate_run(workload(), cpu, CAL)
    shape, adapter = cost.BUNDLED_SHAPE, cost.lora_params(cost.BUNDLED_SHAPE, 8)
    train_flops = cost.train_flops_per_token(
        shape, "lora", adapter=adapter, length=250, scored_fraction=15_000 / 40_000
    )
    assert run.seconds["train"] == pytest.approx(train_flops * 40_000 / (100e9 * 0.5))
    eval_flops = cost.forward_flops_per_token(shape, 250, 2_000 / 6_000) * 6_000 * 5
    assert run.seconds["evaluation"] == pytest.approx(eval_flops / (100e9 * 0.25))
    assert (run.seconds["start"], run.seconds["warmup"], run.seconds["checkpoints"], run.seconds["end"]) == (
        10,
        2,
        7.5,
        4,
    )
    assert run.total_seconds == pytest.approx(sum(run.seconds.values()))
    assert run.tokens_per_s == pytest.approx(30_000 / run.seconds["train"])
    assert "calibrated fp32" in run.efficiency_note
    fewer = cost.estimate_run(workload(evaluations=1), cpu, CAL)
    assert fewer.seconds["evaluation"] == pytest.approx(run.seconds["evaluation"] / 5)


def measurement(fp32_step_s: float = 2.0, bf16_step_s: float = 1.0, busy: bool = False):
    from studio.models.precision import CpuMeasurement

    return CpuMeasurement(fp32_step_s, bf16_step_s, (2.0,), (2.01,), 0.999, 512, 2, busy=busy)


def test_the_measured_step_is_the_precision_measurements_own_lora_step():
    from studio.models import precision_probe

    shape = cost.BUNDLED_SHAPE
    length = precision_probe.MEASURE_LENGTH
    per_position = cost.train_flops_per_token(
        shape, "lora", adapter=cost.lora_params(shape, 8), length=length, scored_fraction=(length // 2 + 1) / length
    )
    assert cost.measured_step_flops(shape) == pytest.approx(per_position * precision_probe.MEASURE_BATCH * length)
    assert cost.measured_step_rate(shape, "fp32", measurement()) == pytest.approx(cost.measured_step_flops(shape) / 2)
    assert cost.measured_step_rate(shape, "bf16", measurement()) == pytest.approx(cost.measured_step_flops(shape))
    # Nothing to go by: a busy measurement, one without timed steps (bf16 ruled out by its matmuls), no measurement.
    assert cost.measured_step_rate(shape, "fp32", measurement(busy=True)) is None
    assert cost.measured_step_rate(shape, "fp32", measurement(0.0, 0.0)) is None
    assert cost.measured_step_rate(shape, "fp32", None) is None


def test_this_cpus_measured_step_sets_the_speed_whatever_its_matmul_peak():
    """The calibration CPU's runs went 2x as far into its peak as its measured step (0.5 vs 0.25): here, a run goes
    2x the FLOP/s of this CPU's own measured step, whether the peak reads 100 or 400 GFLOP/s."""
    cal = cost.Calibration(**{**CAL.as_dict(), "cpu_measured_step_efficiency": {"fp32": 0.25}, "source": "test"})
    step = measurement(fp32_step_s=2.0)
    step_rate = cost.measured_step_flops(cost.BUNDLED_SHAPE) / 2.0
    runs = [
        cost.estimate_run(workload(), cost.Device("cpu", "CPU", "cpu", 16, peak, "fp32"), cal, measured=step)
        for peak in (0.1, 0.4)
    ]
    assert runs[0].seconds["train"] == pytest.approx(runs[1].seconds["train"])
    assert runs[0].seconds["train"] == pytest.approx(runs[0].flops / (2 * step_rate))
    # Evaluations: 0.25 of the peak calibrated, as far as the measured step went: at its own FLOP/s.
    assert runs[0].seconds["evaluation"] == pytest.approx(runs[0].eval_flops / step_rate)
    assert runs[0].speed_measured_here and "own fp32 LoRA step" in runs[0].efficiency_note
    # Without the measurement, or without the calibration CPU's step figure, the peak × calibrated efficiency.
    for unmeasured in (
        cost.estimate_run(workload(), cost.Device("cpu", "CPU", "cpu", 16, 0.1, "fp32"), cal),
        cost.estimate_run(workload(), cost.Device("cpu", "CPU", "cpu", 16, 0.1, "fp32"), CAL, measured=step),
    ):
        assert not unmeasured.speed_measured_here
        assert unmeasured.seconds["train"] == pytest.approx(unmeasured.flops / (100e9 * 0.5))
    # A GPU never takes a CPU's measurement.
    gpu = cost.estimate_run(workload(dtype="bf16"), cost.SPACES[2], cal, measured=step)
    assert not gpu.speed_measured_here and gpu.efficiency_note.startswith("assumed")


def test_an_uncalibrated_precision_borrows_fp32_and_says_so():
    cpu = cost.Device("cpu", "CPU", "cpu", 16, 0.4, "bf16")
    efficiency, note = cost.efficiency_for(cpu, "bf16", cal=CAL)
    assert efficiency == 0.5 and "not calibrated" in note
    assert CAL.per_dtype("activation_factor", "bf16") == (1.0, False)
    # bf16 activations and LM head tiles take half the bytes of fp32 ones, at the same (borrowed) factors.
    fp32, bf16 = (
        cost.estimate_memory(cost.BUNDLED_SHAPE, dtype=dtype, micro_batch=8, length=500, calibration_=CAL)
        for dtype in ("fp32", "bf16")
    )
    assert bf16.activations == pytest.approx(fp32.activations / 2) and bf16.weights == pytest.approx(fp32.weights / 2)
    gpu = cost.SPACES[2]  # T4
    assert cost.efficiency_for(gpu, gpu.dtype, cal=CAL)[1].startswith("assumed")


def test_settings_that_fit_keep_the_effective_batch():
    load = workload(micro_batch=8, grad_accum=2, longest=576)
    full = cost.estimate_memory(
        load.shape, "lora", dtype="fp32", micro_batch=8, length=576, lora_r=8, scored_fraction=0.5, calibration_=CAL
    ).total
    fit = cost.settings_that_fit(load, available_gib=full * 0.6, cal=CAL)
    assert fit is not None and fit.micro_batch < 8 and fit.micro_batch * fit.grad_accum == 16
    assert not fit.gradient_checkpointing and cost.fits_in(fit.memory_gib, full * 0.6)
    assert "same effective batch of 16" in fit.changes[0]
    base = 0.4 + 0.2 + 134_515_008 * 4 / 1024**3 + 0.05  # floor, other, weights, adapter: never shrinks
    one_row = cost.estimate_memory(
        load.shape, "lora", dtype="fp32", micro_batch=1, length=576, lora_r=8, scored_fraction=0.5, calibration_=CAL
    )
    # Batch 1 does not fit; batch 1 with checkpointing (30 % of its activations here) does.
    room = (one_row.total - 0.5 * one_row.activations) / cost.USABLE_FRACTION
    tight = cost.settings_that_fit(load, available_gib=room, cal=CAL)
    assert tight is not None and tight.gradient_checkpointing and tight.micro_batch * tight.grad_accum == 16
    assert cost.settings_that_fit(load, available_gib=base, cal=CAL) is None


def test_the_pass_plan_splits_only_what_would_not_fit_and_checkpoints_only_when_one_row_would_not():
    shape = cost.BUNDLED_SHAPE
    # 30 layers × (7·576 + 2·192 + 4·1536) values × 4 B × factor 1.0: 1,267,200 B per token in fp32.
    assert cost.activation_bytes_per_token(shape, "fp32", cal=CAL) == 30 * 10560 * 4
    assert cost.activation_bytes_per_token(shape, "fp32", gradient_checkpointing=True, cal=CAL) == 30 * 10560 * 4 * 0.3
    budget_tokens = int(3.3 * 1024**3 / (30 * 10560 * 4))  # 2,796
    assert cost.plan_passes(shape, "fp32", 8, 128, cal=CAL) == cost.PassPlan(None, False)  # short rows: whole
    assert cost.plan_passes(shape, "fp32", 8, 576, cal=CAL) == cost.PassPlan(budget_tokens, False)
    assert cost.plan_passes(shape, "bf16", 8, 576, cal=CAL) == cost.PassPlan(None, False)  # half the bytes: fits
    long_rows = cost.plan_passes(shape, "fp32", 8, 8192, cal=CAL)  # one row alone is over the budget
    assert long_rows == cost.PassPlan(int(3.3 * 1024**3 / (30 * 10560 * 4 * 0.3)), True)
    assert "above 2,796 padded tokens run as micro-batches" in cost.plan_passes(shape, "fp32", 8, 576, cal=CAL).note
    assert cost.PassPlan(None, False).note == ""


def test_memory_peaks_on_the_pass_the_worker_runs_and_fit_does_not_shrink_twice():
    one_pass = cost.rows_in_pass(8, 576, 2796)
    assert one_pass == 4 and cost.rows_in_pass(8, 576, None) == 8 and cost.rows_in_pass(8, 128, 2796) == 8
    assert cost.rows_in_pass(8, 4000, 2796) == 1  # a row above the limit still runs (alone)
    common = dict(length=576, lora_r=8, scored_fraction=0.5, calibration_=CAL)
    split = cost.estimate_memory(cost.BUNDLED_SHAPE, micro_batch=8, max_tokens_per_pass=2796, **common)
    four_rows = cost.estimate_memory(cost.BUNDLED_SHAPE, micro_batch=4, **common)
    assert split.activations == pytest.approx(four_rows.activations) and split.total == pytest.approx(four_rows.total)
    assert split.total < cost.estimate_memory(cost.BUNDLED_SHAPE, micro_batch=8, **common).total
    load = workload(micro_batch=8, longest=576, max_tokens_per_pass=2796)
    # Room for the planned pass: the batch stays 8 (the worker already splits it), no second shrinking.
    assert cost.settings_that_fit(load, split.total / cost.USABLE_FRACTION + 0.01, cal=CAL).micro_batch == 8
    # Room for less than the pass: batch 4 would peak the same as 8, so the fit goes to 2 (× accumulation 4).
    two = cost.settings_that_fit(load, split.total / cost.USABLE_FRACTION - 0.01, cal=CAL)
    assert (two.micro_batch, two.grad_accum, two.gradient_checkpointing) == (2, 4, False)


def test_the_calibration_of_this_machine_wins_over_the_committed_one(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    committed = cost.load_calibration()
    assert committed.source == str(cost.packaged_calibration_path())
    assert committed.machine and committed.date and committed.method  # where the constants come from
    (tmp_path / "calibration.json").write_text(
        json.dumps({"machine": "laptop", "date": "2027-01-01", "cpu_train_efficiency": {"fp32": 0.42}})
    )
    here = cost.load_calibration()
    assert here.cpu_train_efficiency == {"fp32": 0.42} and here.machine == "laptop"
    assert here.source == str(tmp_path / "calibration.json")


def test_a_cpu_peak_measured_under_load_gives_way_to_the_best_seen(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    assert cost.remembered_cpu_peak("bf16", 0.41) == 0.41  # the first measurement is the best seen
    assert cost.remembered_cpu_peak("bf16", 0.21) == 0.41  # another process held a core: kept the best
    assert cost.remembered_cpu_peak("fp32", 0.2) == 0.2  # per precision
    assert cost.remembered_cpu_peak("bf16", 0.43) == 0.43  # a better burst replaces it
    stored = json.loads((tmp_path / "cache" / cost.PEAK_CACHE_FILE).read_text())
    assert sorted(stored.values()) == [0.2, 0.43]
    (tmp_path / "cache" / cost.PEAK_CACHE_FILE).write_text("not json")
    assert cost.remembered_cpu_peak("bf16", 0.3) == 0.3  # a damaged file is measured over, never a crash
