"""The study report in a real browser: headless Chromium, from file://, with networking off.

Checks what only a browser can: the page's own script runs under its Content-Security-
Policy without a single console message, the hostile study name shows as text, the
trials table really sorts, and every plot is drawn (DOM and pixels of a screenshot).

Needs Debian's `chromium` (apt-get install -y chromium); skipped with that reason if absent.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nasbench.report.study_html import write_study_report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not found: install it with "
                                "`apt-get update && apt-get install -y chromium` to run the browser checks")

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Networking off: no name resolves and every proxied request goes to a closed port,
    # so any attempt to fetch something would fail loudly in the console log.
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
    "--enable-logging=stderr", "--v=0", "--hide-scrollbars", "--force-device-scale-factor=1",
]
WIDTH = 1400
PLOTS = ("plot-pareto", "plot-macs-latency", "plot-history", "plot-importance")

# Runs after the page's own script; records what the test needs into <pre id="probe">.
PROBE = """(function(){
var out={ready:document.documentElement.getAttribute('data-ready'),
 h1:document.getElementById('study-name').textContent,scripts:document.scripts.length,plots:{},
 height:document.documentElement.scrollHeight};
document.querySelectorAll('svg.plot').forEach(function(s){var r=s.getBoundingClientRect();
 out.plots[s.id]={x:r.left+window.scrollX,y:r.top+window.scrollY,w:r.width,h:r.height,
 marks:s.querySelectorAll('circle,path,rect,polygon').length};});
var table=document.getElementById('trials-table');var ths=table.tHead.rows[0].cells;var col=-1;
for(var i=0;i<ths.length;i++){if(ths[i].textContent.indexOf('latency ms')===0){col=i;}}
function column(){return Array.prototype.map.call(table.tBodies[0].rows,function(r){return r.cells[col].getAttribute('data-v');});}
ths[col].click();out.asc=column();ths[col].click();out.desc=column();
var pre=document.createElement('pre');pre.id='probe';pre.textContent=JSON.stringify(out);document.body.appendChild(pre);
})();"""


def chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    # Chromium logs every console message (log, warning, error, CSP violation,
    # failed resource load, uncaught exception) as a line with ":CONSOLE".
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def with_probe(page_html: str) -> str:
    """The page plus the probe script, allowed by adding its hash to the page's CSP."""
    digest = base64.b64encode(hashlib.sha256(PROBE.encode()).digest()).decode()
    page_html = page_html.replace("script-src 'sha256-", f"script-src 'sha256-{digest}' 'sha256-", 1)
    return page_html.replace("</body>", f"<script>{PROBE}</script></body>")


@pytest.fixture(scope="module")
def report_page(evil_detector_study, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report"
    write_study_report(evil_detector_study, out)
    return out / "index.html"


def test_page_runs_cleanly_and_shows_the_name_as_text(report_page, tmp_path):
    done = chromium(report_page, tmp_path / "profile", f"--window-size={WIDTH},2400", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    dom = done.stdout
    assert re.search(r"<html[^>]*data-ready=\"1\"", dom)  # our script ran to its end under the CSP
    assert len(re.findall(r"<script", dom)) == 1  # the study name did not become a script
    h1 = re.search(r"<h1 id=\"study-name\">(.*?)</h1>", dom, re.S).group(1)
    assert html.unescape(h1) == "det<script>alert('x')</script>"
    for plot in PLOTS:
        assert f'id="{plot}"' in dom


def test_plots_drawn_and_table_sorts(report_page, tmp_path):
    probe_page = report_page.with_name("probe.html")
    probe_page.write_text(with_probe(report_page.read_text()))
    done = chromium(probe_page, tmp_path / "profile", f"--window-size={WIDTH},2400", "--dump-dom")
    assert console_messages(done.stderr) == []
    probe = json.loads(html.unescape(re.search(r"<pre id=\"probe\">(.*?)</pre>", done.stdout, re.S).group(1)))
    assert probe["ready"] == "1" and probe["scripts"] == 2 and probe["h1"].startswith("det<script>")
    for plot in PLOTS:
        box = probe["plots"][plot]
        assert box["w"] > 300 and box["h"] > 150 and box["marks"] > 10, (plot, box)

    # Sorting: numeric ascending with empty cells last, then descending.
    asc = [float(v) for v in probe["asc"] if v]
    assert asc == sorted(asc) and all(v == "" for v in probe["asc"][len(asc):])
    desc = [float(v) for v in probe["desc"] if v]
    assert desc == sorted(asc, reverse=True)

    # Pixels: screenshot the whole page and look inside every plot's box.
    import numpy as np
    from PIL import Image

    shot = tmp_path / "page.png"
    height = min(int(probe["height"]) + 20, 16000)
    done = chromium(report_page, tmp_path / "profile", f"--window-size={WIDTH},{height}", f"--screenshot={shot}")
    assert shot.is_file(), done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape[1] == WIDTH
    for plot in PLOTS:
        b = probe["plots"][plot]
        crop = image[int(b["y"]):int(b["y"] + b["h"]), int(b["x"]):int(b["x"] + b["w"])]
        r, g, bl = crop[..., 0], crop[..., 1], crop[..., 2]
        ink = int((crop.min(axis=-1) < 200).sum())
        assert ink / (crop.shape[0] * crop.shape[1]) > 0.01, f"{plot} looks empty ({ink} dark pixels)"
        blue = int(((r < 60) & (g > 90) & (g < 140) & (bl > 150)).sum())  # #0072B2: Pareto / objective
        if plot != "plot-macs-latency":
            assert blue > 30, f"{plot}: no Pareto/objective-coloured marks in the screenshot"
