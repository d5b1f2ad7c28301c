"""Who is calling: the socket peer, unless that peer is a configured trusted proxy
(yiwang.throttle.client_address, the one function every surface uses)."""

from __future__ import annotations

import ipaddress
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yiwang.config import load_config
from yiwang.errors import InvalidInput
from yiwang.throttle import address_key, client_address

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
header_text = st.text(alphabet=st.characters(codec="ascii"), max_size=200)


@given(forwarded_for=header_text, real_ip=header_text)
def test_headers_from_an_untrusted_peer_never_change_the_address(forwarded_for: str, real_ip: str) -> None:
    assert client_address("198.51.100.7", forwarded_for, real_ip, PROXIES) == "198.51.100.7"
    assert client_address("198.51.100.7", forwarded_for, real_ip, ()) == "198.51.100.7"


@given(forwarded_for=header_text, real_ip=header_text)
def test_whatever_a_proxy_forwards_the_answer_is_an_address(forwarded_for: str, real_ip: str) -> None:
    ipaddress.ip_address(client_address("10.1.2.3", forwarded_for, real_ip, PROXIES))


def test_forwarded_for_is_read_from_the_right_past_trusted_hops_only() -> None:
    # The client claims to be 10.0.0.1 (a trusted range) and 127.0.0.1; the proxies appended the rest.
    chain = "127.0.0.1, 10.0.0.1, 203.0.113.9, 10.2.2.2"
    assert client_address("10.3.3.3", chain, None, PROXIES) == "203.0.113.9"
    assert client_address("10.3.3.3", None, "203.0.113.10", PROXIES) == "203.0.113.10"
    assert client_address("10.3.3.3", "not-an-address, 10.2.2.2", None, PROXIES) == "10.2.2.2"
    assert client_address("10.3.3.3", "[2001:db8::1]:4711", None, PROXIES) == "2001:db8::1"
    assert client_address("::ffff:203.0.113.5", "198.51.100.1", None, PROXIES) == "203.0.113.5"


def test_ipv6_callers_are_counted_by_their_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("203.0.113.5") == "203.0.113.5"


def test_a_bad_trusted_proxies_value_stops_start_up_naming_it(tmp_path: object) -> None:
    env = {"DATA_DIR": str(tmp_path), "PII_KEY": secrets.token_hex(16), "BLIND_INDEX_KEY": secrets.token_hex(32)}
    assert load_config({**env, "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.10"}).trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.10/32"),
    )
    assert load_config(env).trusted_proxies == ()
    with pytest.raises(InvalidInput) as caught:
        load_config({**env, "TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"})
    assert "TRUSTED_PROXIES" in caught.value.message and "proxy.local" in caught.value.message
