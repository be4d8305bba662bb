// Typed, path-aware access to a YAML tree. Every read names the config path of the value, so a
// bad value becomes `cluster.scale_up.bandwidth: '450 GB' is a size, not a bandwidth (...)`.
// A scalar may also be written as `{value: X, source: "..."}`: presets cite a source beside
// every number, and the reader takes the value.
#pragma once

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/units.hpp"

namespace wallsim {

/// A YAML node plus the dotted config path that leads to it.
class Config {
 public:
  Config(YAML::Node node, std::string path);

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const YAML::Node& yaml() const { return node_; }
  [[nodiscard]] bool is_map() const;
  [[nodiscard]] bool is_sequence() const;
  /// True for a plain scalar and for a `{value: ..., source: ...}` mapping.
  [[nodiscard]] bool is_scalar() const;

  [[nodiscard]] bool has(std::string_view key) const;
  /// The child at `key`; a missing key is an Error naming `path.key`.
  [[nodiscard]] Config at(std::string_view key) const;
  [[nodiscard]] std::optional<Config> find(std::string_view key) const;
  /// Elements of a sequence, with paths `path[i]`.
  [[nodiscard]] std::vector<Config> elements() const;
  /// Keys of a mapping, in file order.
  [[nodiscard]] std::vector<std::string> keys() const;
  /// Errors on a key not in `allowed`, with a "did you mean" suggestion.
  void allow_only(std::initializer_list<std::string_view> allowed) const;
  void allow_only(const std::vector<std::string>& allowed) const;

  [[nodiscard]] std::string as_string() const;
  /// The scalar's text, from a plain scalar or a `{value: ..., source: ...}` mapping.
  [[nodiscard]] std::string scalar_text() const;
  [[nodiscard]] double as_double() const;
  /// A whole number; "16K" and "1.5T" style multipliers are accepted.
  [[nodiscard]] long long as_int() const;
  /// A whole number in [min, max]; an Error naming the key otherwise (`why` says where the
  /// maximum comes from, for the message).
  [[nodiscard]] long long as_int(long long min, long long max, std::string_view why) const;
  [[nodiscard]] double as_count() const;
  [[nodiscard]] bool as_bool() const;
  /// The value in unit type Q: as<Bandwidth>() reads "400 Gb/s".
  template <class Q>
  [[nodiscard]] Q as() const {
    return parse<Q>(scalar_text(), path_);
  }
  /// The `source:` written beside a value, or "" when none.
  [[nodiscard]] std::string source() const;

 private:
  YAML::Node node_;
  std::string path_;
};

/// The text of a mapping key; an Error naming `path` when the key is not a plain scalar.
std::string key_text(const YAML::Node& key, const std::string& path);

/// Parses YAML text; a syntax error is an Error naming `origin` and the line.
YAML::Node parse_yaml(const std::string& text, const std::string& origin);

/// Deep merge: keys of `over` replace or extend those of `base`; mappings merge recursively
/// (a `{value:, source:}` number is replaced whole); a preset named by a scalar and overridden
/// by a mapping becomes that mapping with `preset:` the name. `path` names errors.
YAML::Node merge_yaml(const YAML::Node& base, const YAML::Node& over, const std::string& path);

/// Applies `--set KEY=VALUE`: KEY is a dotted path, VALUE is YAML (a scalar or a flow mapping).
/// When a path steps into a scalar, `expand(path, scalar)` may return the mapping it names
/// (a preset), which replaces it; otherwise the step is an Error naming the key.
using PresetExpander =
    std::function<std::optional<YAML::Node>(const std::string& path, const std::string& scalar)>;
void apply_override(YAML::Node& root, std::string_view assignment, PresetExpander expand);

/// A whole number from 0 to 2e9 (counts and sizes); an Error naming the key otherwise.
int as_small_int(const Config& c);
/// A whole number from 1 to `max` (at most 2e9): counts where zero means nothing.
int as_positive_int(const Config& c, long long max = 2'000'000'000, std::string_view why = "");
/// Dimensions written "AxBxC", each at least 1 (torus and mesh dims, GEMM tiles).
std::vector<int> parse_dims(const Config& c);

}  // namespace wallsim
