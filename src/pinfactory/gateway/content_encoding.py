"""A request body's ``Content-Encoding``: sent as is (``identity``) or gzip-compressed.

The openai SDKs send bodies as they are; some HTTP clients and proxies compress large
ones. A gzip body is decompressed within the same byte limit as a plain one (a small
compressed body cannot expand past it); any other coding is a 415 naming the header
and what is accepted.
"""

from __future__ import annotations

import zlib

from pinfactory.errors import PayloadTooLarge, RequestError, UnsupportedMediaType

ACCEPTED = ("identity", "gzip")
_HEADER = "content-encoding"


def decoded(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` with its ``Content-Encoding`` undone (codings are undone last first).

    Raises :class:`UnsupportedMediaType` (415) for a coding other than ``identity`` or
    ``gzip`` (``x-gzip``), :class:`RequestError` (400) for a body that is not valid
    gzip, :class:`PayloadTooLarge` (413) when it decompresses past ``limit`` bytes.
    """
    if not content_encoding:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    for coding in reversed(codings):
        if coding in ("identity", ""):
            continue
        if coding not in ("gzip", "x-gzip"):
            raise UnsupportedMediaType(
                f"Content-Encoding '{coding}' is not supported; "
                f"send the body uncompressed or as {' or '.join(repr(a) for a in ACCEPTED)}",
                param=_HEADER,
            )
        body = _gunzip(body, limit)
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # a gzip header and trailer
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RequestError(
            f"request body is not valid gzip (Content-Encoding: gzip): {exc}", param=_HEADER
        ) from exc
    if len(plain) > limit:
        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes once gunzipped")
    if not inflater.eof or inflater.unused_data:
        raise RequestError(
            "request body is not valid gzip (Content-Encoding: gzip): "
            + ("it ends before the gzip stream does" if not inflater.eof else "bytes follow it"),
            param=_HEADER,
        )
    return plain
