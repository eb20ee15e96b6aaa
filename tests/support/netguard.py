"""Refuse any in-process connection that is not to loopback: these tests must never reach a real service."""

from __future__ import annotations

import socket
from typing import Any

import pytest

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def forbid_non_loopback(monkeypatch: pytest.MonkeyPatch, who: str) -> None:
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            raise AssertionError(f"{who} tried to reach {address!r}: tests reach loopback only")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
