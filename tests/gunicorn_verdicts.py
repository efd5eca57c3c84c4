"""gcorn's request parser (both backends) and gunicorn 27's own, in process: their verdicts
on the same bytes, and the declared differences that explain where they part.

A verdict is what a parser makes of a byte stream in gunicorn's terms: the
requests it reads (method, target, path, query, version, header fields, body,
trailers), then the refusal (status class: 4xx or 5xx, or "incomplete") or
none. packages/http-core/README.md declares, in its one table "Differences
from gunicorn", every way the verdicts (or, over TCP, the answers) may part;
each row's id has a recogniser: here for the parser rows, in
tests/test_e2e_gunicorn_parity.py for the rows of gunicorn's asgi worker.
Used by tests/test_gunicorn_differential.py and tests/test_e2e_gunicorn_parity.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gcorn.http import Body, IncompleteMessage, ParseError, RequestHead, RequestParser

gunicorn_config = pytest.importorskip("gunicorn.config", reason="gunicorn==27.0.1 is a test dependency")
from gunicorn.http import errors as gunicorn_errors  # noqa: E402
from gunicorn.http.parser import RequestParser as GunicornParser  # noqa: E402

README = Path(__file__).resolve().parents[1] / "packages" / "http-core" / "README.md"
BACKENDS = ["python", "httptools"]
# gcorn's own parser settings (gunicorn has no such name), with the default of
# gcorn's server (what its workers pass the parser), not the parser's own.
GCORN_ONLY = {"permit_unconventional_request_target": True}

# A verdict: one ("request", ...) tuple per request read, then at most one
# ("refused", status) where the parser gave up ("incomplete": the bytes ended
# inside a request).
Verdict = list[tuple[Any, ...]]
Options = dict[str, Any]

_CFG = gunicorn_config.Config()
_CFG.set("http_parser", "python")  # the parser gunicorn always has (no gunicorn_h1c here)
_PEER = ("203.0.113.9", 40000)  # not a trusted proxy: no scheme or forwarder header logic


def _gunicorn_status(exc: BaseException) -> int | str:
    """The status gunicorn's workers answer for a parser exception (workers/base.py)."""
    if isinstance(exc, gunicorn_errors.NoMoreData):
        return "incomplete"
    if isinstance(exc, gunicorn_errors.UnsupportedTransferCoding):
        return 501
    if isinstance(exc, gunicorn_errors.LimitRequestLine):
        return 414
    if isinstance(exc, gunicorn_errors.ExpectationFailed):
        return 417
    if isinstance(exc, gunicorn_errors.LimitRequestHeaders):
        return 431
    return 400


def _status_class(status: int | str) -> str:
    """4xx, 5xx or "incomplete": when both refuse, the class is compared (which
    rule a request that breaks two of them is refused for may differ)."""
    return status if isinstance(status, str) else f"{status // 100}xx"


def _latin1(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


_CONFIGS: dict[tuple[tuple[str, Any], ...], Any] = {}


def gunicorn_config_for(options: dict[str, Any]) -> Any:
    """A gunicorn Config with these settings (made once per combination)."""
    key = tuple(sorted(options.items()))
    cfg = _CONFIGS.get(key)
    if cfg is None:
        cfg = _CONFIGS[key] = gunicorn_config.Config()
        cfg.set("http_parser", "python")
        for name, value in options.items():
            cfg.set(name, value)
    return cfg


def gunicorn_verdict(pieces: list[bytes], **options: Any) -> Verdict:
    """What gunicorn's parser makes of the stream, reading each body to its end."""
    options = {name: value for name, value in options.items() if name not in GCORN_ONLY}
    verdict: Verdict = []
    cfg = gunicorn_config_for(options) if options else _CFG
    try:
        for req in GunicornParser(cfg, iter(pieces), _PEER):
            body = b""
            while piece := req.body.read(65536):
                body += piece
            verdict.append((
                "request", req.method.encode("latin-1"), req.uri.encode("latin-1"),
                req.path.encode("latin-1"), req.query.encode("latin-1"), req.version,
                _latin1(req.headers), body, _latin1(req.trailers),
            ))
    except Exception as exc:  # every gunicorn refusal is an exception of its own
        verdict.append(("refused", _status_class(_gunicorn_status(exc))))
    return verdict


def _events(pieces: list[bytes], backend: str, options: dict[str, Any]) -> tuple[list[Any], Any]:
    parser = RequestParser(backend=backend, **options)
    events: list[Any] = []
    try:
        for piece in pieces:
            events += parser.feed(piece)
        events += parser.feed_eof()
    except ParseError as exc:
        return events, exc
    return events, None


def gcorn_verdict(pieces: list[bytes], backend: str, **options: Any) -> Verdict:
    """What gcorn's parser makes of the stream, in gunicorn's terms.

    Names with "_" are left out, as gcorn's workers drop them (header_map =
    drop, gunicorn's default, which gunicorn applies inside its parser). The
    settings gunicorn lacks get the default of gcorn's server unless given.
    """
    options = {**GCORN_ONLY, **options}
    events, error = _events(pieces, backend, options)
    if error is not None:
        # The events of the piece that failed were not returned: read the
        # stream again byte by byte to see every request before the error.
        data = b"".join(pieces)
        events, error = _events([data[i : i + 1] for i in range(len(data))], backend, options)
    verdict: Verdict = []
    head: RequestHead | None = None
    body = b""
    for event in events:
        if isinstance(event, RequestHead):
            head, body = event, b""
        elif isinstance(event, Body):
            body += event.data
        else:
            assert head is not None
            verdict.append((
                "request", head.method, head.target, head.path, head.query, head.version,
                [(n, v) for n, v in head.headers if b"_" not in n], body,
                [(n, v) for n, v in event.trailers if b"_" not in n],
            ))
    if error is not None:
        verdict.append(("refused", "incomplete" if isinstance(error, IncompleteMessage)
                        else _status_class(error.status)))
    return verdict


# ---------------------------------------------------------------------------
# The declared differences: recognisers for the rows of the README table.
# Each gets the whole stream and both verdicts and says whether the first
# point where they part is explained by its rule.


def _first_split(ours: Verdict, theirs: Verdict) -> tuple[Any, Any]:
    """The first entries where the verdicts differ (None past the end of one)."""
    for index in range(max(len(ours), len(theirs))):
        mine = ours[index] if index < len(ours) else None
        other = theirs[index] if index < len(theirs) else None
        if mine != other:
            return mine, other
    return None, None


def _refused(entry: Any) -> bool:
    return entry is not None and entry[0] == "refused"


def _refused_by_both(status_ours: set[Any], status_theirs: set[Any]) -> Callable[..., bool]:
    def check(data: bytes, ours: Verdict, theirs: Verdict, options: Options) -> bool:
        mine, other = _first_split(ours, theirs)
        return (_refused(mine) and _refused(other) and mine[1] in status_ours
                and other[1] in status_theirs)
    return check


def _we_refuse(pattern: bytes, status: set[Any] | None = None) -> Callable[..., bool]:
    """gcorn refuses (with one of status) where gunicorn reads on, and pattern is in the stream."""
    compiled = re.compile(pattern, re.DOTALL)

    def check(data: bytes, ours: Verdict, theirs: Verdict, options: Options) -> bool:
        mine, _ = _first_split(ours, theirs)
        return (_refused(mine) and (status is None or mine[1] in status)
                and compiled.search(data) is not None)
    return check


def _truncated_length_body(data: bytes, ours: Verdict, theirs: Verdict, options: Options) -> bool:
    mine, other = _first_split(ours, theirs)
    return (mine == ("refused", "incomplete") and other is not None
            and other[0] == "request" and theirs[-1] is other)


def _absolute_form_without_path(data: bytes, ours: Verdict, theirs: Verdict, options: Options) -> bool:
    mine, other = _first_split(ours, theirs)
    return (mine is not None and other is not None and mine[0] == other[0] == "request"
            and b"://" in mine[2] and mine[3] == b"/" and other[3] == b""
            and mine[:3] + mine[4:] == other[:3] + other[4:])


def _head_buffer(data: bytes, ours: Verdict, theirs: Verdict, options: Options) -> bool:
    mine, other = _first_split(ours, theirs)
    fields = options.get("limit_request_fields", 100) or 32768
    size = options.get("limit_request_field_size", 8190) or 8190
    return (other == ("refused", "4xx") and mine is not None and mine[0] == "request"
            and len(data) > fields * (size + 2) + 4)


_UNDERSCORE_FIELD = re.compile(rb"\n[^:\r\n]*_[^:\r\n]*:")


def _dropped_fields_count(data: bytes, ours: Verdict, theirs: Verdict, options: Options) -> bool:
    mine, _ = _first_split(ours, theirs)
    limit = options.get("limit_request_fields", 100)
    return (mine == ("refused", "4xx") and 0 < limit < 100
            and _UNDERSCORE_FIELD.search(data) is not None)


_CONNECT_ELSEWHERE = re.compile(rb"CONNECT (?![^ \r\n]*:[0-9]++ )")


def _connect(data: bytes, ours: Verdict, theirs: Verdict, options: Options) -> bool:
    mine, other = _first_split(ours, theirs)
    if mine is None or other is None:
        return False
    if mine == ("refused", "4xx"):
        if other[0] == "request":
            return other[1] == b"CONNECT"
        # Both refuse: gcorn for the target, before it reads the fields.
        return _CONNECT_ELSEWHERE.search(data) is not None
    return (other[0] == mine[0] == "request" and other[1] == mine[1] == b"CONNECT"
            and mine[3:5] == (b"", b"") and mine[5:] == other[5:])


def _not_a_uri(data: bytes, ours: Verdict, theirs: Verdict, options: Options) -> bool:
    mine, other = _first_split(ours, theirs)
    return (mine == ("refused", "4xx") and other is not None and other[0] == "request"
            and b"://" in other[2] and other[3] == other[2].partition(b"?")[0].partition(b"#")[0])


def _cut_short(data: bytes, ours: Verdict, theirs: Verdict, options: Options) -> bool:
    mine, other = _first_split(ours, theirs)
    pair = (("refused", "4xx"), ("refused", "incomplete"))
    return (mine, other) in (pair, pair[::-1])


RECOGNISERS: dict[str, Callable[[bytes, Verdict, Verdict, Options], bool]] = {
    "version-505": _refused_by_both({"5xx"}, {"4xx"}),
    "huge-length": _we_refuse(rb"(?i)(?:content-length:[ \t]*[0-9]{19}|\n0*[0-9a-f]{17})",
                              {"4xx"}),
    "truncated-body": _truncated_length_body,
    "cut-short": _cut_short,
    "absolute-form-without-path": _absolute_form_without_path,
    "head-buffer-limit": _head_buffer,
    "dropped-fields-count": _dropped_fields_count,
}


# The differences that only a gcorn setting turned away from its default
# brings (the README's rows "when: `setting` off"): setting -> {id: recogniser}.
SETTING_RECOGNISERS: dict[str, dict[str, Callable[[bytes, Verdict, Verdict, Options], bool]]] = {
    "permit_unconventional_request_target": {"not-a-uri": _not_a_uri, "connect-target": _connect},
}


ALWAYS = "always"
ASGI_WORKER = "gunicorn `-k asgi`"


def declared_differences() -> dict[str, str]:
    """The ids of the README's one table "Differences from gunicorn", with their "when"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Differences from gunicorn", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| ([^|]+)\|", section, re.MULTILINE)
    return {key: when.strip() for key, when in rows}


def setting_off(setting: str) -> str:
    """The "when" of the rows that apply only with a gcorn setting turned off."""
    return f"`{setting}` off"


def explain(data: bytes, ours: Verdict, theirs: Verdict, options: Options) -> str | None:
    """The id of the declared difference behind this disagreement, if there is one."""
    recognisers = dict(RECOGNISERS)
    for setting, rows in SETTING_RECOGNISERS.items():
        if options.get(setting, GCORN_ONLY[setting]) != GCORN_ONLY[setting]:
            recognisers.update(rows)
    for key, recognise in recognisers.items():
        if recognise(data, ours, theirs, options):
            return key
    return None


def check_stream(pieces: list[bytes], **options: Any) -> None:
    """Fail unless gcorn (both backends) and gunicorn agree, or the README declares why not."""
    data = b"".join(pieces)
    theirs = gunicorn_verdict(pieces, **options)
    declared = declared_differences()
    for backend in BACKENDS:
        ours = gcorn_verdict(pieces, backend, **options)
        if ours == theirs:
            continue
        key = explain(data, ours, theirs, options)
        assert key in declared, (
            f"undeclared disagreement with gunicorn ({backend} backend, {options})\n"
            f"bytes:    {data!r}\ngcorn:    {ours!r}\ngunicorn: {theirs!r}"
        )
