"""The divergence watch on recorded metric sequences: every way a run dies is caught, noise is not."""

from __future__ import annotations

import math
import random

import pytest

from studio.train.divergence import DivergenceWatch


def feed(losses, grad_norms=None):
    """The first divergence the watch reports over the sequence, or None."""
    watch = DivergenceWatch()
    grad_norms = grad_norms or [1.0] * len(losses)
    for step, (loss, grad_norm) in enumerate(zip(losses, grad_norms), 1):
        found = watch.observe(step, loss, grad_norm)
        if found:
            return found
    return None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_is_caught_at_once(bad):
    found = feed([2.5, 2.4, bad, 2.3])
    assert found.kind == "nonfinite" and found.step == 3 and found.since_step == 3
    assert "NaN" in found.message and "step 3" in found.message


def test_a_non_finite_gradient_norm_is_caught_even_when_the_loss_looks_fine():
    found = feed([2.5, 2.4, 2.3], [1.0, math.inf, 1.0])
    assert found.kind == "nonfinite" and found.step == 2 and "gradient norm" in found.message


def test_the_amx_collapse_zero_gradient_and_a_frozen_loss_is_caught():
    # Recorded on an Intel Xeon with AMX, tiny model, learning rate 1e6: step 1 normal, then frozen.
    losses = [6.2381, 6.148468] + [6.148468] * 28
    grads = [3.1] + [0.0] * 29
    found = feed(losses, grads)
    assert found.kind == "frozen" and found.since_step == 2 and found.step == 4
    assert "zero" in found.message and "6.148" in found.message


def test_zero_gradient_while_the_loss_still_moves_counts_only_after_a_longer_streak():
    # A saturated model scores each batch differently though nothing learns: a few exact zeros may be a
    # batch without labelled tokens, five in a row are not.
    assert feed([2.0, 1.9, 1.8, 1.7, 1.6], [1.0, 0.0, 0.0, 0.0, 0.0]) is None
    found = feed([2.0, 1.9, 1.8, 1.7, 1.6, 1.75], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert found.kind == "frozen" and found.since_step == 2 and found.step == 6 and "5 logged steps" in found.message


def test_a_frozen_streak_must_be_consecutive():
    assert feed([3.0] * 6, [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]) is None


def test_a_loss_that_explodes_without_reaching_nan_is_caught():
    losses = [2.5, 2.3, 4.0, 9.8, 14.2, 25.0, 40.0]
    found = feed(losses)
    assert found.kind == "exploding" and found.since_step == 4 and found.step == 6
    assert "2.5" in found.message and "25" in found.message


def test_one_spike_is_not_divergence():
    assert feed([2.5, 2.3, 9.0, 2.2, 2.1, 8.0, 2.0, 1.9]) is None


def test_healthy_noisy_curves_never_trigger():
    rng = random.Random(1)
    for run in range(200):
        start = rng.uniform(0.5, 11.0)
        losses, grads = [], []
        for step in range(300):
            trend = start * (0.35 + 0.65 * math.exp(-step / rng.uniform(20, 200)))
            noise = rng.uniform(0.7, 1.3)  # ±30 % batch-to-batch, well above what batches of 8 show
            if rng.random() < 0.02:
                noise = rng.uniform(2.0, 4.0)  # and now and then a single bad batch
            losses.append(trend * noise)
            grads.append(rng.uniform(0.05, 8.0))
        assert feed(losses, grads) is None, run


def test_a_fine_tune_that_starts_low_and_wobbles_is_healthy():
    losses = [0.45, 0.8, 0.6, 0.9, 0.7, 0.85, 0.5, 0.95, 0.6, 0.4]  # below 2× and +1 nat of the start
    assert feed(losses) is None


def test_missing_values_are_skipped_and_the_answer_sticks():
    watch = DivergenceWatch()
    assert watch.observe(1, None) is None
    assert watch.observe(2, 2.0, None) is None
    found = watch.observe(3, math.nan, None)
    assert found and watch.observe(4, 1.0, 1.0) is found


def test_the_hint_names_the_learning_rate():
    found = feed([math.nan])
    assert "learning rate (it was 1e+06)" in found.hint(1e6) and "warm-up" in found.hint(None)
