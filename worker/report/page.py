"""The review as one HTML file a person can open, mail or attach to the ticket: the figures,
the timeline chart (inline SVG: nothing to fetch), then the Markdown review as written."""

from __future__ import annotations

import html

from contracts.incident import IncidentReport
from worker.report.charts import timeline_svg

STYLE = """body{font:14px/1.45 system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#212121}
table{border-collapse:collapse}
td,th{padding:2px 10px;border-bottom:1px solid #e0e0e0;text-align:left}
pre{white-space:pre-wrap;background:#fafafa;padding:1em;border:1px solid #eee}
figure{margin:1em 0}figcaption{color:#616161;font-size:12px}svg{max-width:100%;height:auto}"""


def _figures(report: IncidentReport) -> str:
    f = report.figures
    rows = [
        ("time to detect", f.time_to_detect_s, "s"),
        ("time to mitigate", f.time_to_mitigate_s, "s"),
        ("time to resolve", f.time_to_resolve_s, "s"),
        ("waiting for approval", f.approval_wait_s, "s"),
        ("hit rate before", None if f.hit_rate_before is None else f.hit_rate_before * 100, "%"),
        ("hit rate after", None if f.hit_rate_after is None else f.hit_rate_after * 100, "%"),
        ("restarts", f.restarts, ""),
    ]
    cells = "".join(
        f"<tr><th>{name}</th><td>{'-' if value is None else f'{value:.1f}{unit}'}</td></tr>"
        for name, value, unit in rows
    )
    return f"<table>{cells}</table>"


def report_page(report: IncidentReport) -> str:
    title = html.escape(f"Incident {report.workflow_id}")
    chart = timeline_svg(report)
    chart = chart[chart.index("<svg") :]  # inline: without the XML prolog and doctype
    summary = html.escape(
        f"{report.scenario.value}, outcome {report.outcome}, {report.started_at:%Y-%m-%d %H:%M:%S} "
        f"to {report.finished_at:%H:%M:%S} UTC"
    )
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{STYLE}</style></head><body>",
        f"<h1>{title}</h1>", f"<p>{summary}</p>", _figures(report),
        f'<figure id="timeline">{chart}<figcaption>Steps and approval waits, the hit rate, '
        "memory and clients over the incident; shaded: the API on the database.</figcaption>"
        "</figure>",
        "<h2>Review</h2>", f"<pre>{html.escape(report.review)}</pre>", "</body></html>",
    ])  # fmt: skip
