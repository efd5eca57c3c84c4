"""The safe codec and the frame parser, without processes."""

from __future__ import annotations

import os
import pickle
import struct

import pytest

from gcorn.dirty.codec import SafeCodec, get_codec
from gcorn.dirty.errors import DirtyProtocolError
from gcorn.dirty.protocol import (
    HEADER,
    MAGIC,
    MAP_MIN,
    FrameParser,
    MsgType,
    Oversize,
    frame_buffers,
    wire_limit,
)

codec = SafeCodec()


def roundtrip(value):
    return codec.decode(b"".join(bytes(p) for p in codec.encode(value)))


@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**200, -(2**300) + 7, 1.5, float("inf"),
    "", "héllo \U0001f600", b"", b"\x00\xff" * 10, [1, [2, [3]]], (1, "a", b"b"), {"a": 1, 2: [3]},
    {"nested": {"t": (1, 2), "l": [None, True]}}, ("x",) * 1000,
])
def test_roundtrip_keeps_type_and_value(value):
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value)


def test_tuple_and_list_stay_distinct():
    assert roundtrip(([1], (2,))) == ([1], (2,))
    assert type(roundtrip([(1,)])[0]) is tuple


def test_bytes_like_arrive_as_bytes_and_large_ones_are_not_copied():
    big = bytearray(b"z" * 100_000)
    parts = codec.encode(["k", big])
    # the large payload is a view of the caller's buffer, not a copy
    assert any(isinstance(p, memoryview) and p.obj is big for p in parts)
    assert roundtrip(memoryview(b"abc")) == b"abc"
    assert roundtrip(big) == bytes(big)


def test_nan_and_subclasses():
    import enum
    import math

    class Color(enum.IntEnum):
        RED = 3

    assert math.isnan(roundtrip(float("nan")))
    assert roundtrip(Color.RED) == 3 and type(roundtrip(Color.RED)) is int


def test_refuses_arbitrary_objects_with_a_clear_error():
    with pytest.raises(TypeError, match="safe dirty codec cannot encode"):
        codec.encode({"x": object()})
    with pytest.raises(TypeError):
        codec.encode({1, 2})


@pytest.mark.parametrize("data", [b"", b"\x63", b"\x06\x00\x00\x00\x09ab", b"\x08\xff\xff\xff\xff",
                                  b"\x0a\x00\x00\x00\x01\x08\x00\x00\x00\x00\x00"])
def test_malformed_input_is_a_protocol_error(data):
    with pytest.raises(DirtyProtocolError):
        codec.decode(data)


def test_trailing_bytes_and_deep_nesting_are_refused():
    with pytest.raises(DirtyProtocolError, match="trailing"):
        codec.decode(b"\x00\x00")
    deep = b"\x08\x00\x00\x00\x01" * 200 + b"\x00"
    with pytest.raises(DirtyProtocolError, match="nested"):
        codec.decode(deep)


def test_pickle_bytes_are_not_accepted_by_the_safe_codec():
    with pytest.raises(DirtyProtocolError):
        codec.decode(pickle.dumps(object()))


def test_pickle_codec_is_opt_in():
    assert get_codec("pickle").decode(b"".join(get_codec("pickle").encode({1, 2}))) == {1, 2}
    with pytest.raises(ValueError, match="unknown dirty codec"):
        get_codec("json")


def test_numpy_arrays_travel_with_dtype_and_shape():
    np = pytest.importorskip("numpy")
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = roundtrip({"a": arr})["a"]
    assert out.dtype == arr.dtype and out.shape == (3, 4) and (out == arr).all()


def test_numpy_edge_arrays_round_trip_exactly():
    np = pytest.importorskip("numpy")
    point = np.dtype([("x", "<f8"), ("y", ">i4"), ("tag", "S3"), ("grid", "<u2", (2, 2))])
    nested = np.dtype([("p", point), ("ok", "?")], align=True)
    cases = [
        np.array([], dtype=np.float64),
        np.zeros((0, 3), dtype=np.int16),
        np.zeros((2, 0, 4), dtype=">u4"),
        np.array(7, dtype=np.int64),  # 0-d: an array, not an int
        np.array(2.5, dtype=">f4"),
        np.array([(1.5, -2, b"abc", [[1, 2], [3, 4]])], dtype=point),
        np.zeros(3, dtype=nested),
        np.array((0.5, 1, b"z", [[0, 0], [0, 9]]), dtype=point),  # 0-d and structured
        np.arange(6, dtype=np.complex64).reshape(2, 3)[:, ::2],  # not contiguous
        np.array([True, False]),
        np.array(["ab", "c"], dtype="<U2"),
    ]
    for arr in cases:
        out = roundtrip(arr)
        assert type(out) is np.ndarray, (arr, out)
        assert out.dtype == arr.dtype and out.shape == arr.shape, (arr.dtype, out.dtype, arr.shape, out.shape)
        assert out.tobytes() == np.ascontiguousarray(arr).tobytes()
        assert out.flags.writeable
    assert roundtrip(np.float64(1.5)) == 1.5  # numpy scalars travel as Python numbers
    with pytest.raises(TypeError, match="Python objects"):
        codec.encode(np.array([object()]))
    with pytest.raises(TypeError, match="Python objects"):
        codec.encode(np.zeros(2, dtype=[("a", "O")]))

    def ndarray_bytes(dtype, shape, data) -> bytes:
        enc = [b"".join(bytes(p) for p in codec.encode(v)) for v in (dtype, shape, data)]
        return bytes([0x0B]) + b"\x00\x00\x00\x00" + b"".join(enc)

    assert codec.decode(ndarray_bytes("<i4", (2,), b"\x01\x00\x00\x00" * 2)).tolist() == [1, 1]
    with pytest.raises(DirtyProtocolError, match="does not match its shape"):
        codec.decode(ndarray_bytes("<i4", (5,), b"\x00" * 16))
    with pytest.raises(DirtyProtocolError, match="Python objects"):
        codec.decode(ndarray_bytes("O", (1,), b"\x00" * 8))
    with pytest.raises(DirtyProtocolError, match="bad ndarray dtype"):
        codec.decode(ndarray_bytes({"names": ["a"]}, (1,), b"\x00"))
    with pytest.raises(DirtyProtocolError, match="bad ndarray shape"):
        codec.decode(ndarray_bytes("<i4", (-1,), b""))


def frames_of(value_parts, rid=7, mtype=MsgType.RESULT):
    return b"".join(bytes(b) for b in frame_buffers(mtype, rid, value_parts))


def test_parser_reassembles_frames_fed_byte_by_byte():
    data = frames_of(codec.encode("one"), 1) + frames_of(codec.encode(b"x" * 300_000), 2)
    parser = FrameParser()
    got = []
    step = 4093
    for i in range(0, len(data), step):
        got += parser.feed(data[i:i + step])
    assert [(t, r) for t, r, _ in got] == [(MsgType.RESULT, 1), (MsgType.RESULT, 2)]
    assert codec.decode(got[1][2]) == b"x" * 300_000


def test_parser_returns_every_complete_frame_of_one_read_and_keeps_the_partial_tail():
    # 64 frames in one read, the last cut short: 63 come out at once, the 64th with the rest.
    data = b"".join(frames_of(codec.encode(bytes([i]) * 4096), i) for i in range(64))
    parser = FrameParser()
    got = parser.feed(data[:-10])
    assert [r for _t, r, _p in got] == list(range(63))
    assert all(type(p) is bytes and codec.decode(p) == bytes([r]) * 4096 for _t, r, p in got)
    got = parser.feed(memoryview(data[-10:]))
    assert [(r, codec.decode(p)) for _t, r, p in got] == [(63, bytes([63]) * 4096)]
    assert parser.feed(b"") == [] and not parser.buf


def test_encode_call_is_encode_frame_of_the_call():
    for args, kwargs, timeout in [((b"x" * 4096,), {}, 30.0), ((1, "a", [1, 2]), {"k": 1}, None),
                                  ((bytes(40_000), 2), {}, 1)]:
        for c in (codec, get_codec("pickle")):
            want, size = c.encode_frame(MsgType.BATCH, 5, ["app:X", "act", args, kwargs, timeout])
            got, got_size = c.encode_call(MsgType.BATCH, 5, "app:X", "act", args, kwargs, timeout)
            assert b"".join(bytes(b) for b in got) == b"".join(bytes(b) for b in want)
            assert got_size == size


def test_parser_skips_an_oversize_frame_and_stays_in_sync():
    parser = FrameParser(max_size=1024)
    assert wire_limit(1024) == 1024 + 64 + 65536  # the data's limit plus room for the encoding
    data = frames_of(codec.encode(b"y" * 70000), 1) + frames_of(codec.encode("after"), 2)
    got = []
    for i in range(0, len(data), 1000):
        got += parser.feed(data[i:i + 1000])
    assert isinstance(got[0][2], Oversize) and got[0][2].size > 70000 and got[0][2].limit == 1024
    assert codec.decode(got[1][2]) == "after"


def test_parser_rejects_a_foreign_peer():
    with pytest.raises(DirtyProtocolError, match="magic"):
        FrameParser().feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = HEADER.pack(MAGIC, 9, 1, 0, 1)
    with pytest.raises(DirtyProtocolError, match="version"):
        FrameParser().feed(head)
    assert struct.calcsize(">2sBBIQ") == 16


def test_parser_grows_a_large_payload_as_it_arrives():
    # 600 KiB: a growing buffer; 3 MiB: a mapping; fed in pieces, both come back whole.
    for size in (600 * 1024, 3 * 1024 * 1024):
        blob = os.urandom(size)
        data = frames_of(codec.encode(blob), 3) + frames_of(codec.encode("next"), 4)
        parser = FrameParser()
        got = parser.feed(data[:100])
        assert got == [] and parser.wants_body()
        if size < MAP_MIN:
            assert len(parser._body) < 300 * 1024  # no buffer of the declared size yet
        for i in range(100, len(data), 65536):
            got += parser.feed(data[i:i + 65536])
        assert [(t, r) for t, r, _ in got] == [(MsgType.RESULT, 3), (MsgType.RESULT, 4)]
        assert codec.decode(got[0][2]) == blob and codec.decode(got[1][2]) == "next"
