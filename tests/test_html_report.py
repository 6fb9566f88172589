"""`snakemake --report` of the embedded default, opened in a real headless browser (Debian's chromium).

CI installs the browser with .ci/install-chromium.sh.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = ("Architecture corpus", "Architecture GPT", "Search", "Retrain", "Transfer", "Report")
# Opens the Search category and shows the search curve, as a click on its eye button does
# (the report's React app keeps itself in the global `app`; `results` holds the embedded files).
DRIVER = """<script>
window.addEventListener("load", () => setTimeout(() => {
  app.showCategory("Search");
  const curve = Object.keys(results).find((path) => path.endsWith("search/curve.png"));
  setTimeout(() => {
    app.setView({content: "img", contentPath: results[curve].data_uri, resultPath: curve});
    document.body.setAttribute("data-driver", "done");
  }, 300);
}, 300));
</script>"""


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(cwd), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def chromium(*args: str, user_dir: Path) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("chromium not found: install it with .ci/install-chromium.sh (apt-get install chromium)")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={user_dir}", "--window-size=1400,1000", "--virtual-time-budget=15000", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def visible_text(dom: str) -> str:
    body = dom[dom.find("<body") :]
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the whole default chain on a shared 2-core machine, then the browser
def test_html_report_opens_in_a_browser_and_shows_the_results(embedded_default_run: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    out = snakemake("--cores", "1", "--report", str(report), cwd=embedded_default_run)
    assert out.returncode == 0, out.stderr[-5000:]
    page = report.read_text()
    assert "Search curve: accuracy of every evaluated architecture" in page  # a caption, embedded

    # The landing page: the app has rendered its menu with every result category.
    landing = visible_text(chromium("--dump-dom", report.as_uri(), user_dir=tmp_path / "profile"))
    assert "Snakemake Report" in landing and "Workflow" in landing and "Statistics" in landing
    for category in CATEGORIES:
        assert category in landing, category

    # Navigate like a user: Search → the curve. The page then lists the search outputs and
    # shows the curve image, whose bytes are those of the run's curve.png.
    driven = tmp_path / "driven.html"
    cut = page.rindex("</body>")
    driven.write_text(page[:cut] + DRIVER + page[cut:])
    dom = chromium("--dump-dom", driven.as_uri(), user_dir=tmp_path / "profile")
    assert 'data-driver="done"' in dom, "the report's app did not load in the browser"
    text = visible_text(dom)
    assert "results/default/search/curve.png" in text and "results/default/search/best.json" in text
    shown = re.search(r'<img src="data:image/png;[^"]*?base64,([^"]+)"', dom)
    assert shown is not None, "no PNG shown in the content pane"
    curve = embedded_default_run / "results/default/search/curve.png"
    assert base64.b64decode(shown.group(1)) == curve.read_bytes()

    screenshot = tmp_path / "report.png"
    chromium(f"--screenshot={screenshot}", driven.as_uri(), user_dir=tmp_path / "profile")
    assert screenshot.read_bytes()[:4] == b"\x89PNG" and screenshot.stat().st_size > 10_000
