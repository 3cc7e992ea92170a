"""The study and comparison reports in a real browser: headless Chromium, from file://, networking off.

Checks what only a browser can: the page's own script runs under its Content-Security-
Policy without a single console message, the hostile study name / model label shows as
text, the tables really sort, and every plot is drawn (DOM and pixels of a screenshot).

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
from click.testing import CliRunner

from nasbench.cli import main
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

COMPARE_PLOTS = ("plot-macs-latency", "plot-params-latency")
EVIL_FILE = "cfg<b>bold.yaml"  # a config file whose stem (the model's label) is markup

# Runs after the page's own script; records what the test needs into <pre id="probe">.
# TABLE_ID is the sortable table whose latency column gets clicked.
PROBE = """(function(){
var out={ready:document.documentElement.getAttribute('data-ready'),
 h1:document.querySelector('h1').textContent,scripts:document.scripts.length,plots:{},
 height:document.documentElement.scrollHeight};
document.querySelectorAll('svg.plot').forEach(function(s){var r=s.getBoundingClientRect();
 out.plots[s.id]={x:r.left+window.scrollX,y:r.top+window.scrollY,w:r.width,h:r.height,
 marks:s.querySelectorAll('circle,path,rect,polygon').length,points:parseInt(s.getAttribute('data-marks'),10)};});
var table=document.getElementById('TABLE_ID');var ths=table.tHead.rows[0].cells;var col=-1;
for(var i=0;i<ths.length;i++){if(ths[i].textContent.indexOf('latency ms')===0){col=i;}}
function column(){return Array.prototype.map.call(table.tBodies[0].rows,function(r){return r.cells[col].getAttribute('data-v');});}
ths[col].click();out.asc=column();ths[col].click();out.desc=column();
var pre=document.createElement('pre');pre.id='probe';pre.textContent=JSON.stringify(out);document.body.appendChild(pre);
})();"""  # noqa: E501  (long lines inside this string: wrapping would change the script)


def chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    # Chromium logs every console message (log, warning, error, CSP violation,
    # failed resource load, uncaught exception) as a line with ":CONSOLE".
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def with_probe(page_html: str, table_id: str) -> str:
    """The page plus the probe script, allowed by adding its hash to the page's CSP."""
    probe = PROBE.replace("TABLE_ID", table_id)
    digest = base64.b64encode(hashlib.sha256(probe.encode()).digest()).decode()
    page_html = page_html.replace("script-src 'sha256-", f"script-src 'sha256-{digest}' 'sha256-", 1)
    return page_html.replace("</body>", f"<script>{probe}</script></body>")


def run_probe(page: Path, table_id: str, profile: Path) -> dict:
    probe_page = page.with_name("probe.html")
    probe_page.write_text(with_probe(page.read_text(), table_id))
    done = chromium(probe_page, profile, f"--window-size={WIDTH},2400", "--dump-dom")
    assert console_messages(done.stderr) == []
    return json.loads(html.unescape(re.search(r"<pre id=\"probe\">(.*?)</pre>", done.stdout, re.DOTALL).group(1)))


def assert_sorts(probe: dict) -> None:
    """Numeric ascending with empty cells last, then descending."""
    asc = [float(v) for v in probe["asc"] if v]
    assert asc and asc == sorted(asc) and all(v == "" for v in probe["asc"][len(asc):])
    desc = [float(v) for v in probe["desc"] if v]
    assert desc == sorted(asc, reverse=True)


def screenshot(page: Path, profile: Path, height_px: int, shot: Path):
    """The whole page as an RGB array, WIDTH pixels wide."""
    import numpy as np
    from PIL import Image

    done = chromium(page, profile, f"--window-size={WIDTH},{min(height_px + 20, 16000)}", f"--screenshot={shot}")
    assert shot.is_file(), done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape[1] == WIDTH
    return image


def plot_pixels(image, box: dict) -> tuple[float, int]:
    """(share of dark pixels, count of #0072B2-blue pixels) inside a plot's box."""
    crop = image[int(box["y"]):int(box["y"] + box["h"]), int(box["x"]):int(box["x"] + box["w"])]
    r, g, b = crop[..., 0], crop[..., 1], crop[..., 2]
    ink = int((crop.min(axis=-1) < 200).sum()) / (crop.shape[0] * crop.shape[1])
    return ink, int(((r < 60) & (g > 90) & (g < 140) & (b > 150)).sum())


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
    probe = run_probe(report_page, "trials-table", tmp_path / "profile")
    assert probe["ready"] == "1" and probe["scripts"] == 2 and probe["h1"].startswith("det<script>")
    for plot in PLOTS:
        box = probe["plots"][plot]
        assert box["w"] > 300 and box["h"] > 150 and box["marks"] > 10, (plot, box)
    assert_sorts(probe)

    # Pixels: screenshot the whole page and look inside every plot's box.
    image = screenshot(report_page, tmp_path / "profile", int(probe["height"]), tmp_path / "page.png")
    for plot in PLOTS:
        ink, blue = plot_pixels(image, probe["plots"][plot])
        assert ink > 0.01, f"{plot} looks empty ({ink:.4f} dark)"
        if plot != "plot-macs-latency":
            assert blue > 30, f"{plot}: no Pareto/objective-coloured marks in the screenshot"


# ----------------------------------------------------------------------------- comparison report
@pytest.fixture(scope="module")
def compare_page(tmp_path_factory) -> Path:
    """A real, small `nasbench compare` report: two presets and a config file named with markup."""
    root = tmp_path_factory.mktemp("browser-compare")
    (root / EVIL_FILE).write_text("family: efficientvit\npreset: efficientvit_m0\n")
    out = root / "report"
    res = CliRunner().invoke(main, ["compare", "mobilevit_xxs", "efficientvit_m0", str(root / EVIL_FILE),
                                    "--device", "cpu", "--runs", "3", "--warmup", "1", "--imgsz", "64",
                                    "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out / "index.html"


def test_compare_page_runs_cleanly_sorts_and_draws(compare_page, tmp_path):
    done = chromium(compare_page, tmp_path / "profile", f"--window-size={WIDTH},2400", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    assert re.search(r"<html[^>]*data-ready=\"1\"", done.stdout) and len(re.findall(r"<script", done.stdout)) == 1

    probe = run_probe(compare_page, "results-table", tmp_path / "profile")
    assert probe["ready"] == "1" and probe["scripts"] == 2
    assert probe["h1"] == "mobilevit_xxs vs efficientvit_m0 vs cfg<b>bold"  # the label is text, not markup
    assert sorted(probe["plots"]) == sorted(COMPARE_PLOTS)  # no study plots, no detector plots
    for plot in COMPARE_PLOTS:
        box = probe["plots"][plot]
        assert box["w"] > 300 and box["h"] > 150 and box["points"] == 3, (plot, box)  # one point per model
    assert_sorts(probe)

    image = screenshot(compare_page, tmp_path / "profile", int(probe["height"]), tmp_path / "compare.png")
    for plot in COMPARE_PLOTS:
        ink, blue = plot_pixels(image, probe["plots"][plot])
        assert ink > 0.01, f"{plot} looks empty ({ink:.4f} dark)"
        assert blue > 10, f"{plot}: the first family's (blue) point is not in the screenshot"
