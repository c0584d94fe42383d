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
