# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet report page, rendered from a sample fleet and opened in headless Chromium.

Chromium is required (CI installs Debian's `chromium`); without it these tests fail. Set
SIPGUARD_CHROMIUM to use another binary, and SIPGUARD_UPDATE_SCREENSHOT=1 to write the
screenshot to docs/report-screenshot.png.
"""

from __future__ import annotations

import html.parser
import importlib.util
import os
import shutil
import struct
import subprocess
import tempfile
import zlib

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("sipguard_render_report", os.path.join(HERE, "render_report.py"))
render_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_report)

SCREENSHOT = os.path.join(render_report.ROOT, "docs", "report-screenshot.png")
WINDOW = (1400, 900)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# What the sample fleet must show - written out here, not taken from the filter.
EXPECTED_STATUS = {
    "pbx-lab-02": "exposed", "sbc-04": "exposed", "sip-edge-01": "exposed", "voip-gw-06": "failed",
    "old-pbx-05": "unreachable", "media-03": "closed", "web-07": "closed",
}
EXPECTED_ORDER = ["pbx-lab-02", "sbc-04", "sip-edge-01", "voip-gw-06", "old-pbx-05", "media-03", "web-07"]
COLOURS = {  # status -> (pill and left border, row background), as getComputedStyle gives them
    "exposed": ("rgb(198, 40, 40)", "rgb(253, 236, 234)"),
    "failed": ("rgb(230, 81, 0)", "rgb(255, 243, 224)"),
    "unreachable": ("rgb(84, 110, 122)", "rgb(236, 239, 241)"),
    "closed": ("rgb(46, 125, 50)", "rgb(255, 255, 255)"),
}
# Test-only: copies each row's computed colours into data attributes before --dump-dom.
# The report itself has no script.
COLOUR_PROBE = """<script>
for (const row of document.querySelectorAll('tr.host')) {
  row.dataset.rowBg = getComputedStyle(row).backgroundColor;
  row.dataset.pillBg = getComputedStyle(row.querySelector('.pill')).backgroundColor;
  row.dataset.borderColour = getComputedStyle(row.querySelector('td.status')).borderLeftColor;
}
</script>
"""


# --- a small DOM from Chromium's --dump-dom output ----------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def text(self):
        return " ".join("".join(child if isinstance(child, str) else child.text() for child in self.children).split())

    def find_all(self, tag=None, cls=None, **attrs):
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if ((tag is None or child.tag == tag) and (cls is None or cls in child.classes)
                        and all(child.attrs.get(key.replace("_", "-")) == value for key, value in attrs.items())):
                    found.append(child)
                found.extend(child.find_all(tag, cls, **attrs))
        return found

    def find(self, tag=None, cls=None, **attrs):
        found = self.find_all(tag, cls, **attrs)
        assert found, "no <%s class=%s %s> in %s" % (tag, cls, attrs, self.text()[:200])
        return found[0]


class DomBuilder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#document", {})

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse_dom(text):
    builder = DomBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


# --- PNG pixels (8-bit RGB/RGBA, not interlaced: what Chromium writes) ------------------------

def png_pixels(path):
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, header = 8, b"", None
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunk = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    width, height, depth, colour_type, _c, _f, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    channels = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = previous[x]
            c = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


def count_colour(pixels, rgb, tolerance=6):
    _width, _height, channels, rows = pixels
    count = 0
    for row in rows:
        for x in range(0, len(row), channels):
            if all(abs(row[x + i] - rgb[i]) <= tolerance for i in range(3)):
                count += 1
    return count


# --- Chromium ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    candidates = [os.environ.get("SIPGUARD_CHROMIUM"), "/usr/bin/chromium",
                  shutil.which("chromium"), shutil.which("chromium-browser")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("headless Chromium is needed to test the report page and is missing: install Debian's "
                "`chromium` package (apt-get install -y chromium; tests/harness/setup.sh does) or set SIPGUARD_CHROMIUM")


def run_chromium(binary, workdir, page, *args):
    """Chromium on one file:// page with a new profile; returns stdout."""
    profile = tempfile.mkdtemp(prefix="profile-", dir=workdir)
    command = [binary] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile] + list(args) + ["file://" + page]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False,
                               stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, "%s exited %d:\n%s" % (
        " ".join(command), completed.returncode, completed.stderr[-3000:])
    return completed.stdout


@pytest.fixture(scope="module")
def report():
    return render_report.sample_report()


@pytest.fixture(scope="module")
def page(report):
    return render_report.render_jinja2(report)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def dom(chromium, page, workdir):
    path = os.path.join(workdir, "report-probed.html")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page.replace("</body>", COLOUR_PROBE + "</body>"))
    dumped = run_chromium(chromium, workdir, path, "--dump-dom")
    assert "</html>" in dumped, dumped[-500:]
    return parse_dom(dumped)


@pytest.fixture(scope="module")
def screenshot(chromium, page, workdir):
    path = os.path.join(workdir, "report.html")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    png = os.path.join(workdir, "report.png")
    run_chromium(chromium, workdir, path, "--screenshot=" + png, "--window-size=%d,%d" % WINDOW,
                 "--hide-scrollbars", "--force-device-scale-factor=1")
    assert os.path.getsize(png) > 10000, "suspiciously small screenshot"
    if os.environ.get("SIPGUARD_UPDATE_SCREENSHOT") == "1":
        os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
        shutil.copyfile(png, SCREENSHOT)
    return png


def rows_by_host(dom):
    return {row.attrs["data-host"]: row for row in dom.find_all("tr", "host")}


# --- the page as Chromium rendered it ------------------------------------------------------------

def test_counts_at_the_top(dom, report):
    expected = {"exposed": "3", "closed": "2", "unreachable": "1", "failed": "1", "reopened": "1", "hosts": "7"}
    for key, number in expected.items():
        tile = dom.find("div", id="count-" + key)
        assert tile.find("span", "n").text() == number, key
        assert key in tile.find("span", "label").text()
    assert "zero" not in dom.find("div", id="count-exposed").classes
    verdict = dom.find("div", id="verdict")
    assert "bad" in verdict.classes
    assert verdict.text().startswith("3 of 7 hosts expose port 5061")
    assert dom.find("p", id="summary-line").text() == (
        "5061: 3 exposed (pbx-lab-02, sbc-04, sip-edge-01), 2 closed, 1 unreachable, 1 failed; reopened: pbx-lab-02")
    assert report["summary_line"] == dom.find("p", id="summary-line").text()
    title = dom.find("title").text()
    assert title.startswith("Port 5061: 3 exposed, 2 closed")


def test_one_row_per_host_in_severity_order(dom):
    rows = dom.find("table", id="hosts").find("tbody").find_all("tr")
    assert [row.attrs.get("data-host") for row in rows] == EXPECTED_ORDER
    for row in rows:
        assert row.find("span", "hostname").text() == row.attrs["data-host"]


def test_status_class_and_colour_per_row(dom):
    for host, row in rows_by_host(dom).items():
        status = EXPECTED_STATUS[host]
        assert "status-" + status in row.classes, (host, row.classes)
        assert row.attrs["data-status"] == status
        assert row.find("span", "pill").text() == status
        colour, background = COLOURS[status]
        assert row.attrs["data-pill-bg"] == colour, (host, row.attrs)
        assert row.attrs["data-border-colour"] == colour, (host, row.attrs)
        assert row.attrs["data-row-bg"] == background, (host, row.attrs)


def test_reasons(dom):
    rows = rows_by_host(dom)
    edge = [item.text() for item in rows["sip-edge-01"].find("ul", "reasons").find_all("li")]
    assert edge[0] == "ipv4/tcp: kamailio listens on 0.0.0.0:5061"
    assert edge[1].startswith("ipv4/tcp: ufw's own filter ufw-user-input rule 2 accepts tcp port 5061")
    assert "--dports 5000:6000" in edge[1]
    assert edge[2] == "ipv4/tcp: open from the controller on 203.0.113.10:5061 (TLSv1.3, SIP 200 OK)"
    # The host says closed, the network finds it open: exposed, with the contradiction named.
    sbc = rows["sbc-04"].find("ul", "reasons").text()
    assert sbc.startswith("ipv4/tcp: open from the controller on 203.0.113.40:5061")
    assert "although the host-side check finds it closed: the network wins" in sbc
    assert rows["voip-gw-06"].find("div", "error").text() == "Missing sudo password"
    assert "Connection timed out" in rows["old-pbx-05"].find("div", "error").text()
    assert "nothing listens" in rows["web-07"].find("td", "why").text()
    assert not rows["web-07"].find_all("ul", "reasons")
    assert "the firewall lets udp/5061 in, but nothing listens on it now" in rows["media-03"].find("ul", "notes").text()


def test_certificate_subject_and_days_left(dom):
    rows = rows_by_host(dom)
    expected = {
        "sip-edge-01": ("CN=sip-edge-01.example.net", "23 days left", "days-soon", "23"),
        "pbx-lab-02": ("CN=asterisk,O=Lab PBX", "expired 12 days ago", "days-expired", "-12"),
        "sbc-04": ("CN=sbc.example.net", "79 days left", "days-ok", "79"),
    }
    for host, (subject, days, cls, number) in expected.items():
        cell = rows[host].find("td", "tls")
        assert cell.find("div", "subject").text() == subject
        element = cell.find("div", "days")
        assert element.text() == days
        assert cls in element.classes
        assert element.attrs["data-days-left"] == number
    assert "self-signed" in rows["pbx-lab-02"].find("td", "tls").text()
    assert "by CN=R11,O=Let's Encrypt,C=US" in rows["sip-edge-01"].find("td", "tls").text()
    assert rows["media-03"].find("td", "tls").text() == "-"


def test_sip_server_processes_trend_and_verification(dom):
    rows = rows_by_host(dom)
    assert rows["sip-edge-01"].find("td", "sip").text() == "kamailio (5.6.3 (x86_64/linux))"
    assert rows["pbx-lab-02"].find("td", "sip").text() == "Asterisk PBX 20.5.0"
    assert rows["sbc-04"].find("td", "sip").text() == "OpenSIPS (3.4.4 (x86_64/linux))"
    assert rows["sip-edge-01"].find("td", "procs").text() == "kamailio"
    assert rows["pbx-lab-02"].find("td", "procs").text() == "asterisk"
    assert rows["pbx-lab-02"].attrs["data-trend"] == "reopened"
    assert rows["pbx-lab-02"].find("span", "trend-reopened").text() == "reopened"
    assert rows["sbc-04"].attrs["data-trend"] == "new"
    assert rows["sip-edge-01"].find("span", "trend").text() == "still exposed"
    assert rows["old-pbx-05"].find("span", "trend").text() == "was closed"
    assert rows["sip-edge-01"].find("td", "verified").text() == "from the network tcp open · udp open|filtered"
    assert rows["voip-gw-06"].find("td", "verified").text() == "- tcp closed · udp closed"


def test_screenshot_shows_the_colours(screenshot):
    pixels = png_pixels(screenshot)
    assert pixels[:2] == WINDOW
    # Pills, tiles and row borders paint the status colours; a blank or unstyled page has none.
    assert count_colour(pixels, (198, 40, 40)) > 2000  # exposed red (the verdict bar alone is ~50000)
    assert count_colour(pixels, (46, 125, 50)) > 300  # closed green
    assert count_colour(pixels, (230, 81, 0)) > 100  # failed orange
    assert count_colour(pixels, (84, 110, 122)) > 100  # unreachable slate
    assert count_colour(pixels, (253, 236, 234), tolerance=2) > 20000  # exposed rows' tint


# --- the template itself ------------------------------------------------------------------------

def test_self_contained_without_script(page):
    lowered = page.lower()
    for needle in ("<script", "src=", "href=", "url(", "@import", "http://", "https://"):
        assert needle not in lowered, needle


def test_ansible_renders_the_same_page(report, page):
    assert render_report.render_ansible(report) == page
    # The role's template task passes the report as `report`.
    assert render_report.render_ansible(report, variable="report") == page
    assert render_report.render_jinja2(report, variable="report") == page


def test_strings_from_the_network_are_escaped(report):
    hostile = dict(report, hosts=[dict(record) for record in report["hosts"]])
    hostile["hosts"][0]["sip_server"] = '<img src=x onerror="alert(1)">'
    hostile["hosts"][0]["tls"] = dict(hostile["hosts"][0]["tls"], subject="CN=<b>x</b>&amp")
    hostile["hosts"][0]["reasons"] = ["ipv4/tcp: '<script>' listens"]
    text = render_report.render_jinja2(hostile)
    assert "<img" not in text and "<b>" not in text and "<script>" not in text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in text
    assert "CN=&lt;b&gt;x&lt;/b&gt;&amp;amp" in text
    assert render_report.render_ansible(hostile) == text


@pytest.mark.parametrize("check_mode", [False, True])
def test_close_report_shows_the_change(check_mode):
    report = render_report.sample_close_report(check_mode=check_mode)
    text = render_report.render_jinja2(report)
    assert render_report.render_ansible(report) == text
    page = parse_dom(text)
    rows = rows_by_host(page)
    change = rows["sip-edge-01"].find("td", "change").text()
    assert "5061/tcp DENY IN Anywhere # sipguard" in change
    assert "5000:6000/tcp ALLOW IN Anywhere (ipv4, shadowed)" in change
    assert "before: exposed → after: closed" in change
    assert rows["media-03"].find("td", "change").text() == "before: closed → after: closed no change"
    assert page.find("div", id="count-changed").find("span", "n").text() == "1"
    if check_mode:
        assert page.find_all("div", id="check-mode")
        assert rows["sip-edge-01"].attrs["data-status"] == "exposed"  # the state now, nothing was changed
        assert page.find("div", id="count-changed").find("span", "label").text() == "would change"
    else:
        assert not page.find_all("div", id="check-mode")
        assert [row.attrs["data-status"] for row in rows.values()] == ["closed", "closed"]
