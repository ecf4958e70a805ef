"""Small ASGI apps that `python -m pier` loads in the end-to-end tests (via --app-dir).

Rules: each module is importable on its own as a top-level module (no imports from the
test package), prints the markers the tests wait for with flush=True, and keeps any
timing in the URL so that a test states how slow a request is.
"""
