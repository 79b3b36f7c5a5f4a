"""One duration format for every screen and report."""

from studio import units


def test_format_duration():
    assert units.format_duration(None) == "—" and units.format_duration(float("nan")) == "—"
    assert units.format_duration(59) == "59 s"
    assert units.format_duration(61) == "1 min 01 s"
    assert units.format_duration(3700) == "1 h 01 min"
