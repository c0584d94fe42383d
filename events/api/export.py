"""``GET /api/events/export`` (CONTRACT §2.5 "CSV export"): the event list filters, no paging, a streamed CSV."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema

from events.export import events_export
from hsi.api.schema import query_parameters
from hsi.api.views import ApiView
from system.services import actor_from_request

from .serializers import EventListFilters

_DONE = object()


async def _async_chunks(chunks: Iterator[str]) -> AsyncIterator[str]:
    """Under ASGI each chunk is read in the request's sync thread (the ORM is sync), so the response streams
    instead of Django buffering a sync iterator whole."""
    next_chunk = sync_to_async(lambda: next(chunks, _DONE), thread_sensitive=True)
    while (chunk := await next_chunk()) is not _DONE:
        yield chunk


class EventExportView(ApiView):
    @extend_schema(
        summary="Export events as CSV",
        description="The event list filters, no paging; at most EXPORT_MAX_ROWS rows (X-Export-Truncated: true "
        "when more match).",
        operation_id="event_export",
        tags=["events"],
        parameters=query_parameters(EventListFilters.params),
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV, header row first")},
    )
    def get(self, request):
        filters = EventListFilters(request.query_params)
        export = events_export(refine=filters.apply, filters=filters.cleaned, actor=actor_from_request(request))
        chunks = export.csv_chunks()
        content = _async_chunks(chunks) if isinstance(request._request, ASGIRequest) else chunks
        response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        if export.truncated:
            response["X-Export-Truncated"] = "true"
        return response
