"""``app.core.next_pass.NextPass``: part of a slot's drawing deferred to a later pass of the event loop."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QObject  # noqa: E402

from app.core.next_pass import NextPass  # noqa: E402


@pytest.fixture
def counted(qtbot):
    owner = QObject()
    calls: list[int] = []
    return NextPass(owner, lambda: calls.append(1)), calls, owner


def test_it_runs_once_in_a_later_pass_however_often_it_was_queued(counted, qtbot):
    p, calls, _ = counted
    for _ in range(3):
        p.queue()
    assert p.pending and calls == []  # (never inside the slot that queued it)
    qtbot.waitUntil(lambda: not p.pending, timeout=3000)
    assert calls == [1]
    p.queue()
    qtbot.waitUntil(lambda: not p.pending, timeout=3000)
    assert calls == [1, 1]


def test_flush_runs_it_now_and_cancel_drops_it(counted, qtbot):
    p, calls, owner = counted
    p.flush()
    assert calls == []  # (nothing queued: nothing to run)
    p.queue()
    p.flush()
    assert calls == [1] and not p.pending
    p.queue()
    p.cancel()
    assert not p.pending
    other = NextPass(owner, lambda: None)
    other.queue()  # a later timer of the same owner: the cancelled one's timer has fired (and did nothing) by then
    qtbot.waitUntil(lambda: not other.pending, timeout=3000)
    assert calls == [1]
