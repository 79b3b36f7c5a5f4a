"""Browser: send a tiny-model run to Hugging Face Jobs (the local stand-in) from the Train tab, watch it finish
in the same live view, and open the adapter that came home in Compare."""

from __future__ import annotations

import json
import re

import pytest

from studio import paths
from tests.browser import until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _write_dataset() -> str:
    folder = paths.datasets_dir() / f"jobs-pirates-{paths.new_id()}"
    folder.mkdir(parents=True)
    rows = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Question number {i}?"},
                    {"role": "assistant", "content": "Ahoy! Aye. — Captain Byte"},
                ]
            }
        )
        for i in range(48)
    ]
    (folder / "train.jsonl").write_text("\n".join(rows[:40]) + "\n")
    (folder / "validation.jsonl").write_text("\n".join(rows[40:]) + "\n")
    manifest = {
        "id": folder.name,
        "name": "jobs pirates",
        "created_at": "2030-01-02T00:00:00+00:00",
        "counts": {"train": 40, "validation": 8, "rejected": 0},
        "findings_summary": {},
        "stats": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return str(folder)


def test_send_a_run_to_jobs_watch_it_and_open_it_in_compare(page, remote_env, tiny_model_dir, output_dir):
    from studio.train import store

    _write_dataset()
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-dataset-refresh").click()
    page.locator("#train-dataset input").click()
    page.get_by_role("option", name=re.compile("jobs pirates")).click()
    model_input = page.locator("#train-model input")
    model_input.fill(str(tiny_model_dir))
    model_input.press("Enter")
    page.locator("#train-max-steps input").fill("30")
    page.locator("#train-name").get_by_role("textbox").fill("browser jobs run")

    page.get_by_label("Hugging Face Jobs").check()
    page.wait_for_selector("#train-flavor", state="visible")
    page.locator("#train-flavor input").click()
    page.get_by_role("option", name=re.compile(r"CPU Basic \(cpu-basic\)")).click()
    page.locator("#train-max-cost input").fill("1")
    page.locator("#train-check").click()
    until(page, "text('#train-preflight').includes('Runs on Hugging Face Jobs')")
    preflight = page.inner_text("#train-preflight")
    assert "Cost: about" in preflight and "Cap: $1.00" in preflight
    page.screenshot(path=str(output_dir / "jobs-preflight.png"), full_page=True)

    page.locator("#train-start").click()
    until(page, "text('#train-start-message').includes('Sent')")
    until(page, "text('#train-start-message').includes('Sent')")
    until(page, "text('#train-status').includes('Hugging Face Jobs')", timeout=60_000)
    until(page, "/completed/.test(text('#train-progress'))", timeout=240_000)
    until(page, "text('#train-loss-plot').includes('train loss')", timeout=30_000)
    status = page.inner_text("#train-status")
    assert "Completed" in status and "cpu-basic" in status
    page.screenshot(path=str(output_dir / "jobs-completed.png"), full_page=True)

    run = next(record for record in store.list_runs() if record.name == "browser jobs run")
    assert run.state == "completed" and run.adapter_dir is not None

    page.locator("#train-open-compare").click()
    until(page, "text('#compare-status').includes('browser jobs run')", timeout=120_000)
    assert "Traceback" not in page.inner_text("body")
