"""Serving WSGI apps (PEP 3333): a bridge into pier's ASGI request lifecycle."""

from pier.wsgi.bridge import DEFAULT_THREADS, FileWrapper, WSGIAdapter

__all__ = ["DEFAULT_THREADS", "FileWrapper", "WSGIAdapter"]
