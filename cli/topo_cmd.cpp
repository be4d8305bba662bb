// `wallsim topo TOPOLOGY`: build a fabric, print its metrics, export it.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "report/tables.hpp"
#include "core/error.hpp"
#include "core/presets.hpp"
#include "core/text.hpp"
#include "topology/export.hpp"
#include "topology/metrics.hpp"
#include "topology/spec.hpp"

namespace wallsim::cli {

CLI::Validator whole_number(std::uint64_t min, std::uint64_t max) {
  return CLI::Validator(
      [min, max](std::string& s) {
        std::uint64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);  // digits only, no sign
        const bool ok = !s.empty() && ec == std::errc() && end == s.data() + s.size() && v >= min && v <= max;
        return ok ? std::string()
                  : quote_value(s) + " is not a whole number from " + std::to_string(min) + " to " + std::to_string(max);
      },
      "UINT");
}

void add_common_flags(CLI::App& cmd, CommonFlags& f) {
  cmd.add_option("--set", f.sets, "Override a key: --set KEY=VALUE (repeatable)");
  add_output_option(cmd, "--json", f.json, "Write the result as JSON to FILE ('-' for stdout)");
  cmd.add_flag("--quiet", f.quiet, "Print nothing on success");
  cmd.add_option("--seed", f.seed, "Random seed (a whole number, 0 or more)")->check(whole_number(0, UINT64_MAX));
  cmd.add_flag("--progress", f.progress, "Progress bar on stderr (default: when stderr is a terminal)");
}

void add_hdf5_flag(CLI::App& cmd, CommonFlags& f) {
  add_output_option(cmd, "--hdf5", f.hdf5, "Write the results as HDF5 to FILE (h5py, h5dump)");
}

void add_failure_flags(CLI::App& cmd, FailureFlags& f) {
  cmd.add_option("--fail-link", f.links, "Fail a cable: a link id or FROM-TO node names, e.g. leaf0-spine3 (repeatable)");
  cmd.add_option("--fail-node", f.nodes, "Fail a node by name, e.g. spine3 (repeatable)");
}

namespace {

struct TopoFlags {
  CommonFlags common;
  std::string topology, links, graphml, dot;
  FailureFlags failures;
  std::vector<std::string> routes;
  std::uint64_t flow_key = 0;
};

topology::NodeId find_node(const topology::Topology& t, const std::string& name,
                           const std::string& flag) {
  for (topology::NodeId v = 0; v < t.num_nodes(); ++v) {
    if (t.node_name(v) == name) return v;
  }
  throw Error(flag, "no node named '" + name + "' (names look like " + t.node_name(0) + ")");
}

topology::NodeId endpoint_arg(const topology::Topology& t, const std::string& text,
                              const std::string& flag) {
  const std::string s(trim_blanks(text));
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
    const unsigned long long v = std::stoull(s);
    if (v >= t.num_endpoints()) {
      throw Error(flag, "endpoint " + s + " does not exist (endpoints are 0.." +
                            std::to_string(t.num_endpoints() - 1) + ")");
    }
    return static_cast<topology::NodeId>(v);
  }
  return find_node(t, s, flag);
}

}  // namespace

void fail_link(topology::Topology& t, const std::string& link, const std::string& path) {
  if (link == "none") return;
  const auto dash = link.find('-');
  if (dash != std::string::npos && dash > 0) {  // FROM-TO by node names
    const auto from = find_node(t, link.substr(0, dash), path), to = find_node(t, link.substr(dash + 1), path);
    for (topology::LinkId l = 0; l < t.num_links(); ++l) {
      if (t.link_source(l) == from && t.link_target(l) == to) return t.fail_link(l);
    }
    throw Error(path, "no link from " + link.substr(0, dash) + " to " + link.substr(dash + 1));
  }
  Config c(YAML::Node(link), path);
  const long long id = c.as_int();
  if (id < 0 || static_cast<std::size_t>(id) >= t.num_links()) {
    throw Error(path, "link " + link + " does not exist (links are 0.." + std::to_string(t.num_links() - 1) + ")");
  }
  t.fail_link(static_cast<topology::LinkId>(id));
}

topology::Topology build_fabric(const std::string& topology, const CommonFlags& common,
                                const FailureFlags& failures) {
  const Presets presets(default_data_dir());
  topology::Topology t = topology::build_topology_argument(topology, common.sets, presets);
  for (const auto& s : failures.links) fail_link(t, s, "--fail-link");
  for (const auto& s : failures.nodes) t.fail_node(find_node(t, s, "--fail-node"));
  return t;
}

namespace {

void run(const TopoFlags& f) {
  const topology::Topology t = build_fabric(f.topology, f.common, f.failures);

  std::vector<std::pair<std::string, std::string>> route_rows;
  nlohmann::json routes = nlohmann::json::array();
  for (const auto& r : f.routes) {
    const auto parts = split(r, ',');
    if (parts.size() != 2) throw Error("--route", "'" + r + "' is not SRC,DST");
    const auto src = endpoint_arg(t, parts[0], "--route");
    const auto dst = endpoint_arg(t, parts[1], "--route");
    const topology::Path p = t.route(src, dst, f.flow_key);
    std::string text = t.node_name(src);
    nlohmann::json links = nlohmann::json::array();
    for (auto l : p) {
      text += " -[" + std::to_string(l) + "]-> " + t.node_name(t.link_target(l));
      links.push_back(l);
    }
    route_rows.emplace_back("route " + parts[0] + "," + parts[1], text);
    routes.push_back({{"src", t.node_name(src)}, {"dst", t.node_name(dst)}, {"links", links},
                      {"latency_s", t.path_latency(p).value()}});
  }

  const topology::Metrics m = topology::compute_metrics(t);
  nlohmann::json j = topology::metrics_json(t, m);
  if (!f.routes.empty()) j["routes"] = routes;

  PendingFiles files;
  auto render = [&](const std::string& path, auto&& fn) {
    if (path.empty()) return;
    std::ostringstream ss;
    fn(ss);
    files.add(path, ss.str());
  };
  render(f.links, [&](std::ostream& o) { topology::write_links_csv(t, o); });
  render(f.graphml, [&](std::ostream& o) { topology::write_graphml(t, o); });
  render(f.dot, [&](std::ostream& o) { topology::write_dot(t, o); });
  render(f.common.json, [&](std::ostream& o) { o << report::json_text(j); });

  if (!f.common.quiet && f.common.json != "-") {
    auto est = [&](const std::string& key) {
      for (const auto& e : m.estimated) {
        if (e == key) return std::string(" (estimated from a sample)");
      }
      return std::string();
    };
    std::vector<std::pair<std::string, std::string>> rows = {
        {"topology", t.info().kind + " (routing: " + t.router_name() + ")"},
        {"endpoints", std::to_string(m.endpoints)},
        {"switches", std::to_string(m.switches)},
        {"links", std::to_string(m.links) + " directed"},
        {"diameter", std::to_string(m.diameter_hops) + " hops" + est("diameter_hops")},
        {"average hops", format_number(m.avg_hops) + est("avg_hops")},
        {"bisection", m.bisection ? to_string(*m.bisection) + " per direction (" +
                                        m.bisection_method + ")"
                                  : std::string("not computed (too large for max-flow)")},
        {"path diversity", format_number(m.path_diversity) + " shortest paths per pair" +
                               est("path_diversity")},
    };
    if (m.storage > 0) rows.insert(rows.begin() + 3, {"storage nodes", std::to_string(m.storage)});
    if (m.unreachable_pairs > 0.0) {
      // Failures cut the fabric: say so before the hop metrics, which cover the rest.
      const double all = static_cast<double>(m.endpoints) * static_cast<double>(m.endpoints - 1);
      const auto at = std::find_if(rows.begin(), rows.end(), [](const auto& r) { return r.first == "diameter"; });
      rows.insert(at, {"unreachable pairs", format_number(m.unreachable_pairs) + " of " + format_number(all) +
                                                " ordered pairs" + est("unreachable_pairs") +
                                                " (failures cut the fabric; hops below are over the reachable pairs)"});
    }
    rows.insert(rows.end(), route_rows.begin(), route_rows.end());
    std::cout << key_value_table(rows);
  }
  files.write_all();
}

}  // namespace

void register_topo(CLI::App& app, Action& action) {
  auto f = std::make_shared<TopoFlags>();
  CLI::App* cmd = app.add_subcommand("topo", "Build a topology and print its size, diameter, "
                                             "bisection bandwidth and path diversity");
  cmd->add_option("TOPOLOGY", f->topology,
                  "A scenario file (its cluster) or a spec string KIND:key=value,...")
      ->required();
  add_common_flags(*cmd, f->common);
  add_output_option(*cmd, "--links", f->links, "Write the directed links as CSV");
  add_output_option(*cmd, "--graphml", f->graphml, "Write the graph as GraphML");
  add_output_option(*cmd, "--dot", f->dot, "Write the graph as Graphviz DOT");
  add_failure_flags(*cmd, f->failures);
  cmd->add_option("--route", f->routes, "Print the route SRC,DST (endpoint numbers or names)");
  cmd->add_option("--flow-key", f->flow_key, "Flow key hashed by ECMP for --route")->check(whole_number(0, UINT64_MAX));
  cmd->callback([f, &action] { action = [f] { run(*f); }; });
}

}  // namespace wallsim::cli
