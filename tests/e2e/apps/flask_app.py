"""A Flask app with the routes a WSGI server must carry: forms, uploads, streaming,
file downloads and errors."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, request, send_file, stream_with_context

app = Flask(__name__)
# The file the download route serves, written by the test.
DOWNLOAD_ENV = "WSGI_TEST_DOWNLOAD"


@app.get("/hello")
def hello() -> str:
    return "Hello from Flask"


@app.post("/form")
def form() -> dict[str, Any]:
    return {"name": request.form["name"], "tags": request.form.getlist("tag")}


@app.post("/upload")
def upload() -> dict[str, Any]:
    file = request.files["file"]
    data = file.read()
    return {"filename": file.filename, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "note": request.form.get("note")}


@app.post("/echo-stream")
def echo_stream() -> Response:
    # Reads the raw body in pieces while streaming it back (request.stream is wsgi.input).
    def generate() -> Iterator[bytes]:
        while chunk := request.stream.read(65536):
            yield chunk

    return Response(stream_with_context(generate()), mimetype="application/octet-stream")


@app.get("/stream")
def stream() -> Response:
    def generate() -> Iterator[str]:
        for i in range(100):
            yield f"line {i}\n"

    return Response(generate(), mimetype="text/plain")


@app.get("/download")
def download() -> Response:
    return send_file(
        os.environ[DOWNLOAD_ENV], mimetype="application/octet-stream", as_attachment=True
    )


@app.get("/boom")
def boom() -> str:
    raise RuntimeError("flask view failed on purpose")
