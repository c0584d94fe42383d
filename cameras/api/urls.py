"""Camera and zone routes (CONTRACT §2.2, §2.3); every path works with and without a trailing slash."""

from django.urls import re_path

from cameras.api import views

CAMERA_ID = r"(?P<camera_id>[^/]+)"
ZONE_ID = r"(?P<zone_id>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"

urlpatterns = [
    re_path(r"^cameras/?$", views.CameraListView.as_view(), name="camera-list"),
    re_path(rf"^cameras/{CAMERA_ID}/?$", views.CameraDetailView.as_view(), name="camera-detail"),
    re_path(rf"^cameras/{CAMERA_ID}/zones/?$", views.CameraZoneListView.as_view(), name="camera-zone-list"),
    re_path(
        rf"^cameras/{CAMERA_ID}/zones/{ZONE_ID}/?$", views.CameraZoneDetailView.as_view(), name="camera-zone-detail"
    ),
    re_path(r"^zones/?$", views.ZoneListView.as_view(), name="zone-list"),
    re_path(rf"^zones/{ZONE_ID}/?$", views.ZoneDetailView.as_view(), name="zone-detail"),
]
