"""GPU training benchmark (prints figures; asserts nothing). Needs a CUDA GPU; on a machine without one it says so.

    STUDIO_HOME=bench-home python bench/gpu.py [--steps 30] [--models bundled,Qwen/Qwen2.5-0.5B-Instruct]
                                               [--techniques lora,qlora]

For each model and technique the real worker trains on the bundled sample (batch 8, max length 512, the precision
the studio picks for this GPU), and the bench prints: tokens/s over the training steps, the share of the GPU's
peak in that precision (training FLOPs/token ≈ 4 × parameters of the Linear layers, as bench/train.py counts them,
over the peak of studio.models.cost's GPU table), the worker's peak allocated GPU memory (the events'
memory_gb: torch.cuda.max_memory_allocated) beside the preflight's prediction, and the precision's reason.
A model other than the bundled one is downloaded from the Hub (network needed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import train as cpu_bench  # noqa: E402 - bench/train.py: the sample, the dataset folder, the worker run

from studio.data import pipeline  # noqa: E402 - after the sys.path entry above
from studio.models import catalog, cost  # noqa: E402 - after the sys.path entry above


def gpu_facts() -> tuple[str, tuple[int, int]] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0), tuple(torch.cuda.get_device_capability(0))


def peak_memory_gb(run_dir: str) -> float | None:
    from studio.train import store

    events = store.read_events(Path(run_dir))[0]
    values = [e["memory_gb"] for e in events if e.get("type") == "log" and isinstance(e.get("memory_gb"), float)]
    return max(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--models", default="bundled,Qwen/Qwen2.5-0.5B-Instruct")
    parser.add_argument("--techniques", default="lora,qlora")
    opts = parser.parse_args()
    found = gpu_facts()
    if found is None:
        print("No CUDA GPU on this machine: nothing measured. Run this script on a GPU machine (a GPU Space's shell,")
        print("a cloud box) with the studio installed; bench/train.py measures CPUs.")
        return
    name, capability = found
    spec = cost.gpu_spec(name)
    print(f"GPU: {name} (compute capability {capability[0]}.{capability[1]}); peak table entry: {spec}")
    from studio.train import preflight

    rows, source = cpu_bench.sample_rows()
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "sample.jsonl"
        raw.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        dataset = pipeline.save_file(raw)  # a saved dataset (split, statistics): what preflight reads
        print(f"data: {source} ({len(rows)} rows); batch 8, max length 512, {opts.steps} steps\n")
        print("| model | technique | precision | tokens/s | share of the GPU peak | peak GPU memory | predicted |")
        print("|---|---|---|---|---|---|---|")
        for model in opts.models.split(","):
            model_dir = catalog.resolve(catalog.BUNDLED if model == "bundled" else model)
            linear, _ = cpu_bench.linear_params(model_dir)
            for technique in opts.techniques.split(","):
                config = cpu_bench.base_config(
                    model_dir, dataset, opts.steps, 0, batch_size=8, max_length=512, qlora_4bit=technique == "qlora"
                )
                predicted = preflight.run_preflight(config, check_busy=False).memory_needed_gib
                result = cpu_bench.studio_worker(config)
                peak = spec.tflops if spec and result["precision"] in ("bf16", "fp16") else None  # tensor-core peak
                share = result["tokens_per_s"] * 4 * linear / (peak * 1e12) if peak else None
                memory = peak_memory_gb(result["run_dir"])
                print(
                    f"| {model} | {technique} | {result['precision']} | {result['tokens_per_s']:,.0f} | "
                    f"{f'{share:.0%}' if share is not None else '? (no tensor-core peak for it in the table)'} | "
                    f"{f'{memory:.2f} GiB' if memory else '?'} | "
                    f"{f'{predicted:.2f} GiB' if predicted else '?'} |"
                )
                print(f"    {result['precision_reason']}")


if __name__ == "__main__":
    main()
