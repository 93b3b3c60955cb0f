import pytest

from sipbridge.sip.access import Allowlist, RateLimiter, parse_networks


def test_allowlist_networks_hosts_and_mapped_ipv6():
    allow = Allowlist(parse_networks(["127.0.0.0/8", "::1", "192.0.2.7"]))
    assert allow.allows("127.0.0.9") and allow.allows("::1") and allow.allows("192.0.2.7")
    assert allow.allows("::ffff:127.0.0.1")
    assert not allow.allows("192.0.2.8") and not allow.allows("10.0.0.1")
    assert not allow.allows("not-an-address")


def test_bad_network_is_named():
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        parse_networks(["10.0.0.0/33"])


def test_token_bucket_per_source():
    now = [0.0]
    limiter = RateLimiter(lambda: now[0], rate=10, burst=5)
    assert [limiter.allow("a") for _ in range(6)] == [True] * 5 + [False]
    assert limiter.allow("b")  # another source has its own bucket
    now[0] += 0.1  # one token back at 10/s
    assert limiter.allow("a") and not limiter.allow("a")


def test_sources_are_bounded():
    limiter = RateLimiter(lambda: 0.0, rate=1, burst=1, max_sources=3)
    for n in range(10):
        limiter.allow(f"10.0.0.{n}")
    assert len(limiter._buckets) == 3


def test_a_network_with_host_bits_set_is_taken_as_its_network():
    # "10.0.0.1/8" is what operators write; strict parsing would refuse it at startup.
    [network] = parse_networks([" 10.0.0.1/8 "])
    assert str(network) == "10.0.0.0/8"
    assert Allowlist([network]).allows("10.200.0.1")


def test_a_link_local_source_with_its_zone_is_matched_by_address():
    allow = Allowlist(parse_networks(["fe80::/10"]))
    assert allow.allows("fe80::1%eth0") and not allow.allows("2001:db8::1")


def test_the_stalest_source_is_forgotten_first():
    limiter = RateLimiter(lambda: 0.0, rate=0.001, burst=1, max_sources=2)
    assert limiter.allow("a") and limiter.allow("b")  # both buckets now empty
    assert not limiter.allow("a")  # a is now the freshest, b the stalest
    assert limiter.allow("c")  # b is forgotten to make room...
    assert not limiter.allow("a")  # ...not a, whose bucket is still empty
    assert limiter.allow("b")  # b starts again with a full bucket
