"""Compiled patterns for the RFC 9110 / RFC 9112 grammar that the parser enforces.

Every pattern that can meet hostile input uses possessive quantifiers or atomic
groups (Python 3.11+) so that a failed match never backtracks into a
quadratic search.
"""

from __future__ import annotations

import re

# tchar (RFC 9110 5.6.2) as a character class body.
TCHAR = rb"-!#$%&'*+.^_`|~0-9A-Za-z"
# field-vchar = VCHAR / obs-text (RFC 9110 5.5).
VCHAR_OBS = rb"\x21-\x7e\x80-\xff"

TOKEN = re.compile(rb"[" + TCHAR + rb"]++")

# A field value with its surrounding OWS removed: runs of visible characters
# separated by runs of SP / HTAB (no CTL, no CR, no LF, no NUL).
FIELD_VALUE = re.compile(rb"(?:[" + VCHAR_OBS + rb"]++(?:[ \t]++[" + VCHAR_OBS + rb"]++)*+)?")

# What a server may put in a response field value: no CTL but HTAB, so no CR,
# LF or NUL (gunicorn's rule; surrounding whitespace is harmless there).
RESPONSE_FIELD_VALUE = re.compile(rb"[ \t" + VCHAR_OBS + rb"]*+")

# One header line, name and value captured. Used with findall on a whole
# block: a match starts only at the start of a line and holds exactly one LF,
# so the block is valid exactly when findall finds as many lines as the block
# has LFs (a bad line, a bare CR or LF, or a value with trailing whitespace,
# which is left to the slow path, makes the counts differ).
FIELD_LINE = re.compile(
    rb"(?<![^\n])([" + TCHAR + rb"]++):[ \t]*+([\t " + VCHAR_OBS + rb"]*+)(?<![\t ])\r\n"
)

# request-line = method SP request-target SP HTTP-version (RFC 9112 3).
REQUEST_LINE = re.compile(
    rb"([" + TCHAR + rb"]++) ([\x21-\x7e]++) HTTP/([0-9]\.[0-9])"
)
HTTP_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")

# absolute-form: scheme "://" authority path-abempty [ "?" query ] (RFC 9112 3.2.2).
# The authority may be empty here (``http:///x``, which gunicorn serves too).
ABSOLUTE_FORM = re.compile(rb"([A-Za-z][A-Za-z0-9+.\-]*+)://([^/?]*+)(.*+)", re.DOTALL)
# IPvFuture = "v" 1*HEXDIG "." 1*( ... ) (RFC 3986 3.2.2), as loosely as
# urllib.parse checks it, so that gcorn and gunicorn refuse the same literals.
IPV_FUTURE = re.compile(rb"v[0-9A-Fa-f]++\..++", re.DOTALL)
# authority-form: uri-host ":" port, for CONNECT only (RFC 9112 3.2.3).
AUTHORITY_FORM = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]++\]|[-A-Za-z0-9._~!$&'()*+,;=%]++):[0-9]{1,5}"
)

# chunk = chunk-size [ chunk-ext ] CRLF (RFC 9112 7.1): hex size (the parser
# allows at most 16 significant digits, so the value fits in 64 bits), then
# extensions "; name [= token / quoted-string]" with BWS around ";" and "=".
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*+"'
_CHUNK_EXT = (
    rb"(?:[ \t]*+;[ \t]*+[" + TCHAR + rb"]++"
    rb"(?:[ \t]*+=[ \t]*+(?:[" + TCHAR + rb"]++|" + _QUOTED + rb"))?+)*+"
)
CHUNK_HEADER = re.compile(rb"([0-9A-Fa-f]++)" + _CHUNK_EXT + rb"\r\n")
# A line ending that is not CRLF: LF without CR, or CR followed by anything but LF.
BARE_LINE_ENDING = re.compile(rb"(?<!\r)\n|\r(?=[^\n])")
