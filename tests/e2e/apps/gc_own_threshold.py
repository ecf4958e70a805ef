"""An app that sets the collector's threshold itself at import (test_collector.py)."""

from __future__ import annotations

import gc

from tests.e2e.apps.gc_report import app

OWN_THRESHOLD = 1234
gc.set_threshold(OWN_THRESHOLD, *gc.get_threshold()[1:])

__all__ = ["app"]
