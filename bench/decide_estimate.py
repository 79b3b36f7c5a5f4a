"""Check the Decide estimator against this machine: measured matmul peak and a predicted CPU training step.

Prints figures; asserts nothing. Run: python bench/decide_estimate.py
The reference step is STACK-NOTES' plain TRL run of the bundled SmolLM2-135M (LoRA r=8 all-linear, fp32,
no gradient checkpointing, batch 8 × 74 tokens, 2 threads): 8.0 s/step, measured on a quiet machine.
On a shared machine the peak measured here is lower than on a quiet one: say so with the figures.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from studio.decide import estimate as est  # noqa: E402

REFERENCE_STEP_S = 8.0
REFERENCE_PEAK_GFLOPS = 127.0  # STACK-NOTES: fp32 matmul, 2 threads, quiet machine


def main() -> None:
    import torch

    load = os.getloadavg()[0]
    started = time.perf_counter()
    machine = est.measure_this_machine(1.0)
    print(f"load average (1 min): {load:.2f} on {os.cpu_count()} cores — figures under contention when > 0.5")
    print(f"measured peak: {machine.peak_tflops * 1000:.1f} GFLOP/s ({machine.note}; "
          f"benchmark incl. torch import {time.perf_counter() - started:.1f} s)")

    arch = est.find_architecture("SmolLM2-135M")
    tokens_per_step = 8 * 74
    adapter = est.lora_params(arch, 8)
    flops_step = est.flops_per_token(arch.params, "lora", adapter, gradient_checkpointing=False) * tokens_per_step
    print(f"bundled SmolLM2-135M LoRA r=8: adapter {adapter:,} params; {flops_step / 1e9:.1f} GFLOPs per step "
          f"(4·N + 6·A per token × {tokens_per_step} tokens)")
    for label, peak in (("measured now", machine.peak_tflops * 1e3), ("STACK-NOTES quiet peak", REFERENCE_PEAK_GFLOPS)):
        predicted = flops_step / (peak * 1e9 * machine.utilisation)
        print(f"predicted step at {label} {peak:.0f} GFLOP/s × {machine.utilisation:.0%}: {predicted:.1f} s "
              f"(reference measured: {REFERENCE_STEP_S:.1f} s/step; ratio {predicted / REFERENCE_STEP_S:.2f})")
    memory = est.estimate_memory(arch.params, "lora", arch=arch, batch_size=8, max_length=74,
                                 gradient_checkpointing=False, lora_r=8, dtype="fp32")
    print(f"predicted training memory for that run: {memory.total:.2f} GB "
          f"({', '.join(f'{k} {v:.2f}' for k, v in memory.as_dict()['parts_gb'].items())})")
    print(f"torch threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
