"""Request body parsing with the limits of CONTRACT §0.4 (JSON over 1 MiB is 413, malformed JSON is 400)."""

from __future__ import annotations

import io

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from hsi.api.errors import ApiError, payload_too_large_detail


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if limit is not None and declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(payload_too_large_detail())
        data = (stream.read(limit + 1) if limit is not None else stream.read()) if stream is not None else b""
        if limit is not None and len(data) > limit:
            raise PayloadTooLarge(payload_too_large_detail())
        if not data.strip():
            return {}
        try:
            return super().parse(io.BytesIO(data), media_type, parser_context)
        except RecursionError:
            # json.loads raises RecursionError (not ValueError) for deeply nested arrays/objects.
            raise ParseError("JSON parse error - nesting too deep") from None
