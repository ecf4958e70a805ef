"""The ASGI apps every server is benchmarked on, one module per scenario.

Rules: each app is the same for every server (no server-specific code paths), does the
least work its scenario needs, and handles lifespan so no server logs a warning about it.
"""
