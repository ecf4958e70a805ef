"""One request lifecycle for every HTTP version: from a parsed request head to its end.

Rules (the contract every protocol glue codes against):
1. A glue (io/connection.py for HTTP/1.1, io/h2.py for HTTP/2; HTTP/3 later) parses a
   request head, builds its scope and an `HTTPCycle(scope, stream)` whose stream
   implements asgi/stream.py `ResponseStream`, and hands the cycle to `start_request`
   when it is that request's turn. It feeds the body with cycle.feed_body/feed_end and
   the end of the connection or stream with cycle.feed_disconnect. Nothing else about
   the ASGI cycle is the glue's business.
2. `start_request` counts the request, turns it away with 503 when --limit-concurrency
   is reached, and otherwise starts the app's Task (`run_app`) the same way for every
   protocol (io/tasks.py).
3. `run_app` is the one place that turns what an app does wrong into an answer on the
   wire and one error-log line naming the app, the request, and what ASGI expected:
   it raises, returns a non-awaitable, returns without answering or half-way, or broke
   the message protocol (the error send() raised, whether the app let it propagate or
   caught it and carried on). The answer is HTTPCycle.fail's: 500 if nothing was sent,
   else the stream is aborted (the client sees the response broke). The cycle applies
   it at once for a protocol error, so nothing waits for an app that carries on.
4. `log_response` writes the access log line; the glue calls it when a response ends
   by `response_done` or `send_error` (asgi/stream.py rule 4), and run_app calls it
   when the app's Task ends without that line written: the client went away, the app
   broke a response already under way, or the shutdown deadline cut it. Every response
   gets one line, saying how it ended and the body bytes actually sent.
5. When the app's Task ends, whatever the outcome, run_app forgets the Task and calls
   ctx.on_idle (graceful shutdown and --limit-max-requests wait on it).
6. Time limits on the app's side, for every protocol: --timeout-send (HTTPCycle gives
   up on a peer that takes none of the response, asgi/http.py `_drain`), and
   --timeout-response-start (off by default: an app that has not sent
   http.response.start in time gets its client a 504 and its Task cancelled).
   `describe_requests` names what is still running when a graceful shutdown times out.

Theory of operation, HTTP/1.1 keep-alive hello: on_request -> HTTPCycle -> start_request
-> run_app -> app -> send(start) (stored) -> send(body) -> stream.send_head (one write)
-> stream.response_done -> log_response -> the next request. Nothing here allocates per
request beyond the Task; the hot path is measured (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from bisect import bisect_left
from collections.abc import Iterable
from time import perf_counter
from typing import Any

from pier.asgi.http import (
    ENDED_CLIENT_GONE,
    ENDED_COMPLETED,
    ENDED_SHUTDOWN,
    LOGGED,
    ASGIProtocolError,
    ClientDisconnected,
    HTTPCycle,
    Phase,
    log_protocol_error,
)
from pier.io.context import ServerContext
from pier.logging import escape
from pier.metrics import BUCKETS

logger = logging.getLogger("pier.error")

__all__ = ["describe_requests", "log_response", "run_app", "start_request"]

FIRST_BUCKET = BUCKETS[0]

# Module globals: `Phase.DONE` costs ~1,100 instructions per lookup on Python 3.11.
_DONE = Phase.DONE
_START = Phase.START
_BODY_FIRST = Phase.BODY_FIRST
# Tasks start eagerly on 3.12 (io/tasks.py): only there can one be done when made.
_EAGER = sys.version_info >= (3, 12)


def start_request(ctx: ServerContext, cycle: HTTPCycle) -> None:
    """Run the app for this request, or answer 503 at --limit-concurrency."""
    ctx.total_requests += 1
    cycle.send_timeout = ctx.timeout_send
    if ctx.access_log is not None:
        cycle.started_at = perf_counter()
    if ctx.limit_concurrency is not None and ctx.over_capacity():
        ctx.warn_over_capacity()
        cycle.answer_plainly(503, "Service Unavailable: too many concurrent requests")
        return
    task = ctx.start_task(run_app(ctx, cycle))
    if _EAGER and task.done():  # an eagerly started app may already have finished
        return
    cycle.task = task
    ctx.tasks.add(task)


async def run_app(ctx: ServerContext, cycle: HTTPCycle) -> None:
    """Call the app for one cycle; turn every way it can fail into a clear log and answer."""
    scope = cycle.scope
    overdue = None
    if ctx.timeout_response_start is not None:
        overdue = ctx.loop.call_later(
            ctx.timeout_response_start, _response_start_overdue, ctx, cycle
        )
    try:
        awaitable: Any = ctx.app(scope, cycle.receive, cycle.send)
        try:
            result = await awaitable
        except TypeError as exc:
            if hasattr(awaitable, "__await__"):
                raise
            logger.error(
                "The ASGI app %s returned %s instead of an awaitable for %s %s: an ASGI3"
                " app is `async def app(scope, receive, send)`, or returns a coroutine when"
                " called with those three arguments (an ASGI2 app needs --interface asgi2)",
                ctx.app_name,
                type(awaitable).__name__,
                scope["method"],
                escape(scope["path"]),
            )
            del exc
            cycle.fail()
            return
        if result is not None:
            logger.warning(
                "The ASGI app %s returned %r for %s %s; ASGI apps should return None",
                ctx.app_name,
                result,
                scope["method"],
                escape(scope["path"]),
            )
    except ClientDisconnected:
        # The client left while the app was sending; nothing is owed to anyone.
        _log_unfinished(ctx, cycle)
    except ASGIProtocolError as exc:
        _log_protocol_error(ctx, cycle, cycle.error or exc, caught=False)
        cycle.fail()
        _log_unfinished(ctx, cycle)
        return
    except asyncio.CancelledError:
        if ctx.shutting_down and cycle.ended is None:
            # Cut by the graceful shutdown's deadline: the connection is being aborted,
            # so a 500 would reach no one; the access line says what happened instead.
            cycle.ended = ENDED_SHUTDOWN
        else:
            cycle.fail()
        _log_unfinished(ctx, cycle)
        raise
    except BaseException as exc:
        if cycle.error is not None:
            # It broke the protocol first; what it raised later is the consequence.
            _log_protocol_error(ctx, cycle, cycle.error, caught=False, exc_info=exc)
        elif not cycle.disconnected:
            logger.error(
                "Exception in %s application %s for %s %s",
                ctx.app_interface,
                ctx.app_name,
                scope["method"],
                escape(scope["path"]),
                exc_info=exc,
            )
        cycle.fail()
        _log_unfinished(ctx, cycle)
        if not isinstance(exc, Exception):
            raise
        return
    else:
        # Only the paths where a response did not complete log here (rule 4): the
        # usual one, a complete response, was logged by the glue and costs no check.
        if cycle.error is not None:
            _log_protocol_error(ctx, cycle, cycle.error, caught=True)
            _log_unfinished(ctx, cycle)
        elif cycle.phase is not _DONE:
            if not cycle.disconnected:
                if not cycle.response_started:
                    logger.error(
                        "The ASGI app %s returned without sending a response for %s %s"
                        " (expected 'http.response.start' then 'http.response.body')",
                        ctx.app_name,
                        scope["method"],
                        escape(scope["path"]),
                    )
                else:
                    logger.error(
                        "The ASGI app %s returned before finishing its response for %s %s"
                        " (the last 'http.response.body' must have more_body=False)",
                        ctx.app_name,
                        scope["method"],
                        escape(scope["path"]),
                    )
                cycle.fail()
            _log_unfinished(ctx, cycle)
    finally:
        if overdue is not None:
            overdue.cancel()
        # Rule 5, inline: a function call here cost ~250 instructions per request.
        task = cycle.task
        if task is not None:
            ctx.tasks.discard(task)
        if ctx.on_idle is not None:
            ctx.on_idle()


def _response_start_overdue(ctx: ServerContext, cycle: HTTPCycle) -> None:
    """--timeout-response-start passed: 504, and the app's Task is cancelled."""
    if cycle.phase is not _START or cycle.disconnected:
        return  # it started its response (or the client left): not overdue
    scope = cycle.scope
    logger.warning(
        "Answered 504 to %s %s: the ASGI app %s did not start its response within %ss"
        " (--timeout-response-start); its task is cancelled",
        scope["method"],
        escape(scope["path"]),
        ctx.app_name,
        ctx.timeout_response_start,
    )
    cycle.answer_plainly(504, "Gateway Timeout: the application did not answer in time")
    task = cycle.task
    if task is not None:
        task.cancel()


def describe_requests(tasks: Iterable[asyncio.Task[Any]]) -> list[str]:
    """What each app Task serves ("GET /path from 10.0.0.1:5000"), for the shutdown log.

    Read from the `scope` local of run_app / run_websocket_app in the Task's coroutine:
    nothing per request has to remember it for the rare shutdown that times out.
    """
    described = []
    for task in tasks:
        frame = getattr(task.get_coro(), "cr_frame", None)
        scope = frame.f_locals.get("scope") if frame is not None else None
        if not isinstance(scope, dict):
            described.append(task.get_name())
            continue
        client = scope.get("client")
        method = scope.get("method", "WebSocket")
        described.append(
            f"{method} {escape(scope.get('path', ''))}"
            f" from {f'{client[0]}:{client[1]}' if client else 'a unix socket peer'}"
        )
    return sorted(described)


def _log_protocol_error(
    ctx: ServerContext,
    cycle: HTTPCycle,
    error: ASGIProtocolError,
    *,
    caught: bool,
    exc_info: BaseException | None = None,
) -> None:
    scope = cycle.scope
    where = f"{scope['method']} {escape(scope['path'])}"
    log_protocol_error(where, error, ctx.app_name, caught=caught, exc_info=exc_info)


def _log_unfinished(ctx: ServerContext, cycle: HTTPCycle) -> None:
    """The access line of a response that did not complete, unless the glue wrote it."""
    if ctx.access_log is not None and cycle.ended is not LOGGED:
        log_response(ctx, cycle)


def log_response(ctx: ServerContext, cycle: HTTPCycle) -> None:
    """The access log line for a response that ended (the glue checks ctx.access_log)."""
    duration = perf_counter() - cycle.started_at
    scope = cycle.scope
    ended = cycle.ended
    cycle.ended = LOGGED  # also when only metrics count it: once per response
    phase = cycle.phase
    metrics = ctx.metrics
    if metrics is None:
        access = ctx.access_log
    else:
        # issue 12: counted inline (a call costs more than the counting; pier.metrics
        # rule 1). The recorder sits in access_log's place, so this runs with metrics
        # on; the real access log, if any, is metrics.access.
        status = cycle.status
        last = metrics.last
        # Keep-alive clients repeat themselves: the same status, method and version (the
        # parser's own str objects) as the previous response add to a run, unhashed.
        if status == last[2] and scope["method"] is last[0] and scope["http_version"] is last[1]:
            last[3] += 1
        else:
            metrics.count_new(scope["method"], scope["http_version"], status)
        if duration <= FIRST_BUCKET:
            metrics.fast += 1
        else:
            metrics.buckets[bisect_left(BUCKETS, duration)] += 1
        metrics.duration_sum += duration
        access = metrics.access
        if access is None:
            return
    assert access is not None
    access.record(
        client=scope["client"],
        method=scope["method"],
        path=scope["raw_path"],
        query_string=scope["query_string"],
        http_version=scope["http_version"],
        # 0: no response head reached the wire (the client left first, or shutdown).
        status=0 if phase is _START or phase is _BODY_FIRST else cycle.status,
        size=cycle.sent,
        duration=duration,
        request_headers=scope["headers"],
        response_headers=cycle.headers,
        ended=ended or (ENDED_CLIENT_GONE if cycle.disconnected else ENDED_COMPLETED),
    )
