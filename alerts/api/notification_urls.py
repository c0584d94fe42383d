"""Routes of /api/notifications (CONTRACT §2.8); every path works with and without a trailing slash."""

from django.urls import re_path

from alerts.api import notifications as views

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
BASE = r"^notifications"

urlpatterns = [
    re_path(rf"{BASE}/channels/?$", views.ChannelListView.as_view(), name="notification-channel-list"),
    re_path(
        rf"{BASE}/channels/(?P<channel_id>{UUID})/?$",
        views.ChannelDetailView.as_view(),
        name="notification-channel-detail",
    ),
    re_path(
        rf"{BASE}/channels/(?P<channel_id>{UUID})/test/?$",
        views.ChannelTestView.as_view(),
        name="notification-channel-test",
    ),
    re_path(rf"{BASE}/preferences/?$", views.PreferencesView.as_view(), name="notification-preferences"),
    re_path(
        rf"{BASE}/preferences/cameras/?$",
        views.CameraPreferenceListView.as_view(),
        name="notification-camera-preference-list",
    ),
    re_path(
        rf"{BASE}/preferences/cameras/(?P<camera_id>[^/]+)/?$",
        views.CameraPreferenceDetailView.as_view(),
        name="notification-camera-preference-detail",
    ),
    re_path(rf"{BASE}/quiet-hours/?$", views.QuietHoursListView.as_view(), name="notification-quiet-hours-list"),
    re_path(
        rf"{BASE}/quiet-hours/(?P<period_id>{UUID})/?$",
        views.QuietHoursDetailView.as_view(),
        name="notification-quiet-hours-detail",
    ),
    re_path(rf"{BASE}/deliveries/?$", views.DeliveryListView.as_view(), name="notification-delivery-list"),
    re_path(
        rf"{BASE}/deliveries/(?P<delivery_id>[0-9]{{1,19}})/retry/?$",
        views.DeliveryRetryView.as_view(),
        name="notification-delivery-retry",
    ),
    re_path(rf"{BASE}/config/?$", views.NotificationConfigView.as_view(), name="notification-config"),
]
