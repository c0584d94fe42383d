"""``/api/admin`` (CONTRACT §2.16): demo seeding and data clearing, guarded by ``DEBUG`` / ``ADMIN_API_ENABLED``."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from hsi.api.errors import ApiError, FieldValidationError, NotFound
from hsi.api.views import ApiView
from system.seeding import CLEAR_CONFIRMATION, SEED_DEFAULTS, demo_clear, demo_seed, seed_option_errors
from system.services import actor_from_request

_SEED_REQUEST = inline_serializer(
    "AdminSeedRequest",
    {
        "cameras": serializers.IntegerField(min_value=1, max_value=6, default=3),
        "events": serializers.IntegerField(min_value=0, max_value=500, default=20),
        "days": serializers.IntegerField(min_value=1, max_value=30, default=7),
        "clear_existing": serializers.BooleanField(default=False),
        "create_media": serializers.BooleanField(default=False),
    },
)
_SEED_RESPONSE = inline_serializer(
    "AdminSeedResult",
    {
        "cameras_created": serializers.IntegerField(),
        "events_created": serializers.IntegerField(),
        "detections_created": serializers.IntegerField(),
        "alerts_created": serializers.IntegerField(),
        "cleared": serializers.BooleanField(),
    },
)
_CLEAR_REQUEST = inline_serializer(
    "AdminClearRequest",
    {
        "confirm": serializers.CharField(help_text=f"must be {CLEAR_CONFIRMATION}"),
        "keep_cameras": serializers.BooleanField(default=False),
    },
)
_CLEAR_RESPONSE = inline_serializer(
    "AdminClearResult",
    {
        f"{name}_deleted": serializers.IntegerField()
        for name in ("cameras", "events", "detections", "alerts", "batches", "entities", "failed_jobs")
    },
)


class AdminDisabled(ApiError):
    status_code = 403
    code = "admin_disabled"


class AdminApiView(ApiView):
    """Every path under /api/admin answers 403 ``admin_disabled`` unless the admin API is enabled."""

    def initial(self, request, *args, **kwargs):
        if not (settings.DEBUG or settings.ADMIN_API_ENABLED):
            raise AdminDisabled("Admin API is disabled")
        super().initial(request, *args, **kwargs)


def _boolean(body: dict, name: str, default: bool, errors: dict[str, str]) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        errors[name] = "Must be a boolean (true or false)"
        return default
    return value


class SeedView(AdminApiView):
    @extend_schema(summary="Seed demo data", tags=["admin"], request=_SEED_REQUEST, responses={201: _SEED_RESPONSE})
    def post(self, request):
        body = self.body()
        counts = {name: body.get(name, SEED_DEFAULTS[name]) for name in ("cameras", "events", "days")}
        errors = seed_option_errors(**counts)
        clear_existing = _boolean(body, "clear_existing", False, errors)
        create_media = _boolean(body, "create_media", False, errors)
        if errors:
            raise FieldValidationError(errors)
        result = demo_seed(
            **counts, clear_existing=clear_existing, create_media=create_media, actor=actor_from_request(request)
        )
        return Response(result, status=201)


class ClearView(AdminApiView):
    @extend_schema(
        summary="Delete pipeline and event data",
        tags=["admin"],
        request=_CLEAR_REQUEST,
        responses={200: _CLEAR_RESPONSE},
    )
    def post(self, request):
        body = self.body()
        errors: dict[str, str] = {}
        if body.get("confirm") != CLEAR_CONFIRMATION:
            errors["confirm"] = f"Must be exactly {CLEAR_CONFIRMATION!r} to delete all data"
        keep_cameras = _boolean(body, "keep_cameras", False, errors)
        if errors:
            raise FieldValidationError(errors)
        return Response(demo_clear(keep_cameras=keep_cameras, actor=actor_from_request(request)))


class UnknownAdminView(AdminApiView):
    """Any other /api/admin path: 403 while disabled (the guard comes first), else 404."""

    @extend_schema(exclude=True)
    def _not_found(self, request, *args, **kwargs):
        raise NotFound(f"No admin operation at {request.path}")

    get = post = put = patch = delete = _not_found
