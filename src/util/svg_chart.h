// Line charts as a self-contained SVG document, written without a plotting
// library: `flatline bench turns --plot` draws tokens/s and resident memory
// per turn with it. A figure is a column of panels sharing the series'
// colours; each panel has its own axes, labels and legend entries.
//
// The SVG is meant to be read by programs too (tests count points): every
// series is a <g class="series" data-series="NAME"> holding one <polyline>
// and one <circle class="point"> per point; every mark is a
// <g class="mark" data-series="NAME"> with a cross and its label.
#pragma once

#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace flatline {

struct ChartPoint {
  double x = 0, y = 0;
};

// A point that needs a word: a refused turn, a stop. With y NaN it is drawn
// on the x axis (the turn had no value, e.g. no tokens/s because it was
// refused).
struct ChartMark {
  double x = 0;
  double y = std::numeric_limits<double>::quiet_NaN();
  std::string label;
};

struct ChartSeries {
  std::string name;
  std::vector<ChartPoint> points;  // drawn joined, in this order
  std::vector<ChartMark> marks;
  std::string note;  // shown after the name in the legend (e.g. why it has no points)
};

struct ChartPanel {
  std::string title;
  std::string x_label;  // with the unit, e.g. "turn"
  std::string y_label;  // with the unit, e.g. "tokens/s"
  bool integer_x = true;  // x ticks at whole numbers only
  std::vector<ChartSeries> series;
};

struct ChartFigure {
  std::string title;
  std::string subtitle;            // e.g. the command and the machine
  std::vector<ChartPanel> panels;  // stacked top to bottom
  std::vector<std::string> notes;  // printed under the panels, one line each (long ones wrapped)
  int width = 760;
  int panel_height = 260;
};

// The figure as a complete SVG 1.1 document (UTF-8, white background).
std::string render_svg(const ChartFigure& figure);

// Escapes &, <, >, " and ' for XML text and attribute values, drops the
// control characters XML 1.0 does not allow (all but tab, newline, CR) and
// replaces bytes that are not UTF-8 with U+FFFD, so any model name or
// message can be put in a well-formed document.
std::string xml_escape(std::string_view text);

// Round tick values (1, 2 or 5 times a power of ten apart) covering
// [lo, hi], about `target` of them. lo == hi gives a range around it.
std::vector<double> nice_ticks(double lo, double hi, int target);

}  // namespace flatline
