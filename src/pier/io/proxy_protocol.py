"""--proxy-protocol: read the PROXY header before any protocol sees the connection.

Rules:
1. `ProxyProtocolGate` is the protocol every new connection starts with when
   --proxy-protocol is on. It reads the header (pier.proto.proxy_protocol), then makes
   the real connection object (HTTP/1.1 today; whatever the per-connection protocol
   choice makes), hands it the transport and the bytes that followed the header, and
   steps aside (`transport.set_protocol`): after the header it costs nothing.
2. Only a peer in --forwarded-allow-ips may send the header; a connection from anyone
   else is closed unread, as is one whose header is missing, malformed, or does not
   arrive within --timeout-request-header. Closing (not answering 400) is the spec's
   advice: the peer is not speaking HTTP yet.
3. The addresses from the header reach the connection as the transport's "peername"
   and "sockname" (`ProxiedTransport`), so scope["client"] and scope["server"], the
   access log and --proxy-headers' trust check all see the client, not the proxy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from pier.asgi.proxy import TrustedHosts
from pier.io.throttle import WARNING_INTERVAL, Throttle
from pier.proto.proxy_protocol import ProxyHeader, ProxyHeaderError, parse_header

__all__ = ["ProxiedTransport", "ProxyProtocolGate"]

logger = logging.getLogger("pier.error")

# One warning per interval: a proxy that sends no header (or the wrong version) is a
# misconfiguration the operator must see, but every connection would repeat it.
_refusals = Throttle()


class ProxiedTransport:
    """A transport whose peer and local addresses are the PROXY header's (rule 3)."""

    def __init__(self, transport: asyncio.Transport, header: ProxyHeader) -> None:
        self._transport = transport
        self._extra = {"peername": header.client, "sockname": header.server}
        # The calls a connection makes per request go straight to the real transport.
        self.write = transport.write
        self.writelines = transport.writelines
        self.is_closing = transport.is_closing
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            return self._extra[name]
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class ProxyProtocolGate(asyncio.Protocol):
    """Reads one PROXY header, then hands the connection on (rule 1)."""

    def __init__(
        self,
        make: Callable[[], asyncio.Protocol],
        *,
        version: str,
        trusted: TrustedHosts,
        timeout: float,
    ) -> None:
        self.make = make
        self.version = version
        self.trusted = trusted
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else None
        if host not in self.trusted:
            self._refuse(f"from {host or 'a Unix socket'}, not in --forwarded-allow-ips")
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.timeout, self._refuse, "not sent in time")

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.buffer += data
        try:
            parsed = parse_header(self.buffer, self.version)
        except ProxyHeaderError as exc:
            self._refuse(str(exc))
            return
        if parsed is None:
            return
        header, used = parsed
        self._cancel_timer()
        rest, self.buffer = self.buffer[used:], b""
        connection = self.make()
        transport.set_protocol(connection)
        if header.client is None:
            connection.connection_made(transport)
        else:
            connection.connection_made(ProxiedTransport(transport, header))  # type: ignore[arg-type]
        if rest and not transport.is_closing():
            connection.data_received(rest)

    def eof_received(self) -> bool | None:
        self._refuse("connection closed before the header")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.transport = None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse(self, why: str) -> None:
        self._cancel_timer()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if _refusals.allows("proxy-protocol"):
            logger.warning(
                "Closed a connection: PROXY %s header %s (--proxy-protocol; further"
                " refusals within %.0fs are logged at debug level)",
                self.version,
                why,
                WARNING_INTERVAL,
            )
        else:
            logger.debug("Closed a connection: PROXY %s header %s", self.version, why)
        transport.abort()
