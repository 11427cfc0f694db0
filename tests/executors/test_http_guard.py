"""The http executor refuses non-public addresses unless its worker allows them: real loopback
servers (IPv4 and IPv6) reached by every spelling of loopback, host names that resolve to it,
redirects to it, and the ranges no test machine serves (refused before any connection)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx
import pytest

from redisjobs import Client, ExecContext, JobFailed, PayloadError
from redisjobs.cli.executors import factories
from redisjobs.cli.parser import build
from redisjobs.executors import HTTPExecutor
from redisjobs.executors._netguard import GuardedBackend
from tests.conftest import WorkerFactory
from tests.executors.test_http import Handler, Server, call, serve, server  # noqa: F401 (fixture)

LOOPBACK_V4 = ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "localhost"]


class Server6(Server):
    address_family = socket.AF_INET6


@pytest.fixture(scope="module")
def server6() -> Iterator[str]:
    yield from serve(Server6(("::1", 0), Handler))


def port(url: str) -> str:
    return url.rsplit(":", 1)[1]


@pytest.fixture
def spellings(server: str, server6: str) -> dict[str, str]:  # noqa: F811
    """Each way of writing a loopback or unspecified address, as a URL of a live server."""
    urls = {host: f"http://{host}:{port(server)}/echo" for host in LOOPBACK_V4}
    urls["0.0.0.0"] = f"http://0.0.0.0:{port(server)}/echo"  # connects to this machine
    urls["[::1]"] = f"{server6}/echo"
    return urls


@pytest.mark.parametrize("host", [*LOOPBACK_V4, "0.0.0.0", "[::1]"])
async def test_loopback_is_refused_by_default_and_reached_when_allowed(
    ctx: ExecContext, spellings: dict[str, str], host: str
) -> None:
    url = spellings[host]
    refused, allowed = HTTPExecutor(), HTTPExecutor(allow_private=True)
    try:
        Handler.peers.clear()
        with pytest.raises(PayloadError, match=r"^refused: .*(loopback|unspecified)") as err:
            await call(refused, ctx, url=url, method="GET")
        assert not err.value.retryable
        assert "allow_private=True" in str(err.value)
        assert Handler.peers == []  # no request reached the server
        assert (await call(allowed, ctx, url=url, method="GET"))["status"] == 200
        assert len(Handler.peers) == 1
    finally:
        await refused.aclose()
        await allowed.aclose()


@pytest.mark.parametrize(
    ("host", "what"),
    [
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("[fe80::1]", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("[fc00::1]", "private"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("[::ffff:169.254.169.254]", "link-local"),
        ("[64:ff9b::a00:1]", "private"),  # NAT64 of 10.0.0.1
        ("[2002:c0a8:101::]", "private"),  # 6to4 of 192.168.1.1
    ],
)
async def test_non_public_ranges_are_refused_before_connecting(
    ctx: ExecContext, host: str, what: str
) -> None:
    ex = HTTPExecutor()
    try:
        with pytest.raises(PayloadError, match=rf"^refused: .* {what} address"):
            await call(ex, ctx, url=f"http://{host}:9/x", timeout=2)
    finally:
        await ex.aclose()


@pytest.mark.parametrize("own_transport", [False, True], ids=["guarded", "own-transport"])
async def test_a_name_that_resolves_to_loopback_is_refused(
    ctx: ExecContext,
    server: str,  # noqa: F811
    own_transport: bool,
) -> None:
    """With a transport of the caller's, the check runs before each request instead."""
    ex = HTTPExecutor(transport=httpx.AsyncHTTPTransport() if own_transport else None)
    try:
        with pytest.raises(PayloadError, match=r"^refused: localhost resolves to 127\.0\.0\.1, a "):
            await call(ex, ctx, url=f"http://localhost:{port(server)}/echo")
    finally:
        await ex.aclose()


async def test_allow_private_by_host_name_or_network(
    ctx: ExecContext, spellings: dict[str, str]
) -> None:
    by_name = HTTPExecutor(allow_private=["localhost"])
    by_net = HTTPExecutor(allow_private=["127.0.0.0/8"])
    try:
        assert (await call(by_name, ctx, url=spellings["localhost"]))["status"] == 200
        with pytest.raises(PayloadError, match=r"refused: 127\.0\.0\.1 is a loopback"):
            await call(by_name, ctx, url=spellings["127.0.0.1"])
        for host in ("localhost", "127.0.0.1", "2130706433", "[::ffff:127.0.0.1]"):
            assert (await call(by_net, ctx, url=spellings[host]))["status"] == 200
        with pytest.raises(PayloadError, match=r"refused: ::1 is a loopback"):
            await call(by_net, ctx, url=spellings["[::1]"])
    finally:
        await by_name.aclose()
        await by_net.aclose()


async def test_a_redirect_to_loopback_is_refused(ctx: ExecContext, server: str) -> None:  # noqa: F811
    """localhost stands for a public host here: the worker allows it (and only it) to be
    private, so a hop to any other loopback spelling is refused, though the allow-list (none)
    would let it through."""
    ex = HTTPExecutor(allow_private=["localhost"], follow_redirects=True)
    start = f"http://localhost:{port(server)}/redirect?to="
    try:
        Handler.peers.clear()
        for target in ("127.0.0.1", "2130706433", "[::ffff:127.0.0.1]"):
            with pytest.raises(PayloadError, match=r"^refused: .* loopback") as err:
                await call(ex, ctx, url=f"{start}http://{target}:{port(server)}/echo")
            assert not err.value.retryable
        assert len(Handler.peers) == 3  # the redirects were served; their targets were not
        hop = await call(ex, ctx, url=f"{start}http://localhost:{port(server)}/echo", method="GET")
        assert hop["status"] == 200 and hop["body"]["method"] == "GET"
    finally:
        await ex.aclose()


class Recording(httpcore.AnyIOBackend):
    """The real network backend, noting the host each connection is made to."""

    hosts: list[str]

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.hosts.append(host)
        return await super().connect_tcp(host, port, *args, **kwargs)


async def test_the_connection_goes_to_the_checked_address(server: str) -> None:  # noqa: F811
    """The name is resolved once, by the check: the socket is opened to the address checked,
    so a second resolution (DNS rebinding) has no say."""
    inner = Recording()
    inner.hosts = []
    allowance = HTTPExecutor(allow_private=["localhost"]).allow_private
    guarded = GuardedBackend(inner, allowance)
    stream = await guarded.connect_tcp("localhost", int(port(server)), timeout=5)
    await stream.aclose()
    assert inner.hosts == ["127.0.0.1"]


async def test_a_refused_target_fails_the_job_for_good(
    server: str,  # noqa: F811
    client: Client,
    worker: WorkerFactory,
) -> None:
    await worker(executors=[HTTPExecutor()])
    job = await client.enqueue("http", {"url": f"{server}/echo"}, max_retries=3)
    with pytest.raises(JobFailed, match=r"refused: 127\.0\.0\.1 is a loopback address"):
        await client.wait(job.id, timeout=10)
    assert (await client.get(job.id)).attempt == 1  # type: ignore[union-attr]


async def test_worker_options_open_private_targets(ctx: ExecContext, server: str) -> None:  # noqa: F811
    url = f"{server}/echo"
    for options, reached in (
        ([], False),
        (["--http-allow-private"], True),
        (["--http-allow-private-host", "127.0.0.0/8"], True),
        (["--http-allow-private-host", "10.0.0.0/8"], False),
    ):
        args = build().parse_args(["worker", "-x", "http", *options])
        [make] = factories(args)
        ex = make()
        assert isinstance(ex, HTTPExecutor)
        try:
            if reached:
                assert (await call(ex, ctx, url=url))["status"] == 200
            else:
                with pytest.raises(PayloadError, match="refused"):
                    await call(ex, ctx, url=url)
        finally:
            await ex.aclose()
