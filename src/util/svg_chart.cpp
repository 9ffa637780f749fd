#include "util/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

namespace flatline {

namespace {

// Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
const char* const kPalette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"};
constexpr int kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

constexpr int kMarginLeft = 78, kMarginRight = 24;
constexpr int kPanelTop = 30, kPanelBottom = 46;  // room for the panel title / the x ticks and label
constexpr int kLineHeight = 18;
constexpr size_t kNoteWidth = 110;  // characters per note line

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// A tick label with as many decimals as the step between ticks needs.
std::string tick_label(double v, double step) {
  int decimals = 0;
  if (step > 0 && step < 1) decimals = std::min(6, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  if (std::abs(v) < step * 1e-6) v = 0;  // no "-0"
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Splits `text` at spaces into lines of at most `width` characters (a
// longer word gets a line of its own).
std::vector<std::string> wrap(const std::string& text, size_t width) {
  std::vector<std::string> lines;
  std::string line;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(pos, end - pos);
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      lines.push_back(line);
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    pos = end + 1;
  }
  if (!line.empty() || lines.empty()) lines.push_back(line);
  return lines;
}

struct Range {
  double lo = 0, hi = 1;
};

// The y range of a panel: from 0 (or the lowest value if negative) to the
// highest tick at or above the largest value.
Range y_range(const ChartPanel& panel, std::vector<double>& ticks) {
  double lo = 0, hi = 0;
  bool any = false;
  for (const ChartSeries& s : panel.series) {
    for (const ChartPoint& p : s.points) {
      if (!std::isfinite(p.y)) continue;
      lo = std::min(lo, p.y);
      hi = std::max(hi, p.y);
      any = true;
    }
    for (const ChartMark& m : s.marks)
      if (std::isfinite(m.y)) hi = std::max(hi, m.y), lo = std::min(lo, m.y), any = true;
  }
  if (!any || hi <= lo) hi = lo + 1;
  ticks = nice_ticks(lo, hi, 5);
  return Range{std::min(lo, ticks.front()), std::max(hi, ticks.back())};
}

Range x_range(const ChartPanel& panel) {
  double lo = INFINITY, hi = -INFINITY;
  for (const ChartSeries& s : panel.series) {
    for (const ChartPoint& p : s.points)
      if (std::isfinite(p.x)) lo = std::min(lo, p.x), hi = std::max(hi, p.x);
    for (const ChartMark& m : s.marks)
      if (std::isfinite(m.x)) lo = std::min(lo, m.x), hi = std::max(hi, m.x);
  }
  if (!std::isfinite(lo)) return Range{0, 1};
  if (hi <= lo) return Range{lo - 0.5, hi + 0.5};
  return Range{lo, hi};
}

class Writer {
 public:
  void line(const std::string& s) { out_ += s + "\n"; }
  void text(double x, double y, const std::string& content, const std::string& attrs = "") {
    out_ += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\"" + (attrs.empty() ? "" : " " + attrs) + ">" +
            xml_escape(content) + "</text>\n";
  }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

struct PanelBox {
  double left, top, width, height;  // the plot area
};

void draw_panel(Writer& w, const ChartPanel& panel, const PanelBox& box, const std::map<std::string, int>& colour) {
  std::vector<double> yticks;
  const Range yr = y_range(panel, yticks);
  const Range xr = x_range(panel);
  const double pad = (xr.hi - xr.lo) * 0.03;
  const double x0 = xr.lo - pad, x1 = xr.hi + pad;
  auto px = [&](double x) { return box.left + (x - x0) / (x1 - x0) * box.width; };
  auto py = [&](double y) { return box.top + box.height - (y - yr.lo) / (yr.hi - yr.lo) * box.height; };

  w.line("<g class=\"panel\" data-title=\"" + xml_escape(panel.title) + "\">");
  w.text(box.left, box.top - 12, panel.title, "class=\"panel-title\" font-size=\"14\" font-weight=\"bold\"");
  // Grid and y ticks.
  const double ystep = yticks.size() > 1 ? yticks[1] - yticks[0] : 1;
  for (double t : yticks) {
    const double y = py(t);
    w.line("<line x1=\"" + num(box.left) + "\" y1=\"" + num(y) + "\" x2=\"" + num(box.left + box.width) + "\" y2=\"" +
           num(y) + "\" stroke=\"#e0e0e0\" stroke-width=\"1\"/>");
    w.text(box.left - 8, y + 4, tick_label(t, ystep), "class=\"tick\" text-anchor=\"end\" font-size=\"11\"");
  }
  // X ticks.
  std::vector<double> xticks = nice_ticks(xr.lo, xr.hi, 10);
  if (panel.integer_x) {
    std::vector<double> whole;
    for (double t : xticks)
      if (t == std::floor(t) && t >= xr.lo - 1e-9 && t <= xr.hi + 1e-9) whole.push_back(t);
    if (whole.empty()) whole.push_back(std::round(xr.lo));
    xticks = whole;
  }
  const double xstep = xticks.size() > 1 ? xticks[1] - xticks[0] : 1;
  const double axis_y = box.top + box.height;
  for (double t : xticks) {
    if (t < x0 || t > x1) continue;
    const double x = px(t);
    w.line("<line x1=\"" + num(x) + "\" y1=\"" + num(axis_y) + "\" x2=\"" + num(x) + "\" y2=\"" + num(axis_y + 5) +
           "\" stroke=\"#444\"/>");
    w.text(x, axis_y + 18, tick_label(t, xstep), "class=\"tick\" text-anchor=\"middle\" font-size=\"11\"");
  }
  // Axes and their labels.
  w.line("<path d=\"M" + num(box.left) + " " + num(box.top) + " V" + num(axis_y) + " H" + num(box.left + box.width) +
         "\" fill=\"none\" stroke=\"#444\" stroke-width=\"1\"/>");
  w.text(box.left + box.width / 2, axis_y + 38, panel.x_label,
         "class=\"axis-label x-label\" text-anchor=\"middle\" font-size=\"12\"");
  const double ly = box.top + box.height / 2, lx = box.left - 58;
  w.text(lx, ly, panel.y_label,
         "class=\"axis-label y-label\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 " + num(lx) +
             " " + num(ly) + ")\"");

  for (const ChartSeries& s : panel.series) {
    const char* c = kPalette[colour.at(s.name) % kPaletteSize];
    w.line("<g class=\"series\" data-series=\"" + xml_escape(s.name) + "\">");
    std::string points;
    for (const ChartPoint& p : s.points) points += (points.empty() ? "" : " ") + num(px(p.x)) + "," + num(py(p.y));
    if (!s.points.empty())
      w.line("<polyline points=\"" + points + "\" fill=\"none\" stroke=\"" + c +
             "\" stroke-width=\"2\" stroke-linejoin=\"round\"/>");
    for (const ChartPoint& p : s.points)
      w.line("<circle class=\"point\" cx=\"" + num(px(p.x)) + "\" cy=\"" + num(py(p.y)) + "\" r=\"3\" fill=\"" + c +
             "\"><title>" + xml_escape(s.name) + ": " + tick_label(p.x, 1) + ", " + tick_label(p.y, 0.01) +
             "</title></circle>");
    w.line("</g>");
    for (const ChartMark& m : s.marks) {
      const double mx = px(m.x), my = std::isfinite(m.y) ? py(m.y) : axis_y;
      w.line("<g class=\"mark\" data-series=\"" + xml_escape(s.name) + "\">");
      w.line("<path d=\"M" + num(mx - 5) + " " + num(my - 5) + " L" + num(mx + 5) + " " + num(my + 5) + " M" +
             num(mx - 5) + " " + num(my + 5) + " L" + num(mx + 5) + " " + num(my - 5) + "\" stroke=\"" + c +
             "\" stroke-width=\"2.5\"/>");
      // Labels near the right edge grow leftwards so they stay inside.
      const bool right_half = mx > box.left + box.width * 0.6;
      w.text(mx + (right_half ? -8 : 8), my - 8, m.label,
             std::string("class=\"mark-label\" font-size=\"11\" fill=\"") + c + "\" text-anchor=\"" +
                 (right_half ? "end" : "start") + "\"");
      w.line("</g>");
    }
  }
  w.line("</g>");
}

// Length of the valid UTF-8 sequence at text[i], or 0.
size_t utf8_sequence_length(std::string_view text, size_t i) {
  const unsigned char c = static_cast<unsigned char>(text[i]);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return 0;
  if (n == 1) return 1;
  // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
  const unsigned char c1 = static_cast<unsigned char>(text[i + 1]);
  if (c < 0xC2 || (c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) ||
      (c == 0xF4 && c1 >= 0x90) || c > 0xF4)
    return 0;
  return n;
}

}  // namespace

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const char ch = text[i];
    const size_t n = utf8_sequence_length(text, i);
    if (n == 0) {  // not UTF-8: U+FFFD, so the document stays well-formed
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (n > 1) {
      out.append(text.substr(i, n));
      i += n;
      continue;
    }
    ++i;
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') break;  // not allowed in XML 1.0
        out += ch;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {0, 1};
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) {
    const double d = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= d, hi += d;
  }
  target = std::max(2, target);
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double f : {1.0, 2.0, 5.0, 10.0}) {
    step = f * mag;
    if (raw <= step) break;
  }
  // Each tick is k * step (no running sum), rounded to 12 significant
  // digits so 3 * 0.2 is 0.6.
  auto clean = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.12g", v);
    const double r = std::strtod(buf, nullptr);
    return r == 0 ? 0.0 : r;
  };
  std::vector<double> ticks;
  const double k0 = std::floor(lo / step + 1e-9);
  for (int k = 0; k < 100; ++k) {
    const double t = clean((k0 + k) * step);
    ticks.push_back(t);
    if (t >= hi - step * 1e-9) break;
  }
  return ticks;
}

std::string render_svg(const ChartFigure& figure) {
  // Colours by first appearance, so a model keeps its colour in every panel.
  std::map<std::string, int> colour;
  std::vector<const ChartSeries*> legend;
  for (const ChartPanel& p : figure.panels)
    for (const ChartSeries& s : p.series)
      if (colour.emplace(s.name, static_cast<int>(colour.size())).second) legend.push_back(&s);

  std::vector<std::string> note_lines;
  for (const std::string& n : figure.notes)
    for (const std::string& l : wrap(n, kNoteWidth)) note_lines.push_back(l);

  const int header = 28 + (figure.subtitle.empty() ? 0 : kLineHeight) + 8 +
                     static_cast<int>(legend.size()) * kLineHeight + 8;
  const int panels_height = static_cast<int>(figure.panels.size()) * (kPanelTop + figure.panel_height + kPanelBottom);
  const int height = header + panels_height + static_cast<int>(note_lines.size()) * (kLineHeight - 2) + 16;

  Writer w;
  w.line("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
  w.line("<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + std::to_string(figure.width) +
         "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(figure.width) + " " +
         std::to_string(height) + "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" fill=\"#222\">");
  w.line("<title>" + xml_escape(figure.title) + "</title>");
  if (!figure.subtitle.empty()) w.line("<desc>" + xml_escape(figure.subtitle) + "</desc>");
  w.line("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
  double y = 24;
  w.text(kMarginLeft - 60, y, figure.title, "class=\"title\" font-size=\"16\" font-weight=\"bold\"");
  if (!figure.subtitle.empty()) {
    y += kLineHeight;
    w.text(kMarginLeft - 60, y, figure.subtitle, "class=\"subtitle\" font-size=\"11\" fill=\"#555\"");
  }
  y += 8;
  for (const ChartSeries* s : legend) {
    y += kLineHeight;
    const char* c = kPalette[colour.at(s->name) % kPaletteSize];
    w.line("<g class=\"legend-entry\" data-series=\"" + xml_escape(s->name) + "\">");
    w.line("<line x1=\"" + num(kMarginLeft - 60) + "\" y1=\"" + num(y - 4) + "\" x2=\"" + num(kMarginLeft - 36) +
           "\" y2=\"" + num(y - 4) + "\" stroke=\"" + c + "\" stroke-width=\"3\"/>");
    w.text(kMarginLeft - 30, y, s->name + (s->note.empty() ? "" : "  (" + s->note + ")"),
           "class=\"legend\" font-size=\"12\"");
    w.line("</g>");
  }
  double top = header;
  for (const ChartPanel& p : figure.panels) {
    const PanelBox box{static_cast<double>(kMarginLeft), top + kPanelTop,
                       static_cast<double>(figure.width - kMarginLeft - kMarginRight),
                       static_cast<double>(figure.panel_height)};
    draw_panel(w, p, box, colour);
    top += kPanelTop + figure.panel_height + kPanelBottom;
  }
  y = top + 4;
  for (const std::string& l : note_lines) {
    y += kLineHeight - 2;
    w.text(kMarginLeft - 60, y, l, "class=\"note\" font-size=\"11\" fill=\"#555\"");
  }
  w.line("</svg>");
  return std::move(w.str());
}

}  // namespace flatline
