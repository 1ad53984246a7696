"""The cyclic garbage collector, paused while a batch step builds millions of small objects.

Folding a file range or replaying an organisation's history allocates tuples,
dicts and sets that live on, so CPython's collector keeps re-walking them
— about a third of the parsing time, measured — yet none of them form
reference cycles: reference counting frees them all. The pause ends with the
step, and a collection then catches anything that did form a cycle.
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def paused_gc():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def kept_for_good():
    """For imports, whose objects live as long as the process: the collector is paused while they are made,
    then they are set aside (gc.freeze), so that no collection walks them again. Without the freeze the
    first collection after the pause walked them all: 0.06-0.11 s of a replay's start-up."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
