"""pier's benchmark suite (`bench/run`): peers side by side on the same apps and load.

Rules: nothing here is imported by pier or its tests; the harness runs from its own
virtualenv (bench/.venv) so the peers never leak into the project's environment.
"""
