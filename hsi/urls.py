from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from system.api import probes

urlpatterns = [
    path("", probes.RootView.as_view(), name="root"),
    re_path(r"^health/?$", probes.HealthView.as_view(), name="health"),
    re_path(r"^ready/?$", probes.ReadyView.as_view(), name="ready"),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/", include("pipeline.api.urls")),
    path("api/", include("cameras.api.urls")),
    path("api/", include("events.api.urls")),
    path("api/", include("system.api.urls")),
    path("api/", include("alerts.api.urls")),
    path("api/", include("media_serving.api.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "hsi.api.handlers.bad_request"
handler403 = "hsi.api.handlers.permission_denied"
handler404 = "hsi.api.handlers.not_found"
handler500 = "hsi.api.handlers.server_error"
