"""Training speed and memory benchmarks (prints figures; asserts nothing).

    STUDIO_HOME=bench-home python bench/train.py bundled    # bundled SmolLM2 on the sample: fp32 vs chosen precision
    STUDIO_HOME=bench-home python bench/train.py memory     # 300 Alpaca-shaped rows, batch 8 x max length 576: peak RSS
    STUDIO_HOME=bench-home python bench/train.py profile    # torch.profiler over a few steps: where a step's time goes
    STUDIO_HOME=bench-home python bench/train.py peaks      # fp32 and bf16 matmul peaks of this CPU
    STUDIO_HOME=bench-home python bench/train.py overhead   # studio worker vs plain TRL, same config
    STUDIO_HOME=bench-home python bench/train.py explore    # threads / batch / packing / length grouping
    STUDIO_HOME=bench-home python bench/train.py padding    # real vs padded tokens, random vs length-grouped batches
    options: --steps N  --threads N  --model tiny|bundled  --repeats N  --save FILE  --previous FILE

Every figure is printed side by side: fp32 next to the precision the studio chooses on this machine, and with
--previous FILE (the --save output of an earlier run, e.g. before a change) the earlier figure next to it.

Tokens are non-padding tokens the model was trained on (TRL's num_tokens); tokens/s are over the training steps
(the worker's own step timer: evaluations, checkpoints and start-up excluded). Share of the peak: training
FLOPs/token ≈ 4 × P, with P = parameters of all Linear layers incl. the LM head (forward 2P + backward to the
activations 2P; LoRA's frozen weights get no weight gradients; LoRA's own FLOPs and attention-score FLOPs are left
out, so the share is slightly conservative), divided by the best torch.matmul rate (2n³ FLOPs, square sizes
576-2048 and the model's own shapes) in the precision the run used, at the same thread count, measured before and
after the run. The peak RSS of the worker is sampled with psutil every 50 ms over the whole run.
The machine is shared with other engineers: figures are measured under contention (the load is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE_CANDIDATES = [ROOT / "studio/data/samples/assistant_style.jsonl"]


def sample_rows() -> tuple[list[dict], str]:
    for path in SAMPLE_CANDIDATES:
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            return [{"messages": r["messages"]} for r in rows], str(path)
    rng = random.Random(0)
    topics = ["the sea", "stars", "maps", "knots", "rum-free cooking", "python lists", "tides", "compasses"]
    rows = []
    for i in range(120):
        topic = rng.choice(topics)
        answer = f"Ahoy! {' '.join(['Here be a fact about', topic] * rng.randint(2, 6))}. — Captain Byte"
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Tell me about {topic} ({i})."},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return rows, "synthetic rows (sample file not found)"


def write_dataset(rows: list[dict], folder: Path, validation: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[validation:]))
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:validation]))
    return folder


PEAK_SHAPES = ((576, 576, 576), (1024, 1024, 1024), (2048, 2048, 2048), (2048, 576, 1536), (2048, 1536, 576))


def matmul_rate(m: int, k: int, n: int, dtype_name: str, seconds: float = 0.4) -> float:
    """Best (m×k)·(k×n) torch.matmul rate in GFLOP/s over short bursts (a busy machine only slows a burst down)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    torch.matmul(a, b)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(3):
            torch.matmul(a, b)
        best = max(best, 3 * 2 * m * k * n / (time.perf_counter() - start) / 1e9)
    return best


def matmul_peaks(threads: int, seconds: float = 0.4) -> dict:
    """{"float32": best GFLOP/s, "bfloat16": best GFLOP/s, "shapes": {...}} at this thread count."""
    import torch

    torch.set_num_threads(threads)
    shapes = {}
    for shape in PEAK_SHAPES:
        shapes["x".join(map(str, shape))] = {
            dtype: matmul_rate(*shape, dtype, seconds) for dtype in ("float32", "bfloat16")
        }
    return {
        "float32": max(v["float32"] for v in shapes.values()),
        "bfloat16": max(v["bfloat16"] for v in shapes.values()),
        "shapes": shapes,
    }


def matmul_peak(threads: int, dtype_name: str = "float32") -> float:
    return matmul_peaks(threads)[dtype_name]


def linear_params(model_dir: str) -> tuple[int, int]:
    """(parameters of all Linear layers incl. the LM head, parameters of the LM head)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    head = model.get_output_embeddings().weight.numel()
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)), head


def trained_fraction(model_dir: str, rows: list[dict]) -> float:
    """Share of tokens that carry a label (assistant tokens): TRL's fused LM head runs only on those."""
    from transformers import AutoTokenizer

    from studio.models.templates import choose_template

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    choice = choose_template(tokenizer, [r["messages"] for r in rows])
    if not choice.enabled:
        return 1.0
    labelled = total = 0
    for row in rows:
        encoded = tokenizer.apply_chat_template(
            row["messages"],
            chat_template=choice.template or tokenizer.chat_template,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        labelled += sum(encoded["assistant_masks"])
        total += len(encoded["input_ids"])
    return labelled / max(1, total)


def resolve_model(kind: str, scratch: Path) -> str:
    if kind == "tiny":
        from studio.models.tiny import build_tiny_model

        return str(build_tiny_model(scratch / "tiny"))
    from studio.models import catalog

    return catalog.resolve(catalog.BUNDLED)


def base_config(model_dir: str, dataset: Path, steps: int, threads: int, **changes):
    from studio.train.config import RunConfig

    values = dict(
        model=model_dir,
        dataset=str(dataset),
        max_steps=steps,
        torch_threads=threads,
        save_steps=10**6,
        logging_steps=1,
        warmup=0,
    )
    values.update(changes)
    return RunConfig(**values)


# ---- plain TRL in this process -------------------------------------------------------------
def plain_trl(config, measure_from_step: int = 0) -> dict:
    """The same config with a plain TRL script (no studio code in the loop)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from studio.models.templates import choose_template
    from studio.train.worker import read_messages

    torch.set_num_threads(config.torch_threads)
    rows = read_messages(Path(config.dataset) / "train.jsonl")
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    choice = choose_template(tokenizer, [r["messages"] for r in rows])
    if choice.template:
        tokenizer.chat_template = choice.template
    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
    learning_rate = config.learning_rate_for(model.num_parameters())  # as the worker does
    extra = {}
    if config.group_by_length and not config.packing:
        extra["train_sampling_strategy"] = "group_by_length"
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out,
            max_steps=config.max_steps,
            per_device_train_batch_size=config.batch_size,
            gradient_accumulation_steps=config.grad_accum,
            learning_rate=learning_rate,
            lr_scheduler_type=config.scheduler,
            warmup_steps=config.warmup,
            seed=config.seed,
            logging_steps=1,
            save_strategy="no",
            eval_strategy="no",
            max_length=config.max_length,
            packing=config.packing,
            assistant_only_loss=choice.enabled,
            bf16=False,
            activation_checkpointing=False,
            use_cpu=True,
            report_to="none",
            disable_tqdm=True,
            **extra,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            ),
        )
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
        marks = {}

        class Steps(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == measure_from_step:
                    marks["t0"], marks["tok0"] = time.perf_counter(), trainer._total_train_tokens
                marks["t1"], marks["tok1"] = time.perf_counter(), trainer._total_train_tokens

        trainer.add_callback(Steps())
        result = trainer.train()
    tokens = trainer._total_train_tokens
    runtime = result.metrics["train_runtime"]
    steady = None
    if "t0" in marks and marks["t1"] > marks["t0"]:
        steady = (marks["tok1"] - marks["tok0"]) / (marks["t1"] - marks["t0"])
        steady_s_per_step = (marks["t1"] - marks["t0"]) / max(1, config.max_steps - measure_from_step)
    else:
        steady_s_per_step = runtime / config.max_steps
    return {
        "tokens": tokens,
        "runtime": runtime,
        "tokens_per_s": tokens / runtime,
        "steady_tokens_per_s": steady,
        "s_per_step": steady_s_per_step,
    }


def plain_trl_fresh(config) -> dict:
    """plain_trl in a new process, as cold as the worker: the first step of a fresh process takes a few
    seconds longer (allocations, kernel set-up), which an in-process script pays only once."""
    code = (
        "import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import train; "
        "from studio.train.config import RunConfig; "
        "print('RESULT ' + json.dumps(train.plain_trl(RunConfig.from_json(sys.argv[3]), measure_from_step=1)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).resolve().parent), str(ROOT), config.to_json()],
        capture_output=True,
        text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"plain TRL in a fresh process failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


# ---- the studio worker ---------------------------------------------------------------------
class RssSampler(threading.Thread):
    """Peak resident memory of a process and its children, sampled with psutil every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.samples = pid, every, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            process = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.done.is_set():
            try:
                total = process.memory_info().rss + sum(
                    child.memory_info().rss for child in process.children(recursive=True)
                )
            except psutil.Error:
                break
            self.peak, self.samples = max(self.peak, total), self.samples + 1
            self.done.wait(self.every)

    def stop(self) -> float:
        """The peak RSS seen, in GiB."""
        self.done.set()
        self.join(timeout=5)
        return self.peak / 1024**3


def studio_worker(config) -> dict:
    from studio.train import store, supervisor

    known = set(supervisor._children)
    record = supervisor.launch(config, owner="bench")
    pids = [pid for pid in supervisor._children if pid not in known]
    sampler = RssSampler(pids[-1]) if pids else None
    if sampler:
        sampler.start()
    record = supervisor.wait(record.run_id, timeout=7200)
    peak_rss = sampler.stop() if sampler else None
    for process in list(supervisor._children.values()):
        process.wait()
    supervisor.reap()
    status = record.status
    if record.state != "completed":
        raise SystemExit(f"worker run {record.state}: {status.get('error')} (see {record.dir}/log.txt)")
    facts = status.get("facts") or {}
    events = store.read_events(record.dir)[0]
    logs = [e for e in events if e["type"] == "log"]
    evals = [e for e in events if e["type"] == "eval" and e.get("eval_loss") is not None]
    result = {
        "tokens": status["train_tokens"],
        "runtime": status["train_runtime"],
        "train_seconds": status.get("train_seconds") or status["train_runtime"],
        "run_dir": str(record.dir),
        "peak_rss_gib": peak_rss,
        "precision": facts.get("precision", "fp32"),
        "precision_reason": facts.get("precision_reason", ""),
        "final_loss": status.get("final_loss"),
        "eval_loss": evals[-1]["eval_loss"] if evals else None,
        "steps": status.get("step"),
        "notes": status.get("notes") or [],
        "max_tokens_per_pass": facts.get("max_tokens_per_pass"),
    }
    result["tokens_per_s"] = result["tokens"] / result["train_seconds"]
    result["loop_tokens_per_s"] = result["tokens"] / result["runtime"]  # the Trainer's whole loop, as plain TRL reports
    counted = [e for e in logs if isinstance(e.get("num_tokens"), (int, float))]
    if len(counted) >= 2 and counted[-1]["elapsed"] > counted[0]["elapsed"]:
        result["steady_tokens_per_s"] = (counted[-1]["num_tokens"] - counted[0]["num_tokens"]) / (
            counted[-1]["elapsed"] - counted[0]["elapsed"]
        )
    # After the first step (the one-time warm-up of a fresh process), from the per-step events.
    rates = [e["tokens_per_s"] for e in logs[1:] if isinstance(e.get("tokens_per_s"), (int, float))]
    result["median_step_tokens_per_s"] = statistics.median(rates) if rates else None
    return result


# ---- parts ---------------------------------------------------------------------------------
def callback_cost_ms(scratch: Path, calls: int = 200) -> float:
    """Worst-case time the studio's callback adds per step (a status write AND an event every step), in ms.

    Contention-proof complement to the tokens/s ratio: it is the only code the worker adds inside the loop."""
    from types import SimpleNamespace

    from studio.train import store
    from studio.train.config import RunConfig
    from studio.train.worker import make_callback

    record = store.create_run(RunConfig(dataset=str(scratch)), "bench")
    callback = make_callback(record.dir, record.run_config())
    state = SimpleNamespace(global_step=0, max_steps=calls, epoch=0.0, best_model_checkpoint=None, best_metric=None)
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    logs = {"loss": 1.0, "grad_norm": 0.5, "learning_rate": 1e-4, "mean_token_accuracy": 0.5, "num_tokens": 0}
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        callback.on_train_begin(None, state, control)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for step in range(1, calls + 1):
            state.global_step, state.epoch = step, step / calls
            callback.on_step_begin(None, state, control)
            callback.last_status_write = 0.0  # force the status write the worker does at most once a second
            callback.on_step_end(None, state, control)
            logs["num_tokens"] = step * 600
            callback.on_log(None, state, control, logs=dict(logs))
    return (time.perf_counter() - start) / calls * 1000


def part_overhead(opts, model_dir: str, scratch: Path) -> None:
    cost = callback_cost_ms(scratch)
    print(
        f"(a') the studio callback adds at most {cost:.2f} ms per step (status write + event + RSS probe every step); "
        f"on a {8.0:.0f} s step of the bundled model (quiet machine) that is {cost / 8000:.4%}, "
        f"on a 0.1 s step of the tiny model {cost / 100:.2%}"
    )
    rows, source = sample_rows()
    dataset = write_dataset(rows, scratch / "overhead-ds")
    config = base_config(model_dir, dataset, opts.steps, opts.threads)
    print(
        f"(a) studio worker vs plain TRL — model {opts.model}, {opts.steps} steps, batch {config.batch_size}, "
        f"{opts.threads} threads, data: {source}"
    )
    fresh, plain, worker, plain_steady, worker_steady = [], [], [], [], []
    for repeat in range(opts.repeats):
        fresh.append(plain_trl_fresh(config)["tokens_per_s"])
        plain_result, worker_result = plain_trl(config, measure_from_step=1), studio_worker(config)
        plain.append(plain_result["tokens_per_s"])
        worker.append(worker_result["loop_tokens_per_s"])
        if plain_result.get("steady_tokens_per_s") and worker_result.get("steady_tokens_per_s"):
            plain_steady.append(plain_result["steady_tokens_per_s"])
            worker_steady.append(worker_result["steady_tokens_per_s"])
        print(
            f"  repeat {repeat + 1}: plain TRL in a fresh process {fresh[-1]:.1f} tok/s, studio worker "
            f"{worker[-1]:.1f} tok/s, ratio {worker[-1] / fresh[-1]:.3f}; plain TRL in this (warm) process "
            f"{plain[-1]:.1f} tok/s",
            flush=True,
        )
    print(
        f"  both cold (a fresh process each): best-of-{opts.repeats} plain {max(fresh):.1f}, worker {max(worker):.1f}, "
        f"ratio {max(worker) / max(fresh):.3f} (median {statistics.median(w / p for w, p in zip(worker, fresh)):.3f}; "
        "target >= 0.97)"
    )
    print(
        f"  against the plain script in this process, warm from its earlier runs: ratio {max(worker) / max(plain):.3f}"
        f" (median {statistics.median(w / p for w, p in zip(worker, plain)):.3f})"
    )
    if plain_steady:
        print(
            f"  after the first step (warm-up excluded on both sides): plain {max(plain_steady):.1f}, worker "
            f"{max(worker_steady):.1f}, ratio {max(worker_steady) / max(plain_steady):.3f} (median "
            f"{statistics.median(w / p for w, p in zip(worker_steady, plain_steady)):.3f})"
        )


# ---- side by side ----------------------------------------------------------------------------
FIGURES: dict = {}  # what this run measured, by part (written by --save, read back by --previous)
PREVIOUS: dict = {}


def _format(value, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "%":
        return f"{value:.0%}"
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    else:
        text = str(value)
    return text + unit


def side_by_side(part: str, columns: dict[str, dict], rows: list[tuple[str, str, str]]) -> None:
    """Print rows (label, key, unit) for each column, then the previous run's figure for the last column."""
    FIGURES[part] = columns
    previous = PREVIOUS.get(part) or {}
    names = list(columns)
    headers = ["figure"] + names + ([f"previous {names[-1]}"] if previous.get(names[-1]) else [])
    table = [headers]
    for label, key, unit in rows:
        line = [label] + [_format(columns[name].get(key), unit) for name in names]
        if previous.get(names[-1]):
            line.append(_format(previous[names[-1]].get(key), unit))
        table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for index, row in enumerate(table):
        print(
            "  " + "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        )
        if index == 0:
            print("  " + "  ".join("-" * width for width in widths))


def peak_columns(before: dict, after: dict) -> dict:
    return {dtype: max(before[dtype], after[dtype]) for dtype in ("float32", "bfloat16")}


def add_shares(result: dict, peaks: dict, flops_per_token: float, strict_flops: float) -> None:
    dtype = {"bf16": "bfloat16"}.get(result["precision"], "float32")
    result["peak_gflops"] = peaks[dtype]
    result["gflops"] = result["tokens_per_s"] * flops_per_token / 1e9
    result["share_of_peak"] = result["gflops"] / peaks[dtype]
    result["share_of_peak_strict"] = result["tokens_per_s"] * strict_flops / 1e9 / peaks[dtype]
    result["share_of_fp32_peak"] = result["gflops"] / peaks["float32"]
    result["seconds_per_step"] = result["train_seconds"] / max(1, result["steps"] or 1)


PRECISION_FLAGS = {"fp32": False, "bf16": True, "auto": None}  # --precisions names -> RunConfig.bf16


def precision_runs(config, label: str, precisions: str = "fp32,auto") -> dict[str, dict]:
    """The same run in each precision asked for: fp32 (--no-bf16), bf16 (--bf16), auto (the studio's choice)."""
    runs = {}
    for name in precisions.split(","):
        result = studio_worker(config.replace(bf16=PRECISION_FLAGS[name]))
        if name == "auto":
            name = f"automatic ({result['precision']})"
            if result["precision"] == "fp32":
                print(f"  {label}: the studio chooses fp32 on this machine — {result['precision_reason']}")
        runs[name] = result
    return runs


def part_bundled(opts, model_dir: str, scratch: Path) -> None:
    rows, source = sample_rows()
    dataset = write_dataset(rows, scratch / "bundled-ds", validation=13)
    config = base_config(model_dir, dataset, opts.steps, opts.threads, eval_steps=10**6)
    params, head = linear_params(model_dir)
    fraction = trained_fraction(model_dir, rows)
    flops_per_token = 4 * params
    strict = 4 * (params - head) + 4 * head * fraction
    print(
        f"(b) bundled SmolLM2-135M on {source} ({len(rows) - 13} train rows), RunConfig defaults (batch "
        f"{config.batch_size}, max_length {config.max_length}, LoRA r {config.lora_r} all-linear), {opts.threads} "
        f"threads, {opts.steps} steps; FLOPs/token = 4 x {params / 1e6:.1f}M Linear params = "
        f"{flops_per_token / 1e9:.3f} GFLOP (stricter, the LM head only on the {fraction:.0%} labelled tokens: "
        f"{strict / 1e9:.3f})",
        flush=True,
    )
    before = matmul_peaks(opts.threads)
    runs = precision_runs(config, "bundled", opts.precisions)
    peaks = peak_columns(before, matmul_peaks(opts.threads))
    for result in runs.values():
        add_shares(result, peaks, flops_per_token, strict)
    side_by_side(
        "bundled",
        runs,
        [
            ("tokens/s (non-pad, training steps)", "tokens_per_s", ""),
            ("median per-step tokens/s after step 1", "median_step_tokens_per_s", ""),
            ("seconds per step", "seconds_per_step", " s"),
            ("whole training loop tokens/s", "loop_tokens_per_s", ""),
            ("achieved GFLOP/s", "gflops", ""),
            ("matmul peak of the precision used, GFLOP/s", "peak_gflops", ""),
            ("share of the peak of the precision used", "share_of_peak", "%"),
            ("  (stricter FLOP count)", "share_of_peak_strict", "%"),
            ("share of the fp32 peak", "share_of_fp32_peak", "%"),
            ("final train loss", "final_loss", ""),
            ("eval loss (13 held-out rows)", "eval_loss", ""),
            ("worker peak RSS (psutil, 50 ms)", "peak_rss_gib", " GiB"),
        ],
    )
    for name, result in runs.items():
        print(f"  {name}: {result['precision']} — {result['precision_reason']}")


WORDS = (
    "the a of to and in is that for it with as on be by this are from at or an which can was not have more data "
    "model time system value number example process result user function list table file code change first water "
    "energy light city river market price language history science music color plant animal student teacher simple "
    "clear short long small large important different common useful possible careful quick strong open explain "
    "describe write give make find use show compare create identify suggest summarize classify translate because "
    "however therefore although while when where before after during between without within across people company "
    "country world school family health story question answer problem reason idea method step"
).split()


def alpaca_shaped_rows(count: int = 300, seed: int = 0) -> list[dict]:
    """Instruction (+ input 40 % of the time) -> output, as chat rows: most answers a few sentences, about one in
    eight long enough (~600-900 tokens) to fill max length 576, like the long tail of the Alpaca data."""
    rng = random.Random(seed)

    def sentence() -> str:
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
        return words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice(".......?!")

    def paragraph(sentences: int) -> str:
        return " ".join(sentence() for _ in range(sentences))

    rows = []
    for _ in range(count):
        user = sentence()
        if rng.random() < 0.4:
            user += "\n\n" + paragraph(rng.randint(1, 4))
        answer = paragraph(rng.randint(28, 40) if rng.random() < 0.12 else rng.randint(1, 9))
        rows.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]})
    return rows


def part_memory(opts, model_dir: str, scratch: Path) -> None:
    rows = alpaca_shaped_rows()
    dataset = write_dataset(rows, scratch / "alpaca-ds")
    (dataset / "manifest.json").write_text(
        json.dumps({"name": "alpaca-shaped", "counts": {"train": len(rows), "validation": 0}})
    )
    lengths = token_lengths(model_dir, rows)
    long_rows = sum(length >= 576 for length in lengths)
    config = base_config(model_dir, dataset, opts.steps, opts.threads, batch_size=8, max_length=576)
    print(
        f"(m) memory: {len(rows)} Alpaca-shaped rows (tokens p50 {statistics.median(lengths):.0f}, max {max(lengths)}, "
        f"{long_rows} rows at max length 576 or more), batch 8 x max length 576, {opts.steps} steps "
        "(length-grouped batches: the longest batch comes first)",
        flush=True,
    )
    from studio.train.preflight import run_preflight

    runs = precision_runs(config, "memory", opts.precisions)
    for result in runs.values():
        result["seconds_per_step"] = result["train_seconds"] / max(1, result["steps"] or 1)
        # The prediction for the precision the run used (GiB, as the RSS above)
        forced = config.replace(bf16=result["precision"] == "bf16")
        try:
            predicted = run_preflight(forced, check_busy=False).memory_needed_gib
        except Exception as error:  # noqa: BLE001 - the prediction is only printed beside the measurement
            print(f"  (no preflight prediction: {error})")
            predicted = None
        result["predicted_gib"] = predicted
        result["prediction_error"] = predicted / result["peak_rss_gib"] - 1 if predicted else None
    side_by_side(
        "memory",
        runs,
        [
            ("worker peak RSS (psutil, 50 ms)", "peak_rss_gib", " GiB"),
            ("preflight's prediction for this precision", "predicted_gib", " GiB"),
            ("  prediction vs measured", "prediction_error", "%"),
            ("most padded tokens per pass (micro-batches)", "max_tokens_per_pass", ""),
            ("tokens/s (non-pad, training steps)", "tokens_per_s", ""),
            ("seconds per step", "seconds_per_step", " s"),
            ("final train loss", "final_loss", ""),
        ],
    )
    print("  target: peak RSS <= 5 GB (4.66 GiB) on the default path")


def part_peaks(opts, model_dir: str, scratch: Path) -> None:
    peaks = matmul_peaks(opts.threads, seconds=1.0)
    columns = {"fp32": {}, "bf16": {}}
    rows = []
    for shape, rates in peaks["shapes"].items():
        columns["fp32"][shape], columns["bf16"][shape] = rates["float32"], rates["bfloat16"]
        rows.append((f"matmul {shape}, GFLOP/s", shape, ""))
    columns["fp32"]["best"], columns["bf16"]["best"] = peaks["float32"], peaks["bfloat16"]
    rows.append(("best", "best", ""))
    print(f"(p) torch.matmul peaks at {opts.threads} threads (best of short bursts)")
    side_by_side("peaks", columns, rows)


PROFILE_CATEGORIES = (  # (category, test on the op name), first match wins
    (
        "matmul (mm, addmm, bmm)",
        lambda name: (
            name
            in (
                "aten::mm",
                "aten::addmm",
                "aten::addmm_",
                "aten::bmm",
                "aten::baddbmm",
                "aten::_weight_int4pack_mm",
                "aten::mkldnn_linear",
            )
        ),
    ),
    ("attention kernels (sdpa)", lambda name: "scaled_dot_product" in name or "flash_attention" in name),
    ("dtype casts (copy_, to)", lambda name: name in ("aten::copy_", "aten::_to_copy", "aten::to")),
    (
        "optimizer and gradient clipping",
        lambda name: (
            "adam" in name
            or "_foreach" in name
            or "norm" in name.split("::")[-1]
            and "layer" not in name
            and "rms" not in name
        ),
    ),
    (
        "allocation, views, reshapes",
        lambda name: (
            name.split("::")[-1]
            in (
                "empty",
                "empty_strided",
                "empty_like",
                "zeros",
                "zeros_like",
                "ones_like",
                "full",
                "view",
                "as_strided",
                "reshape",
                "transpose",
                "t",
                "_unsafe_view",
                "expand",
                "slice",
                "select",
                "detach",
                "contiguous",
                "unsqueeze",
                "squeeze",
                "permute",
                "clone",
                "resolve_conj",
                "resolve_neg",
                "alias",
                "split",
                "chunk",
                "narrow",
                "_reshape_alias",
                "new_empty",
                "new_zeros",
                "index_select",
                "unbind",
                "lift_fresh",
                "result_type",
            )
        ),
    ),
    ("element-wise and reductions", lambda name: name.startswith("aten::")),
)


def categorise(events) -> dict[str, float]:
    """Self CPU seconds of the profiled ops by category (aten ops only: autograd nodes are wrappers around them)."""
    totals = {label: 0.0 for label, _ in PROFILE_CATEGORIES}
    for event in events:
        name = event.key
        if not name.startswith("aten::"):
            continue
        for label, test in PROFILE_CATEGORIES:
            if test(name):
                totals[label] += event.self_cpu_time_total / 1e6
                break
    return totals


def profile_steps(config, steps: int, warmup: int = 2) -> dict:
    """Profile `steps` training steps of the worker's own trainer (after `warmup` steps) in this process."""
    import torch
    from transformers import TrainerCallback

    from studio.train import store, worker

    record = store.create_run(config.replace(max_steps=warmup + steps, eval_steps=10**6), "bench")
    trainer, _, facts = worker.build_trainer(record.dir, record.run_config(), [])
    marks = {"steps": [], "between": []}

    class Profile(TrainerCallback):
        profiler = None
        ended = None

        def on_step_begin(self, args, state, control, **kwargs):
            now = time.perf_counter()
            if self.ended is not None and state.global_step >= warmup:
                marks["between"].append(now - self.ended)
            if state.global_step == warmup:
                self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                self.profiler.__enter__()
            self.began = now

        def on_step_end(self, args, state, control, **kwargs):
            self.ended = time.perf_counter()
            if state.global_step > warmup:
                marks["steps"].append(self.ended - self.began)
            if state.global_step == warmup + steps and self.profiler is not None:
                self.profiler.__exit__(None, None, None)
                marks["events"] = self.profiler.key_averages()

    trainer.add_callback(Profile())
    trainer.train()
    events = marks["events"]
    inclusive = {event.key: event.cpu_time_total / 1e6 for event in events}
    per_step = {label: seconds / steps for label, seconds in categorise(events).items()}
    step = statistics.median(marks["steps"])
    per_step["autograd engine, Python and the rest (step time - ops)"] = max(
        0.0, sum(marks["steps"]) / steps - sum(per_step.values())
    )
    per_step["between steps: data collation, logging, callbacks"] = (
        statistics.median(marks["between"]) if marks["between"] else 0.0
    )
    head = (
        sum(inclusive.get(name, 0.0) for name in ("ChunkedLogProbFunction", "ChunkedLogProbFunctionBackward")) / steps
    )
    return {
        "precision": facts.get("precision"),
        "step_s": step,
        "categories": per_step,
        "lm_head_s": head,
        "tokens": trainer._total_train_tokens,
        "table": events.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60),
    }


def part_profile(opts, model_dir: str, scratch: Path) -> None:
    rows, source = sample_rows()
    dataset = write_dataset(rows, scratch / "profile-ds", validation=13)
    steps = min(opts.steps, 4)
    print(
        f"(f) where a training step's time goes — bundled model on {source}, {steps} profiled steps after 2 warm-up "
        f"steps, {opts.threads} threads (torch.profiler, self CPU time of each op)",
        flush=True,
    )
    columns = {}
    for name in opts.precisions.split(","):
        forced = PRECISION_FLAGS[name]
        result = profile_steps(base_config(model_dir, dataset, steps, opts.threads, bf16=forced), steps)
        name = f"automatic ({result['precision']})" if forced is None else name
        column = {label: seconds for label, seconds in result["categories"].items()}
        column["median step"] = result["step_s"]
        column["of which the LM head + loss (inclusive)"] = result["lm_head_s"]
        columns[name] = column
        if opts.verbose:
            print(result["table"])
    labels = list(next(iter(columns.values())))
    side_by_side("profile", columns, [(label, label, " s") for label in labels])
    for name, column in columns.items():
        total = sum(v for k, v in column.items() if k not in ("median step", "of which the LM head + loss (inclusive)"))
        matmul = column["matmul (mm, addmm, bmm)"]
        print(f"  {name}: matmul is {matmul / total:.0%} of the step; the rest is not matmul")


def part_explore(opts, model_dir: str, scratch: Path) -> None:
    rows, source = sample_rows()
    dataset = write_dataset(rows, scratch / "explore-ds")
    params, _ = linear_params(model_dir)
    peak = matmul_peak(opts.threads)
    print(
        f"explore — model {opts.model}, data {source}, {opts.steps} steps each (first step not timed); "
        f"peak {peak:.1f} GFLOP/s at {opts.threads} threads"
    )
    variants = [
        ("defaults", {}),
        ("random batches", {"group_by_length": False}),
        ("batch 4", {"batch_size": 4}),
        ("batch 16", {"batch_size": 16}),
        ("packing", {"packing": True}),
        ("1 thread", {"torch_threads": 1}),
        ("lora dropout 0.05", {"lora_dropout": 0.05}),
    ]
    wanted = set(opts.only.split(",")) if opts.only else None
    for label, changes in variants:
        if wanted and label not in wanted:
            continue
        config = base_config(model_dir, dataset, opts.steps, opts.threads, **changes)
        threads = config.torch_threads
        result = plain_trl(config, measure_from_step=1)
        tps = result["steady_tokens_per_s"] or result["tokens_per_s"]
        local_peak = peak if threads == opts.threads else matmul_peak(threads)
        print(
            f"  {label:<28} {tps:7.1f} tok/s  {result['s_per_step']:6.2f} s/step  "
            f"{tps * 4 * params / 1e9 / local_peak:5.0%} of peak",
            flush=True,
        )


def token_lengths(model_dir: str, rows: list[dict]) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=False)) for r in rows]


def part_padding(opts, model_dir: str, scratch: Path) -> None:
    """Share of computed tokens that are real (not padding), random vs length-grouped batches.

    Compute per step is proportional to batch x longest row, so this ratio bounds the speed-up
    that length grouping can give on compute-bound hardware (no training needed to measure it)."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    rows, source = sample_rows()
    lengths = token_lengths(model_dir, rows)
    print(f"padding — {source}: {len(rows)} rows, tokens p50 {statistics.median(lengths):.0f}, max {max(lengths)}")

    def efficiency(order: list[int], batch: int) -> float:
        real = padded = 0
        for i in range(0, len(order), batch):
            chunk = [lengths[j] for j in order[i : i + batch]]
            real += sum(chunk)
            padded += max(chunk) * len(chunk)
        return real / padded

    for batch in (4, 8, 16):
        random_eff, grouped_eff = [], []
        for seed in range(20):
            generator = torch.Generator().manual_seed(seed)
            random_eff.append(efficiency(torch.randperm(len(lengths), generator=generator).tolist(), batch))
            grouped_eff.append(efficiency(get_length_grouped_indices(lengths, batch, generator=generator), batch))
        print(
            f"  batch {batch:>2}: real tokens / computed tokens — random {statistics.mean(random_eff):.0%}, "
            f"grouped by length {statistics.mean(grouped_eff):.0%} "
            f"(up to {statistics.mean(grouped_eff) / statistics.mean(random_eff):.2f}x fewer FLOPs per real token)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "part", choices=["bundled", "memory", "profile", "peaks", "overhead", "explore", "padding", "all"]
    )
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--model", choices=["bundled", "tiny"], default="bundled")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", help="explore: comma-separated variant labels")
    parser.add_argument("--save", help="write this run's figures to a JSON file")
    parser.add_argument("--previous", help="a JSON file written by --save: its figures are printed beside these")
    parser.add_argument("--verbose", action="store_true", help="profile: also print torch.profiler's op table")
    parser.add_argument(
        "--precisions",
        default="fp32,auto",
        help="bundled/memory/profile: comma-separated fp32 (--no-bf16), bf16 (--bf16), auto (the studio's choice)",
    )
    opts = parser.parse_args()
    # Same thread settings as the worker gets from the supervisor (set before torch is imported).
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(opts.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if opts.previous:
        PREVIOUS.update(json.loads(Path(opts.previous).read_text(encoding="utf-8")))
    from studio.models.precision_probe import describe_cpu

    print(
        f"machine: {describe_cpu()}, {len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.1f} "
        "(shared with other engineers: figures are under contention)"
    )
    cache_home = os.environ.get("STUDIO_HOME")
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as scratch_name:
        scratch = Path(scratch_name)
        model_dir = resolve_model(opts.model, scratch)  # uses the caller's STUDIO_HOME (converted model)
        os.environ["STUDIO_HOME"] = str(scratch / "home")  # bench runs never land in the user's run history
        if cache_home:  # ... but share the caller's measured precision, as a second run on this machine would
            cached = Path(cache_home) / "cache"
            if cached.is_dir():
                (scratch / "home").mkdir(parents=True, exist_ok=True)
                os.symlink(cached, scratch / "home" / "cache")
        for part, function in (
            ("peaks", part_peaks),
            ("padding", part_padding),
            ("overhead", part_overhead),
            ("bundled", part_bundled),
            ("memory", part_memory),
            ("profile", part_profile),
            ("explore", part_explore),
        ):
            if opts.part in (part, "all"):
                function(opts, model_dir, scratch)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if opts.save:
        Path(opts.save).write_text(json.dumps({**PREVIOUS, **FIGURES}, indent=1, default=str) + "\n", encoding="utf-8")
        print(f"figures saved to {opts.save}")


if __name__ == "__main__":
    main()
