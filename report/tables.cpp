#include "report/tables.hpp"

#include "parallelism/layout.hpp"

namespace wallsim::report {

const char* lane_name(int lane) {
  static const char* names[] = {"compute", "exposed comm", "data-parallel comm"};
  return lane >= 0 && lane < 3 ? names[lane] : "other";
}

Table ranks_table(const engine::StepResult& r, const parallelism::Plan& p) {
  const auto n = static_cast<std::size_t>(p.gpus());
  std::vector<std::int64_t> rank(n), stage(n);
  std::vector<double> busy(n), comm(n), bubble(n), other(n), energy(n);
  for (std::size_t i = 0; i < n; ++i) {
    const int s = parallelism::coords_of(p, static_cast<int>(i)).pp;
    const auto& st = r.stages.at(static_cast<std::size_t>(s));
    rank[i] = static_cast<std::int64_t>(i);
    stage[i] = s;
    busy[i] = st.compute.value();
    comm[i] = st.comm.value();
    bubble[i] = st.bubble.value();
    other[i] = st.other.value();
    energy[i] = st.energy.value();
  }
  Table t;
  t.add("rank", std::move(rank)).add("stage", std::move(stage)).add("busy_s", std::move(busy));
  t.add("comm_s", std::move(comm)).add("bubble_s", std::move(bubble)).add("other_s", std::move(other));
  t.add("energy_j", std::move(energy));
  return t;
}

Table timeline_table(const engine::StepResult& r, const parallelism::Plan& p) {
  std::vector<std::int64_t> rank;
  std::vector<std::string> kind, name;
  std::vector<double> start, end;
  for (const auto& e : r.timeline) {
    parallelism::Coords c;
    c.pp = e.stage;
    rank.push_back(parallelism::rank_of(p, c));
    kind.emplace_back(lane_name(e.lane));
    name.push_back(e.name);
    start.push_back(e.start.value());
    end.push_back(e.end.value());
  }
  Table t;
  t.add("rank", std::move(rank)).add("kind", std::move(kind)).add("name", std::move(name));
  t.add("start_s", std::move(start)).add("end_s", std::move(end));
  return t;
}

Table links_table(const topology::Topology& t, const std::vector<double>& bytes, Seconds span) {
  const std::size_t n = t.num_links();
  std::vector<std::int64_t> id(n);
  std::vector<std::string> from(n), to(n), cls(n);
  std::vector<double> bw(n), carried(n), busy(n), util(n);
  for (std::size_t l = 0; l < n; ++l) {
    const auto link = static_cast<topology::LinkId>(l);
    const auto& k = t.link(link);
    id[l] = static_cast<std::int64_t>(l);
    from[l] = t.node_name(t.link_source(link));
    to[l] = t.node_name(t.link_target(link));
    cls[l] = std::string(topology::to_string(k.cls));
    bw[l] = k.bandwidth.value();
    carried[l] = l < bytes.size() ? bytes[l] : 0.0;
    busy[l] = bw[l] > 0 ? carried[l] / bw[l] : 0.0;
    util[l] = span.value() > 0 ? busy[l] / span.value() : 0.0;
  }
  Table tab;
  tab.add("id", std::move(id)).add("from", std::move(from)).add("to", std::move(to)).add("class", std::move(cls));
  tab.add("bandwidth_Bps", std::move(bw)).add("bytes", std::move(carried)).add("busy_s", std::move(busy));
  tab.add("utilization", std::move(util));
  return tab;
}

}  // namespace wallsim::report
