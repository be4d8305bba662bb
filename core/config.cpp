#include "core/config.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/text.hpp"

namespace wallsim {
namespace {

bool is_value_with_source(const YAML::Node& n) {
  return n.IsMap() && n["value"] && n["value"].IsScalar();
}

std::string child_path(const std::string& base, std::string_view key) {
  return base.empty() ? std::string(key) : base + "." + std::string(key);
}

}  // namespace

std::string key_text(const YAML::Node& key, const std::string& path) {
  if (!key.IsScalar()) throw Error(path, "a key must be a plain name, not a list or mapping");
  return key.Scalar();
}

Config::Config(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {}

bool Config::is_map() const { return node_.IsMap() && !is_value_with_source(node_); }
bool Config::is_sequence() const { return node_.IsSequence(); }
bool Config::is_scalar() const { return node_.IsScalar() || is_value_with_source(node_); }

bool Config::has(std::string_view key) const {
  return node_.IsMap() && node_[std::string(key)].IsDefined() && !node_[std::string(key)].IsNull();
}

Config Config::at(std::string_view key) const {
  auto c = find(key);
  if (!c) throw Error(child_path(path_, key), "missing (required)");
  return *c;
}

std::optional<Config> Config::find(std::string_view key) const {
  if (!node_.IsMap()) {
    if (node_.IsDefined() && !node_.IsNull()) {
      throw Error(path_, "expected a mapping with key '" + std::string(key) + "'");
    }
    return std::nullopt;
  }
  YAML::Node child = node_[std::string(key)];
  if (!child.IsDefined() || child.IsNull()) return std::nullopt;
  return Config(child, child_path(path_, key));
}

std::vector<Config> Config::elements() const {
  if (!node_.IsSequence()) throw Error(path_, "expected a list");
  std::vector<Config> out;
  for (size_t i = 0; i < node_.size(); ++i) {
    out.emplace_back(node_[i], path_ + "[" + std::to_string(i) + "]");
  }
  return out;
}

std::vector<std::string> Config::keys() const {
  std::vector<std::string> out;
  if (!node_.IsMap()) return out;
  for (const auto& kv : node_) out.push_back(key_text(kv.first, path_));
  return out;
}

void Config::allow_only(std::initializer_list<std::string_view> allowed) const {
  allow_only(std::vector<std::string>(allowed.begin(), allowed.end()));
}

void Config::allow_only(const std::vector<std::string>& allowed) const {
  if (!node_.IsMap()) return;
  for (const auto& kv : node_) {
    const std::string key = key_text(kv.first, path_);
    bool ok = false;
    for (const auto& a : allowed) ok = ok || a == key;
    if (!ok) {
      throw Error(child_path(path_, key), "unknown key" + did_you_mean(key, allowed));
    }
  }
}

std::string Config::scalar_text() const {
  const YAML::Node& n = is_value_with_source(node_) ? node_["value"] : node_;
  if (!n.IsScalar()) throw Error(path_, "expected a single value");
  return n.Scalar();
}

std::string Config::as_string() const { return scalar_text(); }

double Config::as_double() const {
  const std::string s = scalar_text();
  try {
    size_t used = 0;
    const double v = std::stod(s, &used);
    if (used != s.size() || !std::isfinite(v)) throw std::invalid_argument(s);
    return v;
  } catch (const std::exception&) {
    throw Error(path_, "'" + s + "' is not a number");
  }
}

long long Config::as_int() const {
  const double v = parse_count(scalar_text(), path_);
  if (v != std::floor(v) || v > 9.0e18) {
    throw Error(path_, "'" + scalar_text() + "' is not a whole number");
  }
  return static_cast<long long>(v);
}

double Config::as_count() const { return parse_count(scalar_text(), path_); }

bool Config::as_bool() const {
  const std::string s = scalar_text();
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  throw Error(path_, "'" + s + "' is not true or false");
}



std::string Config::source() const {
  if (is_value_with_source(node_) && node_["source"]) return node_["source"].as<std::string>();
  return {};
}

YAML::Node parse_yaml(const std::string& text, const std::string& origin) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(origin + ":" + std::to_string(e.mark.line + 1), "invalid YAML: " + e.msg);
  }
}

YAML::Node merge_yaml(const YAML::Node& base, const YAML::Node& over, const std::string& path) {
  if (!base.IsMap() || !over.IsMap()) return YAML::Clone(over);
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : over) {
    const std::string key = key_text(kv.first, path);
    YAML::Node existing = out[key];
    if (existing && existing.IsMap() && kv.second.IsMap() && !kv.second["value"]) {
      out[key] = merge_yaml(existing, kv.second, path + "." + key);
    } else if (existing && existing.IsScalar() && kv.second.IsMap() && !kv.second["value"] &&
               !kv.second["preset"]) {
      // A preset named by name, given some keys of its own (`--set cluster.gpu.sms=100` on a
      // cluster preset whose gpu is `a100-sxm-80gb`): the keys override that preset.
      YAML::Node named = YAML::Clone(kv.second);
      named["preset"] = existing.Scalar();
      out[key] = named;
    } else {
      out[key] = YAML::Clone(kv.second);
    }
  }
  return out;
}

void apply_override(YAML::Node& root, std::string_view assignment, PresetExpander expand) {
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    throw Error("--set", "'" + std::string(assignment) + "' is not KEY=VALUE");
  }
  const std::string key(trim_blanks(assignment.substr(0, eq)));
  const std::string value(trim_blanks(assignment.substr(eq + 1)));
  const auto parts = split(key, '.');
  for (const auto& p : parts) {
    if (p.empty()) throw Error("--set", "'" + key + "' has an empty path component");
  }
  YAML::Node parsed = parse_yaml(value, "--set " + key);
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);

  // yaml-cpp nodes are handles and `a = b` assigns into the tree: rebind with reset() instead.
  std::vector<YAML::Node> chain{root};
  std::string path;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    path = path.empty() ? parts[i] : path + "." + parts[i];
    YAML::Node next = chain.back()[parts[i]];
    if (!next.IsDefined() || next.IsNull()) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next.reset(chain.back()[parts[i]]);
    } else if (next.IsScalar()) {
      std::optional<YAML::Node> expanded = expand ? expand(path, next.Scalar()) : std::nullopt;
      if (!expanded) {
        throw Error(key, "'" + path + "' is the value '" + next.Scalar() + "', not a mapping");
      }
      chain.back()[parts[i]] = *expanded;
      next.reset(chain.back()[parts[i]]);
    } else if (!next.IsMap()) {
      throw Error(key, "'" + path + "' is not a mapping");
    }
    chain.push_back(next);
  }
  chain.back()[parts.back()] = parsed;
}

int as_small_int(const Config& c) {
  const long long v = c.as_int();
  if (v < 0 || v > 2'000'000'000) throw Error(c.path(), "'" + c.as_string() + "' is out of range");
  return static_cast<int>(v);
}

std::vector<int> parse_dims(const Config& c) {
  std::vector<int> dims;
  for (const auto& part : split(c.as_string(), 'x')) {
    Config one(YAML::Node(part), c.path());
    const int d = as_small_int(one);
    if (d < 1) throw Error(c.path(), "every dimension must be at least 1 in '" + c.as_string() + "'");
    dims.push_back(d);
  }
  // A grid is built point by point: past about a million points it no longer fits in memory.
  constexpr double kMaxPoints = 1 << 20;
  double points = 1.0;
  for (int d : dims) points *= d;
  if (points > kMaxPoints) {
    throw Error(c.path(), "'" + c.as_string() + "' has " + format_number(points, 4) +
                              " points; grids are limited to 1,048,576 (use a coarser grid)");
  }
  return dims;
}

}  // namespace wallsim
