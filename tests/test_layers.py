"""The layers stay one-way (docs/architecture.md): each module, imported alone in a fresh
interpreter, pulls in nothing from a layer above it.

proto/ is sans-I/O (no asyncio, no sockets); the ASGI adapter knows no protocol's
framing and no connection; config knows no sockets or servers; the server knows no
supervisor; and `import pier` itself loads nothing until a public name is used.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# module -> prefixes of modules it must not load (a prefix ending in "." is a package)
RULES: dict[str, tuple[str, ...]] = {
    "pier": ("asyncio", "pier.config", "pier.io.", "pier.proto."),
    "pier.proto.h1": ("asyncio", "socket", "ssl", "pier.io.", "pier.asgi.", "pier.config"),
    # (the websockets library itself imports socket, for its type hints and helpers)
    "pier.proto.ws": ("asyncio", "pier.io.", "pier.asgi.", "pier.config"),
    "pier.proto.headers": ("asyncio", "pier.io.", "pier.asgi.", "pier.proto.h1"),
    "pier.asgi.http": ("pier.io.", "pier.proto.h1", "pier.proto.ws", "pier.config"),
    "pier.asgi.websocket": ("pier.io.", "pier.proto.h1", "pier.proto.ws", "pier.config"),
    "pier.config": ("asyncio", "socket", "pier.io.", "pier.supervisor"),
    "pier.cli": ("asyncio", "pier.io.", "pier.supervisor"),
    "pier.io.server": ("pier.supervisor", "pier.serve", "pier.cli"),
    "pier.io.lifecycle": ("pier.proto.h1", "pier.io.connection", "pier.io.server"),
    # WebSocket support is optional (--ws none runs without the websockets library).
    "pier.io.connection": ("pier.proto.ws", "websockets", "pier.io.websocket"),
    # The WebSocket glue writes no HTTP/1.1: the protocol under it answers the handshake.
    "pier.io.websocket": ("pier.proto.h1", "pier.io.connection"),
}


def loaded_by(module: str) -> list[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return list(json.loads(result.stdout))


@pytest.mark.parametrize("module", RULES)
def test_a_layer_loads_nothing_from_above_it(module: str) -> None:
    loaded = loaded_by(module)
    offending = [
        name
        for name in loaded
        for prefix in RULES[module]
        if name == prefix.rstrip(".") or name.startswith(prefix if prefix.endswith(".")
                                                          else prefix + ".")
    ]
    assert not offending, f"import {module} loaded {offending}"


def test_the_public_names_still_load_on_use() -> None:
    import pier

    assert pier.Config.__name__ == "Config"
    assert pier.Server.__name__ == "Server"
    assert callable(pier.run)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = pier.nothing  # type: ignore[attr-defined]
