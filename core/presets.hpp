// Presets: named GPUs, links, models, clusters and failure rates in data/*.yaml, each number
// with its source beside it. A preset file has `references:` (short id -> citation) and
// `presets:` (name -> mapping); scenarios name a preset or give the mapping inline.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace wallsim {

enum class PresetKind { kGpus, kLinks, kModels, kClusters, kFailures };

/// "gpus", "links", ... (the file stem in data/).
std::string preset_kind_name(PresetKind k);
/// The kind named by `name`; nullopt when unknown.
std::optional<PresetKind> preset_kind_from_name(const std::string& name);
/// All kinds in listing order.
std::vector<PresetKind> all_preset_kinds();

/// One value of a preset: its key (dotted below the preset), the value as written, and the
/// source beside it (empty for a choice such as a topology or a preset name).
struct PresetField {
  std::string key, value, source;
};

/// One preset as listed by `wallsim presets`.
struct PresetInfo {
  std::string name;
  std::string description;
  std::vector<std::string> sources;  ///< distinct `source:` texts of its numbers
  std::vector<PresetField> fields;   ///< every value, in file order
};

/// The preset files of one data directory, loaded on first use of each kind.
class Presets {
 public:
  /// `data_dir` holds gpus.yaml, links.yaml, ...
  explicit Presets(std::string data_dir);

  /// The mapping of preset `name`; an Error naming `path` (with a suggestion) when unknown.
  [[nodiscard]] YAML::Node get(PresetKind kind, const std::string& name,
                               const std::string& path) const;
  [[nodiscard]] bool contains(PresetKind kind, const std::string& name) const;
  [[nodiscard]] std::vector<PresetInfo> list(PresetKind kind) const;
  /// The references table of a kind's file (id -> citation).
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> references(PresetKind kind) const;
  [[nodiscard]] const std::string& data_dir() const { return dir_; }

 private:
  [[nodiscard]] YAML::Node file(PresetKind kind) const;
  std::string dir_;
  mutable std::vector<std::optional<YAML::Node>> cache_;
};

/// $WALLSIM_DATA when set, else the data/ directory of the source tree wallsim was built from.
std::string default_data_dir();

}  // namespace wallsim
