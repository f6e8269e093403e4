"""HTTP client integrations: every attempt on the wire recorded once, at the outermost layer,
with method, server, status and error, and never a path, query, user info, header or body."""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.error
import urllib.request

import pytest
import requests
import urllib3

import instrument.auto
from instrument._suppress import suppressing
from instrument.testing import capture

from .http_server import Server, closed_port

httpx = pytest.importorskip("httpx")

METRIC = "http.client.request.duration"


@pytest.fixture(scope="module")
def server():
    running = Server()
    yield running
    running.close()


@pytest.fixture(autouse=True, scope="module")
def integrations():
    installed = instrument.auto.install(include=["http_client", "urllib3", "requests", "httpx"])
    assert ["http_client", "httpx", "requests", "urllib3"] == installed
    assert ["http_client", "httpx", "requests", "urllib3"] == instrument.auto.installed()
    yield
    instrument.auto.uninstall()


def recorded(captured, server=None):
    """{(method, status, error): count} over every series of the metric, checking forbidden tags
    and, given the *server*, that every request names its address and port."""
    found = {}
    for point in captured.find(METRIC):
        assert set(point.tags) <= {"http.request.method", "server.address", "server.port",
                                   "http.response.status_code", "error.type"}
        if server is not None:
            assert ("127.0.0.1", server.port) == (point.tags["server.address"], point.tags["server.port"])
        key = (point.tags["http.request.method"], point.tags.get("http.response.status_code"),
               point.tags.get("error.type"))
        found[key] = found.get(key, 0) + point.histogram.count
    return found


def only_point(captured):
    points = captured.find(METRIC)
    assert 1 == len(points), points
    return points[0]


class TestHttpClient:
    def test_request_tags(self, server):
        with capture() as captured:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/ok?token=secret")
            assert b"hello" == conn.getresponse().read()
            conn.close()
        point = only_point(captured)
        assert {"http.request.method": "GET", "server.address": "127.0.0.1", "server.port": server.port,
                "http.response.status_code": 200} == point.tags

    def test_urllib_request_statuses(self, server):
        with capture() as captured:
            urllib.request.urlopen(server.url("/ok")).read()
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(server.url("/error"))
            urllib.request.urlopen(server.url("/redirect")).read()  # 302 then 200: two attempts
        assert {("GET", 200, None): 2, ("GET", 500, "500"): 1, ("GET", 302, None): 1} == recorded(captured)

    def test_connection_refused(self):
        with capture() as captured:
            conn = http.client.HTTPConnection("127.0.0.1", closed_port(), timeout=5)
            with pytest.raises(ConnectionRefusedError):
                conn.request("GET", "/")
        assert {("GET", None, "ConnectionRefusedError"): 1} == recorded(captured)

    def test_not_found_timeout_and_slow_body(self, server):
        """http.client's attempt ends at the response headers: a slow body is read after it."""
        with capture() as captured:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/notfound")
            conn.getresponse().read()
            conn.request("GET", "/slowbody")
            conn.getresponse().read()
            conn.close()
            hanging = http.client.HTTPConnection("127.0.0.1", server.port, timeout=0.2)
            hanging.request("GET", "/hang")
            with pytest.raises(TimeoutError):
                hanging.getresponse()
            hanging.close()
        assert {("GET", 404, "404"): 1, ("GET", 200, None): 1, ("GET", None, "TimeoutError"): 1} == recorded(
            captured, server)
        slow = next(p for p in captured.find(METRIC) if p.tags.get("http.response.status_code") == 200)
        assert slow.histogram.sum < 0.3

    def test_host_names_are_tagged_in_lower_case(self, server):
        """DNS names are case-insensitive: http.client's host is tagged as requests' and httpx's are."""
        with capture() as captured:
            conn = http.client.HTTPConnection("LocalHost", server.port, timeout=5)
            conn.request("GET", "/ok")
            conn.getresponse().read()
            conn.close()
        assert "localhost" == only_point(captured).tags["server.address"]

    def test_unknown_method_is_other(self, server):
        with capture() as captured:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("PURGE", "/ok")
            conn.getresponse().read()
        assert {("_OTHER", 200, None): 1} == recorded(captured)


class TestUrllib3:
    def test_statuses_and_timeout(self, server):
        pool = urllib3.PoolManager()
        with capture() as captured:
            assert 200 == pool.request("GET", server.url("/ok")).status
            assert 404 == pool.request("POST", server.url("/notfound"), body=b"x").status
            assert 500 == pool.request("PUT", server.url("/error"), body=b"x").status
            with pytest.raises(urllib3.exceptions.ReadTimeoutError):
                pool.request("GET", server.url("/hang"), timeout=0.2, retries=False)
        assert {("GET", 200, None): 1, ("POST", 404, "404"): 1, ("PUT", 500, "500"): 1,
                ("GET", None, "urllib3.exceptions.ReadTimeoutError"): 1} == recorded(captured, server)

    def test_each_retry_and_redirect_is_an_attempt(self, server):
        pool = urllib3.PoolManager()
        with capture() as captured:
            assert 200 == pool.request("GET", server.url("/redirect")).status
            with pytest.raises(urllib3.exceptions.MaxRetryError):
                pool.request("GET", f"http://127.0.0.1:{closed_port()}/", retries=urllib3.Retry(connect=2))
        found = recorded(captured)
        assert 1 == found[("GET", 302, None)]
        assert 1 == found[("GET", 200, None)]
        assert 3 == found[("GET", None, "urllib3.exceptions.NewConnectionError")]

    def test_preloaded_body_is_timed_on_urllib3_2(self, server):
        """urllib3 2.x reads a preloaded body inside the attempt; 1.26 only after it."""
        with capture() as captured:
            urllib3.PoolManager().request("GET", server.url("/slowbody"))
        if urllib3.__version__.startswith("1."):
            assert only_point(captured).histogram.sum < 0.3
        else:
            assert only_point(captured).histogram.sum >= 0.3


class TestRequests:
    def test_one_record_per_request_despite_layers(self, server):
        """requests -> urllib3 -> http.client: recorded once, by requests."""
        with capture() as captured:
            assert 200 == requests.get(server.url("/ok"), timeout=5).status_code
            with requests.Session() as s:
                assert 500 == s.delete(server.url("/error"), timeout=5).status_code
                assert 404 == s.head(server.url("/notfound"), timeout=5).status_code
        assert {("GET", 200, None): 1, ("DELETE", 500, "500"): 1, ("HEAD", 404, "404"): 1} == recorded(
            captured, server)

    def test_redirect_hops_each_counted(self, server):
        with capture() as captured:
            response = requests.get(server.url("/redirect"), timeout=5)
        assert 1 == len(response.history)
        assert {("GET", 302, None): 1, ("GET", 200, None): 1} == recorded(captured)

    def test_body_included_unless_streamed(self, server):
        with capture() as whole:
            requests.get(server.url("/slowbody"), timeout=5)
        with capture() as streamed:
            r = requests.get(server.url("/slowbody"), timeout=5, stream=True)
        assert only_point(whole).histogram.sum >= 0.3
        assert only_point(streamed).histogram.sum < 0.3
        r.close()

    def test_errors_use_requests_exception_classes(self, server):
        with capture() as captured:
            with pytest.raises(requests.exceptions.ConnectionError):
                requests.get(f"http://127.0.0.1:{closed_port()}/", timeout=5)
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.get(server.url("/hang"), timeout=0.2)
        assert {("GET", None, "requests.exceptions.ConnectionError"): 1,
                ("GET", None, "requests.exceptions.ReadTimeout"): 1} == recorded(captured)

    def test_adapter_with_retries_records_each_attempt(self):
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=urllib3.Retry(connect=2)))
        with capture() as captured:
            with pytest.raises(requests.exceptions.ConnectionError):
                session.get(f"http://127.0.0.1:{closed_port()}/", timeout=5)
        assert {("GET", None, "urllib3.exceptions.NewConnectionError"): 3} == recorded(captured)

    def test_user_info_query_and_path_are_never_recorded(self, server):
        with capture() as captured:
            requests.get(f"http://alice:s3cret@127.0.0.1:{server.port}/ok?card=pan-4111-x9", timeout=5)
        text = json.dumps([p.as_dict() for p in captured.points])
        # Secrets no number in a point (a port, a timestamp) can contain by chance.
        for secret in ("alice", "s3cret", "card", "pan-4111-x9", "/ok"):
            assert secret not in text


class TestHttpx:
    def test_sync_and_async(self, server):
        async def fetch():
            async with httpx.AsyncClient() as client:
                return (await client.get(server.url("/notfound"))).status_code

        with capture() as captured:
            with httpx.Client(follow_redirects=True) as client:
                assert 200 == client.get(server.url("/redirect")).status_code
            assert 404 == asyncio.run(fetch())
        assert {("GET", 302, None): 1, ("GET", 200, None): 1, ("GET", 404, "404"): 1} == recorded(captured, server)

    def test_server_error_timeouts_and_slow_body(self, server):
        """A timeout is recorded with httpx's class, sync and async; httpx's attempt ends at the headers."""

        async def hang():
            async with httpx.AsyncClient(timeout=0.2) as client:
                await client.get(server.url("/hang"))

        with capture() as captured:
            with httpx.Client(timeout=5) as client:
                assert 500 == client.post(server.url("/error"), content=b"x").status_code
                assert 200 == client.get(server.url("/slowbody")).status_code
            with pytest.raises(httpx.ReadTimeout):
                httpx.get(server.url("/hang"), timeout=0.2)
            with pytest.raises(httpx.ReadTimeout):
                asyncio.run(hang())
        assert {("POST", 500, "500"): 1, ("GET", 200, None): 1, ("GET", None, "httpx.ReadTimeout"): 2} == recorded(
            captured, server)
        slow = next(p for p in captured.find(METRIC) if p.tags.get("http.response.status_code") == 200)
        assert slow.histogram.sum < 0.3

    def test_connect_error(self):
        with capture() as captured:
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{closed_port()}/")
        assert {("GET", None, "httpx.ConnectError"): 1} == recorded(captured)

    def test_concurrent_async_requests_each_counted(self, server):
        """Attempt ownership is per task, so concurrent requests on one thread all count."""

        async def many():
            async with httpx.AsyncClient() as client:
                await asyncio.gather(*(client.get(server.url("/ok")) for _ in range(20)))

        with capture() as captured:
            asyncio.run(many())
        assert {("GET", 200, None): 20} == recorded(captured)


class TestSuppressionAndUninstall:
    def test_suppressed_threads_are_not_recorded(self, server):
        """The exporters' own traffic runs suppressed and never shows up."""
        with capture() as captured:
            with suppressing():
                requests.get(server.url("/ok"), timeout=5)
                urllib.request.urlopen(server.url("/ok")).read()
        assert {} == recorded(captured)

    def test_uninstall_restores_originals(self, server):
        original = requests.adapters.HTTPAdapter.send.__instrument_original__
        instrument.auto.uninstall(["requests"])
        try:
            assert requests.adapters.HTTPAdapter.send is original
            with capture() as captured:
                requests.get(server.url("/ok"), timeout=5)
            # urllib3 records it now, as the outermost instrumented layer
            assert {("GET", 200, None): 1} == recorded(captured)
        finally:
            instrument.auto.install(include=["requests"])
        assert "requests" in instrument.auto.installed()



class TestExportersOwnTraffic:
    def test_http_exporter_posts_are_never_recorded(self, server, exported):
        """The http exporter's requests run on its suppressed thread: they never appear as metrics."""
        from instrument._config import settings
        from instrument.exporters.http import HttpExporter

        instrument.configure(http_url=server.url("/ok"))
        http_exporter = HttpExporter(settings.current)
        instrument.configure(exporters=[http_exporter, exported])
        for _ in range(3):
            instrument.count("own.traffic")
            assert instrument.flush(10.0)
        posts = [p for b in exported.batches for p in b.points
                 if p.name == METRIC and p.tags.get("server.port") == server.port]
        assert [] == posts
        assert 3 == sum(p.value for b in exported.batches for p in b.points if p.name == "own.traffic")


class TestReviewedEdges:
    def test_user_info_given_to_urllib_request_never_reaches_a_tag(self, server):
        """urllib.request hands `user:password@host` to http.client; only the host is tagged."""
        with capture() as captured:
            with pytest.raises(urllib.error.URLError):
                urllib.request.urlopen(f"http://alice:s3cret@127.0.0.1:{server.port}/ok", timeout=5)
        addresses = {p.tags["server.address"] for p in captured.find(METRIC)}
        assert addresses <= {"127.0.0.1"}
        assert "s3cret" not in json.dumps([p.as_dict() for p in captured.points])

    def test_response_hooks_that_raise_do_not_lose_the_record(self, server):
        """A raise_for_status hook raises before requests reads the body: still recorded once."""
        session = requests.Session()
        session.hooks["response"].append(lambda r, *a, **k: r.raise_for_status())
        with capture() as captured:
            with pytest.raises(requests.exceptions.HTTPError):
                session.get(server.url("/error"), timeout=5)
            session.get(server.url("/ok"), timeout=5)
        assert {("GET", 500, "500"): 1, ("GET", 200, None): 1} == recorded(captured)

    def test_a_plain_connection_inside_an_owned_attempt_is_its_own_attempt(self, server):
        """urllib.request used while requests owns an attempt (a signal or logging handler)."""
        from instrument.integrations import _http

        with capture() as captured:
            outer = _http.begin("GET", "example.invalid", 80, rank=_http.CLIENT_LIBRARY)
            try:
                urllib.request.urlopen(server.url("/ok"), timeout=5).read()
            finally:
                outer.release()
                outer.finish(status=200)
        found = {(p.tags["server.address"], p.histogram.count) for p in captured.find(METRIC)}
        assert {("example.invalid", 1), ("127.0.0.1", 1)} == found
