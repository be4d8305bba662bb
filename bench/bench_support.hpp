// Timing and reporting shared by the benchmarks: each prints its figure beside its target.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace wallsim::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

inline double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

/// Overrides that turn the bundled Llama 3 405B scenario (the plan as published: one-layer
/// interleaved chunks, ZeRO-2, no recompute, 16 flows per connection) back into the plan the
/// speed targets were first measured on (vpp 2, ZeRO-1, full recompute, one flow per
/// connection), so that each stop's figures compare like for like.
inline const std::vector<std::string> kLlama405bEarlierPlan = {
    "parallel.vpp=2", "parallel.stage_layers=[]", "parallel.zero=1", "parallel.recompute=full",
    "cluster.scale_out.flows_per_connection=1"};

/// One line: what was measured, the figure, its unit, the target (an upper bound) and verdict.
inline void report(const char* what, double value, const char* unit, double target) {
  std::printf("%-52s %10.4f %-4s target < %-6g %s\n", what, value, unit, target,
              value < target ? "MET" : "MISSED");
}

/// As report(), for a target that is a lower bound.
inline void report_at_least(const char* what, double value, const char* unit, double target) {
  std::printf("%-52s %10.4f %-4s target >= %-5g %s\n", what, value, unit, target,
              value >= target ? "MET" : "MISSED");
}

}  // namespace wallsim::bench
