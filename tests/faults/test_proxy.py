"""The fault proxy itself, against a real redis-server, with redis-py and raw sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redisjobs.testing import RedisServer
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[FaultProxy]:
    with FaultProxy(redis_server.port, seed=1) as p:
        yield p


def client(proxy: FaultProxy, timeout: float = 5.0) -> redis.Redis:
    """A client that reports connection errors instead of retrying them."""
    return redis.Redis(port=proxy.port, socket_timeout=timeout, retry=Retry(NoBackoff(), 0))


def raw(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def recv_until(sock: socket.socket, end: bytes, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def poll(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_passes_commands_through_and_counts_connections(proxy: FaultProxy) -> None:
    r = client(proxy)
    r.set("proxy:k", "v")
    assert r.get("proxy:k") == b"v"
    stats = proxy.stats()
    assert stats["accepted"] == 1 and stats["active"] == 1 and stats["resets"] == 0
    assert stats["bytes_up"] > 0 and stats["bytes_down"] > 0
    (conn,) = proxy.connections()
    assert conn.first_reply_at is not None and conn.first_reply_at >= conn.accepted_at
    r.close()


def test_latency_each_way_and_byte_order(proxy: FaultProxy) -> None:
    r = client(proxy)
    r.ping()
    proxy.set_latency(up=0.1, down=0.15)
    t0 = time.monotonic()
    r.ping()
    rtt = time.monotonic() - t0
    assert 0.25 <= rtt < 1.5, rtt  # both delays, plus whatever a loaded machine adds
    # A random delay per chunk must not reorder chunks: 50 ECHOs written one by one.
    proxy.set_latency(up=(0.0, 0.05), down=(0.0, 0.05))
    with raw(proxy) as s:
        for i in range(50):
            s.sendall(f"ECHO m{i:02d}\r\n".encode())
            time.sleep(0.002)
        got = recv_until(s, b"m49\r\n")
    assert got == b"".join(f"$3\r\nm{i:02d}\r\n".encode() for i in range(50))
    proxy.set_latency()
    t0 = time.monotonic()
    r.ping()
    assert time.monotonic() - t0 < 0.5
    r.close()


def test_blackhole_holds_bytes_with_the_socket_open_and_heal_delivers_them(
    proxy: FaultProxy,
) -> None:
    r = client(proxy, timeout=0.5)
    r.ping()
    with raw(proxy) as s:
        s.sendall(b"PING\r\n")
        assert recv_until(s, b"\r\n") == b"+PONG\r\n"
        proxy.blackhole()
        with pytest.raises(redis.TimeoutError):
            r.ping()
        s.sendall(b"ECHO held\r\n")
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(100)  # held, and not closed
        late = raw(proxy)  # a new connection is accepted, and held too
        late.sendall(b"PING\r\n")
        late.settimeout(0.3)
        with pytest.raises(TimeoutError):
            late.recv(100)
        stats = proxy.stats()
        assert stats["resets"] == 0 and stats["active"] == 3
        proxy.heal()
        assert recv_until(s, b"held\r\n") == b"$4\r\nheld\r\n"  # delivered after the heal
        assert recv_until(late, b"\r\n") == b"+PONG\r\n"
        late.close()
    r.close()
    assert client(proxy).ping()


def test_heal_with_reset_drops_what_was_held(proxy: FaultProxy) -> None:
    with raw(proxy) as s:
        proxy.blackhole()
        s.sendall(b"SET proxy:dropped 1\r\n")
        time.sleep(0.1)  # let the proxy read (and hold) it
        proxy.heal(reset=True)
        s.settimeout(5)
        with pytest.raises(ConnectionResetError):
            s.recv(100)
    r = client(proxy)
    assert r.get("proxy:dropped") is None  # Redis never saw the request
    assert proxy.stats()["resets"] == 1
    r.close()


def test_reset_all_breaks_connections_and_clients_reconnect(proxy: FaultProxy) -> None:
    s = raw(proxy)
    s.sendall(b"PING\r\n")
    assert recv_until(s, b"\r\n") == b"+PONG\r\n"
    r = client(proxy)
    r.ping()
    assert proxy.reset_all() == 2
    with pytest.raises(ConnectionResetError):
        s.recv(100)
    s.close()
    t0 = time.monotonic()
    assert r.ping()  # the pool finds its connection broken and connects again
    assert time.monotonic() - t0 < 1
    stats = proxy.stats()
    assert stats["accepted"] == 3 and stats["resets"] == 2
    first, second, third = proxy.connections()
    assert first.reset and second.reset and not third.reset
    (reset_at,) = proxy.reset_times()
    assert third.first_reply_at is not None and third.first_reply_at > reset_at
    r.close()


def test_refuse_resets_new_connections_only(proxy: FaultProxy) -> None:
    kept = client(proxy)
    kept.ping()
    proxy.refuse()
    with pytest.raises(redis.ConnectionError):
        client(proxy).ping()
    assert kept.ping()  # an existing connection is left alone
    proxy.refuse(False)
    assert client(proxy).ping()
    stats = proxy.stats()
    assert stats["refused"] == 1 and stats["accepted"] == 2
    kept.close()


def test_stop_resets_everything_and_frees_the_port(redis_server: RedisServer) -> None:
    proxy = FaultProxy(redis_server.port).start()
    r = client(proxy)
    r.ping()
    proxy.stop()
    with pytest.raises(redis.ConnectionError):
        r.ping()
    with pytest.raises(redis.ConnectionError):
        r.ping()  # nothing listens any more
    poll(lambda: proxy._thread is not None and not proxy._thread.is_alive(), 5, "the thread")
