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

    # Media file paths: a NUL there is a §6.4 traversal attempt (403, audited by the media views), not a 404.
    NUL_ALLOWED_PATH_PARAMETERS = frozenset({"path", "filename"})

    def initial(self, request, *args, **kwargs):
        # A NUL in an id path parameter (``%00``) names no resource, and PostgreSQL refuses it in any text
        # comparison: 404 here, for every view, rather than a database error.
        for name, value in kwargs.items():
            if isinstance(value, str) and "\x00" in value and name not in self.NUL_ALLOWED_PATH_PARAMETERS:
                raise NotFound("Not found")
        super().initial(request, *args, **kwargs)

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
