#include "core/config.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <unordered_map>

#include <yaml-cpp/depthguard.h>

#include "core/error.hpp"
#include "core/limits.hpp"
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
  // A number with its source has those two keys: another (a typo, or `--set x.vaule=` merged
  // into a preset's number) would be dropped without a word.
  if (is_value_with_source(node_)) allow_only({"value", "source"});
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
    throw Error(path_, quote_value(s) + " is not a number");
  }
}

namespace {

/// A whole number from `s`; nullopt when it is past a long long (the caller names the limit).
/// Plain digits are read exactly (a double would round 2^53 + 1); "16K", "1.5T" and "1e6" go
/// through the count parser.
std::optional<long long> read_whole(const std::string& s, const std::string& path) {
  std::string_view digits = trim_blanks(s);
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos) {
    long long v = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec == std::errc::result_out_of_range) return std::nullopt;
    if (ec == std::errc() && ptr == digits.data() + digits.size()) return v;
  }
  const double v = parse_count(s, path);
  if (v != std::floor(v)) throw Error(path, quote_value(s) + " is not a whole number");
  if (v >= 9.2e18) return std::nullopt;
  return static_cast<long long>(v);
}

}  // namespace

long long Config::as_int() const {
  const std::string s = scalar_text();
  const auto v = read_whole(s, path_);
  if (!v) limits::out_of_range(path_, quote_value(s), std::numeric_limits<long long>::max(), "");
  return *v;
}

long long Config::as_int(long long min, long long max, std::string_view why) const {
  const std::string s = scalar_text();
  const auto v = read_whole(s, path_);
  if (!v || *v > max) limits::out_of_range(path_, quote_value(s), max, why);
  if (*v < min) {
    throw Error(path_, "must be " + (min == 1 ? std::string("a positive whole number")
                                              : "at least " + limits::with_commas(min)) +
                           ", not " + quote_value(s));
  }
  return *v;
}

double Config::as_count() const { return parse_count(scalar_text(), path_); }

bool Config::as_bool() const {
  const std::string s = scalar_text();
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  throw Error(path_, quote_value(s) + " is not true or false");
}



std::string Config::source() const {
  if (is_value_with_source(node_) && node_["source"]) return node_["source"].as<std::string>();
  return {};
}

namespace {

/// Where a node was read: "origin:line", or origin when the node has no position.
std::string at_line(const std::string& origin, const YAML::Mark& m) {
  return m.is_null() || m.line < 0 ? origin : origin + ":" + std::to_string(m.line + 1);
}

/// Walks every mapping of a parsed tree: a key given twice is an error (yaml-cpp keeps both
/// pairs and lookups find the first, so `model: a` then `model: b` would silently be a), as is
/// nesting deeper than kMaxYamlDepth or more than kMaxYamlNodes nodes (aliases of aliases).
class YamlChecker {
 public:
  explicit YamlChecker(const std::string& origin) : origin_(origin) {}
  void check(const YAML::Node& n, const std::string& path, int depth) {
    if (++visited_ > kMaxYamlNodes) {
      throw Error(at_line(origin_, n.Mark()), "more than " + limits::with_commas(kMaxYamlNodes) +
                                                  " YAML nodes (aliases expanding to aliases?)");
    }
    if (depth > kMaxYamlDepth) {
      throw Error(at_line(origin_, n.Mark()), "nesting too deep (more than " + std::to_string(kMaxYamlDepth) +
                                                  " levels of lists and mappings)");
    }
    if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i) check(n[i], path + "[" + std::to_string(i) + "]", depth + 1);
    } else if (n.IsMap()) {
      std::unordered_map<std::string, YAML::Mark> seen;
      for (const auto& kv : n) {
        if (kv.first.IsScalar()) {
          const std::string key = kv.first.Scalar();
          const std::string where = path.empty() ? key : path + "." + key;
          if (auto it = seen.find(key); it != seen.end()) {
            const YAML::Mark mark = it->second;
            const YAML::Mark second = kv.first.Mark();
            const bool lines = !mark.is_null() && !second.is_null() && mark.line != second.line;
            throw Error(at_line(origin_, second),
                        quote_value(where) + " is given twice" +
                            (lines ? " (lines " + std::to_string(mark.line + 1) + " and " +
                                         std::to_string(second.line + 1) + ")"
                                   : "") +
                            "; YAML would keep only the first");
          }
          seen.emplace(key, kv.first.Mark());
          check(kv.second, where, depth + 1);
        } else {
          check(kv.first, path, depth + 1);
          check(kv.second, path, depth + 1);
        }
      }
    }
  }

 private:
  static constexpr int kMaxYamlDepth = 64;
  static constexpr long long kMaxYamlNodes = 1'000'000;
  const std::string& origin_;
  long long visited_ = 0;
};

}  // namespace

YAML::Node parse_yaml(const std::string& text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own guard (its message is "bad file"): say what it means.
    throw Error(at_line(origin, e.mark), "nesting too deep (more than 64 levels of lists and mappings)");
  } catch (const YAML::Exception& e) {
    throw Error(at_line(origin, e.mark), "invalid YAML: " + e.msg);
  }
  YamlChecker(origin).check(root, "", 1);  // the top level is level 1
  return root;
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
    throw Error("--set", quote_value(assignment) + " is not KEY=VALUE");
  }
  const std::string key(trim_blanks(assignment.substr(0, eq)));
  const std::string value(trim_blanks(assignment.substr(eq + 1)));
  const auto parts = split(key, '.');
  for (const auto& p : parts) {
    if (p.empty()) throw Error("--set", quote_value(key) + " has an empty path component");
  }
  if (value.empty()) {
    throw Error(key, "empty value in --set " + quote_value(std::string(assignment)) + " (give a value; null removes the key)");
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
        throw Error(key, quote_value(path) + " is the value " + quote_value(next.Scalar()) + ", not a mapping");
      }
      chain.back()[parts[i]] = *expanded;
      next.reset(chain.back()[parts[i]]);
    } else if (!next.IsMap()) {
      throw Error(key, quote_value(path) + " is not a mapping");
    }
    chain.push_back(next);
  }
  chain.back()[parts.back()] = parsed;
}

int as_small_int(const Config& c) {
  return static_cast<int>(c.as_int(0, 2'000'000'000, ""));
}

int as_positive_int(const Config& c, long long max, std::string_view why) {
  return static_cast<int>(c.as_int(1, std::min<long long>(max, 2'000'000'000), why));
}

std::vector<int> parse_dims(const Config& c) {
  std::vector<int> dims;
  for (const auto& part : split(c.as_string(), 'x')) {
    Config one(YAML::Node(part), c.path());
    const int d = as_small_int(one);
    if (d < 1) throw Error(c.path(), "every dimension must be at least 1 in " + quote_value(c.as_string()));
    dims.push_back(d);
  }
  // A grid is built point by point: past about a million points it no longer fits in memory.
  constexpr double kMaxPoints = 1 << 20;
  double points = 1.0;
  for (int d : dims) points *= d;
  if (points > kMaxPoints) {
    throw Error(c.path(), quote_value(c.as_string()) + " has " + format_number(points, 4) +
                              " points; grids are limited to 1,048,576 (use a coarser grid)");
  }
  return dims;
}

}  // namespace wallsim
