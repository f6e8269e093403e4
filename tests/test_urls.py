"""What instrument takes from a URL: host and port for tags, a redacted form for messages; never
user info, query or fragment."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from instrument._urls import DEFAULT_PORTS, hostport, redact


class TestHostport:
    @pytest.mark.parametrize("url", [
        "http://127.0.0.1:8080/ok?x=1", "https://Alice:pw@Example.COM/path#frag", "http://[::1]:9000/",
        "http://[::1]/x", "HTTP://host", "http://u@h:1?q", "http://h:/x", "https://h:notaport/", "h/no-scheme",
        "http://[2001:db8::7]:8443/a?b#c", "https://user:p@ss@host:444/",
    ])
    def test_the_fast_path_agrees_with_urlsplit(self, url):
        """String splitting gives what urllib.parse gives: lower-case host, port or the scheme's default."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        assert (parts.hostname or "", port or DEFAULT_PORTS.get(parts.scheme, 0)) == hostport(url)

    def test_ipv6_host_without_brackets(self):
        """An IPv6 host is the address itself, as OpenTelemetry's server.address wants it."""
        assert ("2001:db8::1", 8080) == hostport("http://[2001:DB8::1]:8080/x")

    def test_user_info_never_reaches_the_host(self):
        """user:password@ is dropped, even when the password holds an @."""
        assert ("example.com", 443) == hostport("https://ada:s3cr@t@Example.com/")


class TestRedact:
    @pytest.mark.parametrize(("url", "expected"), [
        ("https://ada:s3cret@collector.example:4318/v1/metrics?token=x#frag",
         "https://collector.example:4318/v1/metrics"),
        ("http://[::1]:4318/v1/metrics", "http://[::1]:4318/v1/metrics"),
        ("http://user:pw@[2001:db8::2]/ingest?key=1", "http://[2001:db8::2]/ingest"),
        ("https://example.com", "https://example.com"),
        ("http://example.com:notaport/x", "http://example.com/x"),
        ("collector:4317", "collector:4317"),
        ("ada:pw@collector:4317", "collector:4317"),
        ("http://[::1/x", "<unparsable URL>"),
    ])
    def test_only_scheme_host_port_and_path_remain(self, url, expected):
        """User info, query and fragment are dropped; IPv6 keeps its brackets; ports stay."""
        assert expected == redact(url)
