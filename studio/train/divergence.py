"""Is this run still learning? A watch over the logged loss and gradient norm.

The worker feeds every logged training step to `DivergenceWatch.observe`; the first time it returns a
`Divergence` the run stops as failed, and nothing from that step on is saved as the result. CPUs
round differently (AMX bf16 vs AVX-512 vs AVX2), so one absurd learning rate ends in different ways on
different machines; all of them are divergence:

- non-finite: the loss or the gradient norm is NaN or infinite;
- frozen: the gradient norm is exactly 0.0 for several logged steps in a row while the loss does not
  move — the weights were blown into a region with no gradient (seen on an Intel Xeon with AMX at a
  learning rate of 1e6: loss stuck at 6.148 for 29 steps, grad_norm 0.0) — or for a longer streak
  whatever the loss does (a saturated model still scores each batch differently);
- exploding: the loss stays far above where it started for several logged steps in a row.

The thresholds are deliberately wide so healthy, noisy curves never trigger (see the tests): an exact
zero gradient norm does not happen while LoRA weights are training (its B matrices always receive
gradient), and a loss twice its starting value *and* a whole nat above it, three logs in a row, is not
noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Consecutive logged steps a pattern must hold before it counts (one bad batch is not divergence).
FROZEN_STREAK = 3  # zero gradient and an unchanged loss
ZERO_GRADIENT_STREAK = 5  # zero gradient, whatever the loss
EXPLODING_STREAK = 3
# "Far above the start": at least this many times the first loss and at least this much higher.
EXPLODING_FACTOR = 2.0
EXPLODING_MARGIN = 1.0
# Loss values this close count as "did not change" (relative), for the frozen pattern.
FROZEN_LOSS_TOLERANCE = 1e-6

HINT_LEARNING_RATE = (
    "Lower the learning rate{rate} (e.g. 10× lower), keep a warm-up of a few percent of the steps, "
    "and check the data for empty or very long answers. Start a new run: resuming would "
    "continue from the same weights."
)


@dataclass(frozen=True)
class Divergence:
    kind: str  # "nonfinite" | "frozen" | "exploding"
    step: int  # the step it was detected at
    since_step: int  # the first step of the pattern: weights from here on are not kept
    message: str

    def hint(self, learning_rate: float | None = None) -> str:
        rate = f" (it was {learning_rate:g})" if learning_rate else ""
        return HINT_LEARNING_RATE.format(rate=rate)


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


class DivergenceWatch:
    """Feed it each logged step in order; it answers with a Divergence once, then keeps answering it."""

    def __init__(self):
        self.start_loss: float | None = None
        self.found: Divergence | None = None
        self._frozen: list[tuple[int, float]] = []  # (step, loss) of the current zero-gradient, same-loss streak
        self._zero: list[int] = []  # steps of the current zero-gradient streak
        self._high: list[int] = []  # steps of the current far-above-start streak

    def observe(self, step: int, loss, grad_norm=None) -> Divergence | None:
        if self.found:
            return self.found
        if loss is None:
            return None
        for name, value in (("loss", loss), ("gradient norm", grad_norm)):
            if value is not None and isinstance(value, (int, float)) and not math.isfinite(value):
                self.found = Divergence(
                    "nonfinite", step, step, f"Training diverged: the {name} became NaN/infinite at step {step}."
                )
                return self.found
        if not _finite_number(loss):
            return None
        if self.start_loss is None:
            self.start_loss = float(loss)
        self.found = self._frozen_check(step, float(loss), grad_norm) or self._exploding_check(step, float(loss))
        return self.found

    def _frozen_check(self, step: int, loss: float, grad_norm) -> Divergence | None:
        unchanged = self._frozen and abs(loss - self._frozen[-1][1]) <= FROZEN_LOSS_TOLERANCE * max(1.0, abs(loss))
        if grad_norm == 0.0:
            self._zero.append(step)
            self._frozen = self._frozen + [(step, loss)] if (not self._frozen or unchanged) else [(step, loss)]
        else:
            self._zero, self._frozen = [], []
        if len(self._frozen) >= FROZEN_STREAK:
            since = self._frozen[0][0]
            return Divergence(
                "frozen",
                step,
                since,
                f"Training collapsed: from step {since} the gradient was exactly zero and the loss stuck "
                f"at {loss:.4g}, so the model stopped learning.",
            )
        if len(self._zero) >= ZERO_GRADIENT_STREAK:
            since = self._zero[0]
            return Divergence(
                "frozen",
                step,
                since,
                f"Training collapsed: from step {since} the gradient was exactly zero for "
                f"{len(self._zero)} logged steps, so the model stopped learning.",
            )
        return None

    def _exploding_check(self, step: int, loss: float) -> Divergence | None:
        start = self.start_loss
        if loss >= max(start * EXPLODING_FACTOR, start + EXPLODING_MARGIN):
            self._high.append(step)
        else:
            self._high = []
        if len(self._high) < EXPLODING_STREAK:
            return None
        since = self._high[0]
        return Divergence(
            "exploding",
            step,
            since,
            f"Training diverged: from step {since} the loss stayed far above where it started "
            f"({start:.3g} → {loss:.3g}).",
        )
