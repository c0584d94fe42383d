"""CONTRACT §6.7 on spellings of an address the base cases of ``test_outbound`` do not try: numeric IPv4 forms
the resolver accepts, IPv6 scopes and multicast, and userinfo smuggled past a naive parser."""

from __future__ import annotations

import pytest

from alerts.outbound import webhook_url_problem


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://2852039166/latest", "link-local"),  # 169.254.169.254 as one integer
        ("http://0xa9fea9fe/latest", "link-local"),  # ... in hex
        ("http://0251.0376.0251.0376/latest", "link-local"),  # ... in octal
        ("http://[fe80::1%25eth0]/hook", "link-local"),  # with a zone id
        ("https://[ff02::1]/hook", "multicast"),
        ("http://0/hook", "unspecified"),
        ("http://[::ffff:0:0]/hook", "unspecified"),
        ("http://8.8.8.8\\@127.0.0.1/hook", "credentials"),
        ("https://user%40x@8.8.8.8/hook", "credentials"),
        ("HTTP://8.8.8.8/hook", "https"),
        ("http://[::ffff:8.8.8.8]/hook", "https"),
    ],
)
def test_other_spellings_of_refused_addresses_are_refused(settings, url, words):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True

    problem = webhook_url_problem(url)

    assert problem is not None and words in problem


@pytest.mark.parametrize(
    "url",
    [
        "http://127.1/hook",
        "https://0x7f000001/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00::1]/hook",  # unique local IPv6
        "https://100.64.0.1/hook",  # carrier-grade NAT
    ],
)
def test_private_spellings_need_the_setting(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

    assert "private" in webhook_url_problem(url)

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True

    assert webhook_url_problem(url) is None


def test_an_upper_case_https_scheme_to_a_public_address_is_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

    assert webhook_url_problem("HTTPS://8.8.8.8/hook") is None
