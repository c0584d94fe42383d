"""``POST /api/system/cleanup`` (CONTRACT §2.11, §10): run retention (§4.13) now, synchronously."""

from __future__ import annotations

from django import forms
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from hsi.api.errors import FieldValidationError
from hsi.api.filters import parse_bool
from hsi.api.views import ApiView
from system.retention import COUNT_KEYS, retention_run
from system.services import actor_from_request

_REQUEST = inline_serializer("CleanupRequest", {"dry_run": serializers.BooleanField(default=False)})
_RESPONSE = inline_serializer(
    "CleanupResult",
    {
        "dry_run": serializers.BooleanField(),
        **{key: serializers.IntegerField() for key in COUNT_KEYS},
        "cutoffs": serializers.DictField(child=serializers.DateTimeField()),
        "duration_ms": serializers.IntegerField(),
    },
)


class CleanupView(ApiView):
    @extend_schema(
        summary="Run retention now (or count what it would delete)",
        tags=["system"],
        request=_REQUEST,
        responses={200: _RESPONSE},
    )
    def post(self, request):
        dry_run = self._dry_run(self.body(), request.query_params.get("dry_run"))
        return Response(retention_run(dry_run=dry_run, actor=actor_from_request(request)))

    @staticmethod
    def _dry_run(body: dict, query_value: str | None) -> bool:
        """``dry_run`` from the JSON body (a JSON boolean), else from the query string (true/false/1/0/yes/no)."""
        if "dry_run" in body:
            value = body["dry_run"]
            if not isinstance(value, bool):
                raise FieldValidationError({"dry_run": "Must be a boolean (true or false)"})
            return value
        if query_value is None or query_value.strip() == "":
            return False
        try:
            return parse_bool(query_value)
        except forms.ValidationError:
            raise FieldValidationError({"dry_run": "Must be a boolean (true/false/1/0/yes/no)"}) from None
