"""Charts from run events: smoothing, best checkpoint, overfitting signal, progress that never passes 100 %."""

import re

from studio.train import charts


def log(step, loss, **extra):
    return {"type": "log", "step": step, "loss": loss, **extra}


def evaluation(step, eval_loss):
    return {"type": "eval", "step": step, "eval_loss": eval_loss}


def test_ema_is_bias_corrected_and_smooths():
    assert charts.ema([2.0]) == [2.0]  # no pull towards zero at the start
    smoothed = charts.ema([1.0, 3.0, 1.0, 3.0, 1.0, 3.0])
    raw_spread = 2.0
    assert max(smoothed[2:]) - min(smoothed[2:]) < raw_spread / 2


def test_best_eval_picks_lowest_and_earliest_on_tie():
    events = [evaluation(10, 2.0), evaluation(20, 1.5), evaluation(30, 1.5), evaluation(40, 1.7)]
    assert charts.best_eval(events) == (20, 1.5)
    assert charts.best_eval([log(1, 3.0)]) is None


def test_a_diverged_runs_best_eval_comes_from_before_the_divergence():
    """From the first bad step the weights are collapsed: an evaluation there (a frozen loss can look "best")
    is never the best, in the status line or the chart's star."""
    events = [evaluation(2, 4.5), evaluation(3, 4.2), evaluation(4, 0.9)]  # step 4: already collapsed
    assert charts.best_eval(events, before_step=4) == (3, 4.2)
    assert charts.best_eval(events, before_step=2) is None
    star = [trace for trace in charts.loss_figure(events, diverged_since=4).data if trace.name.startswith("best")]
    assert star[0].name == "best eval (step 3)"


def test_nan_and_missing_values_are_ignored():
    events = [log(1, float("nan")), log(2, 2.0), {"type": "log", "step": 3}, evaluation(3, float("inf"))]
    assert charts.train_points(events) == [(2, 2.0)]
    assert charts.eval_points(events) == []


def _falling_train(last_step):
    return [log(step, 3.0 - step * 0.01) for step in range(1, last_step + 1)]


def test_overfitting_detected_when_eval_rises_while_train_falls():
    events = _falling_train(100) + [evaluation(25, 2.0), evaluation(50, 1.8), evaluation(75, 1.9), evaluation(100, 2.1)]
    warning = charts.overfitting(events)
    assert warning is not None
    assert warning.since_step == 50
    assert "step 50" in warning.message


def test_no_overfitting_when_eval_falls_or_rises_only_once():
    falling = _falling_train(100) + [
        evaluation(25, 2.0),
        evaluation(50, 1.8),
        evaluation(75, 1.7),
        evaluation(100, 1.6),
    ]
    assert charts.overfitting(falling) is None
    once = _falling_train(100) + [evaluation(25, 2.0), evaluation(50, 1.8), evaluation(75, 1.7), evaluation(100, 1.9)]
    assert charts.overfitting(once) is None


def test_no_overfitting_when_train_loss_also_rises():
    rising_train = [log(step, 1.0 + step * 0.01) for step in range(1, 101)]
    events = rising_train + [evaluation(25, 2.0), evaluation(50, 1.8), evaluation(75, 1.9), evaluation(100, 2.1)]
    assert charts.overfitting(events) is None  # that is divergence, not overfitting


def test_loss_figure_has_raw_smoothed_eval_and_best_marker():
    events = _falling_train(40) + [evaluation(20, 2.5), evaluation(40, 2.4)]
    figure = charts.loss_figure(events)
    names = [trace.name for trace in figure.data]
    assert names[:3] == ["train loss (raw)", "train loss (smoothed)", "eval loss"]
    best = [trace for trace in figure.data if trace.name.startswith("best eval")]
    assert len(best) == 1 and list(best[0].x) == [40] and list(best[0].y) == [2.4]
    colours = {trace.line.color for trace in figure.data if trace.mode and "lines" in trace.mode}
    assert colours <= {charts.SKY, charts.BLUE, charts.VERMILLION}


def test_loss_figure_marks_overfitting_region():
    events = _falling_train(100) + [evaluation(25, 2.0), evaluation(50, 1.8), evaluation(75, 1.9), evaluation(100, 2.1)]
    figure = charts.loss_figure(events)
    shapes = figure.layout.shapes
    assert len(shapes) == 1 and shapes[0].x0 == 50 and shapes[0].x1 == 100


def test_empty_figures_explain_themselves():
    assert "Waiting" in charts.loss_figure([]).layout.annotations[0].text
    assert charts.rate_figure([]).layout.annotations


def test_rate_figure_has_learning_rate_and_speed():
    events = [log(step, 2.0, learning_rate=1e-4 * step, tokens_per_s=70.0 + step) for step in range(1, 6)]
    figure = charts.rate_figure(events)
    assert [trace.name for trace in figure.data] == ["learning rate", "tokens/s"]


def _percent(html):
    return float(re.search(r"width:([\d.]+)%", html).group(1))


def test_progress_never_passes_100_percent():
    status = {"status": "running", "step": 130, "total_steps": 100, "started_at": 1000.0}
    html = charts.progress_html(status, [log(130, 1.0, total=100, eta=-5.0)], now=1060.0)
    assert _percent(html) == 100.0
    assert "step 100 / 100" in html
    info = charts.progress(status, [log(130, 1.0, total=100, eta=-5.0)], now=1060.0)
    assert info["eta"] == 0.0


def test_progress_running_shows_elapsed_and_eta():
    status = {"status": "running", "step": 25, "total_steps": 100, "started_at": 1000.0}
    info = charts.progress(status, [log(25, 1.0, total=100)], now=1100.0)
    assert info["fraction"] == 0.25
    assert info["elapsed"] == 100.0
    assert info["eta"] == 300.0  # 4 s per step, 75 steps left
    html = charts.progress_html(status, [log(25, 1.0, total=100)], now=1100.0)
    assert "step 25 / 100" in html and "elapsed 1 min 40 s" in html and "5 min 00 s left" in html


def test_progress_finished_runs_have_no_eta_and_iso_times_work():
    status = {
        "status": "completed",
        "step": 100,
        "total_steps": 100,
        "started_at": "2026-01-01T10:00:00+00:00",
        "ended_at": "2026-01-01T10:02:00+00:00",
    }
    info = charts.progress(status, [])
    assert info["fraction"] == 1.0 and info["eta"] is None and info["elapsed"] == 120.0
    assert "completed" in charts.progress_html(status, [])


def test_progress_counts_on_from_the_last_event_time():
    status = {"status": "running", "step": 10, "total_steps": 40, "started_at": 0.0}  # started long ago (a resumed run)
    event = {"type": "log", "step": 10, "total": 40, "elapsed": 50.0, "eta": 150.0, "time": 1000.0}
    info = charts.progress(status, [event], now=1010.0)
    assert info["elapsed"] == 60.0 and info["eta"] == 140.0


def test_elapsed_is_training_time_and_never_jumps_back_when_a_run_starts_or_resumes():
    """Loading the model is not training time: a starting run shows the training time it already had (none for a
    new run, the earlier sessions' for a resumed one, not the pause since), and counting goes on from there."""
    assert charts.progress({"status": "starting", "started_at": 1000.0}, [], now=1030.0)["elapsed"] is None
    before_pause = {"type": "log", "step": 10, "total": 40, "elapsed": 50.0, "time": 1000.0}
    resumed = {"status": "starting", "step": 10, "total_steps": 40, "elapsed": 50.0, "resumed_at": 5000.0}
    assert charts.progress(resumed, [before_pause], now=5020.0)["elapsed"] == 50.0  # not 4,070 s
    running = {**resumed, "status": "running"}
    assert charts.progress(running, [before_pause], now=5030.0)["elapsed"] == 50.0  # no new step yet
    first_step = {"type": "log", "step": 11, "total": 40, "elapsed": 53.0, "time": 5033.0}
    assert charts.progress(running, [before_pause, first_step], now=5035.0)["elapsed"] == 55.0


def test_progress_of_a_stopped_run_uses_recorded_elapsed():
    status = {
        "status": "stopped",
        "step": 10,
        "total_steps": 40,
        "elapsed": 75.0,
        "started_at": "2026-01-01T10:00:00+00:00",
        "ended_at": "2026-01-01T12:00:00+00:00",
    }
    info = charts.progress(status, [])
    assert info["elapsed"] == 75.0 and info["eta"] is None and info["fraction"] == 0.25
