#include "report/svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
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

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

}  // namespace

std::string render_svg(const LinePlot& p) {
  const double W = 800, H = 500, left = 90, right = 200, top = 50, bottom = 70;
  double x0 = 1e300, x1 = -1e300, y0 = 0.0, y1 = -1e300;
  auto fx = [&](double x) { return p.log_x ? std::log10(x) : x; };
  for (const auto& s : p.series) {
    for (const auto& [x, y] : s.points) {
      x0 = std::min(x0, fx(x));
      x1 = std::max(x1, fx(x));
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
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
  if (!(y1 > y0)) y1 = y0 + 1.0;
  y1 *= 1.05;
  auto px = [&](double x) { return left + (fx(x) - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom); };
  std::ostringstream o;
  char b[512];
  std::snprintf(b, sizeof b,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
                "font-size=\"13\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                W, H);
  o << b;
  o << "<text x=\"" << W / 2 << "\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">" << escape(p.title) << "</text>\n";
  // Axes, ticks and grid.
  std::snprintf(b, sizeof b, "<path d=\"M%.1f %.1f V%.1f H%.1f\" stroke=\"black\" fill=\"none\"/>\n", left, top,
                H - bottom, W - right);
  o << b;
  for (double y : nice_ticks(y0, y1)) {
    std::snprintf(b, sizeof b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" "
                  "text-anchor=\"end\">%s</text>\n",
                  left, py(y), W - right, py(y), left - 6, py(y) + 4, format_number(y, 4).c_str());
    o << b;
  }
  std::vector<std::pair<double, std::string>> xt = p.x_ticks;
  if (xt.empty()) {
    for (double x : nice_ticks(x0, x1)) xt.emplace_back(p.log_x ? std::pow(10.0, x) : x, format_number(p.log_x ? std::pow(10.0, x) : x, 4));
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
    << escape(p.y_label) << "</text>\n";
  // Lines and legend.
  if (!p.legend_title.empty()) {
    o << "<text x=\"" << W - right + 15 << "\" y=\"" << top - 6 << "\">" << escape(p.legend_title) << "</text>\n";
  }
  for (std::size_t i = 0; i < p.series.size(); ++i) {
    const auto& s = p.series[i];
    const char* color = kColors[i % (sizeof kColors / sizeof kColors[0])];
    std::string d;
    for (const auto& [x, y] : s.points) {
      std::snprintf(b, sizeof b, "%s%.1f %.1f", d.empty() ? "M" : " L", px(x), py(y));
      d += b;
    }
    if (!d.empty()) o << "<path d=\"" << d << "\" stroke=\"" << color << "\" stroke-width=\"2\" fill=\"none\"/>\n";
    for (const auto& [x, y] : s.points) {
      std::snprintf(b, sizeof b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", px(x), py(y), color);
      o << b;
    }
    if (!s.name.empty()) {
      const double ly = top + 14 + 20.0 * static_cast<double>(i);
      std::snprintf(b, sizeof b,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/><text "
                    "x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                    W - right + 15, ly, W - right + 40, ly, color, W - right + 46, ly + 4, escape(s.name).c_str());
      o << b;
    }
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace wallsim::report
