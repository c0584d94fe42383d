"""``/api/dlq`` (CONTRACT §2.15). Placeholder until the DLQ work lands."""

from hsi.api.views import ApiView


class FailedJobListView(ApiView):
    pass


class FailedJobStatsView(ApiView):
    pass


class FailedJobRequeueAllView(ApiView):
    pass


class FailedJobDetailView(ApiView):
    pass


class FailedJobRequeueView(ApiView):
    pass
