"""Connection hygiene uvicorn lacks: a time limit on the request head and a connection cap.

Uvicorn closes idle keep-alive connections, but a connection that sends nothing, or half a
request line, or headers without their end, stays open for ever; enough of them exhaust the
file descriptors and the accept loop fails. This protocol closes a connection whose request
head is not complete `timeout_header_seconds` after it opened (or after its first byte since
the last response). When a new connection would exceed `max_connections`, the connection that
has waited longest for a request head (idle, or sending one slowly) is closed to make room, so
a flood of idle connections cannot keep a client with a real request (or a probe) out; with
none such, the new one is closed.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from serving.http.observability import log

__all__ = ["BACKLOG", "FD_RESERVE", "connection_cap", "guarded_protocol", "shared_port_socket"]

FD_RESERVE = 64  # descriptors kept for the model, logs, the feedback store and probes
#: The listen queue, and so the most connections asyncio accepts in one go, before any of
#: them is counted against the cap: the cap leaves this many descriptors free.
BACKLOG = 128


def shared_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket with SO_REUSEPORT, so several server processes share one port and
    the kernel spreads connections over them. Created with IPPROTO_TCP so asyncio still sets
    TCP_NODELAY on each connection (a socket made with protocol 0, as uvicorn's `--workers`
    makes it, leaves Nagle on: about 40 ms per answer with delayed ACKs)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def connection_cap(wanted: int) -> int:
    """`wanted`, lowered to what the open-file limit allows (raised to its hard limit first),
    so the cap closes extra connections before accept() runs out of descriptors (which makes
    asyncio log and pause accepting, health probes included)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > soft):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or wanted + FD_RESERVE + BACKLOG <= soft:
        return wanted
    cap = max(1, soft - FD_RESERVE - BACKLOG)
    log(
        "connection cap lowered to the open-file limit",
        logging.WARNING,
        wanted=wanted,
        cap=cap,
        nofile=soft,
    )
    return cap


def guarded_protocol(header_seconds: float, max_connections: int) -> type[H11Protocol]:
    """An h11 protocol class for `uvicorn.run(http=...)` with these limits."""

    class GuardedH11(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _idle_since: float | None = None  # waiting for a request head since

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._idle_since = time.monotonic()
            if len(self.connections) > max_connections:
                self._make_room()
            if not self.transport.is_closing():
                self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:  # still waiting for a complete head
                if self._head_timer is None and not self.transport.is_closing():
                    self._arm()
            else:
                self._idle_since = None
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE:
                self._idle_since = time.monotonic()

        def _make_room(self) -> None:
            """Close the connection idle longest (this one if none other is idle)."""
            idle = [
                c
                for c in self.connections
                if isinstance(c, GuardedH11)
                and c is not self
                and c._idle_since is not None
                and not c.transport.is_closing()
            ]
            victim = min(idle, key=lambda c: c._idle_since or 0.0, default=self)
            victim.transport.close()  # connection_lost removes it from the set

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._head_timer = self.loop.call_later(header_seconds, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11
