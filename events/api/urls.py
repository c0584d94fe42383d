"""Routes of the event and detection endpoints (included under ``/api/``). Ids are 1–18 digits, so a path
parameter of the wrong shape (``/api/events/abc``) or beyond the 64-bit range matches no route: 404 (§0.2)."""

from django.urls import re_path

from . import baselines, export, feedback, search, views
from . import entities as entity_views

ID = r"(?P<{}>[0-9]{{1,18}})"
EVENT = ID.format("event_id")
DETECTION = ID.format("detection_id")
CAMERA = r"(?P<camera_id>[^/]+)"
ENTITY = r"(?P<entity_id>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"

urlpatterns = [
    re_path(r"^events/?$", views.EventListView.as_view(), name="event-list"),
    re_path(r"^events/stats/?$", views.EventStatsView.as_view(), name="event-stats"),
    re_path(r"^events/export/?$", export.EventExportView.as_view(), name="event-export"),
    re_path(r"^events/deleted/?$", views.DeletedEventListView.as_view(), name="event-trash"),
    re_path(rf"^events/{EVENT}/?$", views.EventDetailView.as_view(), name="event-detail"),
    re_path(rf"^events/{EVENT}/restore/?$", views.EventRestoreView.as_view(), name="event-restore"),
    re_path(rf"^events/{EVENT}/feedback/?$", feedback.EventFeedbackView.as_view(), name="event-feedback"),
    re_path(rf"^events/{EVENT}/detections/?$", views.EventDetectionListView.as_view(), name="event-detections"),
    re_path(r"^detections/?$", views.DetectionListView.as_view(), name="detection-list"),
    re_path(r"^search/?$", search.SearchView.as_view(), name="search"),
    re_path(r"^detections/stats/?$", views.DetectionStatsView.as_view(), name="detection-stats"),
    re_path(rf"^detections/{DETECTION}/?$", views.DetectionDetailView.as_view(), name="detection-detail"),
    re_path(r"^entities/?$", entity_views.EntityListView.as_view(), name="entity-list"),
    re_path(r"^entities/stats/?$", entity_views.EntityStatsView.as_view(), name="entity-stats"),
    re_path(rf"^entities/{ENTITY}/?$", entity_views.EntityDetailView.as_view(), name="entity-detail"),
    re_path(
        rf"^entities/{ENTITY}/detections/?$", entity_views.EntityDetectionListView.as_view(), name="entity-detections"
    ),
    re_path(rf"^cameras/{CAMERA}/baseline/?$", baselines.CameraBaselineView.as_view(), name="camera-baseline"),
    re_path(
        rf"^cameras/{CAMERA}/baseline/anomalies/?$",
        baselines.CameraBaselineAnomaliesView.as_view(),
        name="camera-baseline-anomalies",
    ),
    re_path(
        rf"^cameras/{CAMERA}/baseline/rebuild/?$",
        baselines.CameraBaselineRebuildView.as_view(),
        name="camera-baseline-rebuild",
    ),
]
