"""``/api/ai-audit`` (CONTRACT §2.17). Placeholder until the analyzer work lands."""

from hsi.api.views import ApiView


class AuditListView(ApiView):
    pass


class AuditStatsView(ApiView):
    pass


class AuditDetailView(ApiView):
    pass


class AuditEvaluateView(ApiView):
    pass
