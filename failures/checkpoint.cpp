#include "failures/checkpoint.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "engine/step.hpp"
#include "parallelism/layout.hpp"
#include "parallelism/model_math.hpp"

namespace wallsim::failures {

double checkpoint_bytes_per_param(const parallelism::Plan& p) { return engine::kWeightBytes + p.optimizer_bytes; }

CheckpointShards checkpoint_shards(const Scenario& s, const parallelism::Plan& p) {
  CheckpointShards c;
  c.total = Bytes::of(parallelism::count_params(*s.model).total * checkpoint_bytes_per_param(p));
  for (long long r = 0; r < p.gpus(); ++r) {
    if (p.zero >= 1 || parallelism::coords_of(p, r).dp == 0) {
      c.writers.push_back(static_cast<topology::NodeId>(r));
    }
  }
  c.per_writer = c.total / static_cast<double>(c.writers.size());
  return c;
}

std::vector<collectives::Flow> checkpoint_flows(const topology::Topology& t, const CheckpointShards& c,
                                                bool read) {
  std::vector<topology::NodeId> storage;
  for (topology::NodeId n = 0; n < t.num_nodes(); ++n) {
    if (t.node(n).kind == topology::NodeKind::kStorage) storage.push_back(n);
  }
  if (storage.empty()) {
    throw Error("cluster.storage", t.info().kind == "clos"
                                       ? "is needed to write checkpoints (e.g. storage: {bandwidth: 1 TB/s})"
                                       : "storage is modelled on a 'clos' scale-out only so far; this cluster's is '" +
                                             t.info().kind + "', so its checkpoints cannot be written");
  }
  std::vector<collectives::Flow> flows;
  flows.reserve(c.writers.size());
  for (std::size_t i = 0; i < c.writers.size(); ++i) {
    const topology::NodeId gpu = c.writers[i], store = storage[i % storage.size()];
    flows.push_back({read ? t.route(store, gpu, i) : t.route(gpu, store, i), c.per_writer, Seconds{}, 1.0});
  }
  return flows;
}

Seconds makespan(const std::vector<Seconds>& finish) {
  double end = 0.0;
  for (const auto& f : finish) end = std::max(end, f.value());
  return Seconds::of(end);
}

Seconds makespan(const topology::Topology& t, const std::vector<collectives::Flow>& flows) {
  return makespan(collectives::simulate_flows(t, flows));
}

std::vector<double> average_load(const topology::Topology& t, const std::vector<collectives::Flow>& flows,
                                 const std::vector<Seconds>& finish) {
  std::vector<double> load(t.num_links(), 0.0);
  for (std::size_t i = 0; i < flows.size(); ++i) {
    if (!(finish[i].value() > 0.0)) continue;
    const double rate = flows[i].bytes.value() * flows[i].multiplicity / finish[i].value();
    for (auto l : flows[i].path) load[l] += rate;
  }
  for (topology::LinkId l = 0; l < t.num_links(); ++l) load[l] = std::min(load[l], 0.5 * t.link(l).bandwidth.value());
  return load;
}

}  // namespace wallsim::failures
