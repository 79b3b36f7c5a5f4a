"""One duration format and one money format for every screen and report."""

from studio import units


def test_format_duration():
    assert units.format_duration(None) == "—" and units.format_duration(float("nan")) == "—"
    assert units.format_duration(59) == "59 s"
    assert units.format_duration(61) == "1 min 01 s"
    assert units.format_duration(3700) == "1 h 01 min"


def test_money_keeps_two_significant_digits_below_a_cent():
    assert [units.format_usd(x) for x in (0, 0.0001, 0.00042, 0.0099, 0.01, 1.5, 1234.567)] == [
        "$0.00",
        "$0.0001",
        "$0.00042",
        "$0.0099",
        "$0.01",
        "$1.50",
        "$1,234.57",
    ]
    assert units.format_usd(None) == units.format_usd(float("nan")) == "—"
