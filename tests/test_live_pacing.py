"""The live server's timing rules without a socket: pacing, backlog, catch-up, lateness, the
session cap and whom to shed (reactcli/live/pacing.py, reactcli/live/runner.py's ServerState)."""

from __future__ import annotations

import asyncio

import pytest

from reactcli.live.pacing import CLIENT_LEFT, LATE_MS, Backlog, LagWindow, RealtimeGate, drain
from reactcli.live.protocol import ProtocolError
from reactcli.live.runner import ServerState


def test_realtime_gate_allows_a_burst_and_refuses_running_ahead() -> None:
    gate = RealtimeGate(burst_frames=10, fps=25)
    gate.admit(1, now=100.0)  # the first message starts the clock
    gate.admit(10, now=100.0)  # a burst of 10 frames at once is fine
    gate.admit(35, now=101.0)  # 1 s later: 25 + 10
    with pytest.raises(ProtocolError, match=r"ahead of real time: 36 frames after 1.00 s at 25 fps"):
        gate.admit(36, now=101.0)


def test_realtime_gate_lets_a_late_client_catch_up() -> None:
    gate = RealtimeGate(burst_frames=2, fps=25)
    gate.admit(1, now=0.0)
    gate.admit(50 + 2, now=2.0)  # silent for 2 s, then all of it at once: allowed


def test_backlog_counts_waiting_frames_and_names_the_model_speed() -> None:
    backlog = Backlog(limit=10)
    backlog.add(8, server_ms=55.0)
    backlog.done(5)
    backlog.add(7, server_ms=55.0)  # 3 + 7 = 10: at the limit
    assert backlog.waiting == 10
    with pytest.raises(ProtocolError, match=r"cannot keep up: more than 10 frames wait \(55 ms per frame, 40"):
        backlog.add(1, server_ms=55.0)


def test_drain_takes_everything_queued_and_stops_at_an_end_marker() -> None:
    async def scenario() -> list:
        queue: asyncio.Queue = asyncio.Queue()
        for item in ("b", "c"):
            queue.put_nowait(item)
        first = drain("a", queue)
        for item in ("d", CLIENT_LEFT, "e"):
            queue.put_nowait(item)
        second = drain(await queue.get(), queue)
        error = ProtocolError("bad")
        queue.put_nowait(error)
        third = drain("f", queue)
        return [first, second, third, error, queue.empty()]

    first, second, third, error, empty = asyncio.run(scenario())
    assert first == (["a", "b", "c"], None)  # catch-up: one push for all that waits
    assert second == (["d"], CLIENT_LEFT)  # work after the client left is dropped
    assert third == (["f"], error) and empty


def test_lag_window_judges_the_last_two_seconds() -> None:
    lag = LagWindow(window=10, late_ms=120.0, share=0.5)
    lag.record([(6, 500.0)])
    assert not lag.behind  # a window that is not full yet never judges (the first 2 s)
    lag.record([(4, 10.0)])
    assert lag.late_share == pytest.approx(0.6) and lag.behind
    lag.record([(1, 10.0), (1, 120.0)])  # the window slides out 2 late frames; 120 ms is still on time
    assert lag.late_share == pytest.approx(0.4) and not lag.behind
    lag.record([(10, 1.0)])  # a session that recovers is on time again
    assert lag.late_share == 0.0
    lag.record([(5, 121.0)])
    assert not lag.behind  # exactly half late: not behind
    lag.record([(1, 121.0)])
    assert lag.behind
    assert round(LATE_MS) == 120  # the page's jitter buffer: shown at 80 ms, dropped after 120


def test_session_cap_admits_up_to_the_limit_and_counts_refusals() -> None:
    state = ServerState(max_sessions=2)
    a, b = state.admit(), state.admit()
    assert (a, b) == (0, 1) and state.admit() is None
    state.release(a)
    assert state.admit() == 2  # a freed slot is taken again; numbers are never reused
    assert state.stats() == {"sessions": 3, "active": 2, "errors": 0, "refused": 1, "shed": 0, "max_sessions": 2}


def test_the_newest_late_session_is_shed_and_then_the_server_waits() -> None:
    state = ServerState(max_sessions=4)
    old, mid, new = state.admit(), state.admit(), state.admit()
    state.report(old, behind=True)
    state.report(mid, behind=True)
    state.report(new, behind=False)
    assert not state.may_shed(new, now=10.0)  # on time: never
    assert not state.may_shed(old, now=10.0)  # a younger session is behind too: that one goes first
    assert state.may_shed(mid, now=10.0)
    state.release(mid)
    assert not state.may_shed(old, now=11.0)  # the cool-down: let the freed time help the others
    assert state.may_shed(old, now=12.5)
    assert state.stats()["shed"] == 2
    state.report(new, behind=True)
    state.report(new, behind=False)  # recovered before its turn
    assert not state.may_shed(new, now=20.0)
