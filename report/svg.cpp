#include "report/svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <regex>
#include <sstream>

#include "core/units.hpp"

namespace wallsim::report {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

/// About five round tick values covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi) {
  const double span = hi - lo > 0 ? hi - lo : std::max(std::fabs(hi), 1.0);
  const double raw = span / 5.0, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) t.push_back(v);
  return t;
}

/// Tick values (not logarithms) for a log axis spanning [10^lo, 10^hi]: powers of ten, and 2
/// and 5 times them when the axis spans fewer than three decades.
std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> t;
  const bool fine = hi - lo < 3.0;
  for (double d = std::floor(lo); d <= std::ceil(hi); d += 1.0) {
    for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
      const double v = m * std::pow(10.0, d);
      if (std::log10(v) >= lo - 1e-9 && std::log10(v) <= hi + 1e-9) t.push_back(v);
    }
  }
  return t;
}

// Matplotlib's tab10 then the lighter halves of tab20: 16 distinguishable colours.
constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                                   "#bcbd22", "#7f7f7f", "#aec7e8", "#ff9896", "#98df8a", "#ffbb78", "#c5b0d5", "#f7b6d2"};
const char* color(std::size_t i) { return kColors[i % (sizeof kColors / sizeof kColors[0])]; }

std::string header(double w, double h) {
  char b[256];
  std::snprintf(b, sizeof b,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
                "font-size=\"13\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                w, h);
  return b;
}

}  // namespace

std::string render_svg(const LinePlot& p) {
  // The legend's column is as wide as its longest entry needs (7 px a character).
  std::size_t longest = p.legend_title.size();
  for (const auto& s : p.series) longest = std::max(longest, s.name.size() + 7);
  const double W = 800, H = 500, left = 90, top = 50, bottom = 70;
  const double right = std::clamp(7.0 * static_cast<double>(longest), 200.0, 340.0);
  auto fx = [&](double x) { return p.log_x ? std::log10(x) : x; };
  auto fy = [&](double y) { return p.log_y ? std::log10(y) : y; };
  double x0 = 1e300, x1 = -1e300, y0 = p.log_y ? 1e300 : 0.0, y1 = -1e300;
  for (const auto& s : p.series) {
    for (const auto& [x, y] : s.points) {
      if ((p.log_x && !(x > 0)) || (p.log_y && !(y > 0))) continue;
      x0 = std::min(x0, fx(x));
      x1 = std::max(x1, fx(x));
      y0 = std::min(y0, fy(y));
      y1 = std::max(y1, fy(y));
    }
  }
  for (const auto& [x, label] : p.x_ticks) {
    x0 = std::min(x0, fx(x));
    x1 = std::max(x1, fx(x));
  }
  if (!(x1 > x0)) {
    x0 -= 1.0;
    x1 += 1.0;
  }
  if (!(y1 > y0)) {
    y0 = p.log_y ? y0 - 1.0 : y0;
    y1 = y0 + (p.log_y ? 2.0 : 1.0);
  }
  if (p.log_y) {
    y0 -= 0.05 * (y1 - y0);
    y1 += 0.05 * (y1 - y0);
  } else {
    y1 += 0.05 * (y1 - y0);
  }
  if (p.log_x) {
    const double pad = 0.03 * (x1 - x0);
    x0 -= pad;
    x1 += pad;
  }
  auto px = [&](double x) { return left + (fx(x) - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return H - bottom - (fy(y) - y0) / (y1 - y0) * (H - top - bottom); };
  std::ostringstream o;
  char b[512];
  o << header(W, H);
  o << "<text x=\"" << W / 2 << "\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">" << escape(p.title) << "</text>\n";
  // Axes, ticks and grid.
  std::snprintf(b, sizeof b, "<path d=\"M%.1f %.1f V%.1f H%.1f\" stroke=\"black\" fill=\"none\"/>\n", left, top,
                H - bottom, W - right);
  o << b;
  std::vector<double> yt;
  if (p.log_y) {
    yt = log_ticks(y0, y1);
  } else {
    yt = nice_ticks(y0, y1);
  }
  for (double y : yt) {
    std::snprintf(b, sizeof b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" "
                  "text-anchor=\"end\">%s</text>\n",
                  left, py(y), W - right, py(y), left - 6, py(y) + 4, format_number(y, 4).c_str());
    o << b;
  }
  std::vector<std::pair<double, std::string>> xt = p.x_ticks;
  if (xt.empty()) {
    for (double x : p.log_x ? log_ticks(x0, x1) : nice_ticks(x0, x1)) xt.emplace_back(x, format_number(x, 4));
  }
  for (const auto& [x, label] : xt) {
    std::snprintf(b, sizeof b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/><text x=\"%.1f\" y=\"%.1f\" "
                  "text-anchor=\"middle\">%s</text>\n",
                  px(x), H - bottom, px(x), H - bottom + 5, px(x), H - bottom + 20, escape(label).c_str());
    o << b;
  }
  o << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 25 << "\" text-anchor=\"middle\">"
    << escape(p.x_label) << (p.log_x ? " (log scale)" : "") << "</text>\n";
  o << "<text transform=\"translate(22," << (top + H - bottom) / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
    << escape(p.y_label) << (p.log_y ? " (log scale)" : "") << "</text>\n";
  // Lines and legend.
  if (!p.legend_title.empty()) {
    o << "<text x=\"" << W - right + 15 << "\" y=\"" << top - 6 << "\">" << escape(p.legend_title) << "</text>\n";
  }
  std::size_t legend = 0;
  for (std::size_t i = 0; i < p.series.size(); ++i) {
    const auto& s = p.series[i];
    const std::string c = s.color.empty() ? color(i) : s.color;
    auto visible = [&](double x, double y) { return (!p.log_x || x > 0) && (!p.log_y || y > 0); };
    std::string d;
    for (const auto& [x, y] : s.points) {
      if (!visible(x, y)) continue;
      std::snprintf(b, sizeof b, "%s%.1f %.1f", d.empty() ? "M" : " L", px(x), py(y));
      d += b;
    }
    if (s.line && !d.empty()) o << "<path d=\"" << d << "\" stroke=\"" << c << "\" stroke-width=\"2\" fill=\"none\"/>\n";
    if (s.marker > 0) {
      o << "<g fill=\"" << c << "\" fill-opacity=\"" << s.opacity << "\">\n";
      for (const auto& [x, y] : s.points) {
        if (!visible(x, y)) continue;
        std::snprintf(b, sizeof b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"/>\n", px(x), py(y), s.marker);
        o << b;
      }
      o << "</g>\n";
    }
    if (!s.name.empty()) {
      const double ly = top + 14 + 20.0 * static_cast<double>(legend++);
      if (s.line) {
        std::snprintf(b, sizeof b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>",
                      W - right + 15, ly, W - right + 40, ly, c.c_str());
        o << b;
      }
      if (s.marker > 0) {
        std::snprintf(b, sizeof b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\"/>", W - right + 27.5, ly,
                      std::max(s.marker, 3.0), c.c_str());
        o << b;
      }
      std::snprintf(b, sizeof b, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", W - right + 46, ly + 4, escape(s.name).c_str());
      o << b;
    }
  }
  o << "</svg>\n";
  return o.str();
}

std::string render_svg(const TimelineChart& c) {
  const double W = 800, left = 150, right = 30, top = 50, row_h = 36, legend_h = 30, bottom = 60;
  const double H = top + row_h * static_cast<double>(c.rows.size()) + legend_h + bottom;
  double t1 = 0.0;
  for (const auto& bar : c.bars) t1 = std::max(t1, bar.end);
  if (!(t1 > 0)) t1 = 1.0;
  const double plot_bottom = top + row_h * static_cast<double>(c.rows.size());
  auto px = [&](double t) { return left + t / t1 * (W - left - right); };
  std::ostringstream o;
  char b[512];
  o << header(W, H);
  o << "<text x=\"" << W / 2 << "\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">" << escape(c.title) << "</text>\n";
  for (double t : nice_ticks(0.0, t1)) {
    std::snprintf(b, sizeof b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" "
                  "text-anchor=\"middle\">%s</text>\n",
                  px(t), top, px(t), plot_bottom + 5, px(t), plot_bottom + 20, format_number(t, 4).c_str());
    o << b;
  }
  for (std::size_t r = 0; r < c.rows.size(); ++r) {
    const double y = top + row_h * static_cast<double>(r);
    std::snprintf(b, sizeof b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left - 8,
                  y + row_h / 2 + 4, escape(c.rows[r]).c_str());
    o << b;
  }
  // Bars narrower than a pixel still show: at least 0.3 px wide.
  for (std::size_t k = 0; k < c.kinds.size(); ++k) {
    o << "<g fill=\"" << color(k) << "\">\n";
    for (const auto& bar : c.bars) {
      if (bar.kind != static_cast<int>(k)) continue;
      // Each kind has its own band of the row: concurrent work (compute beside the
      // data-parallel stream) stays visible.
      const double band = (row_h - 6.0) / static_cast<double>(c.kinds.size());
      const double y = top + row_h * bar.row + 3.0 + band * static_cast<double>(k);
      const double h = band - 1.0;
      std::snprintf(b, sizeof b, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\"/>\n", px(bar.start), y,
                    std::max(0.3, px(bar.end) - px(bar.start)), h);
      o << b;
    }
    o << "</g>\n";
  }
  std::snprintf(b, sizeof b, "<path d=\"M%.1f %.1f V%.1f H%.1f\" stroke=\"black\" fill=\"none\"/>\n", left, top,
                plot_bottom, W - right);
  o << b;
  o << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << plot_bottom + 40 << "\" text-anchor=\"middle\">"
    << escape(c.x_label) << "</text>\n";
  double lx = left;
  for (std::size_t k = 0; k < c.kinds.size(); ++k) {
    std::snprintf(b, sizeof b,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                  lx, H - 22, color(k), lx + 18, H - 13, escape(c.kinds[k]).c_str());
    o << b;
    lx += 30 + 7.5 * static_cast<double>(c.kinds[k].size());
  }
  o << "</svg>\n";
  return o.str();
}

std::string stack_svg(const std::vector<std::string>& documents) {
  double width = 0, height = 0;
  std::vector<double> offsets;
  const std::regex size("width=\"([0-9.]+)\" height=\"([0-9.]+)\"");
  for (const auto& d : documents) {
    std::smatch m;
    if (!std::regex_search(d, m, size)) continue;
    offsets.push_back(height);
    width = std::max(width, std::stod(m[1]));
    height += std::stod(m[2]);
  }
  std::string out = header(width, height);
  for (std::size_t i = 0; i < documents.size() && i < offsets.size(); ++i) {
    char y[64];
    std::snprintf(y, sizeof y, "<svg y=\"%.0f\" ", offsets[i]);
    out += std::regex_replace(documents[i], std::regex("^<svg "), y, std::regex_constants::format_first_only);
  }
  return out + "</svg>\n";
}

}  // namespace wallsim::report
