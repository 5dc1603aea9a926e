"""Processes that race each other in a test: spawned, never forked, and never outliving the test.

A forked child copies the test process's locks as they are at that instant, held ones included, and pytest's
process has threads (servers, senders, Ray's driver) by then: a child that needs such a lock waits for ever, and
multiprocessing's exit handler then waits on that child, so the whole run hangs (seen once in CI). A spawned child
starts from a fresh interpreter, and every child still running when the race is over is killed.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable, Sequence
from typing import Any


def _child(target: Callable[..., Any], args: tuple, q: Any) -> None:
    try:
        q.put(("ok", target(*args)))
    except BaseException:  # the test shows the child's traceback rather than a timeout
        q.put(("error", traceback.format_exc()))


CTX = mp.get_context("spawn")  # for what the test shares with its racers (an Event, say)


def race(target: Callable[..., Any], args_per_process: Sequence[tuple], *, timeout: float = 180) -> list[Any]:
    """Run `target(*args)` in one spawned process per args tuple at once; their return values, in the order they
    finished. A child's exception fails the test with its traceback."""
    q = CTX.Queue()
    procs = [CTX.Process(target=_child, args=(target, tuple(args), q), daemon=True) for args in args_per_process]
    try:
        for p in procs:
            p.start()
        results = []
        for _ in procs:
            status, value = q.get(timeout=timeout)
            if status == "error":
                raise AssertionError(f"a racing process failed:\n{value}")
            results.append(value)
        for p in procs:
            p.join(timeout)
            assert p.exitcode == 0, f"a racing process ended with exit code {p.exitcode}"
        return results
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(10)
