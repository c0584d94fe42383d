"""Base classes and helpers shared by every API view."""

from __future__ import annotations

from django.db.models import Model, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.views import APIView

from hsi.api.errors import NotFound
from hsi.api.parsers import LimitedJSONParser


class ApiView(APIView):
    """Thin view: parse input, call one service or selector, render. Auth is done by middleware."""

    parser_classes = [LimitedJSONParser]

    def body(self) -> dict:
        """The JSON body, which must be an object."""
        data = self.request.data
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["Request body must be a JSON object"]})
        return data


def get_or_404(queryset: QuerySet | type[Model], label: str, **lookup) -> Model:
    if not isinstance(queryset, QuerySet):
        queryset = queryset._default_manager.all()
    obj = queryset.filter(**lookup).first()
    if obj is None:
        value = next(iter(lookup.values()), "")
        raise NotFound(f"{label} {value} not found")
    return obj
