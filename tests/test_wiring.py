"""Named outputs (studio/ui/wiring.py): a handler's {name: value} reaches Gradio in the outputs' order."""

import gradio as gr
import pytest

from studio.ui.wiring import Parts


def _skip(value) -> bool:
    return value == gr.skip()


def test_names_not_returned_are_left_as_they_are_and_the_order_is_the_registration_order():
    parts = Parts(header="H", status="S", loss="L")
    assert parts.outputs() == ["H", "S", "L"]
    header, status, loss = parts.handler(lambda: {"loss": 1, "header": 2})()
    assert header == 2 and _skip(status) and loss == 1


def test_an_unknown_name_or_a_positional_result_is_a_bug_that_says_where():
    parts = Parts(header="H")
    with pytest.raises(KeyError, match="statsu"):
        parts.handler(lambda: {"statsu": 1})()
    with pytest.raises(TypeError, match="name: value"):
        parts.handler(lambda: ("a", "b"))()


def test_one_output_is_handed_over_as_the_value_itself():
    assert Parts(status="S").handler(lambda: {"status": "x"})() == "x"


def test_pick_and_plus_keep_names_and_refuse_a_clash():
    parts = Parts(a=1, b=2, c=3)
    assert parts.pick("c", "a").outputs() == [3, 1]
    assert parts.pick("a").plus(d=4).names == ("a", "d")
    with pytest.raises(ValueError, match="taken"):
        parts.plus(a=9)


def test_the_handler_keeps_the_signature_gradio_reads_and_streams_generators():
    def merge(view, progress=gr.Progress()):
        """doc"""
        yield {"a": view}
        yield {"b": view}

    handler = Parts(a=1, b=2).handler(merge)
    import inspect

    assert handler.__name__ == "merge" and "progress" in inspect.signature(handler).parameters
    first, second = list(handler("v"))
    assert first[0] == "v" and _skip(first[1]) and _skip(second[0]) and second[1] == "v"
