"""Compare benchmark: memory of one shared copy vs two models, and streaming speed per column.

    STUDIO_HOME=bench-home .venv/bin/python bench/compare.py [--run RUN_ID_OR_DIR] [--tokens 48]

Without --run it builds a LoRA adapter (r=8, all linear layers, random non-zero weights) for the
bundled SmolLM2 in a temporary folder: memory and speed do not depend on what the adapter learned.
Each memory figure is measured in its own subprocess (peak RSS, ru_maxrss). The one-copy subprocess also times an
evaluation as the Compare tab runs it (the bundled sample's last EVAL_PROMPTS rows, base and tuned, default
settings). Prints figures, asserts nothing.
`--save FILE` writes the figures as JSON; `--previous FILE` prints an earlier run's figures beside them (before/after).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PROMPT = [{"role": "user", "content": "Explain in two sentences why the sky is blue."}]
EVAL_PROMPTS = 13  # as many as the first-run demo evaluates (the sample's validation split)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_adapter(folder: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from studio.models import catalog, loading

    model = loading.load_causal_lm(catalog.BUNDLED)
    torch.manual_seed(0)  # the same adapter every time: its answers' lengths set the evaluation's time
    peft_model = get_peft_model(
        model,
        LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False),
    )
    adapter = folder / "adapter"
    peft_model.save_pretrained(adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = catalog.BUNDLED
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    return adapter


def child_one_copy(target: str, tokens: int) -> dict:
    """Base + tuned through one model object: the Compare engine."""
    import peft  # noqa: F401 - imports counted in the baseline
    import torch  # noqa: F401 - imports counted in the baseline
    import transformers  # noqa: F401 - imports counted in the baseline

    from studio.compare import engine

    baseline = _rss_mb()
    session = engine.open_session(target)
    settings = engine.Settings(max_new_tokens=tokens)
    last = None
    for last in session.engine.stream([("base", engine.BASE, PROMPT), ("tuned", session.tuned, PROMPT)], settings):  # noqa: B007 - keeps the last item
        pass
    import gc

    gc.collect()
    return {
        "baseline_mb": baseline,
        "peak_mb": _peak_mb(),  # (a dict display is evaluated in order: the memory figures come before the evaluation)
        "after_mb": _rss_mb(),
        "evaluation": time_evaluation(session),
        "columns": [
            {
                "label": c.label,
                "tokens": len(c.generated),
                "tokens_per_s": c.tokens_per_s,
                "first_token_s": c.first_token_s,
            }
            for c in last
        ],
    }


def time_evaluation(session) -> dict:
    """Seconds of an evaluation as the Compare tab runs it, on prompts with references from the bundled sample."""
    from studio.compare import evaluate, runs
    from studio.data import store

    prompts = runs.read_prompt_file(store.SAMPLES_DIR / "assistant_style.jsonl")[-EVAL_PROMPTS:]
    started = time.perf_counter()
    result = evaluate.evaluate(session, prompts, "bundled sample")
    return {
        "seconds": time.perf_counter() - started,
        "prompts": len(result["rows"]),
        "max_new_tokens": result["settings"]["max_new_tokens"],
    }


def child_two_models(target: str, tokens: int) -> dict:
    """The naive way: a plain base model plus a second, separately loaded model carrying the adapter."""
    import torch
    from peft import PeftModel

    from studio.compare import runs
    from studio.models import loading

    baseline = _rss_mb()
    info = runs.load_run(target)
    tokenizer = loading.load_tokenizer(info.base_ref)
    base = loading.load_causal_lm(info.base_ref).eval()
    tuned = PeftModel.from_pretrained(loading.load_causal_lm(info.base_ref), str(info.adapter_dir)).eval()
    text = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        for model in (base, tuned):
            model.generate(**ids, max_new_tokens=tokens, do_sample=False)
    import gc

    gc.collect()
    return {"baseline_mb": baseline, "peak_mb": _peak_mb(), "after_mb": _rss_mb()}


def run_child(mode: str, target: str, tokens: int, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), STUDIO_COMPARE_THREADS=str(threads))
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--run", target, "--tokens", str(tokens)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--run", help="run id, run folder or adapter folder (default: a generated adapter on the bundled model)"
    )
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per process (default 1, as while training)"
    )
    parser.add_argument("--child", choices=("one", "two"))
    parser.add_argument("--save", help="write the figures to a JSON file")
    parser.add_argument("--previous", help="a JSON file written by --save: printed beside these figures")
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(int(os.environ.get("STUDIO_COMPARE_THREADS", "1")))
        result = (child_one_copy if args.child == "one" else child_two_models)(args.run, args.tokens)
        print(json.dumps(result))
        return

    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"(other work on the machine puts figures under contention)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        target = args.run
        if not target:
            started = time.perf_counter()
            target = str(make_adapter(Path(tmp)))
            print(
                f"built a random LoRA adapter (r=8, all-linear) for the bundled model in "
                f"{time.perf_counter() - started:.1f} s"
            )
        one = run_child("one", target, args.tokens, args.threads)
        two = run_child("two", target, args.tokens, args.threads)
    above_one, above_two = one["peak_mb"] - one["baseline_mb"], two["peak_mb"] - two["baseline_mb"]
    figures = {
        "one_peak_mb": one["peak_mb"],
        "two_peak_mb": two["peak_mb"],
        "import_floor_mb": one["baseline_mb"],
        "ratio_whole": one["peak_mb"] / two["peak_mb"],
        "ratio_above_imports": above_one / above_two,
        "ratio_steady": one["after_mb"] / two["after_mb"],
        "evaluation_s": one["evaluation"]["seconds"],
    }
    previous = json.loads(Path(args.previous).read_text(encoding="utf-8")) if args.previous else {}

    def beside(key: str, fmt: str) -> str:
        return f"   (previous {format(previous[key], fmt)})" if key in previous else ""

    print("\nPeak RSS (each in its own subprocess, after generating from both columns):")
    print(
        f"  one copy (base + adapter, adapter off for base):   {one['peak_mb']:7.0f} MB "
        f"(imports alone {one['baseline_mb']:.0f} MB → models {above_one:.0f} MB){beside('one_peak_mb', '.0f')}"
    )
    print(
        f"  two separately loaded models:                        {two['peak_mb']:7.0f} MB "
        f"(imports alone {two['baseline_mb']:.0f} MB → models {above_two:.0f} MB){beside('two_peak_mb', '.0f')}"
    )
    print(
        f"  ratio one/two above the imports: {figures['ratio_above_imports']:.2f} (target ≤ 0.55)"
        f"{beside('ratio_above_imports', '.2f')}"
    )
    print(f"  ratio one/two of the whole process: {figures['ratio_whole']:.2f}{beside('ratio_whole', '.2f')}")
    print(
        f"  steady state after generating (current RSS): one copy {one['after_mb']:.0f} MB, two models "
        f"{two['after_mb']:.0f} MB → ratio {figures['ratio_steady']:.2f}{beside('ratio_steady', '.2f')}"
    )
    print(
        "  (both load through studio.models.loading: a local 16-bit checkpoint is read tensor by tensor into an fp32 "
        "model, so the weight file is never mapped whole beside it)"
    )
    if args.save:
        Path(args.save).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    evaluation = one["evaluation"]
    print(
        f"\nEvaluation as the Compare tab runs it ({evaluation['prompts']} prompts of the bundled sample, base and "
        f"tuned, default settings, answers up to {evaluation['max_new_tokens']} tokens, {args.threads} torch "
        f"thread(s)): {evaluation['seconds']:.1f} s{beside('evaluation_s', '.1f')}"
    )
    print(
        f"\nStreaming, both columns interleaved token by token, {args.threads} torch thread(s), greedy, "
        f"{args.tokens} new tokens max:"
    )
    for column in one["columns"]:
        print(
            f"  {column['label']:>5}: time to first token {column['first_token_s']:.2f} s, "
            f"{column['tokens_per_s']:.1f} tokens/s of its own compute ({column['tokens']} tokens)"
        )
    combined = sum(c["tokens"] for c in one["columns"]) / sum(
        c["tokens"] / c["tokens_per_s"] for c in one["columns"] if c["tokens_per_s"]
    )
    print(
        f"  both together: {combined:.1f} tokens/s; each column on screen advances at about half that while both stream"
    )


if __name__ == "__main__":
    main()
