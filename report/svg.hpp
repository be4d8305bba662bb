// SVG charts for --svg outputs: a line plot with labelled axes, ticks and a legend.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace wallsim::report {

struct LinePlot {
  struct Series {
    std::string name;  ///< legend entry; empty for a single unnamed line
    std::vector<std::pair<double, double>> points;
  };
  std::string title, x_label, y_label;
  std::string legend_title;  ///< above the legend entries (the key the series vary)
  std::vector<Series> series;
  std::vector<std::pair<double, std::string>> x_ticks;  ///< positions and their labels; empty = numeric
  bool log_x = false;
};

/// The plot as a standalone SVG document (800 x 500).
std::string render_svg(const LinePlot& p);

}  // namespace wallsim::report
