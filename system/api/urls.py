from django.urls import re_path

from system.api import admin_ops
from system.api import audit as audit_api
from system.api import cleanup as cleanup_api
from system.api import logs as logs_api
from system.api import metrics as metrics_api
from system.api import system as system_api

urlpatterns: list = [
    re_path(r"^metrics/?$", metrics_api.MetricsView.as_view(), name="metrics"),
    re_path(r"^system/health/?$", system_api.SystemHealthView.as_view(), name="system-health"),
    re_path(r"^system/stats/?$", system_api.SystemStatsView.as_view(), name="system-stats"),
    re_path(r"^system/gpu/?$", system_api.GpuView.as_view(), name="system-gpu"),
    re_path(r"^system/gpu/history/?$", system_api.GpuHistoryView.as_view(), name="system-gpu-history"),
    re_path(r"^system/config/?$", system_api.ConfigView.as_view(), name="system-config"),
    re_path(r"^system/severity/?$", system_api.SeverityView.as_view(), name="system-severity"),
    re_path(r"^system/pipeline/?$", system_api.PipelineView.as_view(), name="system-pipeline"),
    re_path(r"^system/circuit-breakers/?$", system_api.CircuitBreakersView.as_view(), name="system-circuit-breakers"),
    re_path(
        r"^system/circuit-breakers/(?P<name>[a-z_]{1,50})/reset/?$",
        system_api.CircuitBreakerResetView.as_view(),
        name="system-circuit-breaker-reset",
    ),
    re_path(r"^system/storage/?$", system_api.StorageView.as_view(), name="system-storage"),
    re_path(r"^system/cleanup/?$", cleanup_api.CleanupView.as_view(), name="system-cleanup"),
    re_path(r"^logs/?$", logs_api.LogListView.as_view(), name="logs-list"),
    re_path(r"^logs/stats/?$", logs_api.LogStatsView.as_view(), name="logs-stats"),
    re_path(r"^logs/frontend/?$", logs_api.FrontendLogView.as_view(), name="logs-frontend"),
    re_path(r"^logs/(?P<log_id>[0-9]{1,18})/?$", logs_api.LogDetailView.as_view(), name="logs-detail"),
    re_path(r"^audit/?$", audit_api.AuditListView.as_view(), name="audit-list"),
    re_path(r"^audit/stats/?$", audit_api.AuditStatsView.as_view(), name="audit-stats"),
    re_path(r"^audit/(?P<audit_id>[0-9]{1,18})/?$", audit_api.AuditDetailView.as_view(), name="audit-detail"),
    re_path(r"^admin/seed/?$", admin_ops.SeedView.as_view(), name="admin-seed"),
    re_path(r"^admin/clear/?$", admin_ops.ClearView.as_view(), name="admin-clear"),
    re_path(r"^admin(?:/.*)?$", admin_ops.UnknownAdminView.as_view(), name="admin-unknown"),
]
