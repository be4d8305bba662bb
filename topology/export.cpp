#include "topology/export.hpp"

#include <charconv>
#include <ostream>

#include <boost/graph/graphml.hpp>
#include <boost/graph/graphviz.hpp>
#include <boost/property_map/function_property_map.hpp>

namespace wallsim::topology {

std::string exact_number(double x) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(x);
}

void write_links_csv(const Topology& t, std::ostream& out) {
  out << "id,from,to,bandwidth_Bps,latency_s\n";
  for (LinkId l = 0; l < t.num_links(); ++l) {
    const Link& k = t.link(l);
    out << l << ',' << t.node_name(t.link_source(l)) << ',' << t.node_name(t.link_target(l)) << ','
        << exact_number(k.bandwidth.value()) << ',' << exact_number(k.latency.value()) << '\n';
  }
}

namespace {
boost::dynamic_properties properties(const Topology& t) {
  using V = Graph::vertex_descriptor;
  using E = Graph::edge_descriptor;
  const Graph& g = t.graph();
  boost::dynamic_properties dp(boost::ignore_other_properties);
  dp.property("name", boost::make_function_property_map<V, std::string>(
                          [&t](V v) { return t.node_name(v); }));
  dp.property("kind", boost::make_function_property_map<V, std::string>(
                          [&t](V v) { return std::string(to_string(t.node(v).kind)); }));
  dp.property("link", boost::make_function_property_map<E, std::uint32_t>(
                          [&g](E e) { return g[e].id; }));
  dp.property("bandwidth_Bps", boost::make_function_property_map<E, double>(
                                   [&g](E e) { return g[e].bandwidth.value(); }));
  dp.property("latency_s", boost::make_function_property_map<E, double>(
                               [&g](E e) { return g[e].latency.value(); }));
  dp.property("class", boost::make_function_property_map<E, std::string>(
                           [&g](E e) { return std::string(to_string(g[e].cls)); }));
  return dp;
}
}  // namespace

void write_graphml(const Topology& t, std::ostream& out) {
  boost::write_graphml(out, t.graph(), get(boost::vertex_index, t.graph()), properties(t), true);
}

void write_dot(const Topology& t, std::ostream& out) {
  using V = Graph::vertex_descriptor;
  boost::write_graphviz_dp(out, t.graph(), properties(t),
                           "name", boost::make_function_property_map<V, std::string>(
                                       [&t](V v) { return t.node_name(v); }));
}

nlohmann::json metrics_json(const Topology& t, const Metrics& m) {
  nlohmann::json j;
  j["topology"] = t.info().kind;
  j["endpoints"] = m.endpoints;
  j["switches"] = m.switches;
  j["storage_nodes"] = m.storage;
  j["links"] = m.links;
  j["diameter_hops"] = m.diameter_hops;
  j["avg_hops"] = m.avg_hops;
  // Pairs that failures cut apart; diameter, mean hops and path diversity are over the others.
  j["unreachable_pairs"] = m.unreachable_pairs;
  j["bisection_bandwidth_Bps"] = m.bisection ? nlohmann::json(m.bisection->value()) : nlohmann::json();
  j["bisection_method"] = m.bisection_method;
  j["path_diversity"] = m.path_diversity;
  j["routing"] = t.router_name();
  j["estimated"] = m.estimated;
  return j;
}

}  // namespace wallsim::topology
