# Types of the C fast path in _h1head.c (built as an optional extension; see setup.py).

from typing import Any

def parse_head(
    data: bytes,
    start: int,
    target_limit: int,
    fields_limit: int,
    field_size_limit: int,
    head_size_limit: int,
    body_limit: int,
    /,
) -> (
    tuple[
        int,  # end: the index just past the head's blank line
        str,  # method
        bytes,  # raw_path
        bytes,  # query_string
        list[tuple[bytes, bytes]],  # headers: names lower-cased, values OWS-stripped
        str,  # http_version: "1.1" or "1.0"
        bool,  # keep_alive
        bool,  # expect_continue
        int | None,  # content_length
        bool,  # accepts_trailers
    ]
    | None
): ...


def has_any_name(names: frozenset[bytes], headers: list[tuple[bytes, bytes]], /) -> bool: ...


def environ_fields(
    environ: dict[str, Any], names: dict[bytes, str], headers: list[tuple[bytes, bytes]], /
) -> bool: ...
