"""ASGI middleware that guards the dashboard and the API.

* :class:`Guard`: the Host check (400, see :mod:`.hosts`), credentials (HTTP basic auth for
  people, a bearer token for programs), then, for requests that change something, read-only
  mode (405) and the cross-site check (403).
* :class:`BodyLimit`: request bodies over the cap are refused with 413, whether they announce
  their length or stream it.
* :class:`SecurityHeaders`: a strict Content-Security-Policy (our pages run only our own script
  file, so an injected ``<script>`` would not run even if escaping ever failed) and friends.

Cross-site POSTs are refused by comparing Origin (or, without one, Referer) with Host: a browser
always sends Origin on a cross-site POST and a page cannot forge it. The pages' forms also carry
a token that must match a SameSite=Strict cookie (see :mod:`.views`), so a browser that sends
neither header is covered too. The API takes JSON bodies only, which a cross-site form cannot
send without a CORS preflight that we never answer. A page that rebinds its own name to this
server is not cross-site to the browser; the Host check refuses it, before anything else.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Literal
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .hosts import AllowedHosts, host_of, local_address
from .settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HOST_REFUSED = "the Host header does not name this server (see allowed_hosts, --allowed-host)"
REALM = "redisjobs"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _same(given: str, wanted: str) -> bool:
    return hmac.compare_digest(given.encode(), wanted.encode())


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def authorized(settings: Settings, header: str | None, *, api: bool) -> bool:
    """Whether the Authorization `header` lets a request in (see :class:`Settings`)."""
    if not settings.guarded:
        return True
    if header is None:
        return False
    token, basic = settings.api_token, settings.basic_auth
    if token is not None and (api or basic is None):
        bearer = _bearer(header)
        if bearer is not None and _same(bearer, token):
            return True
    given = _basic(header)
    if given is None:
        return False
    if basic is not None:
        # Both compared, always: the time taken says nothing about which one was wrong.
        ok_user, ok_password = _same(given[0], basic[0]), _same(given[1], basic[1])
        return ok_user and ok_password
    # No basic auth configured: people use the API token as their password (pages only).
    return not api and token is not None and _same(given[1], token)


def _netloc(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return _strip_default_port(parts.netloc.rpartition("@")[2].lower(), parts.scheme)


def _strip_default_port(netloc: str, scheme: str) -> str:
    default = ":443" if scheme == "https" else ":80"
    return netloc.removesuffix(default)


def host_allowed(scope: Scope, allowed: AllowedHosts) -> bool:
    """Whether the request's Host, and every X-Forwarded-Host a proxy added, names this server.

    A missing or malformed Host is refused too. X-Forwarded-Host is checked because a rebinding
    page, being same-origin in its browser's eyes, can set it, and :func:`same_origin` trusts it.
    """
    forwarded = _header(scope, b"x-forwarded-host")
    names = [_header(scope, b"host") or "", *(forwarded.split(",") if forwarded else ())]
    local = local_address(scope.get("server"))
    for name in names:
        canonical = host_of(name)
        if canonical is None or not allowed.permits(canonical, local):
            return False
    return True


def same_origin(scope: Scope) -> bool:
    """Whether a request comes from our own pages: its Origin (else Referer) names our host.

    A request with neither header is not from a browser page (browsers send Origin on every
    POST); the pages' CSRF token covers the odd browser that omits it. Host and X-Forwarded-Host
    have passed :func:`host_allowed` by now, so an Origin that matches one of them, port and
    all, names an allowed host (and another port of the same name is another site).
    """
    source = _header(scope, b"origin")
    if source is None:
        source = _header(scope, b"referer")
        if source is None:
            return True
    origin = _netloc(source)
    if origin is None:
        return False  # "null" (a sandboxed frame, a file: page) or garbage
    scheme = str(scope.get("scheme", "http"))
    hosts = {_header(scope, b"host"), _header(scope, b"x-forwarded-host")}
    # A page cannot set X-Forwarded-Host on a cross-site request, so a proxy's is trusted (a
    # rebinding page, same-site in its browser's eyes, can: host_allowed checked it first).
    return any(_strip_default_port(h.lower(), scheme) == origin for h in hosts if h)


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"error": text}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    """The Host check, credentials, read-only mode and the cross-site check, in front of an app.

    Args:
        app: the app guarded.
        settings: who may do what.
        kind: ``"pages"`` (HTTP basic auth, plain-text refusals) or ``"api"`` (bearer token,
            JSON refusals).
    """

    def __init__(self, app: ASGIApp, settings: Settings, kind: Literal["pages", "api"]) -> None:
        self.app = app
        self.settings = settings
        self.api = kind == "api"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse the request, or pass it on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refuse = _json if self.api else _plain
        if not host_allowed(scope, self.settings.allowed_hosts):
            # Before the credentials: a rebinding page gets no login prompt either.
            await refuse(send, 400, HOST_REFUSED, [])
            return
        if not authorized(self.settings, _header(scope, b"authorization"), api=self.api):
            challenge = f'Bearer realm="{REALM}"' if self.api else f'Basic realm="{REALM}"'
            await refuse(
                send, 401, "authentication required", [(b"www-authenticate", challenge.encode())]
            )
            return
        if scope["method"] not in SAFE_METHODS:
            if self.settings.read_only:
                await refuse(
                    send, 405, "read-only: nothing can be changed here", [(b"allow", b"GET, HEAD")]
                )
                return
            if not same_origin(scope):
                await refuse(send, 403, "cross-site request refused", [])
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413.

    A declared Content-Length over the cap is refused before the app runs; a body that streams
    past it raises HTTP 413 from `receive`, which the app's error handlers turn into a reply.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, *, json_errors: bool = False) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.json_errors = json_errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then pass the request on with a counting `receive`."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body over {self.max_bytes} bytes"
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await (_json if self.json_errors else _plain)(send, 413, too_large, [])
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, too_large)
            return message

        await self.app(scope, counted, send)


class SecurityHeaders:
    """Add the Content-Security-Policy and the other protective headers to every response."""

    HEADERS = (
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, adding the headers to the response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *self.HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
