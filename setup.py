"""The one part of pier's build that pyproject.toml cannot declare: the C fast path.

`pier.proto._h1head` (src/pier/proto/_h1head.c) reads plain HTTP/1.1 request heads in one
call. It is optional: where it cannot be compiled (no C compiler, an interpreter
without headers) pier installs anyway and reads every head with llhttp, as before.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pier.proto._h1head",
            ["src/pier/proto/_h1head.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
