"""The stash tables in Redis (``dirty_stash_backend = "redis://host:port/db"``).

Layout, under the URL's prefix P (default ``gcorn:stash``):

- ``P:<table>``: one hash per table, a field per key;
- ``P-ttl:<table>``: a sorted set of the table's fields that have a TTL, scored
  by their deadline in Redis's own clock (milliseconds, ``TIME``), since
  Redis 7.0 has no per-field expiry (HEXPIRE came in 7.4);
- ``P-tables``: the set of table names, so an empty table still exists
  (``ensure``) as it does in the arbiter's store.

Every operation is one Lua script (EVALSHA), so it is atomic across every
arbiter and every host sharing the Redis; the script first drops the table's
expired fields, so nothing expired is ever read. Counters are HINCRBY (ints,
64-bit in Redis) and HINCRBYFLOAT (floats). Keys that are str are stored as
their UTF-8 text; ints in 64 bits and finite floats as Redis numbers (so
``incr`` works on them); every other key or value is coded with the pool's
``dirty_codec`` behind a one-byte tag.

Every Redis call is bounded by the URL's ``timeout`` (connect and read). A
Redis that is down, refuses, or does not answer makes the call raise
DirtyStashError naming the backend; the connection pool reconnects on the
next call, so nothing needs a restart once Redis is back.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from .errors import DirtyProtocolError, DirtyStashError, StashError
from .stash_store import (
    check_incr,
    check_request,
    check_ttl,
    match_keys,
    missing_table,
    not_a_number,
)
from .stash_url import StashBackendURL

log = logging.getLogger("gcorn.dirty.stash")

# KEYS: the table set, the table's hash, the table's TTL set.
# ARGV: op, table, field, value, extra.
_SCRIPT = """
local reg, h, x = KEYS[1], KEYS[2], KEYS[3]
local op, tbl, f, v, extra = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function expire()
  local now = now_ms()
  while true do
    local dead = redis.call('ZRANGEBYSCORE', x, '-inf', now, 'LIMIT', 0, 500)
    if #dead == 0 then return now end
    redis.call('HDEL', h, unpack(dead))
    redis.call('ZREM', x, unpack(dead))
  end
end
local function known()
  return redis.call('SISMEMBER', reg, tbl) == 1
end
if op == 'put' then
  local now = expire()
  redis.call('SADD', reg, tbl)
  redis.call('HSET', h, f, v)
  if extra == '' then redis.call('ZREM', x, f) else redis.call('ZADD', x, now + tonumber(extra), f) end
  return 1
elseif op == 'get' then
  expire()
  return redis.call('HGET', h, f)
elseif op == 'incr' then
  expire()
  redis.call('SADD', reg, tbl)
  if extra == 'i' then
    local r = redis.pcall('HINCRBY', h, f, v)
    if type(r) ~= 'table' or not r.err then return {'i', redis.call('HGET', h, f)} end
    if not string.find(r.err, 'not an integer', 1, true) then return r end
  end
  local r = redis.pcall('HINCRBYFLOAT', h, f, v)
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'float', 1, true) and not string.find(r.err, 'NaN', 1, true) then
      return {'n', redis.call('HGET', h, f)}
    end
    return r
  end
  if not string.find(r, '[%.eEn]') then
    r = r .. '.0'  -- a float stays a float when its value is whole
    redis.call('HSET', h, f, r)
  end
  return {'f', r}
elseif op == 'delete' then
  expire()
  redis.call('ZREM', x, f)
  return redis.call('HDEL', h, f)
elseif op == 'exists' then
  if not known() then return 0 end
  if extra == '' then return 1 end
  expire()
  return redis.call('HEXISTS', h, f)
elseif op == 'keys' then
  expire()
  return redis.call('HKEYS', h)
elseif op == 'items' then
  if not known() then return redis.error_reply('GCORN_NO_TABLE') end
  expire()
  return redis.call('HGETALL', h)
elseif op == 'clear' then
  if not known() then return redis.error_reply('GCORN_NO_TABLE') end
  redis.call('DEL', h, x)
  return 1
elseif op == 'info' then
  if not known() then return redis.error_reply('GCORN_NO_TABLE') end
  expire()
  return redis.call('HLEN', h)
elseif op == 'len' then
  expire()
  return redis.call('HLEN', h)
elseif op == 'ensure' then
  redis.call('SADD', reg, tbl)
  return 1
elseif op == 'delete_table' then
  local r = redis.call('SREM', reg, tbl)
  redis.call('DEL', h, x)
  return r
end
return redis.error_reply('GCORN_BAD_OP')
"""

_OPS = frozenset({"put", "get", "incr", "delete", "exists", "keys", "items", "clear", "info", "len",
                  "ensure", "delete_table"})
_INT64 = (-(2**63), 2**63)
# Tags of coded keys and values; a Redis number never starts with "~".
_CODED = {"safe": b"~s", "pickle": b"~p"}
_STR_KEY = b"s"
_CODED_KEY = b"k"


class RedisStashStore:
    """The stash tables in one Redis database (see the module docstring for the layout)."""

    blocking = True

    def __init__(self, url: StashBackendURL, codec: Any, tables: list[str] | None = None) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.name = url.display
        self.codec = codec
        self._tag: bytes = _CODED.get(codec.name, b"~" + codec.name[:1].encode())
        self._errors: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
        self._response_error: type[BaseException] = redis.ResponseError
        self._redis_error: type[BaseException] = redis.RedisError
        common: dict[str, Any] = {
            "db": url.db, "username": url.username, "password": url.password,
            "socket_timeout": url.timeout, "socket_connect_timeout": url.timeout,
            "client_name": "gcorn-dirty-stash",
            # A connection that Redis dropped (a restart) is found dead on its next use:
            # one immediate retry on a fresh connection, so that call succeeds; a Redis
            # that is really down refuses again at once. A timeout is not retried.
            "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        }
        if url.scheme == "unix":
            self.redis = redis.Redis(unix_socket_path=url.path, **common)
        else:
            self.redis = redis.Redis(host=url.host, port=url.port, ssl=url.scheme == "rediss",
                                     **common)
        self._script = self.redis.register_script(_SCRIPT)
        self._registry = f"{url.prefix}-tables"
        # Tables the apps declare (``stashes``): registered as soon as Redis answers.
        self._pending = sorted(set(tables or []))
        try:
            self._register_pending()
        except DirtyStashError as exc:
            log.warning("%s; the stash calls fail until it answers", exc)
        else:
            log.info("dirty stash in Redis at %s (prefix %r)", self.name, url.prefix)

    # ----------------------------------------------------------- the store API
    def handle(self, request: Any) -> Any:
        """Run one operation ``[op, table, key, value, extra]`` in Redis and return its result."""
        op, table, key, value, extra = check_request(request)
        if op != "tables" and op not in _OPS:
            raise StashError(f"unknown stash operation {op!r}")
        try:
            if self._pending:
                self._register_pending()
            return self._run(op, table, key, value, extra)
        except self._errors as exc:
            raise self._unreachable(exc) from None
        except self._response_error as exc:
            raise self._refused(table, exc) from None
        except self._redis_error as exc:  # a reply redis-py could not read, say
            raise DirtyStashError(f"stash backend {self.name} failed: {type(exc).__name__}: {exc}",
                                  {"backend": self.name, "cause": type(exc).__name__}) from None

    def close(self) -> None:
        """Close the connections to Redis."""
        self.redis.close()

    # -------------------------------------------------------------- internals
    def _register_pending(self) -> None:
        try:
            if self._pending:
                self.redis.sadd(self._registry, *self._pending)
        except self._errors as exc:
            raise self._unreachable(exc) from None
        self._pending = []

    def _unreachable(self, exc: BaseException) -> DirtyStashError:
        return DirtyStashError(f"stash backend {self.name} unreachable: {exc}",
                               {"backend": self.name, "cause": type(exc).__name__})

    def _refused(self, table: str, exc: BaseException) -> StashError:
        text = str(exc)
        if "GCORN_NO_TABLE" in text:
            return missing_table(table)
        if "overflow" in text or "NaN or Infinity" in text:
            return StashError(f"stash incr in {table!r}: {text} (Redis counters are 64-bit ints "
                              "and finite floats)")
        return DirtyStashError(f"stash backend {self.name} refused the operation: {text}",
                               {"backend": self.name, "cause": type(exc).__name__})

    def _call(self, op: str, table: str, field: bytes = b"", value: bytes = b"",
              extra: str = "") -> Any:
        p = self.url.prefix
        keys = [self._registry, f"{p}:{table}", f"{p}-ttl:{table}"]
        return self._script(keys=keys, args=[op, table, field, value, extra])

    def _run(self, op: str, table: str, key: Any, value: Any, extra: Any) -> Any:
        if op == "tables":
            names: Any = self.redis.smembers(self._registry)
            return sorted(n.decode("utf-8", "replace") for n in names)
        if op == "put":
            ttl = check_ttl(extra)
            ttl_ms = "" if ttl is None else str(max(1, math.ceil(ttl * 1000)))
            self._call("put", table, self._field(key), self._value(value), ttl_ms)
            return None
        if op == "get":
            raw = self._call("get", table, self._field(key))
            return extra if raw is None else self._load(table, key, raw)
        if op == "incr":
            return self._incr(table, key, value)
        if op == "delete":
            return bool(self._call("delete", table, self._field(key)))
        if op == "exists":
            return bool(self._call("exists", table, self._field(key), b"", "k" if extra else ""))
        if op == "keys":
            return match_keys([self._key(f) for f in self._call("keys", table)], extra)
        if op == "items":
            flat = self._call("items", table)
            return [[self._key(flat[i]), self._load(table, None, flat[i + 1])]
                    for i in range(0, len(flat), 2)]
        if op == "info":
            return {"name": table, "size": int(self._call("info", table))}
        if op == "len":
            return int(self._call("len", table))
        if op == "delete_table":
            return bool(self._call("delete_table", table))
        self._call(op, table)  # clear, ensure
        return None

    def _incr(self, table: str, key: Any, n: Any) -> int | float:
        check_incr(n)
        if not math.isfinite(n):
            raise StashError(f"stash incr needs a finite number, got {n!r}")
        kind, raw = self._call("incr", table, self._field(key), repr(n).encode(),
                               "i" if type(n) is int else "f")
        if kind == b"i":
            return int(raw)
        if kind == b"f":
            return float(raw)
        raise not_a_number(table, key, self._load(table, key, raw))

    # Keys: str as UTF-8 behind "s", anything else coded behind "k".
    def _field(self, key: Any) -> bytes:
        if type(key) is str:
            try:
                return _STR_KEY + key.encode("utf-8")
            except UnicodeEncodeError:
                pass  # lone surrogates: coded instead
        return _CODED_KEY + self._encode(key)

    def _key(self, field: bytes) -> Any:
        if field[:1] == _STR_KEY:
            return field[1:].decode("utf-8")
        return self._decode(field[1:], None, "a key")

    # Values: 64-bit ints and finite floats as Redis numbers, anything else coded behind a tag.
    def _value(self, value: Any) -> bytes:
        if type(value) is int and _INT64[0] <= value < _INT64[1]:
            return str(value).encode()
        if type(value) is float and math.isfinite(value):
            return repr(value).encode()
        return self._tag + self._encode(value)

    def _load(self, table: str, key: Any, raw: bytes) -> Any:
        if raw[:1] != b"~":
            try:
                text = raw.decode("ascii")
                try:
                    return int(text)
                except ValueError:
                    return float(text)
            except ValueError:
                raise StashError(f"the value under {key!r:.100} in {table!r} in {self.name} was "
                                 f"not written by gcorn-dirty ({raw[:40]!r})") from None
        tag = raw[:2]
        if tag == self._tag or tag == _CODED["safe"]:
            # A safe-coded value reads in any pool; a pickled one only where pickle is the codec.
            codec = self.codec if tag == self._tag else _safe_codec()
            return self._decode(raw[2:], codec, f"the value under {key!r:.100} in {table!r}")
        raise StashError(f"the value under {key!r:.100} in {table!r} was written by a pool with "
                         f"another dirty_codec (tag {tag!r}); this pool uses {self.codec.name!r}")

    def _encode(self, value: Any) -> bytes:
        parts: list[Any] = self.codec.encode(value)
        return bytes(b"".join(bytes(part) for part in parts))

    def _decode(self, data: bytes, codec: Any, what: str) -> Any:
        try:
            return (codec or self.codec).decode(data)
        except DirtyProtocolError as exc:
            raise StashError(f"cannot decode {what} stored in {self.name}: {exc}") from None


def _safe_codec() -> Any:
    from .codec import get_codec
    return get_codec("safe")
