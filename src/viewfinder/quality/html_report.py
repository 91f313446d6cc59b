"""A check report as one self-contained HTML file.

Everything is inline: CSS, charts (SVG drawn here), and thumbnails of the first failing
samples as ``data:`` URIs, with their labels drawn (the failing labels in red). No
script, no external asset, so the file can be attached to a CI run or mailed. Every
user-supplied string (class names, messages, keys, metadata) goes through Jinja2's
autoescaping.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from viewfinder.quality.checks.result import Chart
from viewfinder.quality.report import CheckReport

if TYPE_CHECKING:
    from viewfinder.storage.workspace import Workspace

THUMB = 224          # longest side of a thumbnail, pixels
BAR_H, LABEL_W, PLOT_W = 16, 170, 360
COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759")


@dataclass(frozen=True)
class Thumbnail:
    sample_id: str
    key: str
    split: str | None
    checks: list[str]
    data_uri: str | None
    problem: str | None = None


@dataclass(frozen=True)
class Bar:
    y: float
    width: float
    colour: str
    value: str


@dataclass(frozen=True)
class ChartView:
    title: str
    width: int
    height: int
    rows: list[tuple[str, float, list[Bar]]]   # (category, y of its label, bars)
    legend: list[tuple[str, str]]              # (series, colour)


def chart_view(chart: Chart) -> ChartView:
    """Layout of a horizontal grouped bar chart."""
    series = list(chart.series)
    cats = list(dict.fromkeys(c for s in series for c in chart.series[s]))[:40]
    peak = max((v for s in series for v in chart.series[s].values()), default=0.0) or 1.0
    rows, y = [], 28.0
    for cat in cats:
        bars = []
        for i, s in enumerate(series):
            v = float(chart.series[s].get(cat, 0.0))
            bars.append(Bar(y + i * BAR_H, max(0.0, PLOT_W * v / peak), COLOURS[i % len(COLOURS)],
                            f"{v:g}{chart.unit}"))
        rows.append((cat, y + len(series) * BAR_H / 2 + 4, bars))
        y += len(series) * BAR_H + 6
    legend = [(s, COLOURS[i % len(COLOURS)]) for i, s in enumerate(series)] if len(series) > 1 else []
    return ChartView(chart.title, LABEL_W + PLOT_W + 60, int(y + 8 + (18 if legend else 0)), rows, legend)


def _thumbnails(ws: Workspace, report: CheckReport, limit: int) -> list[Thumbnail]:
    from PIL import Image, ImageDraw, UnidentifiedImageError

    from viewfinder.errors import StorageError
    from viewfinder.storage.catalog import DatasetAt, resolve_ref_name
    from viewfinder.storage.query import Field, InList, Literal
    from viewfinder.storage.reader import samples_with_labels

    flagged: dict[str, list[str]] = {}
    bad_labels: set[str] = set()
    for o in sorted(report.outcomes, key=lambda o: not o.blocking):   # blocking failures first
        if o.status != "failed" or o.result is None:
            continue
        bad_labels.update(o.result.label_ids)
        for sid in o.result.sample_ids:
            if sid in flagged or len(flagged) < limit:
                flagged.setdefault(sid, []).append(o.name)
    if not flagged:
        return []
    dataset = ws.catalog.get_dataset(report.dataset)
    at = DatasetAt(dataset, resolve_ref_name(ws.catalog, dataset, report.version), report.version)
    ids = str(InList(Field("id"), tuple(Literal(i) for i in sorted(flagged))))  # from a syntax tree
    out = []
    for s, labels in samples_with_labels(ws, at, ids):
        try:
            im = Image.open(io.BytesIO(ws.blobs.read(s["content_hash"])))
            im = im.convert("RGB")
        except (OSError, UnidentifiedImageError, StorageError, ValueError) as e:
            out.append(Thumbnail(s["id"], s["key"], s["split"], flagged[s["id"]], None, f"cannot show: {e}"))
            continue
        scale = THUMB / max(im.size)   # small images are enlarged so their boxes can be seen
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
        d = ImageDraw.Draw(im)
        for lab in labels:
            if lab["x"] is None:
                continue
            bad = lab["id"] in bad_labels
            x0, y0 = lab["x"] * scale, lab["y"] * scale
            x1, y1 = x0 + max(lab["w"] * scale, 1), y0 + max(lab["h"] * scale, 1)
            d.rectangle([x0, y0, x1, y1], outline=(230, 30, 30) if bad else (40, 200, 80), width=3 if bad else 1)
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        out.append(Thumbnail(s["id"], s["key"], s["split"], flagged[s["id"]], uri))
    rank = {sid: i for i, sid in enumerate(flagged)}
    return sorted(out, key=lambda t: rank[t.sample_id])


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>Checks: {{ r.dataset }}@{{ r.ref }} ({{ 'passed' if r.passed else 'failed' }})</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em} .pass{color:#1a7f37} .fail{color:#cf222e} .warn{color:#9a6700} .muted{color:#666}
table{border-collapse:collapse;width:100%;margin:1em 0} td,th{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#f6f8fa} code{font-size:12px;word-break:break-all}
.grid{display:flex;flex-wrap:wrap;gap:12px} figure{margin:0;width:240px} figure img{border:1px solid #ccc;max-width:240px}
figcaption{font-size:12px} .charts{display:flex;flex-wrap:wrap;gap:18px} svg text{font:11px system-ui,sans-serif}
</style></head><body>
<h1>Checks of {{ r.dataset }}@{{ r.ref }}:
  {% if r.passed %}<span class="pass">passed</span>{% else %}<span class="fail">failed</span>{% endif %}</h1>
<p class="muted">version <code>{{ r.version }}</code> · suite “{{ r.suite }}” <code>{{ r.suite_hash[:12] }}</code>
 · {{ r.created_at.strftime('%Y-%m-%d %H:%M:%S %Z') }} · {{ '%.2f'|format(r.seconds) }} s
 {% if not r.pixels %}· without pixels{% endif %}</p>
<p>{{ c.passed }} passed, {{ c.failed }} failed, {{ c.error }} could not run, {{ c.skipped }} skipped;
 {{ c.blocking }} blocking (error severity).</p>
<table><tr><th>check</th><th>severity</th><th>status</th><th>value</th><th>threshold</th><th>failing</th><th>message</th></tr>
{% for o in r.outcomes %}<tr>
<td>{{ o.name }}<br><span class="muted">{{ o.check }}{% if o.filter %} · where {{ o.filter }}{% endif %}</span></td>
<td>{{ o.severity }}</td>
<td class="{{ 'pass' if o.status == 'passed' else ('fail' if o.blocking else 'warn') }}">{{ o.status }}</td>
<td>{{ fmt(o.result.value) if o.result else '' }}</td><td>{{ fmt(o.result.threshold) if o.result else '' }}</td>
<td>{% if o.result %}{% if o.result.sample_count %}{{ o.result.sample_count }} samples{% endif %}
{% if o.result.sample_count and o.result.label_count %}<br>{% endif %}
{% if o.result.label_count %}{{ o.result.label_count }} labels{% endif %}{% endif %}</td>
<td>{{ o.message }}</td></tr>
{% endfor %}</table>
{% if thumbs %}<h2>Failing samples</h2>
<p class="muted">The first {{ thumbs|length }} failing samples; failing labels are drawn in red.</p>
<div class="grid">{% for t in thumbs %}<figure>
{% if t.data_uri %}<img src="{{ t.data_uri }}" alt="{{ t.key }}">{% else %}<p class="fail">{{ t.problem }}</p>{% endif %}
<figcaption><code>{{ t.key }}</code> ({{ t.split or 'no split' }})<br><code>{{ t.sample_id }}</code><br>
{{ t.checks|join(', ') }}</figcaption></figure>{% endfor %}</div>{% endif %}
{% if charts %}<h2>Distributions checked</h2><div class="charts">
{% for ch in charts %}<svg xmlns="http://www.w3.org/2000/svg" width="{{ ch.width }}" height="{{ ch.height }}" role="img">
<title>{{ ch.title }}</title><text x="0" y="14" font-weight="bold">{{ ch.title }}</text>
{% for cat, ly, bars in ch.rows %}<text x="{{ LABEL_W - 6 }}" y="{{ ly }}" text-anchor="end">{{ cat|truncate(28, True) }}</text>
{% for b in bars %}<rect x="{{ LABEL_W }}" y="{{ b.y }}" width="{{ '%.1f'|format(b.width) }}" height="{{ BAR_H - 2 }}" fill="{{ b.colour }}"/>
<text x="{{ LABEL_W + b.width + 4 }}" y="{{ b.y + BAR_H - 5 }}">{{ b.value }}</text>{% endfor %}{% endfor %}
{% for name, colour in ch.legend %}<rect x="{{ LABEL_W + loop.index0 * 150 }}" y="{{ ch.height - 14 }}" width="10" height="10" fill="{{ colour }}"/>
<text x="{{ LABEL_W + loop.index0 * 150 + 14 }}" y="{{ ch.height - 5 }}">{{ name|truncate(22, True) }}</text>{% endfor %}
</svg>{% endfor %}</div>{% endif %}
<details><summary>Failing ids</summary>{% for o in r.outcomes %}{% if o.result and (o.result.sample_count or o.result.label_count) %}
<h3>{{ o.name }}</h3>
{% if o.result.sample_count %}<p>samples ({{ o.result.sample_count }}{% if o.result.sample_count > o.result.sample_ids|length %}, first {{ o.result.sample_ids|length }}{% endif %}):
<code>{{ o.result.sample_ids|join(' ') }}</code></p>{% endif %}
{% if o.result.label_count %}<p>labels ({{ o.result.label_count }}{% if o.result.label_count > o.result.label_ids|length %}, first {{ o.result.label_ids|length }}{% endif %}):
<code>{{ o.result.label_ids|join(' ') }}</code></p>{% endif %}{% endif %}{% endfor %}</details>
</body></html>
"""


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_html(ws: Workspace, report: CheckReport, *, thumbnails: int = 24) -> str:
    """The report as one HTML document (a string)."""
    from jinja2 import Environment

    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    charts = [chart_view(ch) for o in report.outcomes if o.result is not None for ch in o.result.charts]
    return env.from_string(TEMPLATE).render(
        r=report, c=report.counts, thumbs=_thumbnails(ws, report, thumbnails), charts=charts,
        fmt=_fmt, LABEL_W=LABEL_W, BAR_H=BAR_H)
