"""Routes of /api/notifications (CONTRACT §2.8)."""

urlpatterns: list = []
