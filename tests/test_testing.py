"""The test helpers of `redisjobs.testing` that the suite's fault and error tests stand on."""

from __future__ import annotations

import socket

import pytest

from redisjobs.testing import closed_port


def test_a_closed_port_refuses_connections_and_cannot_be_taken() -> None:
    with closed_port() as port:
        for _ in range(50):
            with socket.socket() as client, pytest.raises(ConnectionRefusedError):
                client.connect(("127.0.0.1", port))
        with socket.socket() as server, pytest.raises(OSError, match="in use"):
            server.bind(("127.0.0.1", port))
