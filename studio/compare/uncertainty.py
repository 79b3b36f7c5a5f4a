"""Small, reproducible statistics for base-vs-tuned comparisons over a handful of prompts.

- paired_bootstrap(differences): the mean per-prompt difference with a percentile interval from
  resampling prompts (seeded, so the same evaluation always gives the same interval);
- sign_test(wins, losses): the exact two-sided binomial p-value that wins and losses are a coin toss;
- wilson_interval(successes, trials): the interval of a win rate (exact arithmetic, no sampling).

Pure Python plus numpy for the resampling; no scipy. Every function accepts empty input and then
returns None where there is nothing to say.
"""

from __future__ import annotations

import math

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
_Z = {0.90: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004}


def mean(values) -> float | None:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else None


def paired_bootstrap(
    differences, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED
) -> dict | None:
    """{"mean", "low", "high"} of the mean of per-prompt differences (tuned minus base, or an improvement).

    Prompts are resampled with replacement, keeping each prompt's base and tuned scores together
    (that is what "paired" means): the interval reflects which prompts happened to be picked.
    """
    import numpy as np

    values = np.asarray([float(v) for v in differences], dtype=float)
    if values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    means = np.sort(values[picks].mean(axis=1))
    tail = (1 - confidence) / 2
    low = float(np.quantile(means, tail))
    high = float(np.quantile(means, 1 - tail))
    return {"mean": float(values.mean()), "low": low, "high": high}


def sign_test(wins: int, losses: int) -> float | None:
    """Two-sided exact binomial p-value of `wins` against `losses` under a fair coin (ties left out)."""
    n = int(wins) + int(losses)
    if n == 0:
        return None
    k = min(int(wins), int(losses))
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval of a proportion; sensible at 0 %, 100 % and small counts, unlike rate ± 2 SE."""
    if trials <= 0:
        return None
    z = _Z.get(round(confidence, 2))
    if z is None:
        raise ValueError(f"confidence {confidence} is not one of {sorted(_Z)}")
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
