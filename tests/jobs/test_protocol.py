"""The log-line protocol between the job and the studio."""

from __future__ import annotations

import math

from studio.jobs import protocol


def test_a_line_round_trips_and_stands_out_from_log_text():
    line = protocol.encode("event", seq=7, event={"type": "log", "step": 3, "loss": 1.25})
    assert line.startswith(protocol.PREFIX) and "\n" not in line
    assert protocol.decode(line) == {"kind": "event", "seq": 7, "event": {"type": "log", "step": 3, "loss": 1.25}}
    # The log service may put something before the line (a timestamp): still recognised.
    assert protocol.decode("2026-12-01T10:00:00Z " + line)["seq"] == 7


def test_non_finite_numbers_travel_as_null():
    message = protocol.decode(protocol.encode("event", seq=1, event={"loss": math.nan, "grad_norm": math.inf}))
    assert message["event"] == {"loss": None, "grad_norm": None}


def test_plain_and_damaged_lines_are_log_text():
    assert protocol.decode("[studio] step 3/20 loss 1.2") is None
    assert protocol.decode(protocol.PREFIX + '{"kind": "event", "seq": ') is None  # cut off
    assert protocol.decode(protocol.PREFIX + '{"kind": "rm -rf"}') is None  # not a kind we know
    assert protocol.decode(protocol.PREFIX + "[1, 2]") is None


def test_only_training_fields_of_the_status_travel():
    status = {
        "status": "running",
        "step": 4,
        "pid": 123,
        "owner": "browser-x",
        "started_at": "t",
        "best_eval_loss": 0.5,
    }
    assert protocol.relayed_status(status) == {"status": "running", "step": 4, "best_eval_loss": 0.5}


def test_the_status_travels_with_new_events_so_progress_keeps_up_with_the_charts(tmp_path, capsys):
    """Found in a walk: the progress bar said step 13 while the charts (fed by events) reached 16, because the
    status was relayed only every 5 s."""
    from studio.jobs.remote import Relay
    from studio.train import store

    store.update_status(tmp_path, status="running", step=1)
    relay = Relay(tmp_path, first_seq=0)
    relay.pump()
    sent = [protocol.decode(line) for line in capsys.readouterr().out.splitlines()]
    assert {"kind": "status", "status": {"status": "running", "step": 1}} in sent

    store.append_event(tmp_path, {"type": "log", "step": 2, "loss": 1.0})
    store.update_status(tmp_path, step=2)
    relay.pump()  # well within 5 s of the last status line
    sent = [protocol.decode(line) for line in capsys.readouterr().out.splitlines()]
    assert [m["kind"] for m in sent] == ["event", "status"] and sent[1]["status"] == {"step": 2}

    store.update_status(tmp_path, step=3)  # no new event: the status waits for its 5 s
    relay.pump()
    assert capsys.readouterr().out == ""
