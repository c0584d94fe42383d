"""``hsi.dispatch.coalesced``: the per-file dispatches of one thread gathered into chunk tasks, each still sent
only after its transaction commits. Observed in the test Redis broker (real commits: ``transaction=True``)."""

from __future__ import annotations

import pytest
from django.db import transaction

from hsi import dispatch
from tests.integration.ingest_support import broker_tasks, ensure_process_file_task

pytestmark = pytest.mark.django_db(transaction=True)

ITEM, CHUNK = "pipeline.process_file", "pipeline.process_files"


@pytest.fixture(autouse=True)
def _tasks():
    ensure_process_file_task()


def test_dispatches_in_the_block_go_out_in_chunks_and_a_lone_leftover_as_itself():
    with dispatch.coalesced(ITEM, CHUNK, size=2):
        for file_id in (11, 12, 13, 14, 15):
            dispatch.enqueue(ITEM, file_id)  # outside a transaction: at once, into the current chunk
        assert broker_tasks() == [(CHUNK, [[11, 12]]), (CHUNK, [[13, 14]])]  # full chunks leave without waiting

    assert broker_tasks() == [(CHUNK, [[11, 12]]), (CHUNK, [[13, 14]]), (ITEM, [15])]


def test_a_dispatch_still_waits_for_its_commit_and_a_rolled_back_one_never_leaves():
    with dispatch.coalesced(ITEM, CHUNK, size=2):
        with transaction.atomic():
            dispatch.enqueue(ITEM, 21)
        try:
            with transaction.atomic():
                dispatch.enqueue(ITEM, 22)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        with transaction.atomic():
            dispatch.enqueue(ITEM, 23)
            dispatch.send("pipeline.analyze_batch", "b-1")  # another task passes straight through
            assert broker_tasks() == []  # 23 waits for its commit
        assert broker_tasks("analysis") == [("pipeline.analyze_batch", ["b-1"])]
        assert broker_tasks() == [(CHUNK, [[21, 23]])]  # full at 23's commit: 22 never joined

    assert broker_tasks() == [(CHUNK, [[21, 23]])]


def test_what_was_gathered_is_sent_even_when_the_block_fails():
    with pytest.raises(ValueError), dispatch.coalesced(ITEM, CHUNK, size=10):
        dispatch.enqueue(ITEM, 31)
        dispatch.enqueue(ITEM, 32)
        raise ValueError("the loop broke")

    assert broker_tasks() == [(CHUNK, [[31, 32]])]


def test_outside_the_block_and_in_other_threads_nothing_is_gathered():
    import threading

    with dispatch.coalesced(ITEM, CHUNK, size=10):
        worker = threading.Thread(target=dispatch.send, args=(ITEM, 41))
        worker.start()
        worker.join()
        assert broker_tasks() == [(ITEM, [41])]
    dispatch.send(ITEM, 42)

    assert broker_tasks() == [(ITEM, [41]), (ITEM, [42])]
