"""Which throttle tier a path belongs to (CONTRACT §6.2)."""

from __future__ import annotations

import pytest

from hsi.api.tiers import tier_for_path


@pytest.mark.parametrize(
    ("path", "tier"),
    [
        ("/", None),
        ("/health", None),
        ("/ready/", None),
        ("/admin/login/", None),
        ("/api/metrics", None),
        ("/api/schema/", None),
        ("/api/docs", None),
        ("/api/media", "media"),
        ("/api/media/cameras/front/a.jpg", "media"),
        ("/api/media/thumbnails/t.jpg", "media"),
        ("/api/detections/12/thumbnail", "media"),
        ("/api/detections/12/image/", "media"),
        ("/api/detections/12/video", "media"),
        ("/api/cameras/front/snapshot", "media"),
        ("/api/cameras/front/uploads/", "media"),
        ("/api/search", "search"),
        ("/api/search/", "search"),
        ("/api/cameras", "default"),
        ("/api/cameras/front", "default"),
        ("/api/detections/12", "default"),
        ("/api/metrics/extra", "default"),
        ("/api/searching", "default"),
        ("/api/no-such-thing", "default"),
    ],
)
def test_tier_for_path(path, tier):
    assert tier_for_path(path) == tier
