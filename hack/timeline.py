#!/usr/bin/env python3
"""Draws boots' milestones as one SVG timeline, one row per boot.

usage: timeline.py OUT.svg milestones.json...

Each milestones.json is what the VM tests write (machine, milestones[] of name and seconds
since QEMU started); each becomes a row in the given order, on one shared time axis, with a
bar from 0 to its last milestone, a tick and a slanted label at each milestone.
"""
import json
import sys
from xml.sax.saxutils import escape


def main(out, paths):
    rows = []
    for p in paths:
        m = json.load(open(p))
        ms = [(x["name"], float(x["seconds"])) for x in (m.get("milestones") or [])]
        if ms:
            label = p.split("/")[-3].removeprefix("Test") + " " + m["machine"]
            rows.append((label, ms))
    if not rows:
        sys.exit("timeline: no milestones in " + " ".join(paths))
    end = max(s for _, ms in rows for _, s in ms)
    left, width, row_h, top = 230, 900, 120, 40
    scale = width / (end * 1.05)
    h = top + row_h * len(rows) + 40
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 40}" height="{h}" '
           'font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>']
    step = next(s for s in (5, 10, 20, 30, 60, 120, 300) if end / s <= 12)
    t = 0
    while t <= end * 1.05:
        x = left + t * scale
        svg.append(f'<line x1="{x:.1f}" y1="{top - 10}" x2="{x:.1f}" y2="{h - 30}" stroke="#ddd"/>')
        svg.append(f'<text x="{x:.1f}" y="{h - 15}" text-anchor="middle" fill="#555">{t} s</text>')
        t += step
    for i, (label, ms) in enumerate(rows):
        y = top + i * row_h + 95
        svg.append(f'<text x="{left - 10}" y="{y + 5}" text-anchor="end" font-weight="bold">{escape(label)}</text>')
        svg.append(f'<rect x="{left}" y="{y - 6}" width="{ms[-1][1] * scale:.1f}" height="12" fill="#cfe3f7"/>')
        for j, (name, s) in enumerate(ms):
            x = left + s * scale
            svg.append(f'<line x1="{x:.1f}" y1="{y - 8}" x2="{x:.1f}" y2="{y + 8}" stroke="#1f5fa8" stroke-width="2"/>')
            # labels slanted above the bar, so that close milestones stay apart
            svg.append(f'<text x="{x:.1f}" y="{y - 12}" transform="rotate(-55 {x:.1f} {y - 12})">'
                       f'{escape(name)} {s:.0f} s</text>')
    svg.append('</svg>')
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
