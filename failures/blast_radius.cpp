#include "failures/blast_radius.hpp"

#include <algorithm>
#include <functional>
#include <map>

#include "core/error.hpp"

namespace wallsim::failures {
namespace {

using topology::LinkId;
using topology::NodeId;
using topology::Topology;

/// The all-reduce runs over the survivors among the first kWindow endpoints, where the failed
/// parts are (the first switch of each tier serves them): on 16k GPUs a collective over a
/// damaged fabric is routed path by path, and the region of the failure is what changes.
constexpr std::size_t kWindow = 512;

/// Endpoints that reach the largest part of the fabric: from a reference endpoint, or from
/// another when the reference is itself cut off.
std::vector<bool> reachable(const Topology& t) {
  const std::size_t n = t.num_endpoints();
  std::vector<bool> best(n, false);
  std::size_t best_count = 0;
  for (NodeId ref : {NodeId{0}, static_cast<NodeId>(n - 1), static_cast<NodeId>(n / 2)}) {
    if (!t.node_alive(ref)) continue;
    std::vector<bool> ok(n, false);
    std::size_t count = 0;
    topology::Path p;
    for (NodeId e = 0; e < n; ++e) {
      if (!t.node_alive(e)) continue;
      try {
        (void)t.route(e, ref, e);
        ok[e] = true;
        ++count;
      } catch (const Error&) {
      }
    }
    if (count > best_count) {
      best = ok;
      best_count = count;
    }
    if (2 * count > n) break;
  }
  return best;
}

double allreduce_time(const Topology& t, const std::vector<NodeId>& group, const collectives::NetworkModel& net,
                      Bytes bytes) {
  return collectives::choose_schedule(t, collectives::Op::kAllReduce, group, bytes, {}, {}, std::nullopt, net)
      .time.value();
}

}  // namespace

std::vector<BlastRow> blast_radius(const Topology& healthy, const collectives::NetworkModel& net, Bytes bytes) {
  // One representative per kind: the middle endpoint, the first switch of each tier, the
  // first cable of each class between two switches (else the first of the class).
  std::vector<std::pair<std::string, std::function<void(Topology&)>>> cases;
  const std::size_t window = std::min<std::size_t>(healthy.num_endpoints(), kWindow);
  const NodeId mid = static_cast<NodeId>(window / 2);
  std::vector<std::pair<std::string, std::string>> names;
  cases.emplace_back("endpoint", [mid](Topology& t) { t.fail_node(mid); });
  names.emplace_back("endpoint", healthy.node_name(mid));
  std::map<int, NodeId> first_switch;
  for (NodeId n = 0; n < healthy.num_nodes(); ++n) {
    if (healthy.node(n).kind == topology::NodeKind::kSwitch) first_switch.try_emplace(healthy.node(n).tier, n);
  }
  for (const auto& [tier, n] : first_switch) {
    const std::string label = healthy.tier_labels()[tier] + " switch";
    cases.emplace_back(label, [n](Topology& t) { t.fail_node(n); });
    names.emplace_back(label, healthy.node_name(n));
  }
  std::map<int, LinkId> first_cable;
  for (LinkId l = 0; l < healthy.num_links(); ++l) {
    const int cls = static_cast<int>(healthy.link(l).cls);
    const bool between_switches = healthy.node(healthy.link_source(l)).kind == topology::NodeKind::kSwitch &&
                                  healthy.node(healthy.link_target(l)).kind == topology::NodeKind::kSwitch;
    auto it = first_cable.find(cls);
    if (it == first_cable.end()) {
      first_cable.emplace(cls, l);
    } else if (between_switches && healthy.node(healthy.link_source(it->second)).kind != topology::NodeKind::kSwitch) {
      it->second = l;
    }
  }
  for (const auto& [cls, l] : first_cable) {
    if (static_cast<topology::LinkClass>(cls) == topology::LinkClass::kStorage) continue;
    const std::string label = std::string(topology::to_string(static_cast<topology::LinkClass>(cls))) + " cable";
    cases.emplace_back(label, [l](Topology& t) { t.fail_link(l); });
    names.emplace_back(label, healthy.node_name(healthy.link_source(l)) + " - " + healthy.node_name(healthy.link_target(l)));
  }
  const std::size_t dom = std::max<std::size_t>(1, healthy.info().domain_size);
  std::vector<BlastRow> rows;
  for (std::size_t c = 0; c < cases.size(); ++c) {
    Topology t = healthy;
    cases[c].second(t);
    const std::vector<bool> ok = reachable(t);
    BlastRow row;
    row.component = names[c].first;
    row.example = names[c].second;
    std::vector<bool> lost_domain(healthy.num_endpoints() / dom + 1, false);
    for (NodeId e = 0; e < healthy.num_endpoints(); ++e) {
      if (!ok[e]) {
        ++row.cut_off;
        lost_domain[e / dom] = true;
      }
    }
    std::vector<NodeId> survivors;
    for (NodeId e = 0; e < healthy.num_endpoints(); ++e) {
      if (lost_domain[e / dom]) ++row.job_loses;
      else if (e < window) survivors.push_back(e);
    }
    row.allreduce_ranks = survivors.size();
    if (survivors.size() >= 2) {
      row.allreduce_slowdown = allreduce_time(t, survivors, net, bytes) / allreduce_time(healthy, survivors, net, bytes);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace wallsim::failures
