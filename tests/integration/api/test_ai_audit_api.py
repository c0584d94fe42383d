"""/api/ai-audit: list with filters, detail, stats and evaluation (CONTRACT §2.17, §0.3–0.6)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import time_machine

from events.models import EventAudit
from tests.factories import CameraFactory, EventAuditFactory, EventFactory, EventFeedbackFactory
from tests.fakes.http_fake import Reply
from tests.fakes.llm_server import grades_json
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 5, 10, 15, 0, tzinfo=dt.UTC)

AUDIT_KEYS = {
    "id",
    "event_id",
    "backend",
    "model",
    "prompt",
    "prompt_chars",
    "prompt_token_estimate",
    "raw_response",
    "parse_status",
    "parse_error",
    "llm_risk_score",
    "llm_risk_level",
    "rules_risk_score",
    "attempts",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "fallback_reason",
    "context_flags",
    "context_usage_score",
    "reasoning_coherence_score",
    "risk_justification_score",
    "consistency_score",
    "overall_quality_score",
    "evaluation_status",
    "evaluation_critique",
    "evaluated_at",
    "created_at",
    "camera_id",
    "analysis_status",
    "risk_score",
}
LIST_KEYS = AUDIT_KEYS - {"prompt", "raw_response"}


def audit(camera=None, *, at=NOW, status="llm", risk=40, **fields):
    """An event with its audit, created at ``at``."""
    camera = camera or CameraFactory()
    event = EventFactory(camera=camera, analysis_status=status, risk_score=risk, created_at=at)
    defaults = {"backend": "llamacpp", "model": "fake-nemotron", "parse_status": "ok", "rules_risk_score": 20}
    if status == "rules":
        defaults.update(backend="rules", model="rules-v1", parse_status="not_applicable")
    return EventAuditFactory(event=event, created_at=at, **{**defaults, **fields})


@pytest.fixture
def no_llm(settings):
    settings.LLM_BACKEND, settings.LLM_URL = "auto", None


@pytest.fixture
def llm(settings, fake_llm):
    settings.LLM_BACKEND, settings.LLM_URL, settings.LLM_MODEL = "auto", fake_llm.url, ""
    settings.LLM_TIMEOUT_SECONDS = 5
    fake_llm.reply_text = grades_json()
    return fake_llm


# --- list -------------------------------------------------------------------------------------------------------


def test_list_envelope_items_and_order(api_client):
    camera = CameraFactory(id="front_door")
    old = audit(camera, at=NOW - dt.timedelta(hours=2), risk=70, prompt="P", raw_response="R", latency_ms=900)
    new = audit(camera, at=NOW - dt.timedelta(hours=1), status="fallback", fallback_reason="timeout: slow")
    response = api_client.get("/api/ai-audit")
    assert response.status_code == 200
    body = response.json()
    assert body["pagination"] == {"total": 2, "limit": 50, "offset": 0, "next_cursor": None, "has_more": False}
    assert [item["id"] for item in body["items"]] == [new.id, old.id]
    item = body["items"][1]
    assert set(item) == LIST_KEYS
    assert item["event_id"] == old.event_id
    assert (item["camera_id"], item["analysis_status"], item["risk_score"]) == ("front_door", "llm", 70)
    assert (item["latency_ms"], item["backend"], item["model"]) == (900, "llamacpp", "fake-nemotron")
    assert item["created_at"] == "2024-05-10T13:00:00Z"
    assert item["evaluated_at"] is None
    assert body["items"][0]["fallback_reason"] == "timeout: slow"


def test_list_paging(api_client):
    ids = [audit(at=NOW - dt.timedelta(minutes=i)).id for i in range(5)]
    body = api_client.get("/api/ai-audit/?limit=2&offset=2").json()
    assert [item["id"] for item in body["items"]] == ids[2:4]
    assert body["pagination"] == {"total": 5, "limit": 2, "offset": 2, "next_cursor": None, "has_more": True}
    assert api_client.get("/api/ai-audit?offset=10").json()["items"] == []


def test_list_filters(api_client):
    cam_a, cam_b = CameraFactory(id="cam_a"), CameraFactory(id="cam_b")
    a1 = audit(cam_a, at=NOW - dt.timedelta(days=3), overall_quality_score=4.5, evaluation_status="complete")
    a2 = audit(cam_a, status="fallback", parse_status="failed", overall_quality_score=2.0, evaluation_status="partial")
    b1 = audit(cam_b, status="rules", at=NOW - dt.timedelta(days=1))
    b2 = audit(cam_b, backend="openai", parse_status="repaired")

    def ids(query: str) -> set[int]:
        response = api_client.get(f"/api/ai-audit?{query}")
        assert response.status_code == 200, response.content
        return {item["id"] for item in response.json()["items"]}

    assert ids("camera_id=cam_a") == {a1.id, a2.id}
    assert ids("camera_id=cam_a,cam_b") == {a1.id, a2.id, b1.id, b2.id}
    assert ids("backend=rules") == {b1.id}
    assert ids("backend=openai,rules") == {b1.id, b2.id}
    assert ids("parse_status=failed,repaired") == {a2.id, b2.id}
    assert ids("analysis_status=fallback") == {a2.id}
    assert ids("analysis_status=llm&camera_id=cam_b") == {b2.id}
    assert ids("evaluation_status=pending") == {b1.id, b2.id}
    assert ids("evaluation_status=complete,partial") == {a1.id, a2.id}
    assert ids("min_quality=4") == {a1.id}
    assert ids("min_quality=2") == {a1.id, a2.id}
    assert ids("start_date=2024-05-09") == {a2.id, b1.id, b2.id}
    assert ids("end_date=2024-05-09") == {a1.id, b1.id}
    assert ids("start_date=2024-05-07T15:00:00Z&end_date=2024-05-07T15:00:00Z") == {a1.id}
    assert ids("unknown=1") == {a1.id, a2.id, b1.id, b2.id}


@pytest.mark.parametrize(
    "query",
    [
        "backend=gpt",
        "parse_status=ok,bad",
        "analysis_status=manual",
        "evaluation_status=done",
        "min_quality=0",
        "min_quality=5.5",
        "min_quality=good",
        "start_date=yesterday",
        "end_date=2024-13-01",
        "limit=0",
        "limit=101",
        "offset=-1",
    ],
)
def test_invalid_list_parameters_are_422_naming_the_field(api_client, query):
    assert error_fields(api_client.get(f"/api/ai-audit?{query}")) == {query.split("=")[0]}


def test_inverted_dates_are_400(api_client):
    body = problem(api_client.get("/api/ai-audit?start_date=2024-05-10&end_date=2024-05-01"), 400, "bad_request")
    assert "start_date" in body["detail"] and "end_date" in body["detail"]


@pytest.mark.parametrize("page_size", [2, 40])
def test_list_query_count_does_not_grow_with_page_size(api_client, django_assert_num_queries, page_size):
    camera = CameraFactory()
    for i in range(40):
        audit(camera, at=NOW - dt.timedelta(minutes=i))
    with django_assert_num_queries(2):  # the page (event columns joined) and the total
        response = api_client.get(f"/api/ai-audit?limit={page_size}&camera_id={camera.id}&backend=llamacpp")
    assert len(response.json()["items"]) == page_size


# --- detail -----------------------------------------------------------------------------------------------------


def test_detail_has_every_field_including_prompt_and_raw_response(api_client):
    row = audit(
        prompt="<|im_start|>system…",
        raw_response='{"risk_score": 40}',
        prompt_chars=20,
        prompt_token_estimate=5,
        llm_risk_score=40,
        llm_risk_level="medium",
        attempts=2,
        prompt_tokens=321,
        completion_tokens=54,
        context_flags={"zones": True, "baseline": False, "entities": False, "feedback": True, "history": True},
    )
    for path in (f"/api/ai-audit/events/{row.event_id}", f"/api/ai-audit/events/{row.event_id}/"):
        response = api_client.get(path)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == AUDIT_KEYS
    assert body["prompt"] == "<|im_start|>system…"
    assert body["raw_response"] == '{"risk_score": 40}'
    assert (body["llm_risk_score"], body["llm_risk_level"], body["attempts"]) == (40, "medium", 2)
    assert (body["prompt_tokens"], body["completion_tokens"], body["prompt_chars"]) == (321, 54, 20)
    assert body["context_flags"]["zones"] is True
    assert body["evaluation_status"] == "pending"


def test_detail_404_for_unknown_event_and_event_without_audit(api_client):
    body = problem(api_client.get("/api/ai-audit/events/999999"), 404, "not_found")
    assert body["detail"] == "Event 999999 not found"
    event = EventFactory()
    body = problem(api_client.get(f"/api/ai-audit/events/{event.id}"), 404, "not_found")
    assert body["detail"] == f"Event {event.id} has no AI audit"
    problem(api_client.get("/api/ai-audit/events/abc"), 404, "not_found")


# --- evaluate ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("risk", "rules", "consistency"), [(20, 20, 5.0), (50, 20, 2.0), (25, 20, 4.5), (90, 20, 1.0)])
def test_evaluate_without_llm_stores_only_the_consistency_score(api_client, no_llm, risk, rules, consistency):
    row = audit(risk=risk, rules_risk_score=rules)
    with time_machine.travel(NOW, tick=False):
        response = api_client.post(f"/api/ai-audit/events/{row.event_id}/evaluate", {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["evaluation_status"], body["consistency_score"]) == ("partial", consistency)
    assert body["overall_quality_score"] is None and body["context_usage_score"] is None
    assert body["evaluated_at"] == "2024-05-10T15:00:00Z"
    assert set(body) == AUDIT_KEYS
    row.refresh_from_db()
    assert (row.evaluation_status, row.consistency_score) == ("partial", consistency)


def test_evaluate_with_the_llm_grades_the_analysis(api_client, llm):
    row = audit(risk=50, rules_risk_score=20, prompt="CAMERA\nName: Front Door", model="fake-nemotron")
    llm.reply_text = "<think>grading</think>" + grades_json(9, 4, "3", 0.2, critique="  Fair.  ")
    response = api_client.post(f"/api/ai-audit/events/{row.event_id}/evaluate")
    assert response.status_code == 200
    body = response.json()
    assert body["evaluation_status"] == "complete"
    assert (body["context_usage_score"], body["reasoning_coherence_score"]) == (5.0, 4.0)  # clamped
    assert (body["risk_justification_score"], body["overall_quality_score"]) == (3.0, 1.0)
    assert (body["consistency_score"], body["evaluation_critique"]) == (2.0, "Fair.")
    [request] = llm.completion_requests
    sent = request.json()["prompt"]
    assert "CAMERA\nName: Front Door" in sent
    assert "risk_score: 50" in sent and "scored the same batch 20" in sent
    assert '"context_usage": <1-5>' in sent
    row.refresh_from_db()
    assert (row.overall_quality_score, row.evaluation_status) == (1.0, "complete")


def test_complete_evaluation_is_skipped_unless_forced(api_client, llm):
    row = audit()
    url = f"/api/ai-audit/events/{row.event_id}/evaluate"
    assert api_client.post(url).json()["overall_quality_score"] == 4.0
    llm.reply_text = grades_json(overall=2)
    assert api_client.post(url, {"force": False}, format="json").json()["overall_quality_score"] == 4.0
    assert llm.completion_calls == 1
    assert api_client.post(url, {"force": True}, format="json").json()["overall_quality_score"] == 2.0
    llm.reply_text = grades_json(overall=3)
    assert api_client.post(f"{url}?force=yes").json()["overall_quality_score"] == 3.0
    assert llm.completion_calls == 3


def test_partial_evaluation_is_redone_without_force(api_client, llm, settings):
    row = audit(evaluation_status="partial", consistency_score=3.0)
    assert api_client.post(f"/api/ai-audit/events/{row.event_id}/evaluate").json()["evaluation_status"] == "complete"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=500, json={"error": "boom"}),
        Reply(json={"content": "I cannot grade this."}),
        Reply(json={"content": '{"context_usage": 4, "reasoning_coherence": 4, "overall": 4}'}),
        Reply(json={"content": grades_json(overall="excellent")}),
    ],
    ids=["http-500", "no-json", "missing-grade", "non-numeric-grade"],
)
def test_failing_llm_evaluation_is_partial(api_client, llm, reply):
    row = audit(risk=30, rules_risk_score=20, evaluation_status="complete", overall_quality_score=5.0)
    llm.script("POST", "/completion", reply)
    body = api_client.post(f"/api/ai-audit/events/{row.event_id}/evaluate", {"force": True}, format="json").json()
    assert (body["evaluation_status"], body["consistency_score"]) == ("partial", 4.0)
    assert body["overall_quality_score"] is None  # only the consistency score stands


def test_evaluate_with_an_open_breaker_is_partial(api_client, llm, settings):
    from hsi.resilience import breaker

    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    breaker("llm").record_failure()
    row = audit()
    assert api_client.post(f"/api/ai-audit/events/{row.event_id}/evaluate").json()["evaluation_status"] == "partial"
    assert llm.completion_calls == 0


def test_evaluate_with_the_openai_backend(api_client, llm, settings):
    settings.LLM_BACKEND = "openai"
    row = audit()
    assert api_client.post(f"/api/ai-audit/events/{row.event_id}/evaluate").json()["evaluation_status"] == "complete"
    assert llm.completion_requests[0].path == "/v1/chat/completions"


def test_evaluate_rules_backend_means_no_llm(api_client, llm, settings):
    settings.LLM_BACKEND = "rules"
    row = audit(status="rules")
    assert api_client.post(f"/api/ai-audit/events/{row.event_id}/evaluate").json()["evaluation_status"] == "partial"
    assert llm.completion_calls == 0


def test_evaluate_event_without_score_has_no_consistency(api_client, no_llm):
    row = audit(risk=None)
    body = api_client.post(f"/api/ai-audit/events/{row.event_id}/evaluate").json()
    assert (body["evaluation_status"], body["consistency_score"]) == ("partial", None)


def test_evaluate_404s(api_client, no_llm):
    problem(api_client.post("/api/ai-audit/events/999999/evaluate"), 404, "not_found")
    event = EventFactory()
    body = problem(api_client.post(f"/api/ai-audit/events/{event.id}/evaluate"), 404, "not_found")
    assert "no AI audit" in body["detail"]


@pytest.mark.parametrize("body", [{"force": "yes"}, {"force": 1}, {"force": None}])
def test_evaluate_force_must_be_a_boolean(api_client, no_llm, body):
    row = audit()
    assert error_fields(api_client.post(f"/api/ai-audit/events/{row.event_id}/evaluate", body, format="json")) == {
        "force"
    }


def test_evaluate_force_query_must_be_a_boolean(api_client, no_llm):
    row = audit()
    assert error_fields(api_client.post(f"/api/ai-audit/events/{row.event_id}/evaluate?force=maybe")) == {"force"}
    assert EventAudit.objects.get(pk=row.pk).evaluation_status == "pending"


def test_evaluate_body_must_be_an_object(api_client, no_llm):
    row = audit()
    response = api_client.post(
        f"/api/ai-audit/events/{row.event_id}/evaluate", json.dumps([1]), content_type="application/json"
    )
    assert response.status_code == 422


# --- stats ------------------------------------------------------------------------------------------------------


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def test_stats_numbers(api_client, frozen):
    cam = CameraFactory(id="cam_a")
    other = CameraFactory(id="cam_b")
    today, yesterday = NOW - dt.timedelta(hours=1), NOW - dt.timedelta(days=1)
    a = audit(cam, at=today, risk=40, rules_risk_score=20, latency_ms=100, prompt_tokens=300, overall_quality_score=4)
    b = audit(
        cam,
        at=today,
        risk=50,
        rules_risk_score=50,
        latency_ms=200,
        prompt_token_estimate=500,
        parse_status="repaired",
        overall_quality_score=2,
    )
    audit(
        cam,
        at=yesterday,
        status="fallback",
        risk=30,
        rules_risk_score=30,
        latency_ms=5000,
        parse_status="failed",
        prompt_tokens=100,
        backend="openai",
    )
    audit(other, at=yesterday, status="rules", risk=10, rules_risk_score=10, latency_ms=1)
    audit(cam, at=NOW - dt.timedelta(days=30), latency_ms=99999)  # outside the 7-day window
    EventFactory(camera=other, created_at=today)  # an event without audit
    EventFeedbackFactory(event=a.event, feedback_type="accurate")
    EventFeedbackFactory(event=b.event, feedback_type="false_positive")

    response = api_client.get("/api/ai-audit/stats")
    assert response.status_code == 200
    stats = response.json()
    assert stats["total_events"] == 5
    assert stats["audited_events"] == 4
    assert stats["by_backend"] == {"llamacpp": 2, "openai": 1, "rules": 1}
    assert stats["by_parse_status"] == {"ok": 1, "repaired": 1, "failed": 1, "not_applicable": 1}
    assert stats["fallback_rate"] == 0.25
    assert stats["avg_latency_ms"] == (100 + 200 + 5000 + 1) / 4
    assert stats["p95_latency_ms"] == 5000
    assert stats["avg_prompt_tokens"] == (300 + 500 + 100) / 3  # reported tokens, else the estimate; LLM audits
    assert stats["avg_quality_score"] == 3.0
    assert stats["avg_score_gap"] == 5.0  # (20 + 0 + 0 + 0) / 4
    assert stats["feedback"] == {
        "accurate": 1,
        "false_positive": 1,
        "normal": 0,
        "missed_threat": 0,
        "severity_wrong": 0,
    }
    days = stats["audits_by_day"]
    assert [day["date"] for day in days] == [f"2024-05-{d:02d}" for d in range(4, 11)]
    assert days[-1] == {"date": "2024-05-10", "count": 2, "fallback": 0}
    assert days[-2] == {"date": "2024-05-09", "count": 2, "fallback": 1}
    assert sum(day["count"] for day in days) == 4


def test_stats_per_camera_and_days(api_client, frozen):
    cam, other = CameraFactory(id="cam_a"), CameraFactory(id="cam_b")
    audit(cam, at=NOW - dt.timedelta(days=20), latency_ms=10)
    audit(cam, at=NOW - dt.timedelta(hours=2), latency_ms=30)
    audit(other, at=NOW - dt.timedelta(hours=2), latency_ms=50)
    stats = api_client.get("/api/ai-audit/stats?camera_id=cam_a&days=30").json()
    assert (stats["audited_events"], stats["avg_latency_ms"], stats["p95_latency_ms"]) == (2, 20.0, 30)
    assert len(stats["audits_by_day"]) == 30
    assert api_client.get("/api/ai-audit/stats?days=1").json()["audited_events"] == 2


def test_stats_days_are_local_calendar_days(api_client, frozen, settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # NOW is 2024-05-11 00:00 in Tokyo
    audit(at=NOW - dt.timedelta(minutes=30))  # 2024-05-10 23:30 Tokyo
    days = api_client.get("/api/ai-audit/stats?days=2").json()["audits_by_day"]
    assert days == [
        {"date": "2024-05-10", "count": 1, "fallback": 0},
        {"date": "2024-05-11", "count": 0, "fallback": 0},
    ]


def test_stats_with_no_audits(api_client, frozen):
    stats = api_client.get("/api/ai-audit/stats").json()
    assert stats["total_events"] == stats["audited_events"] == 0
    assert stats["fallback_rate"] == 0.0
    assert stats["avg_latency_ms"] is None and stats["p95_latency_ms"] is None
    assert stats["avg_quality_score"] is None and stats["avg_score_gap"] is None
    assert stats["avg_prompt_tokens"] is None
    assert stats["by_backend"] == {"llamacpp": 0, "openai": 0, "rules": 0}
    assert len(stats["audits_by_day"]) == 7


def test_p95_uses_the_nearest_rank(api_client, frozen):
    camera = CameraFactory()
    for latency in range(1, 21):  # 20 values: rank ceil(0.95 × 20) = 19
        audit(camera, at=NOW - dt.timedelta(minutes=latency), latency_ms=latency * 10)
    assert api_client.get("/api/ai-audit/stats").json()["p95_latency_ms"] == 190


@pytest.mark.parametrize("query", ["days=0", "days=91", "days=week", "camera_id=" + "x" * 65])
def test_stats_invalid_parameters_are_422(api_client, query):
    assert error_fields(api_client.get(f"/api/ai-audit/stats?{query}")) == {query.split("=")[0]}
