"""Value codecs for dirty-pool frames.

The default ``safe`` codec is a small tagged binary format (see PROTOCOL.md):
it can only ever build None, bool, int, float, str, bytes, list, tuple, dict
(and numpy arrays when numpy is importable), so decoding a peer's bytes never
runs code. ``pickle`` is opt-in for trusted deployments.

Encoders return a list of buffers: large bytes-like values are appended as
memoryviews of the caller's object, so they reach ``socket.sendmsg`` without
being copied into an intermediate buffer.
"""

from __future__ import annotations

import mmap
import pickle
import struct
from typing import Any

from .errors import DirtyProtocolError
from .protocol import HEADER, HEADER_SIZE, MAGIC, VERSION, frame_buffers, payload_size, wire_limit

NONE, TRUE, FALSE, INT64, BIGINT, FLOAT, STR, BYTES, LIST, TUPLE, DICT, NDARRAY = range(12)

MAX_DEPTH = 64
# Bytes-like values at least this big travel as their own buffer (no copy).
ZERO_COPY_MIN = 16 * 1024

_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")
_U32 = struct.Struct(">I")
_TAG_U32 = struct.Struct(">BI")
_TAG_I64 = struct.Struct(">Bq")
_TAG_F64 = struct.Struct(">Bd")
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class SafeCodec:
    """The default codec: tagged binary values, never executes peer code."""

    name = "safe"

    def encode(self, value: Any) -> list[Any]:
        """Encode one value into a list of buffers (bytes, bytearray or memoryview)."""
        parts: list[Any] = []
        buf = bytearray()
        buf = _encode(value, buf, parts, 0)
        if buf:
            parts.append(buf)
        return parts

    def encode_frame(self, mtype: int, rid: int, value: Any) -> tuple[list[Any], int]:
        """Encode one frame (header + value); return its buffers and payload size."""
        head = bytearray(HEADER_SIZE)
        parts: list[Any] = []
        last = _encode(value, head, parts, 0)
        return _finish_frame(mtype, rid, head, parts, last)

    def encode_call(self, mtype: int, rid: int, app: str, action: str, args: tuple[Any, ...],
                    kwargs: dict[str, Any], timeout: float | None) -> tuple[list[Any], int]:
        """:meth:`encode_frame` of a call ``[app, action, args, kwargs, timeout]``.

        The same bytes as encode_frame; the list's tag and the two names, the same for
        every call of an action, are encoded once and kept.
        """
        prefix = _CALL_PREFIXES.get((app, action))
        if prefix is None:
            if type(app) is not str or type(action) is not str:
                return self.encode_frame(mtype, rid, [app, action, args, kwargs, timeout])
            b = bytearray(_TAG_U32.pack(LIST, 5))
            _encode(action, _encode(app, b, [], 1), [], 1)
            prefix = bytes(b)
            if len(_CALL_PREFIXES) < 4096:  # names come from code, but do not grow without bound
                _CALL_PREFIXES[(app, action)] = prefix
        head = bytearray(HEADER_SIZE)
        head += prefix
        parts: list[Any] = []
        last = _encode(args, head, parts, 1)
        last = _encode(kwargs, last, parts, 1) if kwargs else _append(last, _EMPTY_DICT)
        last = _encode(timeout, last, parts, 1)
        return _finish_frame(mtype, rid, head, parts, last)

    def decode(self, data: Any) -> Any:
        """Decode one value from a bytes-like object; trailing bytes are an error."""
        if type(data) is not bytes and type(data) is not bytearray and type(data) is not mmap.mmap:
            data = memoryview(data).cast("B").tobytes()
        try:
            value, end = _decode(data, 0, 0)
        except (IndexError, struct.error, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise DirtyProtocolError(f"malformed value: {exc}") from None
        if end != len(data):
            raise DirtyProtocolError(f"{len(data) - end} trailing bytes after value")
        return value


class PickleCodec:
    """Opt-in codec for trusted peers: any picklable value, protocol 5 out-of-band buffers."""

    name = "pickle"

    def encode(self, value: Any) -> list[Any]:
        """Pickle one value into a single buffer."""
        return [pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)]

    def encode_frame(self, mtype: int, rid: int, value: Any) -> tuple[list[Any], int]:
        """Encode one frame (header + pickled value); return its buffers and payload size."""
        bufs = frame_buffers(mtype, rid, self.encode(value))
        return bufs, payload_size(bufs)

    def encode_call(self, mtype: int, rid: int, app: str, action: str, args: tuple[Any, ...],
                    kwargs: dict[str, Any], timeout: float | None) -> tuple[list[Any], int]:
        """:meth:`encode_frame` of a call ``[app, action, args, kwargs, timeout]``."""
        return self.encode_frame(mtype, rid, [app, action, args, kwargs, timeout])

    def decode(self, data: Any) -> Any:
        """Unpickle one value (runs code from the peer: trusted deployments only)."""
        try:
            return pickle.loads(data)
        except Exception as exc:  # any unpickling failure is a protocol error
            raise DirtyProtocolError(f"cannot unpickle value: {exc!r}") from None


def content_size(value: Any, depth: int = 0) -> int | None:
    """The data ``value`` carries, as ``dirty_max_message_size`` counts it; None if unknown.

    Bytes of str (UTF-8), bytes and numpy arrays, 8 per number; containers add
    nothing of their own (tags and lengths are the encoding's, not the data).
    """
    if depth > MAX_DEPTH:
        return None
    t = type(value)
    if t is bytes or t is bytearray:
        return len(value)
    if t is str:
        return len(value.encode("utf-8", "surrogatepass"))
    if value is None or t is bool:
        return 0
    if t is int:
        return 8 if _I64_MIN <= value <= _I64_MAX else (value.bit_length() + 8) // 8
    if t is float:
        return 8
    if isinstance(value, memoryview):
        return value.nbytes
    if t is list or t is tuple or t is dict:
        items = [x for kv in value.items() for x in kv] if t is dict else value
        total = 0
        for item in items:
            n = content_size(item, depth + 1)
            if n is None:
                return None
            total += n
        return total
    if type(value).__module__ == "numpy" and hasattr(value, "nbytes"):
        return int(value.nbytes)
    base: Any
    for base in (bool, int, float, str, bytes, bytearray, list, tuple, dict):
        if isinstance(value, base):
            return content_size(base(value), depth)
    return None


def check_size(value: Any, size: int, limit: int) -> int | None:
    """Return the size to refuse ``value`` with (its frame payload is ``size``), or None if it fits."""
    if size <= limit:
        return None  # the frame fits whole: its data does too
    if size > wire_limit(limit):
        return size
    data = content_size(value)
    if data is None:
        return size  # no way to tell data from encoding: the whole frame counts
    return data if data > limit else None


CODECS: dict[str, Any] = {"safe": SafeCodec(), "pickle": PickleCodec()}


def get_codec(name: str) -> Any:
    """Return the codec named ``name`` (``safe`` or ``pickle``)."""
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown dirty codec {name!r}; choose one of {sorted(CODECS)}") from None


# (app, action) -> the encoded start of their calls (see SafeCodec.encode_call)
_CALL_PREFIXES: dict[tuple[str, str], bytes] = {}
_EMPTY_DICT = _TAG_U32.pack(DICT, 0)


def _finish_frame(mtype: int, rid: int, head: bytearray, parts: list[Any],
                  last: bytearray) -> tuple[list[Any], int]:
    """Close a frame encoded into ``head`` (then ``parts``, ``last``): write its header."""
    if last is head or last:
        parts.append(last)
    if parts[0] is not head:
        parts.insert(0, head)
    size = -HEADER_SIZE
    for p in parts:
        size += p.nbytes if type(p) is memoryview else len(p)
    HEADER.pack_into(head, 0, MAGIC, VERSION, mtype, size, rid)
    return parts, size


def _append(buf: bytearray, data: bytes) -> bytearray:
    buf += data
    return buf


def _add_blob(tag: int, data: Any, buf: bytearray, parts: list[Any]) -> bytearray:
    mv = data if isinstance(data, memoryview) else memoryview(data)
    if not mv.c_contiguous:
        mv = memoryview(mv.tobytes())
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    n = mv.nbytes
    buf += _TAG_U32.pack(tag, n)
    if n < ZERO_COPY_MIN:
        buf += mv
        return buf
    parts.append(buf)
    parts.append(mv)
    return bytearray()


def _encode(v: Any, buf: bytearray, parts: list[Any], depth: int) -> bytearray:
    if depth > MAX_DEPTH:
        raise DirtyProtocolError(f"value nested deeper than {MAX_DEPTH} levels")
    t = type(v)
    if t is str:
        b = v.encode("utf-8", "surrogatepass")
        buf += _TAG_U32.pack(STR, len(b))
        buf += b
    elif t is int:
        if _I64_MIN <= v <= _I64_MAX:
            buf += _TAG_I64.pack(INT64, v)
        else:
            b = v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True)
            buf += _TAG_U32.pack(BIGINT, len(b))
            buf += b
    elif v is None:
        buf.append(NONE)
    elif t is bool:
        buf.append(TRUE if v else FALSE)
    elif t is float:
        buf += _TAG_F64.pack(FLOAT, v)
    elif t is bytes or t is bytearray or t is memoryview:
        buf = _add_blob(BYTES, v, buf, parts)
    elif t is list or t is tuple:
        buf += _TAG_U32.pack(LIST if t is list else TUPLE, len(v))
        for item in v:
            buf = _encode(item, buf, parts, depth + 1)
    elif t is dict:
        buf += _TAG_U32.pack(DICT, len(v))
        for key, item in v.items():
            buf = _encode(key, buf, parts, depth + 1)
            buf = _encode(item, buf, parts, depth + 1)
    else:
        buf = _encode_other(v, buf, parts, depth)
    return buf


def _encode_other(v: Any, buf: bytearray, parts: list[Any], depth: int) -> bytearray:
    """Subclasses of the base types, and numpy values when numpy is in use."""
    module = type(v).__module__
    if module == "numpy" and hasattr(v, "__array_interface__") and hasattr(v, "shape"):
        import numpy

        if not isinstance(v, numpy.ndarray):  # a numpy scalar (float64(1.5), int32(7)...)
            return _encode(v.item(), buf, parts, depth)
        if v.dtype.hasobject:
            raise TypeError("numpy arrays of Python objects cannot be sent by the safe codec")
        buf += _TAG_U32.pack(NDARRAY, 0)
        buf = _encode(_dtype_spec(v.dtype), buf, parts, depth + 1)
        buf = _encode(tuple(int(n) for n in v.shape), buf, parts, depth + 1)
        # Flat bytes in C order, as a 1-d uint8 view: any dtype (structured ones too), any
        # shape (0-d and empty too) gives a plain byte buffer, copied only if not contiguous.
        flat: Any = numpy.ascontiguousarray(v).reshape(-1).view(numpy.uint8)
        return _add_blob(BYTES, memoryview(flat), buf, parts)
    base: Any
    for base in (bool, int, float, str, bytes, bytearray, list, tuple, dict):
        if isinstance(v, base):
            return _encode(base(v), buf, parts, depth)
    if isinstance(v, memoryview):
        return _add_blob(BYTES, v, buf, parts)
    raise TypeError(f"the safe dirty codec cannot encode {type(v).__module__}.{type(v).__qualname__}"
                    " (use None, bool, int, float, str, bytes, list, tuple, dict;"
                    " or dirty_codec='pickle' between trusted peers)")


def _decode(data: Any, o: int, depth: int) -> tuple[Any, int]:
    # ``data`` is bytes, bytearray or mmap; struct reads straight from it, slices copy once.
    if depth > MAX_DEPTH:
        raise DirtyProtocolError(f"value nested deeper than {MAX_DEPTH} levels")
    tag = data[o]
    o += 1
    if tag == STR:
        n = _u32(data, o)[0]
        o += 4
        end = o + n
        if end > len(data):
            raise ValueError("str runs past the end of the frame")
        return data[o:end].decode("utf-8", "surrogatepass"), end
    if tag == INT64:
        return _i64(data, o)[0], o + 8
    if tag == LIST or tag == TUPLE:
        n = _u32(data, o)[0]
        o += 4
        if n > len(data) - o:
            raise ValueError("sequence count larger than the frame")
        items: list[Any] = []
        append = items.append
        for _ in range(n):
            item, o = _decode(data, o, depth + 1)
            append(item)
        return (items if tag == LIST else tuple(items)), o
    if tag == BYTES:
        n = _u32(data, o)[0]
        o += 4
        end = o + n
        if end > len(data):
            raise ValueError("bytes run past the end of the frame")
        if type(data) is bytes:
            return data[o:end], end
        return memoryview(data)[o:end].tobytes(), end
    if tag == NONE:
        return None, o
    if tag == TRUE:
        return True, o
    if tag == FALSE:
        return False, o
    if tag == DICT:
        n = _u32(data, o)[0]
        o += 4
        if n > len(data) - o:
            raise ValueError("dict count larger than the frame")
        out = {}
        for _ in range(n):
            key, o = _decode(data, o, depth + 1)
            item, o = _decode(data, o, depth + 1)
            out[key] = item
        return out, o
    if tag == FLOAT:
        return _f64(data, o)[0], o + 8
    if tag == BIGINT:
        n = _u32(data, o)[0]
        o += 4
        end = o + n
        if end > len(data):
            raise ValueError("int runs past the end of the frame")
        return int.from_bytes(data[o:end], "big", signed=True), end
    if tag == NDARRAY:
        return _decode_ndarray(data, o + 4, depth)
    raise ValueError(f"unknown value tag {tag:#x}")


_u32 = _U32.unpack_from
_i64 = _I64.unpack_from
_f64 = _F64.unpack_from


def _dtype_spec(dt: Any) -> Any:
    """A numpy dtype as safe values: its str, or the fields of a structured or subarray dtype."""
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        return ["subarray", _dtype_spec(base), [int(n) for n in shape]]
    if dt.names is not None:
        fields = [dt.fields[name] for name in dt.names]
        return {"names": list(dt.names), "formats": [_dtype_spec(f[0]) for f in fields],
                "offsets": [int(f[1]) for f in fields], "itemsize": int(dt.itemsize)}
    return dt.str


def _dtype_from(spec: Any, numpy: Any, depth: int = 0) -> Any:
    """Rebuild a dtype from :func:`_dtype_spec`'s values (never one holding Python objects)."""
    if depth > MAX_DEPTH:
        raise ValueError("ndarray dtype nested too deep")
    if type(spec) is str:
        dt = numpy.dtype(spec)
    elif type(spec) is list and len(spec) == 3 and spec[0] == "subarray" and type(spec[2]) is list:
        dt = numpy.dtype((_dtype_from(spec[1], numpy, depth + 1), tuple(spec[2])))
    elif type(spec) is dict and set(spec) == {"names", "formats", "offsets", "itemsize"}:
        dt = numpy.dtype({"names": spec["names"], "offsets": spec["offsets"], "itemsize": spec["itemsize"],
                          "formats": [_dtype_from(f, numpy, depth + 1) for f in spec["formats"]]})
    else:
        raise ValueError(f"bad ndarray dtype {spec!r:.100}")
    if dt.hasobject:
        raise ValueError(f"refusing ndarray dtype {dt!r:.100}: it holds Python objects")
    return dt


def _decode_ndarray(data: Any, o: int, depth: int) -> tuple[Any, int]:
    dtype, o = _decode(data, o, depth + 1)
    shape, o = _decode(data, o, depth + 1)
    if data[o] != BYTES:
        raise ValueError("ndarray data must be bytes")
    (n,) = _U32.unpack_from(data, o + 1)
    start = o + 5
    end = start + n
    if end > len(data):
        raise ValueError("ndarray data runs past the end of the frame")
    try:
        import numpy
    except ImportError:
        raise DirtyProtocolError("received a numpy array but numpy is not installed here") from None
    try:
        dt = _dtype_from(dtype, numpy)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"bad ndarray dtype {dtype!r:.100}: {exc}") from None
    if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f"bad ndarray shape {shape!r:.100}")
    count = 1
    for n in shape:
        count *= n
    if count * dt.itemsize != end - start:
        raise ValueError(f"ndarray data of {end - start} bytes does not match its shape {shape} "
                         f"and dtype {dt}")
    # A bytearray: the array comes back writable, as it left.
    arr = numpy.frombuffer(bytearray(memoryview(data)[start:end]), dtype=dt, count=count).reshape(shape)
    return arr, end
