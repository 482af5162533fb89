"""app.core.events: re-entrant emits, disconnects during an emit, raising subscribers and weak bound methods."""

from __future__ import annotations

import gc

import pytest

from app.core.events import EventEmitter, EventGroup


def recorder(got: list, name: str):
    """A plain-function subscriber that records (name, value)."""

    def callback(v):
        got.append((name, v))

    return callback


class View:
    """A subscriber with a bound method, as the labs' views are."""

    def __init__(self, got: list):
        self.got = got

    def on(self, v):
        self.got.append(v)


def test_connect_emit_disconnect_and_order():
    e = EventEmitter("x")
    got = []
    e.connect(lambda v: got.append(("a", v)))
    cb = e.connect(lambda v: got.append(("b", v)))
    e.emit(1)
    assert got == [("a", 1), ("b", 1)] and e.n_callbacks == 2
    e.disconnect(cb)
    e.emit(2)
    assert got[2:] == [("a", 2)] and e.n_callbacks == 1


def test_a_callback_connected_during_an_emit_is_kept_but_not_called_in_that_emit():
    e = EventEmitter("x")
    got = []
    late = recorder(got, "late")

    def adder(v):
        got.append(("adder", v))
        if v == 1:
            e.connect(late)

    e.connect(adder)
    e.emit(1)
    assert got == [("adder", 1)]
    assert e.n_callbacks == 2
    e.emit(2)
    assert got[1:] == [("adder", 2), ("late", 2)]


def test_a_disconnect_during_an_emit_holds():
    e = EventEmitter("x")
    got = []
    second = recorder(got, "second")

    def first(v):
        got.append(("first", v))
        e.disconnect(second)  # a later subscriber of this very emit
        e.disconnect(first)  # and itself

    e.connect(first)
    e.connect(second)
    e.emit(1)
    assert got == [("first", 1)]  # 'second' was disconnected before its turn: not called
    assert e.n_callbacks == 0
    e.emit(2)
    assert got == [("first", 1)]  # and both stay disconnected after the emit


def test_disconnect_during_a_nested_emit_of_the_same_event_holds():
    e = EventEmitter("x")
    got = []
    victim = recorder(got, "victim")

    def reenter(v):
        got.append(("reenter", v))
        if v == 1:
            e.emit(2)  # nested emit of the same event
            e.disconnect(victim)  # after the nested emit finished: the outer emit must not undo it

    e.connect(reenter)
    e.connect(victim)
    e.emit(1)
    assert got == [("reenter", 1), ("reenter", 2), ("victim", 2)]
    assert e.n_callbacks == 1
    e.emit(3)
    assert got[-1] == ("reenter", 3)


def test_a_raising_subscriber_does_not_stop_the_others_and_is_reraised_after():
    e = EventEmitter("x")
    got = []

    def bad(v):
        raise ValueError("boom")

    e.connect(recorder(got, "before"))
    e.connect(bad)
    e.connect(recorder(got, "after"))
    with pytest.raises(ValueError, match="boom"):
        e.emit(1)
    assert got == [("before", 1), ("after", 1)]
    assert e.n_callbacks == 3  # a raising subscriber stays connected


def test_several_raising_subscribers_are_reported_together():
    e = EventEmitter("sel")
    got = []

    def bad1(v):
        raise ValueError("one")

    def bad2(v):
        raise KeyError("two")

    e.connect(bad1)
    e.connect(lambda v: got.append(v))
    e.connect(bad2)
    with pytest.raises(ExceptionGroup) as info:
        e.emit(5)
    assert got == [5]
    assert [type(x) for x in info.value.exceptions] == [ValueError, KeyError]
    assert "sel" in str(info.value)


def test_bound_methods_are_held_weakly_and_functions_strongly():
    e = EventEmitter("x")
    got = []
    view = View(got)
    e.connect(view.on)
    e.connect(lambda v: got.append(("fn", v)))
    e.emit(1)
    assert got == [1, ("fn", 1)] and e.n_callbacks == 2
    del view
    gc.collect()
    assert e.n_callbacks == 1
    e.emit(2)
    assert got[2:] == [("fn", 2)]


def test_disconnect_a_bound_method_by_an_equal_reference():
    e = EventEmitter("x")
    got = []
    view = View(got)
    e.connect(view.on)
    e.disconnect(view.on)  # a new bound-method object, equal to the connected one
    e.emit(1)
    assert got == [] and e.n_callbacks == 0


def test_blocked_emitters_call_nobody():
    e = EventEmitter("x")
    got = []
    e.connect(got.append)
    e.blocked = True
    e.emit(1)
    e.blocked = False
    e.emit(2)
    assert got == [2]


def test_event_group_has_one_emitter_per_name():
    g = EventGroup("dataset", "selection")
    assert g.names == ("dataset", "selection")
    got = []
    g.selection.connect(got.append)
    g.dataset.emit("d")
    g.selection.emit(3)
    assert got == [3] and g.dataset.n_callbacks == 0 and g.selection.n_callbacks == 1
