"""Where to listen, as the user wrote it: --bind values parsed into `Address`es.

Rules: pure (no sockets, no I/O), so pier.config validates --bind with it and io/
sockets.py opens what it describes; the layers stay one-way (config never imports io).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BIND_FORMATS", "Address", "parse_bind"]

BIND_FORMATS = "HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N"


@dataclass(frozen=True, slots=True)
class Address:
    """One place to listen, as the user named it."""

    kind: Literal["tcp", "unix", "fd"]
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(text: str) -> Address:
    """A --bind value as an Address; ValueError (completing "expected ...") if malformed."""
    text = text.strip()
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path:
            raise ValueError("unix:PATH with a path, e.g. unix:/run/pier.sock")
        return Address("unix", path=path)
    if text.startswith("fd://"):
        number = text[len("fd://") :]
        if not number.isdigit():
            raise ValueError("fd://N with a file descriptor number, e.g. fd://3")
        return Address("fd", fd=int(number))
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{BIND_FORMATS}; an IPv6 address is written [::1]:8000")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"{BIND_FORMATS}; the port is missing, e.g. {text}:8000")
        if ":" in host:
            raise ValueError(f"{BIND_FORMATS}; an IPv6 address is written [{host}]:{port_text}")
    if not host:
        raise ValueError(f"{BIND_FORMATS}; the host is missing, e.g. 0.0.0.0{text}")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{BIND_FORMATS} with a port from 0 to 65535")
    return Address("tcp", host=host, port=int(port_text))
