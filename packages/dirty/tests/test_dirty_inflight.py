"""The protocol core both clients share (inflight.py): reply frames to their callers by
request id, slot load, a lost connection; sans-I/O, so fed bytes directly."""

from __future__ import annotations

from gcorn.dirty.codec import SafeCodec
from gcorn.dirty.errors import DirtyWorkerLostError
from gcorn.dirty.inflight import InFlight
from gcorn.dirty.protocol import MsgType

codec = SafeCodec()


class Seen:
    """A Reply that records what it is given."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, object, bool]] = []
        self.error: Exception | None = None

    def push(self, mtype: int, payload: object, final: bool) -> None:
        self.frames.append((mtype, codec.decode(payload), final))

    def fail(self, error: Exception) -> None:
        self.error = error


def frame(mtype: int, rid: int, value: object) -> bytes:
    bufs, _ = codec.encode_frame(mtype, rid, value)
    return b"".join(bytes(b) for b in bufs)


def test_frames_of_one_read_go_to_their_callers_and_final_ones_free_the_slot() -> None:
    calls = InFlight(1 << 20)
    a, b, c = Seen(), Seen(), Seen()
    calls.add(1, a)
    calls.add(2, b, batched=True)
    calls.add(3, c)
    assert (len(calls), calls.load()) == (3, 2)
    data = frame(MsgType.CHUNK, 3, "x") + frame(MsgType.RESULT, 2, 20) + frame(MsgType.RESULT, 9, 0)
    assert calls.feed(data) is True  # 2 ended; 9 is nobody's (a caller that gave up)
    assert b.frames == [(MsgType.RESULT, 20, True)] and c.frames == [(MsgType.CHUNK, "x", False)]
    assert (len(calls), calls.load(), calls.batched) == (2, 2, set())
    assert calls.feed(frame(MsgType.CHUNK, 3, "y")) is False  # a stream's item ends nothing
    calls.forget(1)
    assert calls.feed(frame(MsgType.RESULT, 1, 10)) is False and a.frames == []
    calls.fail(DirtyWorkerLostError("gone"))
    assert isinstance(c.error, DirtyWorkerLostError) and len(calls) == 0 and calls.load() == 0


def test_a_close_of_the_own_client_fails_its_calls_and_lets_guests_finish() -> None:
    from gcorn.dirty.errors import DirtyConnectionError

    calls = InFlight(1 << 20)
    own, guest, own_batched = Seen(), Seen(), Seen()
    calls.add(1, own)
    calls.add(2, guest, guest=True)  # handed off for another client's caller
    calls.add(3, own_batched, batched=True)
    calls.fail_own(DirtyConnectionError("dirty client closed"))
    assert isinstance(own.error, DirtyConnectionError) and isinstance(own_batched.error, DirtyConnectionError)
    assert guest.error is None and calls.guests == {2} and len(calls) == 1 and not calls.batched
    # the own calls' late replies are dropped; the guest's ends it, and no guest is left
    assert calls.feed(frame(MsgType.RESULT, 1, "late") + frame(MsgType.RESULT, 2, "ok"))
    assert guest.frames == [(MsgType.RESULT, "ok", True)] and not calls.guests and len(calls) == 0
    calls.add(4, Seen(), guest=True)
    calls.forget(4)  # a guest that gave up is no guest any more
    assert not calls.guests
