"""Kind ``http``: call a webhook or an API with httpx, one pooled client per worker.

Payload::

    {"url": "https://api.example.com/hooks/order", "method": "POST",   # POST by default
     "headers": {"X-Order": "42"}, "body": {"id": 42},                  # body is sent as JSON
     "params": {"v": "2"}, "timeout": 10, "retry_4xx": False}
    {"url": "...", "content": "raw text or bytes"}                      # instead of "body"

Result: ``{"status": 200, "headers": {...}, "body": ...}``: the body parsed when the response is
JSON, text when it is text, bytes otherwise, cut to `max_response_bytes` (then ``"truncated":
True``). A status outside 2xx, a timeout or a connection error fails the job with the status and
the start of the body, so the job's retry policy applies; with ``"retry_4xx": False`` a 4xx
(except 408 and 429) fails it for good. A 429 whose ``Retry-After`` says when (seconds, or a
date against the response's ``Date``) raises :class:`~redisjobs.errors.RateLimited` instead: the
job runs again then without using an attempt. Redirects are not followed unless the worker says
so.

The worker decides where jobs may go (`allow_hosts`, checked on every redirect too) and may add
`headers` of its own, such as an API token the payload never sees: set `allow_hosts` with them,
or any job can send them to any host. Jobs reach public addresses only: a host that resolves to
a loopback, private, link-local, unspecified, multicast or reserved address is refused (the job
fails for good) unless the worker allows it (`allow_private`, or the host is in `allow_hosts`);
see ``_netguard.py`` for how the address connected to is the address checked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import ExecutorError, JobTimeout, MissingExtra, PayloadError, RateLimited
from ..jsonable import json_default

try:
    import httpcore
    import httpx
except ImportError as exc:  # httpx (with httpcore and anyio) comes with the `http` extra
    raise MissingExtra("the http executor", "http", exc) from None

from . import ExecContext
from ._common import HostAllowList, fields, opt_seconds, opt_str, str_map
from ._netguard import PrivateAllowance, guarded_transport, resolve_checked
from .base import ExecutorBase

log = logging.getLogger("redisjobs.executors.http")

_EXAMPLE = '{"url": "https://...", "method": "POST", "body": {...}}'
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_TEXT_TYPES = ("text/", "application/xml", "application/javascript", "application/x-www-form")
EXCERPT = 300
"""Characters of a failed response's body quoted in the job's error."""


class HTTPExecutor(ExecutorBase):
    """Sends HTTP requests.

    Args:
        allow_hosts: host names jobs may reach (``*.example.com`` for subdomains); None: any.
            A host named here may also be at a non-public address.
        allow_private: non-public addresses jobs may reach (loopback, private networks,
            link-local such as 169.254.169.254, …): True for all, or host names and IP networks
            (``["metrics.internal", "10.1.0.0/16"]``); by default none.
        timeout: seconds a request may take when its payload sets no ``timeout``.
        max_response_bytes: bytes of a response body kept in the result.
        headers: headers sent with every request, over the payload's own.
        follow_redirects: follow 3xx responses (each hop checked against `allow_hosts`).
        max_connections: size of the connection pool shared by all jobs of the worker.
        transport: an httpx transport to send through (a proxy). Its connections are its own:
            a host's addresses are then checked before each request, not at connect time.
    """

    kind = "http"

    def __init__(
        self,
        *,
        allow_hosts: Iterable[str] | None = None,
        allow_private: bool | Iterable[str] = False,
        timeout: float = 30.0,
        max_response_bytes: int = 1024 * 1024,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = False,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.allow_hosts = HostAllowList(allow_hosts)
        self.allow_private = PrivateAllowance(allow_private, self.allow_hosts)
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.headers = dict(headers or {})
        self.follow_redirects = follow_redirects
        self._limits = httpx.Limits(max_connections=max_connections)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        if self.headers and not self.allow_hosts.restricted:
            log.warning(
                "http executor: headers %s go to any host a job names; set allow_hosts",
                sorted(self.headers),
            )

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:  # made on first use, inside the worker's event loop
            self._client = httpx.AsyncClient(
                limits=self._limits,
                transport=self._transport or guarded_transport(self._limits, self.allow_private),
                follow_redirects=self.follow_redirects,
                event_hooks={"request": [self._check_host]},
            )
        return self._client

    async def _check_host(self, request: httpx.Request) -> None:
        """Every request, redirects included: the allow-list, and the addresses when the
        transport is the caller's (the executor's own checks them as it connects)."""
        url = request.url
        self.allow_hosts.check(url.host)
        if self._transport is not None:
            port = url.port or (443 if url.scheme == "https" else 80)
            try:
                await resolve_checked(url.host, port, self.allow_private)
            except httpcore.ConnectError as exc:
                raise httpx.ConnectError(str(exc), request=request) from None

    def _request(self, payload: Any) -> tuple[httpx.Request, float, bool]:
        p = fields(payload, self.kind, _EXAMPLE)
        url = opt_str(p, "url")
        if not url:
            raise PayloadError('an http payload needs a "url"')
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise PayloadError(f"bad url {url!r}: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise PayloadError(f"bad url {url!r}: need http:// or https:// and a host")
        self.allow_hosts.check(parsed.host)
        method = (opt_str(p, "method") or "POST").upper()
        if method not in _METHODS:
            raise PayloadError(f"unsupported method {method!r}")
        headers = {**str_map(p, "headers"), **self.headers}
        content = _content(p)
        if "body" in p:
            headers = {"Content-Type": "application/json", **headers}
        timeout = opt_seconds(p, "timeout", self.timeout)
        assert timeout is not None
        retry_4xx = p.get("retry_4xx", True)
        if not isinstance(retry_4xx, bool):
            raise PayloadError('"retry_4xx" must be true or false')
        params = str_map(p, "params")
        if params:  # added to the URL's own query (httpx would replace it)
            parsed = parsed.copy_merge_params(params)
        request = self._http().build_request(
            method, parsed, content=content, headers=headers, timeout=timeout
        )
        return request, timeout, retry_4xx

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> dict[str, Any]:
        """Send the payload's request and return the response's status, headers and body."""
        request, timeout, retry_4xx = self._request(payload)
        where = f"{request.method} {request.url.copy_with(query=None)}"
        try:
            response = await self._http().send(request, stream=True)
            try:
                body, truncated = await self._read(response)
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise JobTimeout(f"{where}: timed out after {timeout:g} s") from None
        except httpx.TransportError as exc:
            raise ExecutorError(
                f"{where}: {type(exc).__name__}: {exc or 'connection failed'}"
            ) from None
        if not response.is_success:
            raise status_error(where, response, body, retry_4xx)
        result: dict[str, Any] = {
            "status": response.status_code,
            "headers": {k: ", ".join(response.headers.get_list(k)) for k in response.headers},
            "body": _decode(response, body, truncated),
        }
        if truncated:
            result["truncated"] = True
        return result

    async def _read(self, response: httpx.Response) -> tuple[bytes, bool]:
        cap = self.max_response_bytes
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > cap:
                return bytes(data[:cap]), True
        return bytes(data), False

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _content(p: Mapping[str, Any]) -> bytes | str | None:
    """The request body: ``body`` as JSON (a datetime, Decimal, UUID, set... as the HTTP API
    shows them: :mod:`redisjobs.jsonable`), or ``content`` as is."""
    if "body" in p:
        if "content" in p:
            raise PayloadError('send either "body" (JSON) or "content", not both')
        try:
            return json.dumps(p["body"], separators=(",", ":"), default=json_default).encode()
        except (TypeError, ValueError) as exc:
            raise PayloadError(f'"body" is not JSON-encodable: {exc}') from None
    content = p.get("content")
    if content is not None and not isinstance(content, str | bytes):
        raise PayloadError('"content" must be a string or bytes')
    return content


def _decode(response: httpx.Response, body: bytes, truncated: bool) -> Any:
    ctype = response.headers.get("content-type", "").lower()
    if not truncated and ("/json" in ctype or "+json" in ctype):
        try:
            return json.loads(body)
        except ValueError:
            pass
    if not ctype or "json" in ctype or "charset=" in ctype or ctype.startswith(_TEXT_TYPES):
        return body.decode(response.encoding or "utf-8", "replace")
    return body


def _retry_after(response: httpx.Response) -> float | None:
    """The seconds a 429's ``Retry-After`` asks to wait, or None when it says nothing usable.

    A date is read against the response's own ``Date`` (the server's clock, not this host's);
    without one it is not used.
    """
    value = response.headers.get("retry-after", "").strip()
    if value.isascii() and value.isdigit():
        return float(value[:9])  # up to ~30 years: RateLimited cuts it to a day anyway
    try:
        until = parsedate_to_datetime(value)
        now = parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    if until.tzinfo is None or now.tzinfo is None:
        return None
    return max(0.0, (until - now).total_seconds())


def status_error(
    where: str, response: httpx.Response, body: bytes, retry_4xx: bool
) -> ExecutorError | RateLimited:
    """The error a response outside 2xx stands for: a :class:`RateLimited` for a 429 that says
    when to come back, else an :class:`ExecutorError` quoting the start of `body`, retryable
    unless it is a 4xx (but 408 and 429) and `retry_4xx` is False. `where` names the request.
    """
    if response.status_code == 429 and (wait := _retry_after(response)) is not None:
        return RateLimited(wait)
    text = body.decode(response.encoding or "utf-8", "replace").strip()
    if len(text) > EXCERPT:
        text = text[:EXCERPT] + "…"
    status = response.status_code
    if 300 <= status < 400 and "location" in response.headers:
        text = f"redirect to {response.headers['location']} not followed"
    final = not retry_4xx and 400 <= status < 500 and status not in (408, 429)
    message = f"{where}: HTTP {status} {response.reason_phrase}" + (f": {text}" if text else "")
    return ExecutorError(message, retryable=not final)
