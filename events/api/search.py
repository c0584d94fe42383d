"""``GET /api/search`` (CONTRACT §2.6, search throttle tier). Thin: validate, parse the query, call the selector."""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import OpenApiParameter, extend_schema

from events.models import AnalysisStatus, RiskLevel
from events.search import parse_query, search_page
from hsi.api.errors import FieldValidationError
from hsi.api.json_sql import json_response
from hsi.api.pagination import parse_page
from hsi.api.schema import page_parameters, page_response, query_parameters
from hsi.api.views import ApiView

from .serializers import Param, QueryFilters, _any_object_type, _bool, _end, _list, _start

SEARCH_LIMIT_DEFAULT = 50
SEARCH_LIMIT_MAX = 100
QUERY_MAX_LENGTH = 500


class SearchFilters(QueryFilters):
    """The list filters of §2.6; ``severity`` is an alias of ``risk_level`` (``risk_level`` wins when both are
    sent)."""

    params = {
        "camera_id": Param(_list(max_length=64), "camera_id__in"),
        "risk_level": Param(_list(choices=RiskLevel.choices, lower=True), "risk_level__in"),
        "severity": Param(_list(choices=RiskLevel.choices, lower=True), "risk_level__in"),
        "object_type": Param(_list(max_length=64, lower=True), _any_object_type),
        "analysis_status": Param(_list(choices=AnalysisStatus.choices, lower=True), "analysis_status__in"),
        "reviewed": Param(_bool(), "reviewed"),
        "flagged": Param(_bool(), "flagged"),
        "start_date": Param(_start(), "started_at__gte"),
        "end_date": Param(_end(), "started_at__lte"),
    }

    def __init__(self, query_params: Mapping[str, str]):
        super().__init__(query_params)
        if "risk_level" in self.cleaned:
            self.cleaned.pop("severity", None)


def _query_text(params: Mapping[str, str]) -> str:
    text = params.get("q")
    if text is None or text == "":
        raise FieldValidationError({"q": "This parameter is required (1-500 characters)"})
    if len(text) > QUERY_MAX_LENGTH:
        raise FieldValidationError({"q": f"Ensure this value has at most {QUERY_MAX_LENGTH} characters"})
    return text


class SearchView(ApiView):
    @extend_schema(
        summary="Full-text search over events",
        description="Event list items plus relevance_score and highlights (CONTRACT §2.6; events/search.py).",
        operation_id="event_search",
        tags=["events"],
        parameters=[
            OpenApiParameter(
                "q",
                {"type": "string", "minLength": 1, "maxLength": QUERY_MAX_LENGTH},
                OpenApiParameter.QUERY,
                required=True,
                description='Words (ANDed), "phrases", OR, NOT / -term',
            ),
            *query_parameters(SearchFilters.params),
            *page_parameters(default=SEARCH_LIMIT_DEFAULT, maximum=SEARCH_LIMIT_MAX),
        ],
        responses=page_response("One page of search hits"),
    )
    def get(self, request):
        text = _query_text(request.query_params)
        filters = SearchFilters(request.query_params)
        page = parse_page(request, default=SEARCH_LIMIT_DEFAULT, maximum=SEARCH_LIMIT_MAX)
        return json_response(search_page(parse_query(text), page, refine=filters.apply))
