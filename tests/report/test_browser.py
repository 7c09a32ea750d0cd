"""The uplift report rendered in headless Chromium.

Drives ``chromedriver`` through the W3C WebDriver HTTP protocol with the
standard library (no selenium dependency): the page is loaded from a file URL
with networking disabled, and the test reads back what the browser rendered --
the estimates table's cells and every figure decoded (``naturalWidth > 0``).
A screenshot is also taken with ``chromium --screenshot`` to check that the page
paints. Skips only when Chromium / chromedriver are not installed
(Debian: ``apt-get install -y chromium chromium-driver``).
"""

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="headless Chromium not installed (apt-get install -y chromium chromium-driver)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base: str, method: str, path: str, body=None, timeout: float = 60.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode())["value"]


@pytest.fixture
def webdriver(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([DRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if _call(base, "GET", "/status", timeout=2).get("ready"):
                    break
            except OSError:
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM, "args": FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]}}}}
        session = _call(base, "POST", "/session", caps)["sessionId"]
        try:
            yield lambda method, path, body=None: _call(base, method, f"/session/{session}{path}", body)
        finally:
            try:
                _call(base, "DELETE", f"/session/{session}")
            except OSError:
                pass
    finally:
        proc.terminate()
        proc.wait(timeout=10)


PROBE = """
const tables = [...document.querySelectorAll('table')];
const est = tables.find(t => [...t.querySelectorAll('th')].some(th => th.textContent.trim() === 'ATE CI'));
return {
  title: document.title,
  h2: [...document.querySelectorAll('h2')].map(h => h.textContent.trim()),
  est_rows: est ? [...est.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.textContent.trim())) : null,
  est_visible: est ? est.getBoundingClientRect().height > 0 : false,
  images: [...document.images].map(i => ({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})),
  scripts: document.scripts.length,
  injected_elements: document.querySelectorAll('img[onerror], script').length,
  body_text: document.body.innerText,
};
"""


@needs_chromium
def test_report_renders_in_chromium(uplift_html, webdriver, tmp_path):
    webdriver("POST", "/url", {"url": uplift_html.resolve().as_uri()})
    page = webdriver("POST", "/execute/sync", {"script": PROBE, "args": []})
    assert page["title"].startswith("Uplift report")
    assert "Average effects" in page["h2"] and "Uplift curve" in page["h2"]
    rows = page["est_rows"]
    assert page["est_visible"] and rows is not None
    methods = [r[0] for r in rows]
    assert methods == ["naive", "ipw", "aipw"]
    # every estimate cell holds a number and every CI is "[lo, hi]"
    for r in rows:
        float(r[2])
        lo, hi = (float(v) for v in r[3].strip("[]").split(","))
        assert lo <= float(r[2]) <= hi
    imgs = page["images"]
    assert len(imgs) == 6
    assert all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in imgs), imgs
    assert page["scripts"] == 0 and page["injected_elements"] == 0
    assert "<script>alert(2)</script>" in page["body_text"]  # shown as literal text

    shot = webdriver("GET", "/screenshot")
    png = base64.b64decode(shot)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


@needs_chromium
def test_chromium_cli_screenshot(uplift_html, tmp_path):
    out = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'p'}", f"--screenshot={out}",
                    "--window-size=1200,2400", uplift_html.resolve().as_uri()],
                   check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from PIL import Image

    img = Image.open(out).convert("L")
    lo, hi = img.getextrema()
    assert img.size == (1200, 2400) and hi - lo > 100  # not a blank page
