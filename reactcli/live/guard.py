"""Who may talk to a ``react live`` server: the Host and Origin checks every request passes first.

A server on 127.0.0.1 is reachable from every web page the user opens, so two rules keep other
sites out (docs/live.md, "Protocol and safety"):

- **Host** (DNS rebinding): a page of ``evil.example`` can make its own name resolve to
  127.0.0.1 and then read this server as "same origin". Its requests still carry
  ``Host: evil.example``, so every HTTP request and WebSocket handshake whose Host is not a name
  of this server (``127.0.0.1:PORT``, ``localhost:PORT``, ``--host``'s address) is refused with 403.
- **Origin** (cross-site WebSockets): browsers let any page open a WebSocket to any address and
  only say where the page came from in ``Origin``. A handshake is accepted only from the page's
  own origin (``http://`` + one of the names above) or an ``--allow-origin`` the user gave.
  A handshake without ``Origin`` comes from a program, not a browser (browsers always send it),
  and is accepted: it could send any header it likes anyway, and the Host rule still applies.

The header size is capped where the request is parsed (:data:`MAX_HEADER_BYTES`, uvicorn's h11
parser, :mod:`reactcli.live.server`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from reactcli.errors import ReactError

log = logging.getLogger("reactcli.live")

#: The request line and headers may take at most this many bytes (a browser's are ~1 KB; cookies
#: that other local servers set for localhost can add a few KB).
MAX_HEADER_BYTES = 32 * 1024
#: Bind addresses that listen everywhere: no Host check can name them.
WILDCARDS = ("0.0.0.0", "::", "")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


def _authority(host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name.lower() if port == 80 else f"{name.lower()}:{port}"


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The ``Host`` values that name a server bound to ``host:port``: the loopback names, and
    ``host`` itself (an explicit address or name the user chose with ``--host``)."""
    if host in WILDCARDS:
        raise ReactError(
            f"--host {host or '(empty)'}: a wildcard address cannot be checked against the Host header "
            "(DNS rebinding); give the address clients will use, e.g. this machine's LAN address"
        )
    names = {"127.0.0.1", "localhost", host}
    if host in ("::1", "localhost"):
        names.add("::1")
    hosts = {_authority(name, port) for name in names}
    if port == 80:  # a browser leaves the default port out, some clients do not
        hosts |= {f"{h}:80" for h in hosts}
    return frozenset(hosts)


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, as browsers send it; anything else is a ReactError."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ReactError(f"--allow-origin {origin}: expected scheme://host[:port], e.g. http://127.0.0.1:8001")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def allowed_origins(hosts: Iterable[str], extra: Iterable[str] = ()) -> frozenset[str]:
    """The page's own origins (``http://`` + each allowed Host) and the deliberate extras."""
    return frozenset({f"http://{h}" for h in hosts} | {normalise_origin(o) for o in extra})


def refusal(kind: str, headers: dict[str, str], hosts: frozenset[str], origins: frozenset[str]) -> str | None:
    """Why a request (``kind`` "http" or "websocket") is refused, or None when it may pass."""
    host = headers.get("host", "").lower()
    if host not in hosts:
        return f"Host {host!r} is not this server (allowed: {', '.join(sorted(hosts))})"
    if kind == "websocket" and "origin" in headers and headers["origin"].lower() not in origins:
        return f"WebSocket from origin {headers['origin']!r} refused: only this server's own page may connect"
    return None


class RequestGuard:
    """ASGI middleware: a request :func:`refusal` names a reason for never reaches the app
    (HTTP: 403 with the reason; WebSocket: the handshake is answered 403)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str], origins: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = origins

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            reason = refusal(kind, headers, self.hosts, self.origins)
            if reason is not None:
                log.warning("refused %s %s: %s", kind, scope.get("path", ""), reason)
                if kind == "websocket":
                    await receive()  # websocket.connect
                    await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
                else:
                    body = (reason + "\n").encode()
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 403,
                            "headers": [
                                (b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


async def _forbidden(send: Send, reason: str) -> None:
    body = (reason + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})
