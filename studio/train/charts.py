"""Pictures of a run, from its events: loss chart, learning-rate / throughput chart, progress bar.

Pure functions of the events list (the dicts in RUN_DIR/events.jsonl), so the UI stays thin and the
logic is testable without a browser. Colours are the Okabe-Ito palette (safe for colour-blind readers);
lines also differ by dash and marker, so nothing relies on colour alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from studio import escape
from studio.units import format_duration

# Okabe-Ito
BLUE = "#0072B2"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
GREEN = "#009E73"
SKY = "#56B4E9"
PURPLE = "#CC79A7"
GREY = "#999999"

SMOOTHING = 0.8  # EMA weight of the past, like TensorBoard's default slider


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def train_points(events: list[dict]) -> list[tuple[int, float]]:
    """(step, loss) of the training log events, in step order, last value per step."""
    points: dict[int, float] = {}
    for event in events:
        loss = _number(event.get("loss"))
        if event.get("type", "log") == "log" and loss is not None and event.get("step") is not None:
            points[int(event["step"])] = loss
    return sorted(points.items())


def eval_points(events: list[dict]) -> list[tuple[int, float]]:
    points: dict[int, float] = {}
    for event in events:
        loss = _number(event.get("eval_loss"))
        if loss is not None and event.get("step") is not None:
            points[int(event["step"])] = loss
    return sorted(points.items())


def series(events: list[dict], key: str) -> list[tuple[int, float]]:
    points: dict[int, float] = {}
    for event in events:
        value = _number(event.get(key))
        if value is not None and event.get("step") is not None and event.get("type", "log") == "log":
            points[int(event["step"])] = value
    return sorted(points.items())


def ema(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """Exponential moving average with bias correction, so the first points are not pulled to zero."""
    smoothed, average = [], 0.0
    for index, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        smoothed.append(average / (1 - weight**index))
    return smoothed


def best_eval(events: list[dict], before_step: int | None = None) -> tuple[int, float] | None:
    """(step, eval_loss) of the lowest eval loss; the earliest step wins a tie. `before_step`: a diverged run's first
    bad step — evaluations from there on scored collapsed weights, never the best of anything."""
    points = [point for point in eval_points(events) if before_step is None or point[0] < before_step]
    if not points:
        return None
    return min(points, key=lambda point: (point[1], point[0]))


@dataclass
class Overfitting:
    since_step: int  # the step of the best eval loss, after which eval loss rose
    message: str


def overfitting(events: list[dict], rises: int = 2, tolerance: float = 0.005) -> Overfitting | None:
    """Eval loss rose on the last `rises` evaluations in a row while the smoothed train loss fell.

    A small relative `tolerance` keeps noise from counting as a rise.
    """
    evals = eval_points(events)
    if len(evals) < rises + 1:
        return None
    tail = evals[-(rises + 1) :]
    rising = all(later[1] > earlier[1] * (1 + tolerance) for earlier, later in zip(tail, tail[1:]))
    if not rising:
        return None
    train = train_points(events)
    if len(train) < 2:
        return None
    smoothed = dict(zip([step for step, _ in train], ema([loss for _, loss in train])))
    start_step, end_step = tail[0][0], tail[-1][0]
    before = [loss for step, loss in smoothed.items() if step <= start_step]
    after = [loss for step, loss in smoothed.items() if step <= end_step]
    if not before or not after or not after[-1] < before[-1]:
        return None
    best = best_eval(events)
    best_step = best[0] if best else start_step
    return Overfitting(
        since_step=best_step,
        message=(
            f"Possible overfitting: eval loss rose on the last {rises} evaluations "
            f"({tail[0][1]:.3f} → {tail[-1][1]:.3f}) while train loss kept falling. "
            f"The best checkpoint is at step {best_step}; fewer epochs, a lower learning rate, "
            "or more data usually help."
        ),
    )


def _empty_figure(title: str, note: str):
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.add_annotation(
        text=note, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 14, "color": GREY}
    )
    figure.update_layout(
        title=title,
        template="plotly_white",
        height=220,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        xaxis={"visible": False},
        yaxis={"visible": False},
    )
    return figure


def loss_figure(events: list[dict], title: str = "Loss", diverged_since: int | None = None):
    """Train loss (raw, faint) + smoothed, eval loss, the best eval checkpoint starred (before the divergence of a
    run that diverged), overfitting shaded."""
    import plotly.graph_objects as go

    train = train_points(events)
    evals = eval_points(events)
    if not train and not evals:
        return _empty_figure(title, "Waiting for the first logged step…")
    figure = go.Figure()
    if train:
        steps = [step for step, _ in train]
        losses = [loss for _, loss in train]
        figure.add_trace(
            go.Scatter(
                x=steps, y=losses, name="train loss (raw)", mode="lines", line={"color": SKY, "width": 1}, opacity=0.55
            )
        )
        few = len(steps) < 30  # markers keep the first points visible (a line needs two)
        figure.add_trace(
            go.Scatter(
                x=steps,
                y=ema(losses),
                name="train loss (smoothed)",
                mode="lines+markers" if few else "lines",
                marker={"size": 5},
                line={"color": BLUE, "width": 2.5},
            )
        )
    if evals:
        figure.add_trace(
            go.Scatter(
                x=[s for s, _ in evals],
                y=[v for _, v in evals],
                name="eval loss",
                mode="lines+markers",
                line={"color": VERMILLION, "width": 2.5, "dash": "dash"},
                marker={"symbol": "square", "size": 7},
            )
        )
        best = best_eval(events, before_step=diverged_since)
        if best:
            figure.add_trace(
                go.Scatter(
                    x=[best[0]],
                    y=[best[1]],
                    name=f"best eval (step {best[0]})",
                    mode="markers",
                    marker={"symbol": "star", "size": 16, "color": ORANGE, "line": {"color": "black", "width": 1}},
                )
            )
    warning = overfitting(events)
    if warning and evals:
        figure.add_vrect(
            x0=warning.since_step,
            x1=evals[-1][0],
            fillcolor=VERMILLION,
            opacity=0.08,
            line_width=0,
            annotation_text="eval loss rising",
            annotation_position="top left",
        )
    figure.update_layout(
        title=title,
        template="plotly_white",
        height=360,
        hovermode="x unified",
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"},
        xaxis_title="step",
        yaxis_title="loss",
    )
    return figure


def rate_figure(events: list[dict]):
    """Learning rate and tokens/s side by side (two small panels, one figure)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rates = series(events, "learning_rate")
    speed = series(events, "tokens_per_s")
    if not rates and not speed:
        return _empty_figure("Learning rate and speed", "Appears after the first logged step.")
    figure = make_subplots(rows=1, cols=2, subplot_titles=("learning rate", "tokens / second"))
    if rates:
        figure.add_trace(
            go.Scatter(
                x=[s for s, _ in rates],
                y=[v for _, v in rates],
                name="learning rate",
                mode="lines+markers" if len(rates) < 30 else "lines",
                marker={"size": 4},
                line={"color": GREEN, "width": 2},
            ),
            row=1,
            col=1,
        )
    if speed:
        figure.add_trace(
            go.Scatter(
                x=[s for s, _ in speed],
                y=[v for _, v in speed],
                name="tokens/s",
                mode="lines+markers",
                line={"color": PURPLE, "width": 2},
                marker={"size": 4},
            ),
            row=1,
            col=2,
        )
    figure.update_layout(
        template="plotly_white", height=260, showlegend=False, margin={"l": 50, "r": 20, "t": 40, "b": 40}
    )
    figure.update_yaxes(exponentformat="e", row=1, col=1)
    figure.update_xaxes(title_text="step")
    return figure


_STATUS_COLOURS = {
    "queued": GREY,
    "starting": SKY,
    "running": BLUE,
    "stopping": ORANGE,
    "completed": GREEN,
    "stopped": ORANGE,
    "failed": VERMILLION,
    "interrupted": PURPLE,
}
ACTIVE_STATUSES = ("queued", "starting", "running", "stopping")


def progress(status: dict, events: list[dict], now: float | None = None) -> dict:
    """step, total, fraction (0..1, never above 1), elapsed and eta seconds, from status + last event."""
    import time

    last = next((event for event in reversed(events) if event.get("step") is not None), {})
    step = int(_number(status.get("step")) or _number(last.get("step")) or 0)
    total = int(_number(status.get("total_steps")) or _number(last.get("total")) or 0)
    fraction = min(1.0, step / total) if total > 0 else 0.0
    state = status.get("status", "")
    if state == "completed":
        fraction = 1.0
        step = max(step, total)
    now = time.time() if now is None else now
    active = state in ACTIVE_STATUSES
    elapsed = _number(last.get("elapsed"))
    written = _number(last.get("time"))
    started = _started_seconds(status.get("started_at"))
    # Elapsed is training time, as the history and the report show it: a run loading its model (or waiting, or
    # resumed and loading again) shows the training time it had, so the clock never jumps back when it starts.
    resumed = _started_seconds(status.get("resumed_at"))
    this_session = written is not None and (resumed is None or written >= resumed)
    if state in ("running", "stopping"):
        if elapsed is not None and this_session:
            elapsed += max(0.0, now - written)  # counted on since the event was written
        elif elapsed is None and started is not None:
            elapsed = now - started  # events from before they carried their elapsed time
    elif active:
        elapsed = _number(status.get("elapsed"))
    else:
        elapsed = _number(status.get("elapsed")) or elapsed
        ended = _started_seconds(status.get("ended_at"))
        if elapsed is None and started is not None and ended is not None:
            elapsed = max(0.0, ended - started)
    eta = None
    if active and total > 0:
        eta = _number(last.get("eta"))
        if eta is not None and written is not None:
            eta -= max(0.0, now - written)
        if eta is None and step > 0 and elapsed:
            eta = elapsed / step * (total - step)
        if eta is not None:
            eta = max(0.0, eta)
    return {
        "step": min(step, total) if total else step,
        "total": total,
        "fraction": fraction,
        "elapsed": elapsed,
        "eta": eta,
        "status": state,
    }


def _started_seconds(value) -> float | None:
    """Accepts epoch seconds or an ISO 8601 string (status.json may use either)."""
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, str) and value:
        from datetime import datetime

        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.timestamp()
    return None


def progress_html(status: dict, events: list[dict], now: float | None = None) -> str:
    """An accessible progress bar: the width never passes 100 %, the text says step/total, elapsed and ETA."""
    info = progress(status, events, now)
    percent = round(info["fraction"] * 100, 1)
    state = info["status"] or "unknown"
    colour = _STATUS_COLOURS.get(state, GREY)
    total = info["total"] or "?"
    parts = [f"step {info['step']} / {total}", f"{percent:g} %"]
    if info["elapsed"] is not None:  # none yet while a new run loads its model
        parts.append(f"elapsed {format_duration(info['elapsed'])}")
    if info["eta"] is not None:
        parts.append(f"about {format_duration(info['eta'])} left")
    text = " · ".join(parts)
    return (
        f'<div class="run-progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{percent}"'
        ' style="padding:6px 2px">'
        '<div style="display:flex;gap:10px;align-items:center;margin-bottom:6px;flex-wrap:wrap">'
        f'<span class="run-status" style="background:{colour};color:white;border-radius:10px;padding:1px 10px;'
        f'font-weight:600;font-size:0.9em">{escape.html(state)}</span>'
        f'<span class="run-progress-text">{escape.html(text)}</span></div>'
        '<div style="width:100%;height:14px;background:#e5e7eb;border-radius:7px;overflow:hidden">'
        f'<div class="run-progress-fill" style="width:{percent}%;height:100%;background:{colour};border-radius:7px">'
        f"</div>"
        "</div></div>"
    )
