"""Training speed benchmarks (prints figures; asserts nothing).

    STUDIO_HOME=/tmp/sh1 python bench/train.py overhead   # (a) studio worker vs plain TRL, same config
    STUDIO_HOME=/tmp/sh1 python bench/train.py bundled    # (b) bundled SmolLM2 on the bundled sample
    STUDIO_HOME=/tmp/sh1 python bench/train.py explore    # threads / batch / packing / length grouping
    STUDIO_HOME=/tmp/sh1 python bench/train.py padding    # real vs padded tokens, random vs length-grouped batches
    options: --steps N  --threads N  --model tiny|bundled  --repeats N

Tokens are non-padding tokens the model was trained on (TRL's num_tokens), tokens/s are over
the training loop (trainer's train_runtime, which includes callbacks and logging).
Matmul-peak fraction: training FLOPs/token ≈ 4 × P, with P = parameters of all Linear layers
incl. the LM head (forward 2P + backward to the activations 2P; LoRA's frozen weights get no
weight gradients; LoRA's own FLOPs and attention-score FLOPs are left out, so the fraction is
slightly conservative). The peak is the best fp32 torch.matmul rate (2n³ FLOPs) at the same
thread count, measured in the same run before and after training.
The machine is shared with other engineers: figures are measured under contention.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE_CANDIDATES = [ROOT / "studio/data/samples/assistant_style.jsonl",
                     Path("/work/wt-data/studio/data/samples/assistant_style.jsonl")]


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
        rows.append({"messages": [{"role": "user", "content": f"Tell me about {topic} ({i})."},
                                  {"role": "assistant", "content": answer}]})
    return rows, "synthetic rows (sample file not found)"


def write_dataset(rows: list[dict], folder: Path, validation: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[validation:]))
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:validation]))
    return folder


def matmul_peak(threads: int, n: int = 1024, seconds: float = 3.0) -> float:
    """Best fp32 matmul rate in GFLOP/s at this thread count."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            torch.matmul(a, b)
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


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

    from studio.train.templates import choose_template

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    choice = choose_template(tokenizer, [r["messages"] for r in rows])
    if not choice.enabled:
        return 1.0
    labelled = total = 0
    for row in rows:
        encoded = tokenizer.apply_chat_template(row["messages"], chat_template=choice.template or tokenizer.chat_template,
                                                return_dict=True, return_assistant_tokens_mask=True)
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

    values = dict(model=model_dir, dataset=str(dataset), max_steps=steps, torch_threads=threads,
                  save_steps=10**6, logging_steps=1, warmup=0)
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

    from studio.train.templates import choose_template
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
        args = SFTConfig(output_dir=out, max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
                         gradient_accumulation_steps=config.grad_accum, learning_rate=learning_rate,
                         lr_scheduler_type=config.scheduler, warmup_steps=config.warmup, seed=config.seed,
                         logging_steps=1, save_strategy="no", eval_strategy="no", max_length=config.max_length,
                         packing=config.packing, assistant_only_loss=choice.enabled, bf16=False,
                         gradient_checkpointing=False, use_cpu=True, report_to="none", disable_tqdm=True, **extra)
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                             peft_config=LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                                                    target_modules="all-linear", task_type="CAUSAL_LM"))
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
    return {"tokens": tokens, "runtime": runtime, "tokens_per_s": tokens / runtime, "steady_tokens_per_s": steady,
            "s_per_step": steady_s_per_step}


def plain_trl_fresh(config) -> dict:
    """plain_trl in a new process, as cold as the worker: the first step of a fresh process takes a few
    seconds longer (allocations, kernel set-up), which an in-process script pays only once."""
    code = ("import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import train; "
            "from studio.train.config import RunConfig; "
            "print('RESULT ' + json.dumps(train.plain_trl(RunConfig.from_json(sys.argv[3]), measure_from_step=1)))")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent), str(ROOT), config.to_json()],
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"plain TRL in a fresh process failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


# ---- the studio worker ---------------------------------------------------------------------
def studio_worker(config) -> dict:
    from studio.train import store, supervisor

    record = supervisor.launch(config, owner="bench")
    record = supervisor.wait(record.run_id, timeout=7200)
    for process in list(supervisor._children.values()):  # reap it, so RUSAGE_CHILDREN includes its peak RSS
        process.wait()
    supervisor.reap()
    status = record.status
    if record.state != "completed":
        raise SystemExit(f"worker run {record.state}: {status.get('error')} (see {record.dir}/log.txt)")
    result = {"tokens": status["train_tokens"], "runtime": status["train_runtime"],
              "tokens_per_s": status["train_tokens"] / status["train_runtime"], "run_dir": str(record.dir),
              "peak_rss_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2}
    logs = [e for e in store.read_events(record.dir)[0] if e["type"] == "log"]
    result["memory_gb_max"] = max((e.get("memory_gb") or 0) for e in logs) if logs else None
    # After the first step (the one-time warm-up of a fresh process), from the per-step events.
    counted = [e for e in logs if isinstance(e.get("num_tokens"), (int, float))]
    if len(counted) >= 2 and counted[-1]["elapsed"] > counted[0]["elapsed"]:
        result["steady_tokens_per_s"] = ((counted[-1]["num_tokens"] - counted[0]["num_tokens"])
                                         / (counted[-1]["elapsed"] - counted[0]["elapsed"]))
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
    print(f"(a') the studio callback adds at most {cost:.2f} ms per step (status write + event + RSS probe every step); "
          f"on a {8.0:.0f} s step of the bundled model (quiet machine) that is {cost / 8000:.4%}, "
          f"on a 0.1 s step of the tiny model {cost / 100:.2%}")
    rows, source = sample_rows()
    dataset = write_dataset(rows, scratch / "overhead-ds")
    config = base_config(model_dir, dataset, opts.steps, opts.threads)
    print(f"(a) studio worker vs plain TRL — model {opts.model}, {opts.steps} steps, batch {config.batch_size}, "
          f"{opts.threads} threads, data: {source}")
    fresh, plain, worker, plain_steady, worker_steady = [], [], [], [], []
    for repeat in range(opts.repeats):
        fresh.append(plain_trl_fresh(config)["tokens_per_s"])
        plain_result, worker_result = plain_trl(config, measure_from_step=1), studio_worker(config)
        plain.append(plain_result["tokens_per_s"])
        worker.append(worker_result["tokens_per_s"])
        if plain_result.get("steady_tokens_per_s") and worker_result.get("steady_tokens_per_s"):
            plain_steady.append(plain_result["steady_tokens_per_s"])
            worker_steady.append(worker_result["steady_tokens_per_s"])
        print(f"  repeat {repeat + 1}: plain TRL in a fresh process {fresh[-1]:.1f} tok/s, studio worker {worker[-1]:.1f} "
              f"tok/s, ratio {worker[-1] / fresh[-1]:.3f}; plain TRL in this (warm) process {plain[-1]:.1f} tok/s", flush=True)
    print(f"  both cold (a fresh process each): best-of-{opts.repeats} plain {max(fresh):.1f}, worker {max(worker):.1f}, "
          f"ratio {max(worker) / max(fresh):.3f} (median {statistics.median(w / p for w, p in zip(worker, fresh)):.3f}; "
          "target >= 0.97)")
    print(f"  against the plain script in this process, warm from its earlier runs: ratio {max(worker) / max(plain):.3f}"
          f" (median {statistics.median(w / p for w, p in zip(worker, plain)):.3f})")
    if plain_steady:
        print(f"  after the first step (warm-up excluded on both sides): plain {max(plain_steady):.1f}, worker "
              f"{max(worker_steady):.1f}, ratio {max(worker_steady) / max(plain_steady):.3f} (median "
              f"{statistics.median(w / p for w, p in zip(worker_steady, plain_steady)):.3f})")


def part_bundled(opts, model_dir: str, scratch: Path) -> None:
    from studio.train.config import RunConfig

    rows, source = sample_rows()
    dataset = write_dataset(rows, scratch / "bundled-ds")
    defaults = RunConfig()
    config = base_config(model_dir, dataset, opts.steps, opts.threads)
    params, head = linear_params(model_dir)
    fraction = trained_fraction(model_dir, rows)
    peak_before = matmul_peak(opts.threads)
    result = studio_worker(config)
    peak_after = matmul_peak(opts.threads)
    peak = max(peak_before, peak_after)
    flops_per_token = 4 * params
    achieved = result["tokens_per_s"] * flops_per_token / 1e9
    steps_per_epoch = -(-len(rows) // (defaults.batch_size * defaults.grad_accum))
    tokens_per_epoch = result["tokens"] / opts.steps * steps_per_epoch
    print(f"(b) bundled SmolLM2-135M on {source} ({len(rows)} rows), RunConfig defaults "
          f"(batch {defaults.batch_size}, max_length {defaults.max_length}, packing {defaults.packing}, "
          f"LoRA r {defaults.lora_r} all-linear, dropout {defaults.lora_dropout}), {opts.threads} threads, {opts.steps} steps")
    print(f"  tokens/s (non-pad, training loop):  {result['tokens_per_s']:.1f}")
    print(f"  seconds per epoch (est.):           {tokens_per_epoch / result['tokens_per_s']:.0f}  ({steps_per_epoch} steps)")
    print(f"  peak RSS of the worker:             {result['peak_rss_gb']:.2f} GB "
          f"(largest RSS seen at a log step: {result['memory_gb_max']} GB)")
    exact = 4 * (params - head) + 4 * head * fraction
    print(f"  FLOPs/token = 4 x {params / 1e6:.1f}M Linear params = {flops_per_token / 1e9:.3f} GFLOP "
          f"(the issue's formula)")
    print(f"  achieved {achieved:.1f} GFLOP/s vs measured fp32 matmul peak {peak:.1f} GFLOP/s "
          f"(before {peak_before:.1f}, after {peak_after:.1f}) = {achieved / peak:.0%} of peak")
    print(f"  stricter count: TRL's fused LM head ({head / 1e6:.1f}M) runs only on the {fraction:.0%} labelled tokens: "
          f"4 x {(params - head) / 1e6:.1f}M + 4 x {head / 1e6:.1f}M x {fraction:.2f} = {exact / 1e9:.3f} GFLOP/token "
          f"-> {result['tokens_per_s'] * exact / 1e9 / peak:.0%} of peak")


def part_explore(opts, model_dir: str, scratch: Path) -> None:
    rows, source = sample_rows()
    dataset = write_dataset(rows, scratch / "explore-ds")
    params, _ = linear_params(model_dir)
    peak = matmul_peak(opts.threads)
    print(f"explore — model {opts.model}, data {source}, {opts.steps} steps each (first step not timed); "
          f"peak {peak:.1f} GFLOP/s at {opts.threads} threads")
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
        print(f"  {label:<28} {tps:7.1f} tok/s  {result['s_per_step']:6.2f} s/step  "
              f"{tps * 4 * params / 1e9 / local_peak:5.0%} of peak", flush=True)


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
            chunk = [lengths[j] for j in order[i:i + batch]]
            real += sum(chunk)
            padded += max(chunk) * len(chunk)
        return real / padded

    for batch in (4, 8, 16):
        random_eff, grouped_eff = [], []
        for seed in range(20):
            generator = torch.Generator().manual_seed(seed)
            random_eff.append(efficiency(torch.randperm(len(lengths), generator=generator).tolist(), batch))
            grouped_eff.append(efficiency(get_length_grouped_indices(lengths, batch, generator=generator), batch))
        print(f"  batch {batch:>2}: real tokens / computed tokens — random {statistics.mean(random_eff):.0%}, "
              f"grouped by length {statistics.mean(grouped_eff):.0%} "
              f"(up to {statistics.mean(grouped_eff) / statistics.mean(random_eff):.2f}x fewer FLOPs per real token)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["overhead", "bundled", "explore", "padding", "all"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--model", choices=["bundled", "tiny"], default="bundled")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", help="explore: comma-separated variant labels")
    opts = parser.parse_args()
    # Same thread settings as the worker gets from the supervisor (set before torch is imported).
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(opts.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(f"machine: {len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.1f} "
          "(shared with other engineers: figures are under contention)")
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as scratch_name:
        scratch = Path(scratch_name)
        model_dir = resolve_model(opts.model, scratch)  # uses the caller's STUDIO_HOME (converted model)
        os.environ["STUDIO_HOME"] = str(scratch / "home")  # bench runs never land in the user's run history
        for part, function in (("padding", part_padding), ("overhead", part_overhead), ("bundled", part_bundled),
                               ("explore", part_explore)):
            if opts.part in (part, "all"):
                function(opts, model_dir, scratch)


if __name__ == "__main__":
    main()
