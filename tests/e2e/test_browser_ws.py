"""A real browser against pier: headless Chromium opens a WebSocket to the server that
served its page, exchanges a text and a binary message, closes, and the test reads the
outcome from the page over the DevTools protocol: it awaits a promise in the page that
resolves when the page marks itself finished, so the result does not depend on how
fast this machine is (`--dump-dom` with a virtual-time budget raced the WebSocket).

Pins RFC 6455 as a browser speaks it (handshake with Origin, masked frames, a
subprotocol, the close handshake with code and reason), RFC 7692 as Chromium offers it
(permessage-deflate with client_max_window_bits), and the ASGI WebSocket spec 2.4
messages the app sees. Needs Debian's `chromium` package (the test setup installs it:
`apt-get install -y chromium`); without it the test is skipped, saying so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
from typing import Any

import pytest
from websockets.sync.client import connect

from pier.types import Receive, Scope, Send
from tests.e2e._support import serve_lifespan
from tests.e2e.test_websocket import Outcomes
from tests.helpers import running_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUT = Outcomes()

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>pending</title></head>
<body><pre id="result">pending</pre>
<script>
const seen = [];
const ws = new WebSocket(`ws://${location.host}/ws?from=page`, ["pier.v1"]);
ws.binaryType = "arraybuffer";
ws.onopen = () => {
  ws.send("hello from chromium \\u2713");
  ws.send(new Uint8Array([0, 1, 2, 255]).buffer);
};
ws.onmessage = (event) => {
  if (typeof event.data === "string") {
    seen.push("text=" + event.data);
  } else {
    seen.push("bytes=" + Array.from(new Uint8Array(event.data)).join(","));
  }
  if (seen.length === 2) ws.close(4000, "page done");
};
ws.onerror = () => seen.push("error");
ws.onclose = (event) => {
  seen.push(`close=${event.code}/${event.reason}/${event.wasClean}`);
  seen.push("protocol=" + ws.protocol);
  seen.push("extensions=" + ws.extensions);
  document.getElementById("result").textContent = seen.join("\\n");
  document.title = "finished";
};
</script></body></html>
"""


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    if scope["type"] == "http":
        body = PAGE.encode()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})
        return
    assert (await receive())["type"] == "websocket.connect"
    OUT.put("scope", scope)
    await send({"type": "websocket.accept", "subprotocol": "pier.v1"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            OUT.put("disconnect", message)
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})


# Resolves with the page's result once its script has set the title to "finished".
WAIT_FOR_RESULT = """new Promise(resolve => {
  const check = () => document.title === "finished"
    ? resolve(document.getElementById("result").textContent)
    : setTimeout(check, 20);
  check();
})"""
DEADLINE = 30.0


def page_result(url: str, *extra_args: str) -> str:
    """Open `url` in headless Chromium; return the page's result text once it is ready."""
    assert CHROMIUM is not None
    # Chromium's helper processes may still write into the profile as it is removed.
    with tempfile.TemporaryDirectory(
        prefix="pier-chromium-", ignore_cleanup_errors=True
    ) as profile:
        browser = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", *extra_args,
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        timer = threading.Timer(DEADLINE + 15, browser.kill)
        timer.start()
        try:
            return _drive(browser, url)
        finally:
            timer.cancel()
            browser.kill()
            browser.wait(10)
            assert browser.stderr is not None
            browser.stderr.close()


def _drive(browser: subprocess.Popen[str], url: str) -> str:
    assert browser.stderr is not None
    seen = []
    for line in browser.stderr:
        seen.append(line)
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            break
    else:
        raise AssertionError("chromium exited before listening:\n" + "".join(seen[-20:]))
    with connect(found.group(1), max_size=None, open_timeout=DEADLINE) as devtools:
        calls = iter(range(1, 1000))
        events: list[dict[str, Any]] = []

        def receive() -> dict[str, Any]:
            message: dict[str, Any] = json.loads(devtools.recv(timeout=DEADLINE))
            return message

        def call(method: str, session: str | None = None, **params: Any) -> Any:
            ident = next(calls)
            message: dict[str, Any] = {"id": ident, "method": method, "params": params}
            if session is not None:
                message["sessionId"] = session
            devtools.send(json.dumps(message))
            while True:
                reply = receive()
                if reply.get("id") == ident:
                    assert "error" not in reply, reply
                    return reply["result"]
                events.append(reply)  # an event that arrived in between

        def wait_event(method: str) -> None:
            while not any(event.get("method") == method for event in events):
                events.append(receive())

        target = call("Target.createTarget", url="about:blank")["targetId"]
        session = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        call("Page.enable", session)
        events.clear()
        call("Page.navigate", session, url=url)
        wait_event("Page.loadEventFired")
        result = call("Runtime.evaluate", session, expression=WAIT_FOR_RESULT,
                      awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return str(result["result"]["value"])


@pytest.mark.skipif(CHROMIUM is None,
                    reason="chromium is not installed (apt-get install -y chromium)")
def test_chromium_exchanges_text_and_binary_messages_over_pier() -> None:
    with running_server(app) as server:
        lines = page_result(f"http://127.0.0.1:{server.port}/").splitlines()
        assert lines[:3] == [
            "text=echo: hello from chromium \u2713",
            "bytes=255,2,1,0",
            "close=4000/page done/true",
        ], lines
        assert "protocol=pier.v1" in lines
        # Chromium offers permessage-deflate; pier accepts, so both directions compress.
        extensions = next(line for line in lines if line.startswith("extensions="))
        assert "permessage-deflate" in extensions
        scope: dict[str, Any] = OUT.get("scope")
        assert scope["subprotocols"] == ["pier.v1"]
        assert scope["query_string"] == b"from=page"
        origin = dict(scope["headers"]).get(b"origin")
        assert origin == f"http://127.0.0.1:{server.port}".encode()
        assert OUT.get("disconnect") == {"type": "websocket.disconnect", "code": 4000,
                                         "reason": "page done"}
