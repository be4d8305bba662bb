// Flow-level solver speed against SimGrid's (CM02 with every correction off: latency first,
// then max-min shares of full-duplex links, as SPEC.md defines the flow model), on the same
// flows and routes. Cases: issue 4's light load (100,000 flows of 10 kB-10 MB within 0.1 s on a
// k=16 fat-tree, few overlap) and issue 19's congested ones, drawn as ../shared/flowcheck/ draws
// them (log-uniform 1 KiB-1 GiB between random endpoints, starts spread so that the offered
// load is L x the endpoints' injection bandwidth, 5 % exact ties): k=8 and k=16 fat-trees at
// load 0.25 and 0.5, a 3-D torus and a dragonfly at 0.5. Each prints both times (ours:
// simulate_flows; SimGrid: platform setup + Engine::run, in a child process since its engine
// is a per-process singleton), their ratio (target >= 10x) and the largest relative
// difference of finish times (target <= 1e-9). `flow_bench [CASE...]` runs the cases named
// (`flow_bench list` names them; `all` is every one, none is all but the two whose SimGrid
// runs take 5-30 minutes); without SimGrid it times wallsim alone. Whole-process
// figures (I/O included) come from ../shared/flowcheck/check_flows.sh, the yardstick.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <unistd.h>
#include <sys/wait.h>

#include "bench/bench_support.hpp"
#include "collectives/flow_model.hpp"
#include "topology/families.hpp"

#ifdef WALLSIM_HAVE_SIMGRID
#include <simgrid/s4u.hpp>
#endif

using namespace wallsim;
using namespace wallsim::topology;
using namespace wallsim::bench;

namespace {
struct Case {
  NodeId src, dst;
  double bytes, start;
};

#ifdef WALLSIM_HAVE_SIMGRID
namespace sg4 = simgrid::s4u;

/// Runs the same flows in SimGrid; returns finish times and the wall time of Engine::run.
std::vector<double> simgrid_run(const Topology& t, const std::vector<Case>& cases,
                                const std::vector<collectives::Flow>& flows, double* run_s,
                                double* setup_s) {
  const auto t0 = Clock::now();
  // SimGrid's own log says every configuration change and each sub-precision sleep: quiet it.
  int argc = 2;
  char name[] = "flow_bench";
  char quiet[] = "--log=root.thres:critical";
  char* argv[] = {name, quiet, nullptr};
  sg4::Engine e(&argc, argv);
  // Timing precision as flowcheck's reference sets it: SimGrid merges events closer than
  // surf/precision (seconds, absolute), so a few ulps of a bound on the makespan (every flow
  // ends before the last activation plus all bytes over the narrowest link), at least 1e-15 s.
  double horizon = 0.0, total = 0.0, min_bw = 1e300;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    horizon = std::max(horizon, cases[i].start + t.path_latency(flows[i].path).value());
    total += cases[i].bytes;
  }
  for (LinkId l = 0; l < t.num_links(); ++l) min_bw = std::min(min_bw, t.link(l).bandwidth.value());
  horizon += total / min_bw;
  const double tprec = std::max(1e-15, 8.0 * std::ldexp(1.0, std::ilogb(horizon) - 52));
  char surf[64];
  std::snprintf(surf, sizeof surf, "surf/precision:%.17g", tprec);
  for (const char* cfg : {"network/model:CM02", "network/crosstraffic:0", "network/latency-factor:1",
                          "network/bandwidth-factor:1", "network/weight-S:0", "network/TCP-gamma:1e300",
                          "maxmin/precision:1e-13", static_cast<const char*>(surf), "contexts/stack-size:16"}) {
    e.set_config(cfg);
  }
  auto* zone = sg4::create_full_zone("fabric");
  std::vector<sg4::Host*> hosts;
  for (NodeId i = 0; i < t.num_endpoints(); ++i) {
    hosts.push_back(zone->create_host("h" + std::to_string(i), 1e9)->seal());
  }
  std::vector<sg4::Link*> links;
  for (LinkId l = 0; l < t.num_links(); ++l) {
    // Zero latency in SimGrid: CM02 weighs each flow's share by its route latency (RTT
    // unfairness) with no switch to turn it off, so the latency is paid by the actor instead.
    links.push_back(zone->create_link("l" + std::to_string(l), t.link(l).bandwidth.value())->seal());
  }
  std::map<std::pair<NodeId, NodeId>, bool> routed;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto key = std::pair{cases[i].src, cases[i].dst};
    if (routed[key]) continue;
    routed[key] = true;
    std::vector<sg4::LinkInRoute> route;
    for (LinkId l : flows[i].path) route.emplace_back(links[l]);
    zone->add_route(hosts[cases[i].src]->get_netpoint(), hosts[cases[i].dst]->get_netpoint(), nullptr,
                    nullptr, route, false);
  }
  zone->seal();
  // One actor per flow, spawned at its start plus route latency by a launcher (so that only
  // flows in flight hold a stack): it sends and notes the clock. (Activity completion
  // signals fire when the owner waits, not at the simulated completion time.)
  std::vector<double> finish(cases.size(), -1.0), go(cases.size());
  std::vector<std::size_t> order(cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    order[i] = i;
    go[i] = cases[i].start + t.path_latency(flows[i].path).value();
  }
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return go[a] < go[b]; });
  sg4::Actor::create("launcher", hosts[0], [&] {
    for (std::size_t i : order) {
      sg4::this_actor::sleep_until(go[i]);
      sg4::Actor::create("f", hosts[cases[i].src], [&, i] {
        sg4::Comm::sendto(hosts[cases[i].src], hosts[cases[i].dst], static_cast<uint64_t>(cases[i].bytes));
        finish[i] = sg4::Engine::get_clock();
      });
    }
  });
  *setup_s = seconds_since(t0);
  const auto t1 = Clock::now();
  e.run();
  *run_s = seconds_since(t1);
  return finish;
}
#endif

struct Workload {
  std::string name;
  Topology t;
  std::vector<Case> cases;
};

/// Issue 4's light case: 10 kB-10 MB flows starting within 0.1 s on a k=16 fat-tree.
Workload light(std::size_t n_flows) {
  Workload w{"light-k16-100k", build_fat_tree({.k = 16, .link = {units::gbit_per_s(400), units::us(1), {}},
                                               .switch_latency = units::ns(300)}), {}};
  std::mt19937_64 rng(12345);
  const auto n = static_cast<NodeId>(w.t.num_endpoints());
  for (std::size_t i = 0; i < n_flows; ++i) {
    const NodeId s = static_cast<NodeId>(rng() % n);
    NodeId d = static_cast<NodeId>(rng() % n);
    if (d == s) d = (d + 1) % n;
    // Whole bytes (SimGrid takes integer payloads), 10 kB .. 10 MB; starts over the window.
    const double bytes = std::floor(1e4 + static_cast<double>(rng() % 10'000'000));
    const double start = 0.1 * 1e-6 * static_cast<double>(rng() % 1'000'000);
    w.cases.push_back({s, d, bytes, start});
  }
  return w;
}

/// A uniform double in [0, 1) from 53 random bits (no std distribution: the same cases on
/// every standard library).
double unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

/// Congested flows as flowcheck draws them: log-uniform 1 KiB-1 GiB (whole bytes), random
/// distinct endpoints, starts uniform over the span that makes the offered load `load` x the
/// endpoints' injection bandwidth `bw`, 5 % copying an earlier flow's start (half of those its
/// pair and size too).
Workload congested(std::string name, Topology t, std::size_t n_flows, double load, double bw) {
  Workload w{std::move(name), std::move(t), {}};
  std::mt19937_64 rng(3);
  const auto e = static_cast<NodeId>(w.t.num_endpoints());
  const double mean_bytes = (std::ldexp(1.0, 30) - std::ldexp(1.0, 10)) / std::log(std::ldexp(1.0, 20));
  const double span = static_cast<double>(n_flows) * mean_bytes / (static_cast<double>(e) * bw) / load;
  for (std::size_t i = 0; i < n_flows; ++i) {
    NodeId s = static_cast<NodeId>(rng() % e);
    NodeId d = static_cast<NodeId>(rng() % (e - 1));
    if (d >= s) ++d;
    double bytes = std::round(std::exp2(10.0 + 20.0 * unit(rng)));
    double start = std::round(span * unit(rng) * 1e9) * 1e-9;
    if (!w.cases.empty() && unit(rng) < 0.05) {
      const Case& o = w.cases[rng() % w.cases.size()];
      start = o.start;
      if (unit(rng) < 0.5) {
        s = o.src;
        d = o.dst;
        bytes = o.bytes;
      }
    }
    w.cases.push_back({s, d, bytes, start});
  }
  return w;
}

std::vector<std::string> case_names() {
  return {"light-k16-100k", "k8-l25-10k",  "k8-l50-10k",   "k16-l25-10k",   "k16-l50-10k", "torus-l50-10k",
          "dfly-l50-10k",   "k8-l25-100k", "k8-l50-100k", "k16-l25-100k", "k16-l50-100k"};
}

Workload make(const std::string& name) {
  const LinkParams link{units::gbyte_per_s(100), units::us(1), {}};
  const double bw = 100e9;
  auto flows_of = [](const std::string& n) { return n.ends_with("100k") ? 100000u : 10000u; };
  const double load = name.find("l25") != std::string::npos ? 0.25 : 0.5;
  if (name == "light-k16-100k") return light(100000);
  if (name.starts_with("k8-")) return congested(name, build_fat_tree({.k = 8, .link = link}), flows_of(name), load, bw);
  if (name.starts_with("k16-")) return congested(name, build_fat_tree({.k = 16, .link = link}), flows_of(name), load, bw);
  if (name.starts_with("torus-")) {
    return congested(name, build_torus({.dims = {8, 8, 8}, .wrap = true, .link = link}), flows_of(name), load, bw);
  }
  if (name.starts_with("dfly-")) {
    return congested(name, build_dragonfly({.p = 4, .a = 8, .h = 4, .g = 16, .terminal = link, .local = link, .global = link}),
                     flows_of(name), load, bw);
  }
  std::fprintf(stderr, "flow_bench: unknown case '%s' (flow_bench list)\n", name.c_str());
  std::exit(2);
}

#ifdef WALLSIM_HAVE_SIMGRID
/// SimGrid in a child process (its engine is a per-process singleton): finish times and the
/// setup and run wall times come back through a pipe.
bool simgrid_in_child(const Workload& w, const std::vector<collectives::Flow>& flows, std::vector<double>* finish,
                      double* run_s, double* setup_s) {
  int fd[2];
  if (pipe(fd) != 0) return false;
  std::fflush(stdout);  // or the child's exit prints the parent's buffered lines again
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    close(fd[0]);
    double run = 0, setup = 0;
    std::vector<double> f = simgrid_run(w.t, w.cases, flows, &run, &setup);
    f.push_back(run);
    f.push_back(setup);
    const auto* p = reinterpret_cast<const char*>(f.data());
    std::size_t left = f.size() * sizeof(double);
    while (left > 0) {
      const ssize_t k = write(fd[1], p, left);
      if (k <= 0) _exit(1);
      p += k;
      left -= static_cast<std::size_t>(k);
    }
    _exit(0);
  }
  close(fd[1]);
  std::vector<double> got(w.cases.size() + 2);
  auto* p = reinterpret_cast<char*>(got.data());
  std::size_t left = got.size() * sizeof(double);
  while (left > 0) {
    const ssize_t k = read(fd[0], p, left);
    if (k <= 0) break;
    p += k;
    left -= static_cast<std::size_t>(k);
  }
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (left != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return false;
  *setup_s = got.back();
  got.pop_back();
  *run_s = got.back();
  got.pop_back();
  *finish = std::move(got);
  return true;
}
#endif

void run_case(const std::string& name) {
  const Workload w = make(name);
  // One route per pair (key 0), since SimGrid's routing keeps one route per host pair.
  std::vector<collectives::Flow> flows;
  for (const auto& c : w.cases) {
    flows.push_back({w.t.route(c.src, c.dst, 0), Bytes::of(c.bytes), Seconds::of(c.start), 1.0});
  }
  // Ours runs twice, the faster kept (this machine is shared and noisy).
  collectives::FlowStats stats;
  std::vector<Seconds> ours;
  double ours_s = 1e300;
  for (int k = 0; k < 2; ++k) {
    const auto t0 = Clock::now();
    ours = collectives::simulate_flows(w.t, flows, &stats);
    ours_s = std::min(ours_s, seconds_since(t0));
  }
  std::printf("%s: %zu flows on %zu endpoints, %zu events, %.1f classes refilled and %.1f links visited per event\n",
              name.c_str(), flows.size(), w.t.num_endpoints(), stats.events,
              static_cast<double>(stats.rate_updates) / static_cast<double>(std::max<std::size_t>(stats.events, 1)),
              static_cast<double>(stats.links_visited) / static_cast<double>(std::max<std::size_t>(stats.events, 1)));
  std::printf("  %-46s %10.3f s (%.2f us per event)\n", "wallsim flow solver", ours_s,
              1e6 * ours_s / static_cast<double>(std::max<std::size_t>(stats.events, 1)));
#ifdef WALLSIM_HAVE_SIMGRID
  if (std::getenv("FLOW_BENCH_NO_SIMGRID") != nullptr) return;
  std::vector<double> theirs;
  double sg_run = 0, sg_setup = 0;
  if (!simgrid_in_child(w, flows, &theirs, &sg_run, &sg_setup)) {
    std::printf("  SimGrid run failed: comparison skipped\n");
    return;
  }
  double worst = 0.0;
  for (std::size_t i = 0; i < w.cases.size(); ++i) {
    worst = std::max(worst, std::fabs(ours[i].value() - theirs[i]) / theirs[i]);
  }
  std::printf("  %-46s %10.3f s (+ %.3f s platform setup)\n", "SimGrid 3.32 CM02 (Engine::run)", sg_run, sg_setup);
  const double ratio = (sg_run + sg_setup) / ours_s;
  std::printf("  %-46s %10.1f x   target >= 10x  %s\n", "speed-up over SimGrid (setup + run)", ratio,
              ratio >= 10 ? "MET" : "MISSED");
  std::printf("  %-46s %10.2e     target <= 1e-9 %s\n", "largest relative difference of finish times", worst,
              worst <= 1e-9 ? "MET" : "MISSED");
#else
  std::printf("  SimGrid not found at build time (Debian: libsimgrid-dev): comparison skipped\n");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) names.emplace_back(argv[i]);
  if (names.size() == 1 && names[0] == "list") {
    for (const auto& n : case_names()) std::printf("%s\n", n.c_str());
    return 0;
  }
  if (names.empty() || (names.size() == 1 && names[0] == "all")) {
    // Without arguments, all but the k=16 100k-flow cases, whose SimGrid runs take 5 to 30
    // minutes (CI runs the rest); `flow_bench all` runs them too.
    const bool all = !names.empty();
    names.clear();
    for (const auto& n : case_names()) {
      if (all || !(n.starts_with("k16-") && n.ends_with("100k"))) names.push_back(n);
    }
  }
  for (const auto& n : names) run_case(n);
  return 0;
}
