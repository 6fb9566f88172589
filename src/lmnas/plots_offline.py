"""An HTML template for `dvc plots show` that renders without a network: `python -m lmnas.plots_offline`.

DVC's page loads vega, vega-lite and vega-embed from a CDN, so on a compute node (no internet) its
Vega plots (the retrain/transfer logs) stay blank; the PNG plots are plain <img> tags and show
anyway. This writes a template with the three libraries inlined, taken from the copies Snakemake
ships for its own HTML report (vega-lite 5.2.0, the version DVC's page asks for), then

    dvc plots show --html-template .dvc/tmp/offline-plots.html

(or `dvc config --local plots.html_template tmp/offline-plots.html`, relative to .dvc/) renders
every plot offline. The template has no `{scripts}` placeholder, so DVC adds no CDN tags.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lmnas.errors import LmnasError
from lmnas.io import write_text

LIBRARIES = ("vega/vega.js", "vega-lite/vega-lite.js", "vega-embed/vega-embed.js")
DEFAULT_OUT = Path(".dvc/tmp/offline-plots.html")


def bundled_scripts() -> list[str]:
    import snakemake.assets

    root = Path(snakemake.assets.__file__).parent / "data"
    missing = [name for name in LIBRARIES if not (root / name).is_file()]
    if missing:
        raise LmnasError(f"{root}: no {', '.join(missing)} (this Snakemake ships no Vega copy); "
                         "download vega, vega-lite and vega-embed and inline them by hand")
    # "</script" inside a library would end the inline element early
    return [(root / name).read_text(encoding="utf-8").replace("</script", "<\\/script") for name in LIBRARIES]


def template() -> str:
    scripts = "\n".join(f"<script type=\"text/javascript\">\n{code}\n</script>" for code in bundled_scripts())
    return f"""<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <title>DVC Plot</title>
    {scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmnas.plots_offline", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"template path (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        write_text(args.out, template())
    except LmnasError as error:
        print(f"lmnas: {error}")
        return 1
    print(f"wrote {args.out}; render with: dvc plots show --html-template {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
