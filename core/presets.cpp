#include "core/presets.hpp"

#include <cstdlib>
#include <filesystem>
#include <set>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "core/text.hpp"

namespace wallsim {

std::string preset_kind_name(PresetKind k) {
  switch (k) {
    case PresetKind::kGpus: return "gpus";
    case PresetKind::kLinks: return "links";
    case PresetKind::kModels: return "models";
    case PresetKind::kClusters: return "clusters";
    case PresetKind::kFailures: return "failures";
  }
  return "?";
}

std::vector<PresetKind> all_preset_kinds() {
  return {PresetKind::kGpus, PresetKind::kLinks, PresetKind::kModels, PresetKind::kClusters,
          PresetKind::kFailures};
}

std::optional<PresetKind> preset_kind_from_name(const std::string& name) {
  for (auto k : all_preset_kinds()) {
    if (preset_kind_name(k) == name) return k;
  }
  return std::nullopt;
}

Presets::Presets(std::string data_dir) : dir_(std::move(data_dir)), cache_(5) {}

YAML::Node Presets::file(PresetKind kind) const {
  auto& slot = cache_[static_cast<size_t>(kind)];
  if (!slot) {
    const std::string path = dir_ + "/" + preset_kind_name(kind) + ".yaml";
    if (!std::filesystem::exists(path)) {
      throw Error(path, "preset file not found (set WALLSIM_DATA to wallsim's data/ directory)");
    }
    YAML::Node root = parse_yaml(read_text_file(path), path);
    if (!root["presets"] || !root["presets"].IsMap()) {
      throw Error(path, "has no 'presets:' mapping");
    }
    slot = root;
  }
  return *slot;
}

bool Presets::contains(PresetKind kind, const std::string& name) const {
  return static_cast<bool>(file(kind)["presets"][name]);
}

YAML::Node Presets::get(PresetKind kind, const std::string& name, const std::string& path) const {
  YAML::Node presets = file(kind)["presets"];
  YAML::Node found = presets[name];
  if (!found) {
    std::vector<std::string> names;
    for (const auto& kv : presets) names.push_back(kv.first.as<std::string>());
    throw Error(path, "unknown " + preset_kind_name(kind) + " preset " + quote_value(name) +
                          did_you_mean(name, names) + "; see 'wallsim presets " +
                          preset_kind_name(kind) + "'");
  }
  return YAML::Clone(found);
}

namespace {
void collect_sources(const YAML::Node& n, std::set<std::string>& seen,
                     std::vector<std::string>& out) {
  if (n.IsMap()) {
    for (const auto& kv : n) {
      if (kv.first.as<std::string>() == "source" && kv.second.IsScalar()) {
        const std::string s = kv.second.Scalar();
        if (seen.insert(s).second) out.push_back(s);
      } else {
        collect_sources(kv.second, seen, out);
      }
    }
  } else if (n.IsSequence()) {
    for (const auto& e : n) collect_sources(e, seen, out);
  }
}

/// Every value below `n` in file order: {value, source} maps and plain scalars (lists written
/// as flow sequences); descriptions and notes are prose, not values.
void collect_fields(const YAML::Node& n, const std::string& prefix, std::vector<PresetField>& out) {
  for (const auto& kv : n) {
    const std::string key = kv.first.as<std::string>();
    if (prefix.empty() && (key == "description" || key == "notes")) continue;
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    const YAML::Node& v = kv.second;
    if (v.IsMap() && v["value"]) {
      YAML::Emitter e;
      e << YAML::Flow << v["value"];
      out.push_back({path, e.c_str(), v["source"] && v["source"].IsScalar() ? v["source"].Scalar() : std::string()});
    } else if (v.IsMap()) {
      collect_fields(v, path, out);
    } else {
      YAML::Emitter e;
      e << YAML::Flow << v;
      out.push_back({path, e.c_str(), ""});
    }
  }
}
}  // namespace

std::vector<PresetInfo> Presets::list(PresetKind kind) const {
  std::vector<PresetInfo> out;
  for (const auto& kv : file(kind)["presets"]) {
    PresetInfo info;
    info.name = kv.first.as<std::string>();
    if (kv.second["description"]) info.description = kv.second["description"].as<std::string>();
    std::set<std::string> seen;
    collect_sources(kv.second, seen, info.sources);
    if (kv.second.IsMap()) collect_fields(kv.second, "", info.fields);
    out.push_back(std::move(info));
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> Presets::references(PresetKind kind) const {
  std::vector<std::pair<std::string, std::string>> out;
  YAML::Node refs = file(kind)["references"];
  if (refs && refs.IsMap()) {
    for (const auto& kv : refs) {
      out.emplace_back(kv.first.as<std::string>(), kv.second.as<std::string>());
    }
  }
  return out;
}

std::string default_data_dir() {
  if (const char* env = std::getenv("WALLSIM_DATA"); env != nullptr && *env != '\0') return env;
  return WALLSIM_DATA_DIR;
}

}  // namespace wallsim
