"""``POST /api/events/{id}/reanalyze`` (CONTRACT §2.5). Placeholder until the analysis work lands."""

from hsi.api.views import ApiView


class EventReanalyzeView(ApiView):
    pass
