"""Components under stable names, and handlers that return `{name: value}`.

A part of the page (the Train tab's live view, the Data tab's report, Decide's estimates) registers its
components once — `live = Parts(status=status_md, loss=loss_plot, …)` — and its handlers return a dict with the
names they change. `live.handler(fn)` hands Gradio the values in `live.outputs()` order and leaves every name the
handler did not return as it is (gr.skip()). So adding an output never shifts another one, a handler cannot
return "the 14th thing", and tests read results by name.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr

from studio.ui.guard import guarded


class Parts:
    """Named components of one part of the page; their order is the order Gradio gets them in."""

    def __init__(self, **components: Any):
        self._components = dict(components)

    def __getitem__(self, name: str):
        return self._components[name]

    def __contains__(self, name: str) -> bool:
        return name in self._components

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._components)

    def outputs(self) -> list:
        """The components, for an event's `outputs=`."""
        return list(self._components.values())

    def plus(self, **more: Any) -> Parts:
        """These parts and a few more (an event that also updates something outside this group)."""
        clash = set(more) & set(self._components)
        if clash:
            raise ValueError(f"names already taken: {sorted(clash)}")
        return Parts(**self._components, **more)

    def pick(self, *names: str) -> Parts:
        """Some of these parts (the outputs of an event that changes only those)."""
        return Parts(**{name: self._components[name] for name in names})

    def ordered(self, result: Mapping[str, Any], source: str = "a handler"):
        """A handler's `{name: value}` as Gradio's positional outputs; names not given are left unchanged."""
        if not isinstance(result, Mapping):
            raise TypeError(f"{source} must return {{name: value}}, not {type(result).__name__}")
        unknown = set(result) - set(self._components)
        if unknown:
            raise KeyError(f"{source} returned names this part of the page does not have: {sorted(unknown)}")
        values = tuple(result.get(name, gr.skip()) for name in self._components)
        return values[0] if len(values) == 1 else values

    def handler(self, fn: Callable[..., Mapping[str, Any]]):
        """fn (returning or yielding `{name: value}`) as a Gradio handler for `self.outputs()`; keeps fn's name
        and signature (Gradio reads them for gr.Progress and event data)."""
        source = getattr(fn, "__name__", "a handler")

        def named(result):
            return self.ordered(result, source)

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def stream(*args, **kwargs):
                for result in fn(*args, **kwargs):
                    yield named(result)

            return stream

        @functools.wraps(fn)
        def call(*args, **kwargs):
            return named(fn(*args, **kwargs))

        return call


def wired(action: str, parts: Parts, fn: Callable[..., Mapping[str, Any]]):
    """fn (returning `{name: value}`) as the handler of an event whose outputs are `parts.outputs()`, behind the
    guard with its rule (studio/ui/guard.py)."""
    return guarded(action, parts.handler(fn))
