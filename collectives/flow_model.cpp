#include "collectives/flow_model.hpp"

#include <cmath>

#include "collectives/flow_solver.hpp"
#include "core/error.hpp"

namespace wallsim::collectives {

std::vector<Seconds> simulate_flows(const topology::Topology& t, const std::vector<Flow>& flows,
                                    FlowStats* stats, std::span<const double> reserved_Bps,
                                    const std::function<void(double)>& progress, const FlowExchange* exchange) {
  FlowSolver solver(t, reserved_Bps, exchange);
  for (const auto& f : flows) solver.add(f);
  std::size_t done = 0, reported = 0;
  while (solver.step()) {
    done += solver.finished().size();
    if (progress && solver.stats().events >= reported + 1024) {
      reported = solver.stats().events;
      progress(static_cast<double>(done) / static_cast<double>(flows.size()));
    }
  }
  std::vector<Seconds> finish(flows.size());
  for (std::size_t i = 0; i < flows.size(); ++i) {
    finish[i] = solver.finish(static_cast<FlowSolver::Id>(i));
    if (std::isinf(finish[i].value()) && !std::isinf(flows[i].bytes.value())) {
      throw Error("flow " + std::to_string(i), "gets no bandwidth (a link of zero capacity?)");
    }
  }
  if (stats != nullptr) *stats = solver.stats();
  return finish;
}

}  // namespace wallsim::collectives
