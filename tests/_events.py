"""Watch storyc's audit events from a test (the events are listed in CONTRIBUTING.md).

storyc raises `sys.audit` events at the moments a test must observe without patching
storyc's code: `storyc.offline.call_started` (kind, identity) for every try of an offline
call, `storyc.offline.call_done` (kind, path) for every one that succeeded, and
`storyc.run.call_cached` (call_key, step_key, kind) once a paid call's result is durable
in the cache. An audit hook cannot be removed, so one hook per process dispatches the
storyc events to whoever is inside `watch(...)`; the callbacks run in the thread that
raised the event and must not raise (an exception would propagate into storyc).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Callback = Callable[[str, tuple[Any, ...]], None]

_subscribers: tuple[Callback, ...] = ()
_lock = threading.Lock()
_installed = False


def _dispatch(event: str, args: tuple[Any, ...]) -> None:
    if _subscribers and event.startswith("storyc."):
        for callback in _subscribers:
            callback(event, args)


@contextmanager
def watch(callback: Callback) -> Iterator[Callback]:
    """Call `callback(event, args)` for every storyc audit event raised inside the block."""
    global _installed, _subscribers
    with _lock:
        if not _installed:
            sys.addaudithook(_dispatch)
            _installed = True
        _subscribers = (*_subscribers, callback)
    try:
        yield callback
    finally:
        with _lock:
            _subscribers = tuple(s for s in _subscribers if s is not callback)
