#include "topology/spec.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.hpp"
#include "core/limits.hpp"
#include "core/text.hpp"
#include "topology/families.hpp"

namespace wallsim::topology {
namespace {

LinkParams link_params(const Config& c, const std::string& prefix, const LinkParams* fallback) {
  LinkParams l;
  const std::string bw = prefix + "bandwidth", lat = prefix + "latency", en = prefix + "energy";
  if (auto f = c.find(bw)) l.bandwidth = f->as<Bandwidth>();
  else if (fallback != nullptr) l.bandwidth = fallback->bandwidth;
  else (void)c.at(bw);  // throws: required
  if (l.bandwidth.value() <= 0.0) throw Error(c.path() + "." + bw, "must be positive");
  if (auto f = c.find(lat)) l.latency = f->as<Seconds>();
  else if (fallback != nullptr) l.latency = fallback->latency;
  if (auto f = c.find(en)) l.energy = f->as<EnergyPerBit>();
  else if (fallback != nullptr) l.energy = fallback->energy;
  return l;
}

Seconds opt_seconds(const Config& c, std::string_view key) {
  auto f = c.find(key);
  return f ? f->as<Seconds>() : Seconds{};
}

const std::vector<std::string> kCommon = {"topology", "bandwidth", "latency", "energy"};

std::vector<std::string> with_common(std::initializer_list<std::string> extra) {
  std::vector<std::string> keys = kCommon;
  keys.insert(keys.end(), extra);
  return keys;
}

/// Keys of a cluster's scale_out section that only some fabric kinds read: a kind ignores the
/// others' (so a sweep over cluster.scale_out.topology can give each kind its parameters at
/// once), and still rejects a key no kind knows.
const std::vector<std::pair<std::string, std::vector<std::string>>>& kind_keys() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> keys = {
      {"clos", {"nodes_per_leaf", "spines"}},
      {"fat-tree", {"k", "radix", "levels", "oversubscription"}},
      {"dragonfly", {"p", "a", "h", "g", "routing", "local_bandwidth", "local_latency", "local_energy",
                     "global_bandwidth", "global_latency", "global_energy"}},
      {"torus", {"dims", "wrap"}},
  };
  return keys;
}

bool other_kinds_key(const std::string& kind, const std::string& key) {
  bool mine = false, others = false;
  for (const auto& [k, keys] : kind_keys()) {
    const bool has = std::find(keys.begin(), keys.end(), key) != keys.end();
    (k == kind ? mine : others) = (k == kind ? mine : others) || has;
  }
  return others && !mine;
}

}  // namespace

const std::vector<std::string>& topology_kinds() {
  static const std::vector<std::string> kinds = {"ring",  "switch",    "fully-connected",
                                                 "fat-tree", "clos",   "dragonfly",
                                                 "torus", "wafer-mesh"};
  return kinds;
}

YAML::Node spec_to_yaml(const std::string& spec) {
  YAML::Node m(YAML::NodeType::Map);
  const auto colon = spec.find(':');
  const std::string kind(trim_blanks(spec.substr(0, colon)));
  m["topology"] = kind;
  if (colon == std::string::npos) return m;
  const std::string rest = spec.substr(colon + 1);
  if (trim_blanks(rest).empty()) return m;
  for (const auto& item : split(rest, ',')) {
    const auto eq = item.find('=');
    const std::string key(trim_blanks(item.substr(0, eq)));
    if (eq == std::string::npos || key.empty()) {
      throw Error(kind, quote_value(item) + " is not key=value (spec strings read KIND:key=value,...)");
    }
    if (m[key]) throw Error(kind + "." + key, "given twice");
    m[key] = std::string(trim_blanks(item.substr(eq + 1)));
  }
  return m;
}

Topology build_from_config(const Config& c) {
  const std::string kind = c.at("topology").as_string();
  if (kind == "ring") {
    c.allow_only(with_common({"n"}));
    return build_ring({.n = as_small_int(c.at("n")), .link = link_params(c, "", nullptr)});
  }
  if (kind == "switch") {
    c.allow_only(with_common({"n", "switch_latency"}));
    return build_switch({.n = as_small_int(c.at("n")), .link = link_params(c, "", nullptr),
                         .switch_latency = opt_seconds(c, "switch_latency")});
  }
  if (kind == "fully-connected") {
    c.allow_only(with_common({"n"}));
    return build_fully_connected({.n = as_small_int(c.at("n")), .link = link_params(c, "", nullptr)});
  }
  if (kind == "fat-tree") {
    c.allow_only(with_common({"k", "endpoints", "radix", "levels", "oversubscription",
                              "switch_latency"}));
    FatTreeParams p;
    p.link = link_params(c, "", nullptr);
    p.switch_latency = opt_seconds(c, "switch_latency");
    if (auto o = c.find("oversubscription")) p.oversubscription = o->as_double();
    if (auto k = c.find("k")) {
      if (c.has("radix")) throw Error(c.path() + ".radix", "give either k or radix, not both");
      p.k = as_small_int(*k);
      if (auto e = c.find("endpoints")) p.endpoints = e->as_int(1, kMaxNodes, "the limit on nodes");
      if (auto l = c.find("levels")) p.levels = as_small_int(*l);
    } else {
      if (!c.has("endpoints") || !c.has("radix")) {
        throw Error(c.path() + ".k", "missing: give k, or endpoints and radix");
      }
      p.k = as_small_int(c.at("radix"));
      p.endpoints = c.at("endpoints").as_int(1, kMaxNodes, "the limit on nodes");
      const long long h = p.k / 2;
      if (auto l = c.find("levels")) p.levels = as_small_int(*l);
      else p.levels = p.endpoints <= static_cast<long long>(p.k) * h ? 2 : 3;
    }
    return build_fat_tree(p);
  }
  if (kind == "clos") {
    c.allow_only(with_common({"nodes", "gpus_per_node", "domain", "nodes_per_leaf", "spines",
                              "scale_up_bandwidth", "scale_up_latency", "scale_up_energy",
                              "switch_latency", "storage_bandwidth", "storage_nodes"}));
    ClosParams p;
    p.nodes = c.at("nodes").as_int(1, limits::kMaxGpus, "the limit on GPUs");
    p.gpus_per_node = as_positive_int(c.at("gpus_per_node"), limits::kMaxGpus, "the limit on GPUs");
    // Zero is no count here (the builder's 0 means "not given"): these are positive.
    if (auto f = c.find("domain")) p.domain = as_positive_int(*f);
    if (auto f = c.find("nodes_per_leaf")) p.nodes_per_leaf = as_positive_int(*f);
    if (auto f = c.find("spines")) p.spines = as_positive_int(*f);
    p.scale_out = link_params(c, "", nullptr);
    p.scale_up = link_params(c, "scale_up_", nullptr);
    p.switch_latency = opt_seconds(c, "switch_latency");
    if (auto f = c.find("storage_bandwidth")) p.storage = f->as<Bandwidth>();
    if (auto f = c.find("storage_nodes")) p.storage_nodes = as_positive_int(*f);
    return build_clos(p);
  }
  if (kind == "dragonfly") {
    c.allow_only(with_common({"p", "a", "h", "g", "routing", "local_bandwidth", "local_latency",
                              "local_energy", "global_bandwidth", "global_latency",
                              "global_energy", "switch_latency"}));
    DragonflyParams p;
    p.p = as_small_int(c.at("p"));
    p.a = as_small_int(c.at("a"));
    p.h = as_small_int(c.at("h"));
    const long long balanced = static_cast<long long>(p.a) * p.h + 1;
    if (!c.has("g") && balanced > 1'000'000) throw Error(c.path() + ".g", "a*h+1 is too large");
    p.g = c.has("g") ? as_small_int(c.at("g")) : static_cast<int>(balanced);
    if (auto f = c.find("routing")) p.routing = f->as_string();
    p.terminal = link_params(c, "", nullptr);
    p.local = link_params(c, "local_", &p.terminal);
    p.global = link_params(c, "global_", &p.terminal);
    p.switch_latency = opt_seconds(c, "switch_latency");
    return build_dragonfly(p);
  }
  if (kind == "torus") {
    c.allow_only(with_common({"dims", "wrap"}));
    TorusParams p;
    p.dims = parse_dims(c.at("dims"));
    if (auto f = c.find("wrap")) p.wrap = f->as_bool();
    p.link = link_params(c, "", nullptr);
    return build_torus(p);
  }
  if (kind == "wafer-mesh") {
    c.allow_only(with_common({"dims", "sram", "wafers", "inter_wafer_bandwidth",
                              "inter_wafer_latency", "inter_wafer_energy"}));
    WaferMeshParams p;
    const auto dims = parse_dims(c.at("dims"));
    if (dims.size() != 2) throw Error(c.path() + ".dims", "a wafer mesh has two dimensions, like 750x994");
    p.x = dims[0];
    p.y = dims[1];
    p.link = link_params(c, "", nullptr);
    if (auto f = c.find("sram")) p.sram = f->as<Bytes>();
    if (auto f = c.find("wafers")) p.wafers = as_positive_int(*f);
    if (p.wafers > 1) p.inter_wafer = link_params(c, "inter_wafer_", nullptr);
    return build_wafer_mesh(p);
  }
  throw Error(c.path().empty() ? "topology" : c.path() + ".topology",
              "unknown topology " + quote_value(kind) + did_you_mean(kind, topology_kinds()) +
                  "; one of " + join(topology_kinds(), ", "));
}

namespace {
Topology build_healthy_cluster(const ClusterSpec& k, Part part) {
  const std::string path = "cluster.scale_out";
  const std::string kind = k.scale_out ? k.scale_out->topology : "clos";
  if (k.gpu.cores > 0) {
    // A wafer-scale cluster: every "GPU" is a wafer of cores on a 2-D mesh.
    if (!k.scale_out || kind != "wafer-mesh") {
      throw Error(path + ".topology", "a wafer-scale GPU (" + quote_value(k.gpu.name) + ") needs topology: wafer-mesh");
    }
    const Config& c = k.scale_out->params;
    c.allow_only({"topology", "preset", "description", "notes", "bandwidth", "latency", "energy",
                  "efficiency", "dims", "switch_latency"});
    WaferMeshParams p;
    const auto dims = parse_dims(c.at("dims"));
    if (dims.size() != 2) throw Error(c.path() + ".dims", "a wafer mesh has two dimensions, like 750x994");
    if (static_cast<long long>(dims[0]) * dims[1] > k.gpu.cores) {
      throw Error(c.path() + ".dims", "has more cores than the wafer's " + std::to_string(k.gpu.cores));
    }
    p.x = dims[0];
    p.y = dims[1];
    p.wafers = static_cast<int>(k.gpus());
    p.link = {k.scale_up.payload(), k.scale_up.latency, k.scale_up.energy};
    p.inter_wafer = {k.scale_out->link.payload(), k.scale_out->link.latency, k.scale_out->link.energy};
    p.sram = k.gpu.sram_per_core;
    return build_wafer_mesh(p);
  }
  if (kind == "fat-tree" || kind == "dragonfly" || kind == "torus") {
    // The scale-out fabric's endpoints are the GPUs' NICs; the scale-up domains sit on top.
    const Config& c = k.scale_out->params;
    YAML::Node y(YAML::NodeType::Map);
    for (const auto& key : c.keys()) {
      // Clos-only keys of a preset (nodes_per_leaf, spines) do not apply to other kinds: a
      // sweep over cluster.scale_out.topology starts from a Clos preset.
      if (key == "preset" || key == "description" || key == "notes" || key == "efficiency" ||
          key == "flows_per_connection" || key == "nccl_channels" || key == "nccl_channels_per_gpu" || other_kinds_key(kind, key) ||
          (kind == "torus" && key == "switch_latency")) {  // a torus has no switches
        continue;
      }
      y[key] = YAML::Clone(c.at(key).yaml());
    }
    // The fabric's links carry the scale-out link's payload rate (bandwidth x efficiency).
    char payload[64];
    std::snprintf(payload, sizeof payload, "%.17g B/s", k.scale_out->link.payload().value());
    y["bandwidth"] = std::string(payload);
    const long long gpus = k.gpus();
    if (kind == "fat-tree" && !y["endpoints"]) y["endpoints"] = std::to_string(gpus);
    const Config fc(y, c.path());
    Topology fabric = build_from_config(fc);
    if (static_cast<long long>(fabric.num_endpoints()) != gpus) {
      throw Error(c.path(), "this " + kind + " has " + std::to_string(fabric.num_endpoints()) +
                                " endpoints but the cluster has " + std::to_string(gpus) + " GPUs");
    }
    if (k.gpus_per_node > 1 && k.scale_up.bandwidth.value() <= 0.0) {
      throw Error("cluster.scale_up", "missing: GPUs of a node need a scale-up link");
    }
    return with_scale_up(std::move(fabric), k.scale_up_domain, {k.scale_up.payload(), k.scale_up.latency, k.scale_up.energy},
                         k.scale_up.switch_reduction);
  }
  if (kind != "clos") {
    throw Error(path + ".topology", quote_value(kind) +
                                        " is not a GPU-cluster fabric; clusters use 'clos' "
                                        "(rail-optimized), 'fat-tree', 'dragonfly', 'torus' or 'wafer-mesh'; try "
                                        "'wallsim topo " + kind + ":...' for the bare fabric");
  }
  ClosParams p;
  p.nodes = k.nodes;
  p.gpus_per_node = k.gpus_per_node;
  p.domain = k.scale_up_domain;
  p.scale_up = {k.scale_up.payload(), k.scale_up.latency, k.scale_up.energy};
  p.switch_reduction = k.scale_up.switch_reduction;
  if (k.scale_out) {
    const Config& c = k.scale_out->params;
    std::vector<std::string> allowed = {"topology", "preset",     "description", "notes",         "bandwidth", "latency",
                                        "energy",   "efficiency", "switch_latency", "nodes_per_leaf", "spines",
                                        "flows_per_connection", "nccl_channels", "nccl_channels_per_gpu"};
    for (const auto& key : c.keys()) {
      if (other_kinds_key("clos", key)) allowed.push_back(key);
    }
    c.allow_only(allowed);
    p.scale_out = {k.scale_out->link.payload(), k.scale_out->link.latency, k.scale_out->link.energy};
    p.switch_latency = k.scale_out->switch_latency;
    // Zero is no count here (the builder's 0 means "not given"): these are positive.
    if (auto f = c.find("nodes_per_leaf")) p.nodes_per_leaf = as_positive_int(*f);
    if (auto f = c.find("spines")) p.spines = as_positive_int(*f);
  }
  if (k.storage) {
    p.storage = k.storage->bandwidth;
    p.storage_nodes = k.storage->nodes;
  }
  try {
    return build_clos(p, part);
  } catch (const Error& e) {
    // Name the scenario key rather than the spec-string key.
    std::string where = e.where();
    if (where.rfind("clos.", 0) == 0) {
      const std::string key = where.substr(5);
      where = (key == "domain" ? "cluster.scale_up." : key == "nodes" || key == "gpus_per_node"
                                                           ? "cluster."
                                                           : path + ".") + key;
    }
    throw Error(where, e.message());
  }
}
}  // namespace

Topology build_cluster(const ClusterSpec& k, Part part) {
  Topology t = build_healthy_cluster(k, part);
  if (k.scale_out) t.set_flows_per_connection(static_cast<std::uint32_t>(k.scale_out->flows_per_connection));
  for (const auto& d : k.degraded_links) {
    const auto dash = d.link.find('-');
    const auto from = dash == std::string::npos ? std::nullopt : t.find_node(d.link.substr(0, dash));
    const auto to = dash == std::string::npos ? std::nullopt : t.find_node(d.link.substr(dash + 1));
    const auto l = from && to ? t.find_link(*from, *to) : std::nullopt;
    if (!l) {
      throw Error(d.path + ".link", "no link " + quote_value(d.link) + " in this cluster (FROM-TO by node names, e.g. " +
                                         t.node_name(t.link_source(0)) + "-" + t.node_name(t.link_target(0)) +
                                         "; `wallsim topo SCENARIO --links FILE` lists them)");
    }
    t.degrade_link(*l, d.factor);
  }
  return t;
}

Topology build_topology_argument(const std::string& arg, const std::vector<std::string>& overrides,
                                 const Presets& presets) {
  const bool is_file = arg.ends_with(".yaml") || arg.ends_with(".yml") ||
                       (arg.find(':') == std::string::npos && std::filesystem::exists(arg));
  if (is_file) {
    if (!std::filesystem::exists(arg)) throw Error(arg, "no such scenario file");
    Scenario s = load_scenario(arg, overrides, presets);
    return build_cluster(s.cluster);
  }
  YAML::Node root = spec_to_yaml(arg);
  const std::string kind = root["topology"].as<std::string>();
  for (const auto& o : overrides) apply_override(root, o, nullptr);
  return build_from_config(Config(root, kind));
}

Topology build_step_fabric(const ClusterSpec& c, Part part) {
  if (c.gpu.cores <= 0) return build_cluster(c, part);
  if (!c.scale_out) throw Error("cluster.scale_out", "a wafer-scale cluster needs its wafers' I/O link");
  SwitchParams p;
  p.n = static_cast<int>(c.gpus());
  p.link = {c.scale_out->link.payload(), c.scale_out->link.latency, c.scale_out->link.energy};
  p.switch_latency = c.scale_out->switch_latency;
  return build_switch(p);
}

}  // namespace wallsim::topology
