"""The ASGI lifespan protocol (ASGI lifespan spec 2.0): startup, shutdown and state.

Rules:
1. One long-lived task runs the app with a "lifespan" scope; startup() and shutdown()
   hand it one event each and wait for its answer.
2. mode "auto": an app that raises (or returns) before answering startup does not
   support lifespan; that is logged at INFO and serving goes on. mode "on": the same is
   a start-up failure. mode "off": the app is never called with a lifespan scope.
3. A "...failed" answer always fails (LifespanFailed carries the app's message).
4. A message the protocol does not expect now raises `ASGIProtocolError` in the app and
   answers whoever waits (issue 15), so an app that catches it cannot hang start-up:
   a lifespan message out of turn fails start-up (or shutdown) with a LifespanFailed
   naming it; with --lifespan auto, a message that is not a lifespan one at all (an
   app that treats every scope as HTTP) means "no lifespan support", as raising does.
   Sent while nobody waits (while serving), it is one error-log line.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from typing import Any

from pier.asgi.http import ASGIProtocolError
from pier.errors import LifespanFailed
from pier.types import ASGIApp, Message

logger = logging.getLogger("pier.error")

LIFESPAN_SPEC_VERSION = "2.0"
# The answer a waiting startup()/shutdown() gets when the app sent a message out of turn.
_BROKEN = "pier.lifespan.broken"


def _is_lifespan(kind: object) -> bool:
    return isinstance(kind, str) and kind.startswith("lifespan.")


def command_line_option(name: str, value: str) -> str:
    """How a user sets option `name` to `value` when pier runs from its command line."""
    return f"--{name.replace('_', '-')} {value}"


class Lifespan:
    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: str,
        state: dict[str, Any],
        spell: Callable[[str, str], str] = command_line_option,
    ) -> None:
        self.app = app
        self.mode = mode
        self.state = state
        self.spell = spell
        """Names a setting in hints the way this user sets it (gunicorn has no flags)."""
        self.supported = mode != "off"
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answer: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self._app_error: BaseException | None = None
        # Has the app answered lifespan.startup? Decides which answers send() accepts
        # and whether an exception is "no lifespan support" or a real failure.
        self._startup_answered = False
        # The error send() raised for a message out of turn (rule 4).
        self._protocol_error: ASGIProtocolError | None = None
        # The app answered "...failed": startup()/shutdown() report it, with the app's
        # exception when the message lacks it, so a failure is logged once, not twice.
        self._failed_answer = False

    async def startup(self) -> None:
        if not self.supported:
            return
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._task = loop.create_task(self._run(), name="pier-lifespan")
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._answer
        kind = answer["type"]
        if kind == "lifespan.startup.complete":
            return
        if kind == "lifespan.startup.failed":
            raise LifespanFailed("application startup failed: " + self._failure(answer))
        if kind == _BROKEN and (self.mode == "on" or _is_lifespan(answer.get("sent"))):
            raise LifespanFailed(f"the app broke the lifespan protocol: {answer['message']}")
        # The app stopped before answering (or answered with something else entirely).
        if self.mode == "on":
            detail = (
                f"{type(self._app_error).__name__}: {self._app_error}"
                if self._app_error
                else "it returned without sending 'lifespan.startup.complete'"
            )
            raise LifespanFailed(
                f"{self.spell('lifespan', 'on')}, but the app does not handle the lifespan"
                f" scope ({detail}); use {self.spell('lifespan', 'auto')} or"
                f" {self.spell('lifespan', 'off')}, or handle 'lifespan.startup'"
            )
        self.supported = False
        logger.info(
            "The app does not support the ASGI lifespan protocol; going on without it"
            f" (use {self.spell('lifespan', 'off')} to skip this check)"
        )

    async def shutdown(self) -> None:
        if not self.supported or self._task is None:
            return
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        await self._inbox.put({"type": "lifespan.shutdown"})
        answer = await self._answer
        await asyncio.wait([self._task], timeout=1.0)
        if answer["type"] == "lifespan.shutdown.failed":
            raise LifespanFailed("application shutdown failed: " + self._failure(answer))
        if answer["type"] == _BROKEN:
            raise LifespanFailed(
                f"application shutdown failed: the app broke the lifespan protocol:"
                f" {answer['message']}"
            )

    async def abandon(self) -> None:
        """Stop waiting for the app: cancel its lifespan task (shutdown cut short)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)

    def _failure(self, answer: Message) -> str:
        """The app's failure message, plus its exception when the message lacks it."""
        message = str(answer.get("message") or "(the app gave no message)").rstrip()
        error = self._app_error
        if error is not None and "Traceback" not in message:
            message += "\n" + "".join(traceback.format_exception(error)).rstrip()
        return message

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": LIFESPAN_SPEC_VERSION},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            self._app_error = exc
            if exc is self._protocol_error:
                pass  # already reported (rule 4)
            elif (self.mode == "on" or self._startup_answered) and not self._failed_answer:
                logger.error("Exception in the app's lifespan handler", exc_info=exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._answer is not None and not self._answer.done():
                self._answer.set_result({"type": "pier.lifespan.stopped"})

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        expected = (
            ("lifespan.shutdown.complete", "lifespan.shutdown.failed")
            if self._startup_answered
            else ("lifespan.startup.complete", "lifespan.startup.failed")
        )
        if kind not in expected:
            error = ASGIProtocolError(
                f"unexpected lifespan message {kind!r} sent; ASGI expects one of"
                f" {expected} now"
            )
            self._protocol_error = error
            waiting = self._answer
            if waiting is not None and not waiting.done():
                waiting.set_result({"type": _BROKEN, "message": str(error), "sent": kind})
            else:
                logger.error("ASGI protocol error in the app's lifespan handler: %s", error)
            raise error
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            self._startup_answered = True
        if kind.endswith(".failed"):
            self._failed_answer = True
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(message)
