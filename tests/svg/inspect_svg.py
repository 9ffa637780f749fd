#!/usr/bin/env python3
"""Parses an SVG file with Python's XML parser (expat, via ElementTree) and
prints what the chart tests check, as JSON: the root element, every series'
points per panel, marks, axis labels and all texts. A document that is not
well-formed XML makes it exit 1 with the parser's message.

usage: inspect_svg.py FILE.svg
"""
import json
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"


def local(tag):
    return tag[len(NS):] if tag.startswith(NS) else tag


def texts(node):
    return ["".join(t.itertext()) for t in node.iter(NS + "text")]


def main():
    try:
        root = ET.parse(sys.argv[1]).getroot()
    except ET.ParseError as e:
        print(f"not well-formed XML: {e}", file=sys.stderr)
        return 1
    out = {
        "root": local(root.tag),
        "namespace_ok": root.tag.startswith(NS),
        "width": root.get("width"),
        "height": root.get("height"),
        "title": "".join(root.find(NS + "title").itertext()) if root.find(NS + "title") is not None else None,
        "legend": [g.get("data-series") for g in root.iter(NS + "g") if g.get("class") == "legend-entry"],
        "legend_texts": [texts(g)[0] for g in root.iter(NS + "g") if g.get("class") == "legend-entry"],
        "panels": [],
        "notes": ["".join(t.itertext()) for t in root.iter(NS + "text") if t.get("class") == "note"],
        "texts": texts(root),
    }
    for panel in root.iter(NS + "g"):
        if panel.get("class") != "panel":
            continue
        p = {"title": panel.get("data-title"), "x_label": None, "y_label": None, "series": {}, "marks": []}
        for t in panel.iter(NS + "text"):
            cls = t.get("class", "")
            if "x-label" in cls:
                p["x_label"] = "".join(t.itertext())
            if "y-label" in cls:
                p["y_label"] = "".join(t.itertext())
        for g in panel.iter(NS + "g"):
            if g.get("class") == "series":
                circles = [c for c in g.iter(NS + "circle") if c.get("class") == "point"]
                poly = g.find(NS + "polyline")
                p["series"][g.get("data-series")] = {
                    "points": [[float(c.get("cx")), float(c.get("cy"))] for c in circles],
                    "polyline_points": len(poly.get("points").split()) if poly is not None else 0,
                }
            elif g.get("class") == "mark":
                p["marks"].append({"series": g.get("data-series"), "label": texts(g)[0] if texts(g) else ""})
        out["panels"].append(p)
    json.dump(out, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
