"""``/api/alerts/rules`` (CONTRACT §2.7, §5.1): rule CRUD, rule test and backtest. Thin: parse, call, render."""

from __future__ import annotations

import datetime as dt

import django_filters
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from alerts import selectors
from alerts.api.rule_serializers import BacktestSerializer, RuleSerializer, RuleTestSerializer, validated_rule
from alerts.models import RuleTrigger
from alerts.services import rules as services
from events.models import RiskLevel
from hsi.api.errors import BadRequest
from hsi.api.filters import ListFilter, StrictBooleanFilter, StrictFilterSet
from hsi.api.pagination import envelope, offset_slice, parse_page
from hsi.api.views import ApiView
from system.services import actor_from_request

LIST_DEFAULT_LIMIT = 50
LIST_MAX_LIMIT = 1000
TEST_DEFAULT_LIMIT = 10
BACKTEST_DEFAULT_DAYS = 7


class RuleFilter(StrictFilterSet):
    date_range = None
    enabled = StrictBooleanFilter(field_name="enabled")
    severity = ListFilter(field_name="severity", choices=RiskLevel.choices, lower=True)
    trigger = django_filters.ChoiceFilter(field_name="trigger", choices=RuleTrigger.choices)


def _validated(serializer_class, data: dict) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class RuleListView(ApiView):
    @extend_schema(
        summary="List alert rules", operation_id="alert_rule_list", tags=["alerts"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request):
        rules = RuleFilter(request.query_params, queryset=selectors.rule_list()).qs
        page = parse_page(request, default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT)
        rows, has_more = offset_slice(rules, page)
        return Response(
            envelope([selectors.rule_json(rule) for rule in rows], total=rules.count(), page=page, has_more=has_more)
        )

    @extend_schema(
        summary="Create an alert rule",
        operation_id="alert_rule_create",
        tags=["alerts"],
        request=RuleSerializer,
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        data = validated_rule(self.body(), creating=True)
        rule = services.rule_create(data=data, actor=actor_from_request(request))
        return Response(selectors.rule_json(rule), status=201, headers={"Location": f"/api/alerts/rules/{rule.id}"})


class RuleDetailView(ApiView):
    @extend_schema(
        summary="Get an alert rule", operation_id="alert_rule_retrieve", tags=["alerts"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request, rule_id: str):
        return Response(selectors.rule_json(services.rule_get(rule_id)))

    @extend_schema(
        summary="Update an alert rule",
        operation_id="alert_rule_update",
        tags=["alerts"],
        request=RuleSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def patch(self, request, rule_id: str):
        body = self.body()
        current = services.rule_get(rule_id)
        data = validated_rule(body, creating=False, current=services.rule_state(current))
        rule = services.rule_update(rule_id, data=data, actor=actor_from_request(request))
        return Response(selectors.rule_json(rule))

    @extend_schema(
        summary="Update an alert rule (partial, like PATCH)",
        operation_id="alert_rule_replace",
        request=RuleSerializer,
        tags=["alerts"],
        responses=OpenApiTypes.OBJECT,
    )
    def put(self, request, rule_id: str):
        return self.patch(request, rule_id)

    @extend_schema(
        summary="Delete an alert rule (its alerts stay)",
        operation_id="alert_rule_delete",
        tags=["alerts"],
        responses={204: None},
    )
    def delete(self, request, rule_id: str):
        services.rule_delete(rule_id, actor=actor_from_request(request))
        return Response(status=204)


class RuleTestView(ApiView):
    @extend_schema(
        summary="Evaluate a rule against events without creating alerts",
        operation_id="alert_rule_test",
        request=RuleTestSerializer,
        tags=["alerts"],
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request, rule_id: str):
        body = self.body()
        services.rule_get(rule_id)
        data = _validated(RuleTestSerializer, body)
        result = services.rule_test(
            rule_id,
            event_ids=data.get("event_ids"),
            limit=data.get("limit") or TEST_DEFAULT_LIMIT,
            test_time=data.get("test_time"),
            actor=actor_from_request(request),
        )
        return Response(result)


class RuleBacktestView(ApiView):
    @extend_schema(
        summary="Replay past events through a rule",
        operation_id="alert_rule_backtest",
        request=BacktestSerializer,
        tags=["alerts"],
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request):
        data = _validated(BacktestSerializer, self.body())
        if data.get("rule_id") is not None:
            rule = services.rule_get(data["rule_id"])
        else:
            rule = services.unsaved_rule(validated_rule(data["rule"], creating=True, prefix="rule."))
        start, end = _period(data)
        result = services.rule_backtest(
            rule,
            start=start,
            end=end,
            respect_cooldown=data.get("respect_cooldown", True),
            actor=actor_from_request(request),
        )
        return Response(result)


def _period(data: dict) -> tuple[dt.datetime, dt.datetime]:
    """``start_date``/``end_date`` when given (the missing end is now, the missing start ``days`` before the end),
    else the last ``days`` days (default 7)."""
    days = data.get("days") or BACKTEST_DEFAULT_DAYS
    end = data.get("end_date") or timezone.now()
    start = data.get("start_date") or end - dt.timedelta(days=days)
    if start > end:
        raise BadRequest("start_date must not be later than end_date")
    return start, end
