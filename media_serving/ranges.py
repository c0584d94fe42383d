"""Byte ranges and conditional file responses (CONTRACT §6.4, §2.10).

One ``bytes=`` range is served as 206 with its exact length; a start beyond the file, a malformed header or
several ranges answer 416 ``Content-Range: bytes */size``. Bodies are streamed in 64 KiB chunks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import http_date

from hsi.api.errors import problem_response

CHUNK_SIZE = 64 * 1024
CACHE_CONTROL = "private, max-age=3600"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(ValueError):
    pass


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single range of a ``Range`` header for a file of ``size`` bytes; None for the whole file."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        raise RangeNotSatisfiable(header)
    first, last = match.groups()
    if not first and not last:
        raise RangeNotSatisfiable(header)
    if not first:  # suffix: the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(header)
    return ByteRange(start, min(end, size - 1))


def entity_tag(stat: os.stat_result) -> str:
    return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    offered = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in offered or etag in offered


class FileChunks:
    """``length`` bytes from ``start`` of an open file in 64 KiB chunks. Django calls ``close`` when the
    response is done (also when the client goes away before the body was read)."""

    def __init__(self, handle: BinaryIO, start: int, length: int):
        self.handle, self.start, self.length = handle, start, length

    def __iter__(self) -> Iterator[bytes]:
        self.handle.seek(self.start)
        remaining = self.length
        while remaining > 0:
            chunk = self.handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.handle.close()


def file_response(request: HttpRequest, path: Path, content_type: str) -> HttpResponse:
    """200 / 206 / 304 / 416 for one regular file, with the caching headers of §2.10. The file is opened
    before the headers are computed, so a file replaced meanwhile cannot mix its length with another body."""
    handle = open(path, "rb")  # noqa: SIM115 - closed by FileChunks.close, or below when no body is sent
    try:
        return _file_response(request, handle, content_type)
    except BaseException:
        handle.close()
        raise


def _file_response(request: HttpRequest, handle: BinaryIO, content_type: str) -> HttpResponse:
    stat = os.fstat(handle.fileno())
    size = stat.st_size
    etag = entity_tag(stat)
    validators = {"ETag": etag, "Last-Modified": http_date(stat.st_mtime), "Cache-Control": CACHE_CONTROL}
    if etag_matches(request.headers.get("If-None-Match"), etag):
        handle.close()
        response = HttpResponse(status=304)
        for name, value in validators.items():
            response[name] = value
        return response
    try:
        byte_range = parse_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        handle.close()
        return problem_response(
            request,
            416,
            "range_not_satisfiable",
            "Requested range not satisfiable",
            headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
        )
    if byte_range is None:
        response = StreamingHttpResponse(FileChunks(handle, 0, size), content_type=content_type)
        response["Content-Length"] = str(size)
    else:
        response = StreamingHttpResponse(
            FileChunks(handle, byte_range.start, byte_range.length), status=206, content_type=content_type
        )
        response["Content-Length"] = str(byte_range.length)
        response["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    response["Accept-Ranges"] = "bytes"
    for name, value in validators.items():
        response[name] = value
    return response
