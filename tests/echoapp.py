"""The tests' echo app: what the server handed the app, as JSON, for WSGI and ASGI alike.

The suites behind real proxies (nginx, HAProxy, uwsgi) and the upgrade tests copy it
next to their gcorn (`harness.write_echo_app`) and serve `MODULE:app`, with `app` bound
to `wsgi` or `asgi`. Both answer the same keys where the two specs meet: a WSGI app
gets every text value of its environ; the ASGI one an environ-like view of its scope
(HTTP_* from the headers, SCRIPT_NAME from root_path), plus the scope's own fields.
Every answer carries the request body (as latin-1 text, its length and SHA-256).
`/big` streams 1 MiB of unknown length; `/boom` raises. A WebSocket echoes.
"""

import hashlib
import json


def _body(body):
    return {"body": body.decode("latin-1"), "body_length": len(body),
            "body_sha": hashlib.sha256(body).hexdigest()}


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        # no Content-Length: a body of unknown size
        return (bytes([65 + i]) * 65536 for i in range(16))
    if path == "/boom":
        raise RuntimeError("the app failed")
    info = {key: value for key, value in environ.items() if isinstance(value, str)}
    info["url_scheme"] = environ["wsgi.url_scheme"]
    info.update(_body(environ["wsgi.input"].read()))
    data = json.dumps(info).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]


async def _websocket(scope, receive, send):
    await receive()  # websocket.connect
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(
        {"client": scope["client"][0], "scheme": scope["scheme"], "path": scope["path"],
         "forwarded_for": headers.get("x-forwarded-for")})})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": "echo:" + message["text"]})


def _environ(scope, headers):
    root = scope["root_path"]
    info = {
        "REQUEST_METHOD": scope["method"], "SCRIPT_NAME": root,
        "PATH_INFO": scope["path"][len(root):] if scope["path"].startswith(root) else scope["path"],
        "QUERY_STRING": scope["query_string"].decode(),
        "SERVER_PROTOCOL": "HTTP/" + scope["http_version"],
        "REMOTE_ADDR": scope["client"][0], "REMOTE_PORT": str(scope["client"][1]),
        "wsgi.url_scheme": scope["scheme"], "url_scheme": scope["scheme"],
    }
    if scope.get("server"):
        info["SERVER_NAME"], info["SERVER_PORT"] = scope["server"][0], str(scope["server"][1])
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        info[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    return info


async def asgi(scope, receive, send):
    if scope["type"] == "websocket":
        return await _websocket(scope, receive, send)
    if scope["type"] != "http":
        return None
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    info = _environ(scope, headers)
    if info["PATH_INFO"] == "/big":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        for i in range(16):
            await send({"type": "http.response.body", "body": bytes([65 + i]) * 65536,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return None
    if info["PATH_INFO"] == "/boom":
        raise RuntimeError("the app failed")
    info.update(_body(body), method=scope["method"], headers=headers, client=scope["client"][0],
                scheme=scope["scheme"])
    data = json.dumps(info).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
    return None
