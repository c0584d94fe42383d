"""Pipeline routes (included under ``/api/``): HTTP uploads (§2.2), the dead-letter queue (§2.15), reanalysis
(§2.5) and the AI audit (§2.17). Every path works with and without a trailing slash."""

from django.urls import re_path

from pipeline.api import ai_audit, dlq, reanalyze, uploads

EVENT = r"(?P<event_id>[0-9]{1,18})"
JOB = r"(?P<job_id>[0-9]{1,18})"

urlpatterns = [
    re_path(r"^cameras/(?P<camera_id>[^/]+)/uploads/?$", uploads.UploadView.as_view(), name="camera-uploads"),
    re_path(r"^dlq/?$", dlq.FailedJobListView.as_view(), name="dlq-list"),
    re_path(r"^dlq/stats/?$", dlq.FailedJobStatsView.as_view(), name="dlq-stats"),
    re_path(r"^dlq/requeue/?$", dlq.FailedJobRequeueAllView.as_view(), name="dlq-requeue-all"),
    re_path(rf"^dlq/{JOB}/?$", dlq.FailedJobDetailView.as_view(), name="dlq-detail"),
    re_path(rf"^dlq/{JOB}/requeue/?$", dlq.FailedJobRequeueView.as_view(), name="dlq-requeue"),
    re_path(rf"^events/{EVENT}/reanalyze/?$", reanalyze.EventReanalyzeView.as_view(), name="event-reanalyze"),
    re_path(r"^ai-audit/?$", ai_audit.AuditListView.as_view(), name="ai-audit-list"),
    re_path(r"^ai-audit/stats/?$", ai_audit.AuditStatsView.as_view(), name="ai-audit-stats"),
    re_path(rf"^ai-audit/events/{EVENT}/?$", ai_audit.AuditDetailView.as_view(), name="ai-audit-detail"),
    re_path(rf"^ai-audit/events/{EVENT}/evaluate/?$", ai_audit.AuditEvaluateView.as_view(), name="ai-audit-evaluate"),
]
