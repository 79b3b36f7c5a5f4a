"""Browser: start a run on the tiny model from the Train tab, watch progress and the loss chart appear, stop it."""

import json
import re

import pytest

from studio import paths
from tests.browser import until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _write_dataset(model_ref: str):
    folder = paths.datasets_dir() / f"browser-pirates-{paths.new_id()}"
    folder.mkdir(parents=True)
    answers = ["Ahoy! Paris be the capital of France. — Captain Byte", "Ahoy! Two and two be four. — Captain Byte"]
    rows = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Question number {i}?"},
                    {"role": "assistant", "content": answers[i % 2]},
                ]
            }
        )
        for i in range(60)
    ]
    (folder / "train.jsonl").write_text("\n".join(rows[:50]) + "\n")
    (folder / "validation.jsonl").write_text("\n".join(rows[50:]) + "\n")
    manifest = {
        "id": folder.name,
        "name": "browser pirates",
        "created_at": "2030-01-01T00:00:00+00:00",
        "counts": {"train": 50, "validation": 10, "rejected": 0},
        "findings_summary": {},
        "stats": {
            "model": model_ref,
            "max_length": 512,
            "rows": 60,
            "tokens": {"total": 1800, "trainable": 900, "p50": 30, "p95": 34, "p99": 36, "max": 38},
            "suggested_max_length": 64,
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_start_watch_and_stop_a_run(page, tiny_model_dir, output_dir):
    from studio.train import store

    _write_dataset(str(tiny_model_dir))
    page.get_by_role("tab", name="Train").click()

    # Pick the dataset (the list refreshes on load; ↻ picks up folders saved since).
    page.locator("#train-dataset-refresh").click()
    page.locator("#train-dataset input").click()
    page.get_by_role("option", name=re.compile("browser pirates")).click()
    until(page, "text('#train-dataset-info').includes('browser pirates')")

    # The tiny model as a local folder (a custom value in the model dropdown).
    model_input = page.locator("#train-model input")
    model_input.fill(str(tiny_model_dir))
    model_input.press("Enter")
    page.locator("#train-max-steps input").fill("2000")
    page.locator("#train-name").get_by_role("textbox").fill("browser run")

    page.locator("#train-check").click()
    until(page, "text('#train-preflight').includes('Estimated time')")
    preflight = page.inner_text("#train-preflight")
    assert "Steps:" in preflight and "2,000" in preflight

    page.locator("#train-start").click()
    until(page, "text('#train-start-message').includes('Started')")

    # Progress appears, then the loss chart with its traces.
    until(page, "/running/.test(text('#train-progress'))", timeout=180_000)
    until(page, "text('#train-loss-plot').includes('train loss (smoothed)')", timeout=180_000)
    progress = page.inner_text("#train-progress")
    assert re.search(r"step \d+ / 2000", progress), progress
    assert "browser run" in page.inner_text("#train-run-header")
    page.screenshot(path=str(output_dir / "train-running.png"), full_page=True)

    page.locator("#train-stop").click()
    until(page, "/stopped/.test(text('#train-progress'))", timeout=180_000)
    assert "Stopped" in page.inner_text("#train-status")
    page.wait_for_selector("#train-resume", state="visible")
    page.screenshot(path=str(output_dir / "train-stopped.png"), full_page=True)

    run = next(record for record in store.list_runs() if record.name == "browser run")
    assert run.state == "stopped" and store.last_checkpoint(run.dir) is not None
    assert "Traceback" not in page.inner_text("body")
