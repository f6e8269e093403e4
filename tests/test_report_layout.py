"""The HTML report in a real browser (Debian's ``chromium``, headless): nothing sticks out of
the window at laptop and desktop widths, however long the tag sets."""

from __future__ import annotations

import html
import json
import re
import subprocess

import pytest

from instrument._model import Point
from instrument.report import Report
from instrument.report._html import render

from .helpers import require_binary
from .test_report_html import histogram, service

# Measures the laid-out page and writes the figures into it, for --dump-dom to print.
PROBE = """<script>
(() => {
  const root = document.documentElement;
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.right]; };
  const found = {
    innerWidth: innerWidth, clientWidth: root.clientWidth, scrollWidth: root.scrollWidth,
    plots: [...document.querySelectorAll("svg")].map(box),
    tables: [...document.querySelectorAll("table")].map(box),
  };
  const out = document.createElement("pre");
  out.id = "layout";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
})();
</script>"""
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)


def long_tags(intervals=30):
    """A series with many long tags, the kind that pushed the old table's columns off the page."""
    tags = {
        "http.request.method": "POST",
        "http.route": "/api/v2/organisations/<uuid:organisation_id>/applications/<int:application_id>/documents",
        "http.response.status_code": 201,
        "url.scheme": "https",
        "server.address": "loans-origination.internal.example.com",
        "deployment.environment": "production-eu-west-1",
        "k8s.pod.name": "loans-origination-7d9f8b6c5d-x2x9z",
        "error.type": "sqlalchemy.exc.OperationalError",
    }
    return [
        Point("http.server.request.duration", "histogram", "s", tags, 1000.0 + 10 * i, 1010.0 + 10 * i,
              histogram=histogram([0.02 * (1 + k / 10) for k in range(10)]))
        for i in range(intervals)
    ]


def layout(page, width, directory):
    """The figures PROBE measures, with the page laid out in a window *width* pixels wide."""
    browser = require_binary("chromium", provider=".ci/run (Debian package chromium)")
    path = directory / f"page-{width}.html"
    path.write_text(page.replace("</body>", PROBE + "</body>"))
    profile = directory / f"profile-{width}"
    result = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},900", "--dump-dom",
         path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'<pre id="layout">(.*?)</pre>', result.stdout, re.S)
    assert found, f"chromium printed no measurements (exit {result.returncode}):\n{result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def page():
    return render(Report.of([*service(), *long_tags()]))


class TestLayout:
    @pytest.mark.parametrize("width", [1280, 1366, 1400])
    def test_nothing_is_wider_than_the_window(self, page, width, tmp_path):
        """No horizontal scrolling: the page, every table and every plot fit inside the window."""
        measured = layout(page, width, tmp_path)
        assert width == measured["innerWidth"]
        visible = measured["clientWidth"]
        assert measured["scrollWidth"] <= visible
        assert measured["plots"] and all(0 <= left and right <= visible for left, right in measured["plots"])
        assert all(0 <= left and right <= visible for left, right in measured["tables"])

    def test_plots_use_the_page_width(self, page, tmp_path):
        """At 1400 px a series' three plots sit side by side across the page, not in a third of it."""
        measured = layout(page, 1400, tmp_path)
        first_row = measured["plots"][:3]
        assert 3 == len({left for left, _ in first_row})
        assert first_row[-1][1] > 0.9 * measured["clientWidth"]
