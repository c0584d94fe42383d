"""Pipeline writes (CONTRACT §4.4–4.8, §2.15): one module per stage.

- ``processing``: ``file_process`` (detect, store, batch one ingested file)
- ``batching``: ``batch_add_detections``, ``batch_close``, ``batches_close_expired``
- ``analysis``: ``batch_analyze`` (batch → event), ``event_reanalyze_request`` / ``event_reanalyze``
- ``dlq``: dead-lettering and the operator actions ``dlq_requeue``, ``dlq_requeue_many``, ``dlq_discard``, ``dlq_clear``
- ``reconcile``: ``pipeline_reconcile``, the sweeper that re-dispatches stuck work
"""

from pipeline.services.analysis import batch_analyze, event_reanalyze, event_reanalyze_request
from pipeline.services.batching import batch_add_detections, batch_close, batches_close_expired
from pipeline.services.dlq import dlq_clear, dlq_discard, dlq_requeue, dlq_requeue_many
from pipeline.services.processing import file_process
from pipeline.services.reconcile import pipeline_reconcile

__all__ = [
    "batch_add_detections",
    "batch_analyze",
    "batch_close",
    "batches_close_expired",
    "dlq_clear",
    "dlq_discard",
    "dlq_requeue",
    "dlq_requeue_many",
    "event_reanalyze",
    "event_reanalyze_request",
    "file_process",
    "pipeline_reconcile",
]
