// SVG charts for --svg outputs: line and scatter plots with labelled axes, ticks and a legend;
// a timeline (Gantt) chart; several charts stacked in one document.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace wallsim::report {

struct LinePlot {
  struct Series {
    std::string name;  ///< legend entry; empty for a single unnamed line
    std::vector<std::pair<double, double>> points;
    bool line = true;       ///< join the points
    double marker = 3.5;    ///< marker radius; 0 = none
    std::string color;      ///< empty = the palette's next colour
    double opacity = 1.0;   ///< of the markers
  };
  std::string title, x_label, y_label;
  std::string legend_title;  ///< above the legend entries (the key the series vary)
  std::vector<Series> series;
  std::vector<std::pair<double, std::string>> x_ticks;  ///< positions and their labels; empty = numeric
  bool log_x = false, log_y = false;
};

/// The plot as a standalone SVG document (800 x 500).
std::string render_svg(const LinePlot& p);

/// Bars on rows over time: one row per rank (or stage), a colour per kind of work.
struct TimelineChart {
  struct Bar {
    int row = 0, kind = 0;
    double start = 0, end = 0;
  };
  std::string title, x_label;
  std::vector<std::string> rows;   ///< top to bottom
  std::vector<std::string> kinds;  ///< legend, by Bar::kind
  std::vector<Bar> bars;
};

/// The chart as a standalone SVG document (800 wide, as tall as its rows need).
std::string render_svg(const TimelineChart& c);

/// Standalone SVG documents (as render_svg makes them) one above the other in one document.
std::string stack_svg(const std::vector<std::string>& documents);

}  // namespace wallsim::report
