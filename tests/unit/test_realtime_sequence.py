"""The all-in-one sequence counter and resync ring (CONTRACT §3.2), in-process."""

from __future__ import annotations

import json
import threading

from hsi.realtime import Buffered, LocalSequencer, message_parts


def test_seq_counts_per_stream_from_one(settings):
    sequencer = LocalSequencer()

    seqs = [sequencer.publish("events", "event.created", "2026-12-04T10:00:00Z", {"n": n})[0]["seq"] for n in range(3)]
    system_seq = sequencer.publish("system", "system.status", "2026-12-04T10:00:00Z", {})[0]["seq"]

    assert seqs == [1, 2, 3] and system_seq == 1
    assert sequencer.current_seq("events") == 3 and sequencer.current_seq("system") == 1


def test_the_text_is_the_message_with_its_seq_in_envelope_order():
    sequencer = LocalSequencer()

    message, text = sequencer.publish("events", "event.created", "2026-12-04T10:00:00Z", {"name": "Café", "n": 1})

    assert json.loads(text) == message
    assert list(json.loads(text)) == ["type", "seq", "timestamp", "data"]
    assert "Café" in text


def test_the_ring_keeps_the_last_buffer_size_messages(settings):
    settings.WEBSOCKET_RESYNC_BUFFER = 3
    sequencer = LocalSequencer()
    for n in range(5):
        sequencer.publish("events", "event.created", "t", {"n": n})

    buffered = sequencer.buffered("events")

    assert buffered.current_seq == 5
    assert [m["seq"] for m in buffered.messages] == [3, 4, 5]


def test_a_zero_buffer_keeps_nothing(settings):
    settings.WEBSOCKET_RESYNC_BUFFER = 0
    sequencer = LocalSequencer()
    sequencer.publish("events", "event.created", "t", {})

    assert sequencer.buffered("events") == Buffered(1, [])


def test_concurrent_publishers_never_share_a_seq(settings):
    sequencer = LocalSequencer()

    def publish_many():
        for _ in range(200):
            sequencer.publish("events", "detection.new", "t", {})

    threads = [threading.Thread(target=publish_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sequencer.current_seq("events") == 800


def test_since_reports_whether_the_buffer_still_reaches_the_next_seq():
    messages = [{"seq": n} for n in (4, 5, 6)]
    buffered = Buffered(6, messages)

    assert buffered.since(3) == (messages, True)
    assert buffered.since(2) == (messages, False)
    assert buffered.since(5) == (messages[2:], True)
    assert buffered.since(6) == ([], True)
    assert buffered.since(9) == ([], False)  # a seq the stream never reached: its counter was reset
    assert Buffered(6, []).since(2) == ([], False)
    assert Buffered(0, []).since(0) == ([], True)


def test_message_parts_put_the_seq_between_head_and_tail():
    head, tail = message_parts("gpu.stats", "2026-12-04T10:00:00Z", {"utilization": 0.5})

    assert json.loads(f"{head}42{tail}") == {
        "type": "gpu.stats",
        "seq": 42,
        "timestamp": "2026-12-04T10:00:00Z",
        "data": {"utilization": 0.5},
    }


def test_a_last_seq_beyond_the_counter_after_a_reset_is_incomplete():
    sequencer = LocalSequencer()  # a restarted all-in-one process: the counter starts again at 0
    sequencer.publish("events", "event.created", "t", {"n": 1})

    newer, complete = sequencer.buffered("events").since(250)

    assert newer == [] and complete is False
