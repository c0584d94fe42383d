"""Routes of the media endpoints (included under ``/api/``, CONTRACT §2.10). ``path`` keeps its slashes so the
§6.4 checks see the whole decoded path; anything else under ``media/`` is the "unsupported media path" 404."""

from django.urls import re_path

from . import detections, views

DETECTION = r"(?P<detection_id>[0-9]{1,18})"

urlpatterns = [
    re_path(r"^media/cameras/(?P<camera_id>[^/]+)/(?P<path>.+)$", views.CameraMediaView.as_view(), name="media-camera"),
    re_path(r"^media/thumbnails/(?P<filename>.+)$", views.ThumbnailMediaView.as_view(), name="media-thumbnail"),
    re_path(rf"^media/detections/{DETECTION}/?$", detections.DetectionMediaView.as_view(), name="media-detection"),
    re_path(r"^media(?:/(?P<other>.*))?$", views.UnsupportedMediaView.as_view(), name="media-unsupported"),
    re_path(
        rf"^detections/{DETECTION}/thumbnail/?$",
        detections.DetectionThumbnailView.as_view(),
        name="detection-thumbnail",
    ),
    re_path(rf"^detections/{DETECTION}/image/?$", detections.DetectionImageView.as_view(), name="detection-image"),
    re_path(rf"^detections/{DETECTION}/video/?$", detections.DetectionVideoView.as_view(), name="detection-video"),
    re_path(r"^cameras/(?P<camera_id>[^/]+)/snapshot/?$", views.CameraSnapshotView.as_view(), name="camera-snapshot"),
]
