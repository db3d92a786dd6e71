"""HTML building blocks of the reports: page shell with header, figures, sortable tables.

Everything is inline: the CSS and one small script (click a table header to sort by that
column); no remote resource, so a report opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import io
import math
import numbers
import sys
from html import escape

__all__ = ["page", "shell", "figure", "table", "fmt", "short_pair", "to_data_uri", "SORT_JS"]


def short_pair(left: str, right: str) -> str:
    """Compact pair label: ``.weight`` dropped and the reader's prefix shared with the writer
    elided, e.g. ``encoder.layer.0.attention.output.dense -> …intermediate.dense``."""
    a = left.replace(".weight", "")
    b = right.replace(".weight", "")
    pa, pb = a.split("."), b.split(".")
    n = 0
    while n < min(len(pa), len(pb)) - 1 and pa[n] == pb[n]:
        n += 1
    return f"{a} -> {'…' if n else ''}{'.'.join(pb[n:])}"

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1b1f24;
background:#f6f7f9}
header{background:#1f2937;color:#f3f4f6;padding:18px 32px}
header h1{margin:0 0 6px 0;font-size:22px}
header .sub{color:#9ca3af;font-size:13px}
main{max-width:1320px;margin:0 auto;padding:8px 32px 40px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;margin:18px 0;padding:14px 20px}
section h2{font-size:17px;margin:2px 0 10px 0}
nav{font-size:13px;margin-top:10px}
nav a{color:#93c5fd;margin-right:14px;text-decoration:none}
dl.meta{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:4px 18px;
font-size:13px;margin:0}
dl.meta dt{color:#6b7280}dl.meta dd{margin:0;font-family:ui-monospace,Menlo,monospace}
figure{margin:6px 0 4px 0}figure img{max-width:100%;height:auto}
figcaption{font-size:12.5px;color:#4b5563;margin-top:4px;max-width:1100px}
table.t{border-collapse:collapse;font-size:12px;margin:4px 0}
table.t th{background:#f3f4f6;text-align:left;position:sticky;top:0;cursor:pointer}
table.t th[aria-sort=ascending]::after{content:" ▲"}table.t th[aria-sort=descending]::after{content:" ▼"}
table.t td,table.t th{border-bottom:1px solid #e5e7eb;padding:3px 8px;white-space:nowrap}
table.t td.n{text-align:right;font-family:ui-monospace,Menlo,monospace}
.scroll{max-height:520px;overflow:auto;border:1px solid #e5e7eb}
.wide{overflow-x:auto;max-width:100%}
.bad{color:#b91c1c}.warn{color:#92400e;font-size:13px}
details summary{cursor:pointer;font-size:13px;color:#374151}
p.note{font-size:13px;color:#374151;max-width:1100px}
"""

#: Sort a ``table.t`` by the clicked header (numbers numerically, empty cells last); inline,
#: no library.
SORT_JS = """
document.querySelectorAll('table.t').forEach(function(t){
 var hs=t.querySelectorAll('thead th');
 hs.forEach(function(h,i){h.title='click to sort';h.addEventListener('click',function(){
  var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),
      d=h.getAttribute('aria-sort')==='ascending'?-1:1;
  hs.forEach(function(o){o.removeAttribute('aria-sort');});
  h.setAttribute('aria-sort',d>0?'ascending':'descending');
  function key(r){var x=r.cells[i].getAttribute('data-v');if(x===null)x=r.cells[i].textContent;
   var n=parseFloat(x);return (x===''||x==='–')?null:(isNaN(n)||!/^[-+.\\d]/.test(x)?x:n);}
  rows.sort(function(r1,r2){var a=key(r1),c=key(r2);if(a===null)return 1;if(c===null)return -1;
   if(typeof a===typeof c)return (a<c?-1:a>c?1:0)*d;return (typeof a==='number'?-1:1)*d;});
  rows.forEach(function(r){b.appendChild(r);});});});});
"""


def fmt(v) -> str:
    """Short display form of a cell value."""
    if v is None:
        return ""
    try:
        import pandas as pd  # deferred: keeps this module importable without pandas

        if v is pd.NA:
            return ""
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def to_data_uri(fig, dpi: int = 100) -> str:
    """PNG ``data:`` URI of a matplotlib figure (a pyplot figure is closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt = sys.modules.get("matplotlib.pyplot")  # close only if the caller used pyplot
    if plt is not None:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figure(fig, caption: str = "", alt: str = "figure") -> str:
    """An embedded (data-URI PNG) figure with caption; "" when ``fig`` is None."""
    if fig is None:
        return ""
    return (
        f'<figure><img alt="{escape(alt)}" src="{to_data_uri(fig)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def table(df, columns=None, scroll: bool = False) -> str:
    """A pandas DataFrame as a plain HTML table (values escaped, numbers right-aligned)."""
    cols = list(columns or df.columns)
    head = "".join(f"<th>{escape(str(c))}</th>" for c in cols)
    rows = []
    for rec in df[cols].itertuples(index=False):
        cells = []
        for v in rec:
            num = isinstance(v, numbers.Number) and not isinstance(v, bool)
            full = f' data-v="{float(v)!r}"' if num and fmt(v) not in ("", "–") else ""
            cells.append(f'<td{" class=n" if num else ""}{full}>{escape(fmt(v))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    html = f'<table class="t"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return f'<div class="{"scroll" if scroll else "wide"}">{html}</div>'


def _header(analysis) -> str:
    s = analysis.summary
    o = s.get("options", {})
    k = o.get("k")
    tol = o.get("tol")
    meta = [
        ("model", s.get("model")),
        ("architecture", s.get("architecture")),
        ("source", s.get("source") or "–"),
        ("created (UTC)", s.get("created_utc")),
        *([("run id", s["run_id"])] if s.get("run_id") else []),
        ("pairs", f"{s.get('n_pairs')} ({s.get('n_ok')} ok, {s.get('n_failed')} not ok)"),
        ("kinds", ", ".join(o.get("kinds", []))),
        ("matrices analysed", s.get("matrices_analysed")),
        ("parameters analysed", f"{s.get('parameters_analysed', 0):,}"),
        ("method", f"{o.get('method')} ({s.get('matrices_randomized', 0)} matrices randomized)"),
        ("k", "default min(64, n/4, rank)" if k is None else str(k)),
        ("tolerance (sin θ)", "dtype default max(1e-6, 10·eps)" if tol is None else f"{tol:g}"),
        ("rank tolerance", "eq. (3): max(shape)·ε·σ₁ (float32/64), storage error δ·ν·σ₁ (16/8-bit)"),
        ("seed", o.get("seed")),
        ("run time", f"{s.get('seconds', 0):.2f} s ({s.get('svds')} SVDs, "
                     f"{s.get('svd_seconds', 0):.2f} s)"),
        ("schema version", s.get("schema_version")),
        ("flagalign", s.get("flagalign_version")),
    ]
    dl = "".join(f"<dt>{escape(str(a))}</dt><dd>{escape(str(b))}</dd>" for a, b in meta)
    warns = "".join(f'<p class="warn">⚠ {escape(w)}</p>' for w in analysis.warnings)
    return f'<dl class="meta">{dl}</dl>{warns}'


def shell(title: str, subtitle: str, parts, first: str = "", full: bool = True) -> str:
    """A report page: ``title``, ``subtitle``, a ``first`` section (e.g. the run header) and
    ``parts`` = ``[(key, section title, html), ...]``. ``full`` False: the same content as a
    ``<div>`` fragment to embed in another page (no ``<html>``/``<body>``, CSS scoped to it)."""
    nav = "".join(f'<a href="#{escape(k)}">{escape(t)}</a>' for k, t, _ in parts)
    body = "".join(f'<section id="{escape(k)}"><h2>{escape(t)}</h2>{h}</section>'
                   for k, t, h in parts)
    inner = (f"<header><h1>{escape(title)}</h1><div class=sub>{escape(subtitle)}</div>"
             f"<nav>{nav}</nav></header><main>{first}{body}</main>")
    if not full:
        scoped = "".join(f".flagalign-report {r}}}" for r in CSS.replace("\n", "").split("}")
                         if r.strip()).replace(".flagalign-report body{", ".flagalign-report{")
        return (f'<div class="flagalign-report"><style>{scoped}</style>{inner}'
                f"<script>{SORT_JS}</script></div>")
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{inner}<script>{SORT_JS}</script></body></html>"
    )


def page(analysis, parts, full: bool = True) -> str:
    """Assemble the analysis report from ``[(Section, html), ...]`` (``full`` see :func:`shell`)."""
    s = analysis.summary
    return shell(
        f"flagalign · {s.get('model')}",
        "Weight-only alignment geometry of adjacent layers · schema "
        f"{s.get('schema_version')}",
        [(sec.key, sec.title, html) for sec, html in parts],
        f'<section id="run"><h2>Run</h2>{_header(analysis)}</section>',
        full=full,
    )
