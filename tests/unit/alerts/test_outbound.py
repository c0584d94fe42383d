"""Outbound webhook URL rules of CONTRACT §6.7."""

from __future__ import annotations

import pytest

from alerts.outbound import webhook_url_problem


@pytest.fixture
def private_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    return settings


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.20:1880/endpoint",
        "https://[::1]/hook",
        "https://8.8.8.8/hook",
    ],
)
def test_allowed_urls(private_allowed, url):
    assert webhook_url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://127.0.0.1/hook", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("http://user:pass@127.0.0.1/hook", "credentials"),
        ("http://user@127.0.0.1/hook", "credentials"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://[::]/hook", "unspecified"),
        ("http://8.8.8.8/hook", "https"),
        ("http:///hook", "no host"),
        ("http://127.0.0.1:99999/hook", "not a valid URL"),
        ("", "required"),
        ("http://no-such-host.invalid/hook", "does not resolve"),
        ("https://127.0.0.1/" + "a" * 2000, "longer"),
    ],
)
def test_refused_urls_say_why(private_allowed, url, words):
    problem = webhook_url_problem(url)
    assert problem is not None
    assert words in problem


def test_ipv4_mapped_ipv6_addresses_are_judged_as_ipv4(private_allowed):
    assert "link-local" in webhook_url_problem("http://[::ffff:169.254.169.254]/x")


def test_private_and_loopback_targets_need_the_setting(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    assert "private" in webhook_url_problem("http://127.0.0.1/hook")
    assert "private" in webhook_url_problem("https://10.1.2.3/hook")
    assert "private" in webhook_url_problem("https://[::1]/hook")
    assert webhook_url_problem("https://8.8.8.8/hook") is None


@pytest.mark.parametrize(
    "url",
    [
        "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "https://[64:ff9b:1::a9fe:a9fe]/",  # local-use NAT64
        "https://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
        "https://[::a9fe:a9fe]/",  # IPv4-compatible
        "https://[2001:0:a9fe:a9fe::5601:5601]/",  # Teredo, server 169.254.169.254
    ],
)
def test_ipv6_forms_that_embed_a_link_local_ipv4_address_are_refused(private_allowed, url):
    assert "link-local" in webhook_url_problem(url)


def test_ipv6_forms_that_embed_a_private_ipv4_address_need_the_setting(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    assert "private" in webhook_url_problem("https://[64:ff9b::a00:1]/")  # NAT64 of 10.0.0.1
    assert "private" in webhook_url_problem("https://[2002:7f00:1::1]/")  # 6to4 of 127.0.0.1
    assert webhook_url_problem("https://[64:ff9b::808:808]/") is None  # NAT64 of 8.8.8.8


def test_at_send_time_a_name_that_does_not_resolve_is_a_temporary_problem(private_allowed):
    from alerts.outbound import webhook_target

    unresolved = webhook_target("http://no-such-host.invalid/hook")
    assert unresolved.retryable
    assert "does not resolve" in unresolved.problem

    refused = webhook_target("http://169.254.169.254/latest")
    assert (refused.retryable, "link-local" in refused.problem) == (False, True)

    ok = webhook_target("http://127.0.0.1:8080/hook")
    assert (ok.problem, [str(a) for a in ok.addresses], ok.host_header) == (None, ["127.0.0.1"], "127.0.0.1:8080")
