"""The server's side of one exchange, the same for every worker (sync, gthread, gevent,
eventlet, asgi; HTTP/1 and HTTP/2): what happens around the application call.

- `proxy_protocol`: who may send a PROXY header (`proxy_allow_ips`) and the environ
  keys it gives; gcorn.http's `ProxyHeaderReader` reads the header itself.
- `uwsgi`: `protocol = uwsgi`, a uwsgi packet read into a gcorn.http `RequestHead`
  (`uwsgi_allow_ips`), and its CGI variables turned into the environ or the scope.
- `forwarded`: which peers are trusted (`forwarded_allow_ips`), the scheme from
  `secure_scheme_headers`, `forwarder_headers` and `header_map`.
- `hooks`: `pre_request`/`post_request` (`RequestHooks`) and the gunicorn-shaped
  request and response objects they are given.
- `access`: what one request/response was (`AccessInfo`, from an environ or a scope)
  and the access-log atoms.

Error answers are gcorn.http's (`error_response`; the status comes from the
exception, gcorn.workers.errors). The response framing is gcorn.http's
`ResponseWriter` (HTTP/1) and gcorn.workers.http2 (HTTP/2). What is left in the
workers is what their specs differ in: the WSGI environ and iterable, the ASGI
scope and messages.
"""
