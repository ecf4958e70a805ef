"""Every size and count limit on client input, with the threat it stops and a precedent.

Rules: limits are plain data (a frozen dataclass) built from Config by the server and
handed to the protocol layer; the protocol layer never reads Config itself. Each
limit's default sits between what real clients need and what an attacker can use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    # Request line + all header lines. Threat: memory held per connection before the
    # app sees anything. Precedent: node 16 KiB, nginx 4x8 KiB buffers, Apache ~800 KiB;
    # 64 KiB leaves room for cookie-heavy sites. Answer: 431.
    head_size: int = 65536
    # Header field count. Threat: hash-flooding and per-field overhead. Precedent:
    # Apache LimitRequestFields 100, gunicorn limit_request_fields 100. Answer: 431.
    fields: int = 100
    # One header line. Precedent: Apache LimitRequestFieldSize 8190, gunicorn 8190.
    # Answer: 431.
    field_size: int = 8190
    # Request target. Precedent: Apache LimitRequestLine 8190, gunicorn 4094. Answer: 414.
    request_line: int = 8190
    # Request body. Off by default (None) like uvicorn and gunicorn, since apps stream
    # uploads; nginx's client_max_body_size is 1 MiB. Answer: 413.
    body: int | None = None
