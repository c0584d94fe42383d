"""Client IP resolution with trusted proxies (CONTRACT §6.2)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from hsi.net import client_ip, client_ip_from, is_trusted_proxy


@pytest.fixture(autouse=True)
def proxies(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8"]


def test_remote_addr_is_the_client_without_forwarded_for():
    assert client_ip_from("203.0.113.5", None) == "203.0.113.5"


def test_forwarded_for_is_ignored_from_an_untrusted_peer():
    assert client_ip_from("203.0.113.5", "198.51.100.1") == "203.0.113.5"


def test_first_forwarded_address_is_used_behind_a_trusted_proxy():
    assert client_ip_from("127.0.0.1", "198.51.100.1, 10.0.0.2, 127.0.0.1") == "198.51.100.1"


def test_cidr_entries_and_ipv6_proxies_are_trusted():
    assert client_ip_from("10.20.30.40", "198.51.100.9") == "198.51.100.9"
    assert client_ip_from("fd12::1", "2001:db8::5") == "2001:db8::5"
    assert client_ip_from("::1", "198.51.100.3") == "198.51.100.3"


def test_ipv4_mapped_ipv6_peer_matches_an_ipv4_proxy_entry():
    assert is_trusted_proxy("::ffff:127.0.0.1")
    assert client_ip_from("::ffff:127.0.0.1", "198.51.100.4") == "198.51.100.4"


@pytest.mark.parametrize("forwarded", ["not-an-ip", "", " , 198.51.100.1", "unknown"])
def test_unparsable_first_forwarded_address_falls_back_to_remote_addr(forwarded):
    assert client_ip_from("127.0.0.1", forwarded) == "127.0.0.1"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [("198.51.100.7:51234", "198.51.100.7"), ("[2001:db8::7]:443", "2001:db8::7"), ("[2001:db8::8]", "2001:db8::8")],
)
def test_forwarded_address_with_port_or_brackets_is_normalised(forwarded, expected):
    assert client_ip_from("127.0.0.1", forwarded) == expected


def test_addresses_are_returned_in_canonical_form():
    assert client_ip_from("2001:DB8:0:0::1", None) == "2001:db8::1"


@pytest.mark.parametrize("remote", [None, "", "unix-socket", "999.1.1.1"])
def test_missing_or_invalid_remote_addr_gives_no_ip(remote):
    assert client_ip_from(remote, None) is None


def test_nothing_is_trusted_with_an_empty_list(settings):
    settings.TRUSTED_PROXIES = []

    assert client_ip_from("127.0.0.1", "198.51.100.1") == "127.0.0.1"


def test_client_ip_reads_the_request_meta():
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="192.0.2.10")

    assert client_ip(request) == "192.0.2.10"


def test_invalid_trusted_proxy_entry_is_a_configuration_error_naming_the_variable(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "proxy.internal"]

    with pytest.raises(ImproperlyConfigured) as caught:
        is_trusted_proxy("10.0.0.1")

    assert "TRUSTED_PROXIES" in str(caught.value) and "proxy.internal" in str(caught.value)
