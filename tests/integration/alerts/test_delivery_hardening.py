"""The outbox against hostile or flaky conditions (CONTRACT §5.8, §6.7): DNS that changes its answer, DNS that is
temporarily down, headers that cannot be sent, an open breaker, endpoints that drip or flood, payloads that cannot be
built, workers that never finish, late results of a claim the sweep took back."""

from __future__ import annotations

import datetime as dt
import socket
import time

import pytest
import time_machine

from alerts.models import Delivery
from alerts.services.deliveries import _claim, _record, deliveries_create_for_alert, deliveries_sweep, delivery_send
from alerts.transports.base import SendResult
from hsi.resilience import breaker
from pipeline.models import FailedJob
from tests.factories import CameraFactory, DeliveryFactory, NotificationChannelFactory
from tests.fakes.hostile_http import HostileHttpServer
from tests.fakes.webhook_sink import WebhookSink, header
from tests.integration.alerts.delivery_support import T0, make_alert, outbox_env  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("outbox_env")]


@pytest.fixture
def sink():
    server = WebhookSink().start()
    yield server
    server.stop()


@pytest.fixture
def fake_dns(monkeypatch):
    """A resolver for names under ``.test`` (answers scripted per name, in order, the last one repeated); every
    other name resolves as usual. Records each lookup."""
    real = socket.getaddrinfo
    answers: dict[str, list] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.endswith(".test"):
            lookups.append(name)
            script = answers[name]
            answer = script.pop(0) if len(script) > 1 else script[0]
            if isinstance(answer, BaseException):
                raise answer
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port or 80))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, lookups


def send_one(channel, **alert_fields) -> int:
    [delivery_id] = deliveries_create_for_alert(make_alert([channel], **alert_fields).id)
    return delivery_id


# --- §6.7: the checked address is the one connected to ----------------------------------------------------------


def test_the_request_goes_to_the_checked_address_even_if_dns_changes_its_answer(sink, fake_dns):
    # given a name that resolves to the (allowed) sink first and to the metadata address on every later lookup
    answers, lookups = fake_dns
    answers["hooks.rebind.test"] = ["127.0.0.1", "169.254.169.254"]
    channel = NotificationChannelFactory(config={"url": f"http://hooks.rebind.test:{sink.port}/hook"})

    # when the delivery is sent
    assert delivery_send(send_one(channel)) == "sent"

    # then the name was resolved once, and the request reached the sink with the original Host
    assert lookups == ["hooks.rebind.test"]
    [request] = sink.received()
    assert header(request, "Host") == f"hooks.rebind.test:{sink.port}"


def test_a_name_with_several_addresses_falls_back_to_the_next_checked_one(sink):
    # given localhost, which resolves to ::1 (nothing listens there) and 127.0.0.1 (the sink)
    channel = NotificationChannelFactory(config={"url": f"http://localhost:{sink.port}/hook"})

    assert delivery_send(send_one(channel)) == "sent"
    assert header(sink.received()[0], "Host") == f"localhost:{sink.port}"


@pytest.mark.parametrize(
    "url",
    [
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[2002:a9fe:a9fe::1]/",
        "https://[::ffff:169.254.169.254]/",
    ],
)
def test_ipv6_forms_embedding_the_metadata_address_fail_permanently_without_a_request(url):
    channel = NotificationChannelFactory(config={"url": url})

    assert delivery_send(send_one(channel)) == "failed"

    delivery = Delivery.objects.get()
    assert "link-local" in delivery.last_error
    assert FailedJob.objects.get().error_type == "invalid_url"


# --- temporary DNS failure ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [socket.EAI_AGAIN, socket.EAI_NONAME])
def test_a_name_that_does_not_resolve_at_send_time_is_retried(sink, fake_dns, failure):
    answers, _ = fake_dns
    answers["hooks.flaky.test"] = [socket.gaierror(failure, "Temporary failure in name resolution"), "127.0.0.1"]
    channel = NotificationChannelFactory(config={"url": f"http://hooks.flaky.test:{sink.port}/hook"})
    delivery_id = send_one(channel)

    with time_machine.travel(T0, tick=False):
        assert delivery_send(delivery_id) == "pending"
    delivery = Delivery.objects.get(pk=delivery_id)
    assert (delivery.attempts, FailedJob.objects.count()) == (1, 0)
    assert "does not resolve" in delivery.last_error

    # and once DNS answers again, the retry goes out
    with time_machine.travel(delivery.next_attempt_at + dt.timedelta(seconds=1), tick=False):
        assert delivery_send(delivery_id) == "sent"
    assert len(sink.received()) == 1


# --- headers that cannot be sent ------------------------------------------------------------------------------------


def test_a_non_ascii_header_value_fails_permanently_and_does_not_open_the_breaker_for_others(sink, settings):
    # given a breaker that opens at the first counted failure, and a channel with a header httpx cannot encode
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    bad = NotificationChannelFactory(config={"url": sink.hook_url(), "headers": {"X-Token": "café"}})
    good = NotificationChannelFactory(config={"url": sink.hook_url()})

    # when both deliver
    assert delivery_send(send_one(bad)) == "failed"
    assert delivery_send(send_one(good, camera=CameraFactory(id="yard", name="Yard"))) == "sent"

    # then the bad one is a permanent invalid_header failure without a request, and the breaker stayed closed
    assert FailedJob.objects.get().error_type == "invalid_header"
    assert "X-Token" in Delivery.objects.get(channel=bad).last_error
    assert len(sink.received()) == 1
    assert breaker("webhook").snapshot().state == "closed"


# --- an open breaker costs no attempt -------------------------------------------------------------------------------


def test_an_open_breaker_sends_nothing_and_costs_no_attempt_until_it_may_half_open(sink, settings):
    # given a webhook breaker that opened at T0 (two failures), and a delivery whose attempts would all be used up
    settings.CIRCUIT_FAILURE_THRESHOLD = 2
    settings.CIRCUIT_RECOVERY_SECONDS = 30
    settings.NOTIFY_MAX_ATTEMPTS = 1
    sink.answer(500, 500)
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    with time_machine.travel(T0, tick=False):
        for n in range(2):
            delivery_send(send_one(channel, camera=CameraFactory(id=f"cam_{n}", name=f"Cam {n}")))
        assert breaker("webhook").snapshot().state == "open"
    waiting = send_one(channel)

    # when it is tried (several times) while the breaker is open
    with time_machine.travel(T0 + dt.timedelta(seconds=1), tick=False):
        assert [delivery_send(waiting) for _ in range(3)] == ["pending", None, None]

    # then nothing was sent, no attempt was counted, and it waits until the breaker may half-open
    row = Delivery.objects.get(pk=waiting)
    assert (row.status, row.attempts) == ("pending", 0)
    assert row.next_attempt_at == T0 + dt.timedelta(seconds=30)
    assert "open" in row.last_error
    assert len(sink.received()) == 2

    # and when the breaker may half-open, the trial delivery goes out on its first and only attempt
    with time_machine.travel(T0 + dt.timedelta(seconds=31), tick=False):
        assert delivery_send(waiting) == "sent"
    assert Delivery.objects.get(pk=waiting).attempts == 1
    assert FailedJob.objects.filter(payload={"delivery_id": waiting}).count() == 0


# --- hostile endpoints ----------------------------------------------------------------------------------------------


@pytest.fixture
def hostile():
    servers = []

    def start(mode: str) -> HostileHttpServer:
        server = HostileHttpServer(mode).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_an_endpoint_that_drips_its_answer_is_cut_off_at_the_channel_timeout(hostile):
    # given an endpoint that sends one byte every 0.1 s and never finishes its headers, and a 1 s timeout
    server = hostile("drip")
    channel = NotificationChannelFactory(config={"url": server.url, "timeout_seconds": 1})
    delivery_id = send_one(channel)

    started = time.monotonic()
    status = delivery_send(delivery_id)
    elapsed = time.monotonic() - started

    # then the attempt ends at the deadline as a retryable timeout
    assert status == "pending"
    assert elapsed < 3
    assert server.requests == 1
    assert Delivery.objects.get(pk=delivery_id).last_error.startswith("Timed out")


def test_an_endpoint_that_floods_its_answer_is_read_only_up_to_64_kib(hostile):
    # given an endpoint that answers 200 with a 1 GiB body
    server = hostile("flood")
    channel = NotificationChannelFactory(config={"url": server.url, "timeout_seconds": 10})

    started = time.monotonic()
    status = delivery_send(send_one(channel))

    assert status == "sent"
    assert time.monotonic() - started < 5
    assert server.bytes_written < 256 * 1024 * 1024  # the connection was closed long before the end


# --- payloads that cannot be built, workers that never finish, late results ----------------------------------------


def test_a_payload_that_cannot_be_built_is_a_failed_attempt_not_a_stuck_row(sink, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 2
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    alert = make_alert([channel])
    type(alert).objects.filter(pk=alert.pk).update(metadata={"rule_name": "x", "matched_conditions": 5})
    [delivery_id] = deliveries_create_for_alert(alert.id)

    with time_machine.travel(T0, tick=False):
        assert delivery_send(delivery_id) == "pending"
    row = Delivery.objects.get(pk=delivery_id)
    assert (row.attempts, row.last_error.startswith("TypeError")) == (1, True)

    with time_machine.travel(row.next_attempt_at + dt.timedelta(seconds=1), tick=False):
        assert delivery_send(delivery_id) == "failed"
    assert FailedJob.objects.get().error_type == "TypeError"
    assert sink.received() == []


def test_the_sweep_fails_a_stale_sending_row_whose_attempts_are_used_up(sink, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 5
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    long_ago = T0 - dt.timedelta(minutes=6)
    spent = DeliveryFactory(
        channel=channel, alert=make_alert([channel]), status="sending", attempts=5, last_attempt_at=long_ago
    )
    more = DeliveryFactory(
        channel=channel,
        alert=make_alert([channel], camera=CameraFactory(id="yard", name="Yard")),
        status="sending",
        attempts=2,
        last_attempt_at=long_ago,
    )

    deliveries_sweep(T0)

    spent.refresh_from_db()
    more.refresh_from_db()
    assert (spent.status, more.status) == ("failed", "pending")
    job = FailedJob.objects.get()
    assert (job.queue, job.payload, job.attempt_count, job.camera_id) == (
        "notification",
        {"delivery_id": spent.id},
        5,
        "front_door",
    )
    channel.refresh_from_db()
    assert channel.last_failure_at is not None


def test_a_late_result_of_a_claim_the_sweep_took_back_changes_nothing(sink):
    # given a worker that claimed a delivery at T0 and hung
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    delivery_id = send_one(channel)
    with time_machine.travel(T0, tick=False):
        hung = _claim(delivery_id, T0)

    # when the sweep takes it back and a second worker sends it
    later = T0 + dt.timedelta(minutes=6)
    deliveries_sweep(later)
    with time_machine.travel(later, tick=False):
        second = _claim(delivery_id, later)
    assert second is not None

    # then the first worker's late (failed) result does not overwrite the second claim
    assert _record(hung, SendResult(success=False, error="late failure", retryable=False)) == "sending"
    row = Delivery.objects.get(pk=delivery_id)
    assert (row.status, row.attempts, row.last_error) == ("sending", 2, "")

    # and the second worker's result is recorded
    assert _record(second, SendResult(success=True, status_code=200)) == "sent"
    assert _record(hung, SendResult(success=False, error="later still", retryable=False)) == "sent"
    assert Delivery.objects.get(pk=delivery_id).status == "sent"
    assert FailedJob.objects.count() == 0


# --- https to the checked address: SNI and certificate verified against the URL's host name ------------------------


@pytest.fixture
def tls_sink(tmp_path, monkeypatch):
    """An https webhook sink with a certificate for ``hooks.tls.test``, from a CA the transport is made to trust."""
    import certifi

    from alerts.transports import webhook
    from tests.fakes.tls_certs import make_certificates

    certificates = make_certificates(tmp_path, "hooks.tls.test")
    monkeypatch.setattr(certifi, "where", lambda: str(certificates.ca_file))
    webhook._tls_context.cache_clear()
    server = WebhookSink()
    server.tls_context = certificates.server_context()
    server.start()
    yield server
    server.stop()
    webhook._tls_context.cache_clear()


def test_https_goes_to_the_checked_address_with_the_host_name_for_sni_and_certificate(tls_sink, fake_dns):
    answers, _ = fake_dns
    answers["hooks.tls.test"] = ["127.0.0.1", "169.254.169.254"]
    channel = NotificationChannelFactory(config={"url": f"https://hooks.tls.test:{tls_sink.port}/hook"})

    assert delivery_send(send_one(channel)) == "sent"

    [request] = tls_sink.received()
    assert header(request, "Host") == f"hooks.tls.test:{tls_sink.port}"


def test_https_to_a_name_the_certificate_does_not_cover_is_refused(tls_sink, fake_dns):
    answers, _ = fake_dns
    answers["other.tls.test"] = ["127.0.0.1"]
    channel = NotificationChannelFactory(config={"url": f"https://other.tls.test:{tls_sink.port}/hook"})
    delivery_id = send_one(channel)

    assert delivery_send(delivery_id) == "pending"
    assert "certificate" in Delivery.objects.get(pk=delivery_id).last_error.lower()
    assert tls_sink.received() == []
