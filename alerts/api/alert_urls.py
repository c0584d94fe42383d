"""Routes of /api/alerts (CONTRACT §2.7)."""

urlpatterns: list = []
