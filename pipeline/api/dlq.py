"""``/api/dlq`` (CONTRACT §2.15, §10): list, stats, detail, requeue (one or many), discard, clear. Thin views."""

from __future__ import annotations

import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from hsi.api.errors import FieldValidationError
from hsi.api.filters import StrictFilterSet, parse_bool
from hsi.api.pagination import offset_page, parse_page
from hsi.api.schema import page_parameters, page_response, query_parameters
from hsi.api.views import ApiView
from pipeline import selectors, services
from pipeline.models import JobQueue
from pipeline.services.dlq import REQUEUE_LIMIT_MAX
from system.services import actor_from_request

LIST_DEFAULT_LIMIT = 50
LIST_MAX_LIMIT = 1000
QUEUES = [queue for queue, _ in JobQueue.choices]


class FailedJobFilter(StrictFilterSet):
    date_range = None
    queue = django_filters.ChoiceFilter(field_name="queue", choices=JobQueue.choices)
    camera_id = django_filters.CharFilter(field_name="camera_id", max_length=64)
    error_type = django_filters.CharFilter(field_name="error_type", max_length=50)


class RequeueManySerializer(serializers.Serializer):
    queue = serializers.ChoiceField(choices=QUEUES, required=False, allow_null=True)
    limit = serializers.IntegerField(min_value=1, max_value=REQUEUE_LIMIT_MAX, default=REQUEUE_LIMIT_MAX)


class ClearForm(forms.Form):
    queue = forms.ChoiceField(choices=JobQueue.choices, required=False)
    all = forms.CharField(required=False)

    def clean_all(self) -> bool:
        raw = self.cleaned_data.get("all")
        return parse_bool(raw) if raw not in (None, "") else False


def _query_values(request, *names: str) -> dict:
    return {name: request.query_params[name] for name in names if request.query_params.get(name) not in (None, "")}


class FailedJobListView(ApiView):
    """``/api/dlq``: list (oldest first) and clear."""

    @extend_schema(
        summary="List dead-lettered jobs",
        operation_id="dlq_list",
        tags=["dlq"],
        parameters=[
            *query_parameters(FailedJobFilter),
            *page_parameters(default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT),
        ],
        responses=page_response(),
    )
    def get(self, request):
        jobs = FailedJobFilter(request.query_params, queryset=selectors.failed_jobs()).qs
        page = parse_page(request, default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT)
        return Response(offset_page(jobs, page, selectors.failed_job_json))

    @extend_schema(
        summary="Clear one queue of the DLQ, or all of it",
        operation_id="dlq_clear",
        tags=["dlq"],
        parameters=[
            OpenApiParameter("queue", {"type": "string", "enum": QUEUES}, description="The queue to clear"),
            OpenApiParameter("all", bool, description="Clear every queue (when no queue is given)"),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def delete(self, request):
        form = ClearForm(request.query_params)
        if not form.is_valid():
            raise ValidationError({field: list(errors) for field, errors in form.errors.items()})
        queue, everything = form.cleaned_data["queue"] or None, form.cleaned_data["all"]
        if queue is None and not everything:
            raise FieldValidationError({"queue": "Give a queue, or all=true to clear every queue"})
        result = services.dlq_clear(queue, actor=actor_from_request(request))  # no queue: every queue
        return Response(result)


class FailedJobStatsView(ApiView):
    @extend_schema(
        summary="DLQ counts per queue", operation_id="dlq_stats", tags=["dlq"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request):
        return Response(selectors.failed_job_stats())


class FailedJobRequeueAllView(ApiView):
    @extend_schema(
        summary="Requeue dead-lettered jobs, oldest first",
        operation_id="dlq_requeue_many",
        tags=["dlq"],
        request=RequeueManySerializer,
        responses={202: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        data = {**_query_values(request, "queue", "limit"), **self.body()}
        serializer = RequeueManySerializer(data=data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        result = services.dlq_requeue_many(values.get("queue"), values["limit"], actor=actor_from_request(request))
        return Response(result, status=202)


class FailedJobDetailView(ApiView):
    @extend_schema(
        summary="Get a dead-lettered job", operation_id="dlq_retrieve", tags=["dlq"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request, job_id: str):
        return Response(selectors.failed_job_detail(int(job_id)))

    @extend_schema(
        summary="Discard a dead-lettered job", operation_id="dlq_discard", tags=["dlq"], responses={204: None}
    )
    def delete(self, request, job_id: str):
        services.dlq_discard(int(job_id), actor=actor_from_request(request))
        return Response(status=204)


class FailedJobRequeueView(ApiView):
    @extend_schema(
        summary="Requeue one dead-lettered job",
        operation_id="dlq_requeue",
        tags=["dlq"],
        responses={202: OpenApiTypes.OBJECT},
    )
    def post(self, request, job_id: str):
        job = services.dlq_requeue(int(job_id), actor=actor_from_request(request))
        return Response(
            {"id": int(job_id), "queue": job.queue, "task_name": job.task_name, "status": "requeued"}, status=202
        )
