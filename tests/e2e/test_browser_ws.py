"""A real browser against pier: headless Chromium opens a WebSocket to the server that
served its page, exchanges a text and a binary message, closes, and the test reads the
outcome from the page's DOM (`chromium --headless --dump-dom`).

Pins RFC 6455 as a browser speaks it (handshake with Origin, masked frames, a
subprotocol, the close handshake with code and reason), RFC 7692 as Chromium offers it
(permessage-deflate with client_max_window_bits), and the ASGI WebSocket spec 2.4
messages the app sees. Needs Debian's `chromium` package (the test setup installs it:
`apt-get install -y chromium`); without it the test is skipped, saying so.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
from typing import Any

import pytest

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


def dump_dom(url: str) -> str:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="pier-chromium-") as profile:
        completed = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
             url],
            capture_output=True, text=True, timeout=45, check=False,
        )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


@pytest.mark.skipif(CHROMIUM is None,
                    reason="chromium is not installed (apt-get install -y chromium)")
def test_chromium_exchanges_text_and_binary_messages_over_pier() -> None:
    with running_server(app) as server:
        dom = dump_dom(f"http://127.0.0.1:{server.port}/")
        match = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
        assert match, dom[-2000:]
        lines = html.unescape(match.group(1)).splitlines()
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
