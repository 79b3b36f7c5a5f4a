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
