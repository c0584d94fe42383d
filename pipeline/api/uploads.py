"""``POST /api/cameras/{id}/uploads`` (CONTRACT §2.2, §6.5). Placeholder until the ingest work lands."""

from hsi.api.views import ApiView


class UploadView(ApiView):
    pass
