"""`python -m lmnas.plots_offline`: a `dvc plots show` template that loads nothing from the network."""

import shutil
import subprocess
from pathlib import Path

import pytest

from lmnas.plots_offline import LIBRARIES, main


def test_the_page_dvc_renders_with_it_has_no_cdn_and_inlines_vega(tmp_path):
    from dvc_render import render_html
    from dvc_render.vega import VegaRenderer

    template = tmp_path / "offline.html"
    assert main(["--out", str(template)]) == 0
    log = [{"epoch": e, "val_acc": 0.5 + 0.1 * e, "rev": "workspace", "filename": "log.csv"} for e in range(3)]
    renderer = VegaRenderer(log, "results/default/retrain/log.csv", x="epoch", y="val_acc")
    page = Path(render_html([renderer], tmp_path / "plots/index.html", html_template=str(template))).read_text()
    assert "cdn.jsdelivr" in renderer.SCRIPTS  # what DVC's own page loads, and this one must not
    assert "cdn.jsdelivr" not in page and 'src="http' not in page
    assert page.count('<script type="text/javascript">') == len(LIBRARIES)
    assert "vegaEmbed('#results_default_retrain_log_csv'" in page
    if shutil.which("node"):  # evaluate the libraries as a browser would and render the plot, offline
        spec = page.split("var spec = ", 1)[1].split(";\n", 1)[0]
        (tmp_path / "spec.json").write_text(spec)
        script = tmp_path / "render.js"
        script.write_text(RENDER)
        out = subprocess.run(["node", str(script), str(tmp_path / "plots/index.html"), str(tmp_path / "spec.json")],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.startswith("svg "), out.stderr
        assert int(out.stdout.split()[1]) > 1000


RENDER = r"""
const fs = require('fs'), vm = require('vm');
const html = fs.readFileSync(process.argv[2], 'utf8');
const blocks = [...html.matchAll(/<script type="text\/javascript">\n([\s\S]*?)\n<\/script>/g)].map(m => m[1]);
const ctx = vm.createContext({console, setTimeout, clearTimeout, setInterval, clearInterval, URL, TextDecoder,
  TextEncoder, fetch: () => Promise.reject(new Error('network'))});
for (const code of blocks) vm.runInContext(code, ctx);
ctx.SPEC = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
vm.runInContext('new vega.View(vega.parse(vegaLite.compile(SPEC).spec), {renderer: "none"}).toSVG()', ctx)
  .then(svg => console.log('svg', svg.length)).catch(e => { console.error(e.message); process.exit(1); });
"""
