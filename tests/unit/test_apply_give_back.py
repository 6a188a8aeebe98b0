"""apply.give_back: an exception raised by a signal handler between `with cond:`'s acquire and its block
leaves the main thread owning the Condition's reentrant lock; give_back returns every level, so the worker
threads that `_create_nodes` then joins can take it (an interrupted `lab up` once hung there for good)."""

from __future__ import annotations

import threading

from nslab.lab.apply import give_back


def test_every_level_is_given_back_and_another_thread_then_gets_the_lock() -> None:
    cond = threading.Condition()
    cond.acquire()
    cond.acquire()  # as if two `with cond:` were cut before their blocks
    got = threading.Event()

    def other() -> None:
        with cond:
            got.set()

    t = threading.Thread(target=other, daemon=True)
    t.start()
    assert not got.wait(0.2)  # held by this thread
    give_back(cond)
    assert got.wait(10)
    t.join(10)


def test_nothing_happens_when_the_lock_is_not_held() -> None:
    cond = threading.Condition()
    give_back(cond)  # not owned: no error
    with cond:  # still usable
        pass
