"""Request body parsing with the limits of CONTRACT §0.4 (JSON over 1 MiB is 413)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.parsers import JSONParser

from hsi.api.errors import ApiError


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"JSON body exceeds {limit} bytes")
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise PayloadTooLarge(f"JSON body exceeds {limit} bytes")
        if not data.strip():
            return {}
        import io

        return super().parse(io.BytesIO(data), media_type, parser_context)
