#!/usr/bin/env python3
"""The table and the plot of a side-by-side run (node/scripts/side-by-side.sh).

Usage: side-by-side-plot.py RESULTS.jsonl TABLE.md PLOT.svg
Each load's figures are the range over the run's rounds; the plot shows their
means: writes per second and p99 latency against the client count.
"""
import json
import math
import sys
from collections import defaultdict
from statistics import mean

results_path, table_path, svg_path = sys.argv[1:4]
rows = [json.loads(line) for line in open(results_path) if line.strip()]
machine = next(r for r in rows if r["system"] == "machine")
runs = defaultdict(list)
for r in rows:
    if r["system"] != "machine":
        runs[(r["system"], r["nodes"], r["clients"], r["batch"])].append(r)


def span(values, fmt):
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"


def rate(v):
    return f"{v:,.0f}"


def ms(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def cell(key, unit):
    got = runs.get(key)
    if not got:
        return "—"
    return (f"{span([r['writes_per_second'] for r in got], rate)} {unit}/s, "
            f"p50 {span([r['latency_ms_p50'] for r in got], ms)} ms, "
            f"p99 {span([r['latency_ms_p99'] for r in got], ms)} ms")


loads = sorted({k[2] for k in runs if k[0] == "etcd"})
lines = [
    f"Measured {machine['date']}: {machine['cores']} cores, {machine['memory_gib']} GiB, Linux {machine['kernel']}, "
    f"etcd {machine['etcd']}, icsd {machine['icsd']}; {machine['seconds_per_run']} s per run, "
    f"{machine['rounds']} interleaved rounds (ranges over rounds; ratio of means).",
    "",
    "| load | etcd 3 members (HTTP/JSON gateway, wrk) | icsd 3 nodes (signed registrations, gRPC + mTLS) | ratio |",
    "|---|---|---|---|",
]
for c in loads:
    e, i = runs.get(("etcd", 3, c, 1), []), runs.get(("icsd", 3, c, 1), [])
    ratio = (f"{mean(r['writes_per_second'] for r in i) / mean(r['writes_per_second'] for r in e):.2f}×"
             if e and i else "—")
    lines.append(f"| {c} client{'s' if c > 1 else ''} | {cell(('etcd', 3, c, 1), 'writes')} | "
                 f"{cell(('icsd', 3, c, 1), 'events')} | {ratio} |")
for (system, nodes, c, b) in sorted(k for k in runs if k[0] == "icsd" and (k[1] != 3 or k[3] != 1)):
    what = f"{c} client{'s' if c > 1 else ''}" + (f" × {b} events/request" if b > 1 else "")
    lines.append(f"| {what} | — | icsd {nodes} node{'s' if nodes > 1 else ''}: "
                 f"{cell((system, nodes, c, b), 'events')} | |")
open(table_path, "w").write("\n".join(lines) + "\n")

# ---- the plot: two panels, log-2 client axis ----
W, H, PAD = 460, 300, 56
COLORS = {"etcd": "#1f77b4", "icsd": "#d62728"}


def panel(x0, title, metric, log_y):
    series = {s: [(c, mean(r[metric] for r in runs[(s, 3, c, 1)])) for c in loads if (s, 3, c, 1) in runs]
              for s in COLORS}
    values = [v for pts in series.values() for _, v in pts]
    top = max(values) * 1.1
    bottom = min(values) / 1.5 if log_y else 0.0

    def y(v):
        if log_y:
            f = (math.log10(v) - math.log10(bottom)) / (math.log10(top) - math.log10(bottom))
        else:
            f = (v - bottom) / (top - bottom)
        return H - PAD - f * (H - 2 * PAD)

    def x(c):
        span_ = math.log2(max(loads)) - math.log2(min(loads)) or 1
        return x0 + PAD + (math.log2(c) - math.log2(min(loads))) / span_ * (W - 2 * PAD)

    out = [f'<text x="{x0 + W / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{x0 + PAD}" y1="{H - PAD}" x2="{x0 + W - PAD}" y2="{H - PAD}" stroke="black"/>',
           f'<line x1="{x0 + PAD}" y1="{PAD}" x2="{x0 + PAD}" y2="{H - PAD}" stroke="black"/>',
           f'<text x="{x0 + W / 2}" y="{H - 14}" text-anchor="middle" font-size="12">clients</text>']
    for c in loads:
        out.append(f'<text x="{x(c):.1f}" y="{H - PAD + 16}" text-anchor="middle" font-size="11">{c}</text>')
    ticks = ([10 ** e for e in range(math.floor(math.log10(bottom)), math.ceil(math.log10(top)) + 1)
              if bottom <= 10 ** e <= top] if log_y else [top / 1.1 * f for f in (0, 0.25, 0.5, 0.75, 1.0)])
    for t in ticks:
        label = f"{t:g}" if log_y else f"{t:,.0f}"
        out.append(f'<line x1="{x0 + PAD - 4}" y1="{y(t):.1f}" x2="{x0 + W - PAD}" y2="{y(t):.1f}" '
                   f'stroke="#ddd"/><text x="{x0 + PAD - 6}" y="{y(t) + 4:.1f}" text-anchor="end" '
                   f'font-size="10">{label}</text>')
    for s, pts in series.items():
        path = " ".join(f"{x(c):.1f},{y(v):.1f}" for c, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[s]}" stroke-width="2"/>')
        out += [f'<circle cx="{x(c):.1f}" cy="{y(v):.1f}" r="3" fill="{COLORS[s]}"/>' for c, v in pts]
    return out


svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 30}" font-family="sans-serif">',
       '<rect width="100%" height="100%" fill="white"/>']
svg += panel(0, "writes per second (3 nodes)", "writes_per_second", False)
svg += panel(W, "p99 latency, ms (log scale)", "latency_ms_p99", True)
for n, (s, color) in enumerate(COLORS.items()):
    label = "etcd (HTTP/JSON gateway, wrk)" if s == "etcd" else "icsd (signed events, gRPC + mTLS)"
    svg.append(f'<rect x="{PAD + n * 250}" y="{H + 8}" width="12" height="12" fill="{color}"/>'
               f'<text x="{PAD + n * 250 + 18}" y="{H + 19}" font-size="12">{label}</text>')
svg.append(f'<text x="{2 * W - 8}" y="{H + 19}" text-anchor="end" font-size="10">'
           f'{machine["cores"]} cores, {machine["date"][:10]}</text>')
svg.append("</svg>")
open(svg_path, "w").write("\n".join(svg) + "\n")
