#include "core/units.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "core/error.hpp"
#include "core/text.hpp"

namespace wallsim {
namespace {

struct UnitDef {
  Dimension dim;
  double factor;  // SI base units per one of this unit
};

struct Prefix {
  std::string_view sym;
  double factor;
};

constexpr std::array<Prefix, 8> kSiUp = {{{"", 1.0}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6},
                                          {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18}}};
constexpr std::array<Prefix, 6> kBinary = {{{"Ki", 1024.0}, {"Mi", 1048576.0},
                                            {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
                                            {"Pi", 1125899906842624.0},
                                            {"Ei", 1152921504606846976.0}}};
constexpr std::array<Prefix, 7> kSiDown = {{{"f", 1e-15}, {"p", 1e-12}, {"n", 1e-9},
                                            {"u", 1e-6}, {"\xC2\xB5", 1e-6}, {"m", 1e-3},
                                            {"", 1.0}}};

using Table = std::unordered_map<std::string, UnitDef>;

void add(Table& t, const std::string& sym, Dimension d, double f) { t.emplace(sym, UnitDef{d, f}); }

Table build_table() {
  Table t;
  auto byte_prefixes = [&](auto&& fn) {
    for (const auto& p : kSiUp) fn(std::string(p.sym), p.factor);
    for (const auto& p : kBinary) fn(std::string(p.sym), p.factor);
  };
  byte_prefixes([&](const std::string& p, double f) {
    for (const char* b : {"B", "byte", "bytes"}) add(t, p + b, Dimension::kBytes, f);
    for (const char* b : {"b", "bit", "bits"}) add(t, p + b, Dimension::kBytes, f / 8.0);
    for (const char* b : {"B/s", "Bps", "byte/s"}) add(t, p + b, Dimension::kBandwidth, f);
    for (const char* b : {"b/s", "bps", "bit/s"}) add(t, p + b, Dimension::kBandwidth, f / 8.0);
  });
  for (const auto& p : kSiUp) {
    if (p.sym == "K") continue;
    std::string s(p.sym);
    add(t, s + "FLOP", Dimension::kFlops, p.factor);
    add(t, s + "FLOP/s", Dimension::kFlopRate, p.factor);
    add(t, s + "FLOPS", Dimension::kFlopRate, p.factor);
    add(t, s + "W", Dimension::kWatts, p.factor);
    add(t, s + "J", Dimension::kJoules, p.factor);
    add(t, s + "Wh", Dimension::kJoules, p.factor * 3600.0);
    add(t, s + "Hz", Dimension::kFrequency, p.factor);
  }
  for (const auto& p : kSiDown) {
    std::string s(p.sym);
    add(t, s + "s", Dimension::kSeconds, p.factor);
    add(t, s + "W", Dimension::kWatts, p.factor);
    add(t, s + "J", Dimension::kJoules, p.factor);
    add(t, s + "J/bit", Dimension::kEnergyPerBit, p.factor);
    add(t, s + "J/b", Dimension::kEnergyPerBit, p.factor);
    add(t, s + "J/B", Dimension::kEnergyPerBit, p.factor / 8.0);
    add(t, s + "J/byte", Dimension::kEnergyPerBit, p.factor / 8.0);
  }
  add(t, "sec", Dimension::kSeconds, 1.0);
  add(t, "min", Dimension::kSeconds, 60.0);
  add(t, "h", Dimension::kSeconds, 3600.0);
  add(t, "hours", Dimension::kSeconds, 3600.0);
  add(t, "d", Dimension::kSeconds, 86400.0);
  add(t, "days", Dimension::kSeconds, 86400.0);
  return t;
}

const Table& unit_table() {
  static const Table table = build_table();
  return table;
}

std::string_view examples(Dimension d) {
  switch (d) {
    case Dimension::kBytes: return "e.g. '80 GiB', '512 MB' or '8 B'";
    case Dimension::kSeconds: return "e.g. '1.5 us', '20 ms' or '3 h'";
    case Dimension::kBandwidth: return "e.g. '400 Gb/s' (bits) or '50 GB/s' (bytes)";
    case Dimension::kFlops: return "e.g. '6 PFLOP'";
    case Dimension::kFlopRate: return "e.g. '989 TFLOP/s'";
    case Dimension::kWatts: return "e.g. '700 W' or '1.2 kW'";
    case Dimension::kJoules: return "e.g. '5 J' or '2 kWh'";
    case Dimension::kEnergyPerBit: return "e.g. '10 pJ/bit'";
    case Dimension::kFrequency: return "e.g. '1.98 GHz'";
    case Dimension::kCount: return "e.g. '1024', '70B' or '1.5T'";
  }
  return "";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

[[noreturn]] void fail(std::string_view path, std::string msg) {
  throw Error(std::string(path), std::move(msg));
}

}  // namespace

std::string_view dimension_name(Dimension d) {
  switch (d) {
    case Dimension::kBytes: return "a size";
    case Dimension::kSeconds: return "a time";
    case Dimension::kBandwidth: return "a bandwidth";
    case Dimension::kFlops: return "a FLOP count";
    case Dimension::kFlopRate: return "a FLOP rate";
    case Dimension::kWatts: return "a power";
    case Dimension::kJoules: return "an energy";
    case Dimension::kEnergyPerBit: return "an energy per bit";
    case Dimension::kFrequency: return "a frequency";
    case Dimension::kCount: return "a count";
  }
  return "a value";
}

double parse_quantity(std::string_view text, Dimension want, std::string_view path,
                      bool bare_ok) {
  const std::string q = quote_value(text);
  std::string_view s = trim(text);
  if (s.empty()) fail(path, "empty value, expected " + std::string(dimension_name(want)) + " (" +
                                std::string(examples(want)) + ")");
  double number = 0.0;
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  if (*begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || !std::isfinite(number)) {
    fail(path, q + " is not " + std::string(dimension_name(want)) + " (" +
                   std::string(examples(want)) + ")");
  }
  if (number < 0.0) fail(path, q + " must not be negative");
  std::string_view unit = trim(std::string_view(ptr, static_cast<size_t>(end - ptr)));

  if (want == Dimension::kCount) {
    static const std::unordered_map<std::string_view, double> mult = {
        {"", 1.0}, {"K", 1e3}, {"k", 1e3}, {"M", 1e6}, {"B", 1e9}, {"G", 1e9}, {"T", 1e12},
        {"P", 1e15}};
    auto it = mult.find(unit);
    if (it == mult.end()) {
      fail(path, "unknown multiplier " + quote_value(unit) + " in " + q + " (" +
                     std::string(examples(want)) + ")");
    }
    return number * it->second;
  }
  if (unit.empty()) {
    if (bare_ok) return number;
    fail(path, q + " has no unit; write " + std::string(dimension_name(want)) + " with its unit, " +
                   std::string(examples(want)));
  }
  const auto& table = unit_table();
  auto it = table.find(std::string(unit));
  if (it == table.end()) {
    fail(path, "unknown unit " + quote_value(unit) + " in " + q + " (" +
                   std::string(dimension_name(want)) + ": " + std::string(examples(want)) + ")");
  }
  if (it->second.dim != want) {
    fail(path, q + " is " + std::string(dimension_name(it->second.dim)) + ", not " +
                   std::string(dimension_name(want)) + " (" + std::string(examples(want)) + ")");
  }
  return number * it->second.factor;
}

double parse_count(std::string_view t, std::string_view p) {
  return parse_quantity(t, Dimension::kCount, p);
}

std::string format_number(double x, int significant) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", significant, x);
  return buf;
}

namespace {
struct Scale {
  double factor;
  std::string_view suffix;
};

template <size_t N>
std::string scaled(double v, const std::array<Scale, N>& scales) {
  const double a = std::fabs(v);
  if (a == 0.0) {  // zero in the base unit ("0 W", not "0 mW")
    for (const auto& s : scales) {
      if (s.factor == 1.0) return "0 " + std::string(s.suffix);
    }
  }
  const Scale* pick = &scales.front();
  for (const auto& s : scales) {
    if (a >= s.factor * 0.9995) pick = &s;
  }
  return format_number(v / pick->factor) + " " + std::string(pick->suffix);
}
}  // namespace

std::string to_string(Bytes b) {
  static constexpr std::array<Scale, 6> s = {{{1.0, "B"}, {1024.0, "KiB"}, {1048576.0, "MiB"},
                                              {1073741824.0, "GiB"}, {1099511627776.0, "TiB"},
                                              {1125899906842624.0, "PiB"}}};
  return scaled(b.value(), s);
}
std::string to_string(Seconds t) {
  static constexpr std::array<Scale, 6> s = {
      {{1e-12, "ps"}, {1e-9, "ns"}, {1e-6, "us"}, {1e-3, "ms"}, {1.0, "s"}, {3600.0, "h"}}};
  return scaled(t.value(), s);
}
std::string to_string(Bandwidth r) {
  static constexpr std::array<Scale, 6> s = {{{1.0, "B/s"}, {1e3, "kB/s"}, {1e6, "MB/s"},
                                              {1e9, "GB/s"}, {1e12, "TB/s"}, {1e15, "PB/s"}}};
  return scaled(r.value(), s);
}
std::string to_string(Flops f) {
  static constexpr std::array<Scale, 7> s = {{{1.0, "FLOP"}, {1e3, "kFLOP"}, {1e6, "MFLOP"},
                                              {1e9, "GFLOP"}, {1e12, "TFLOP"}, {1e15, "PFLOP"},
                                              {1e18, "EFLOP"}}};
  return scaled(f.value(), s);
}
std::string to_string(FlopRate r) {
  static constexpr std::array<Scale, 7> s = {{{1.0, "FLOP/s"}, {1e3, "kFLOP/s"},
                                              {1e6, "MFLOP/s"}, {1e9, "GFLOP/s"},
                                              {1e12, "TFLOP/s"}, {1e15, "PFLOP/s"},
                                              {1e18, "EFLOP/s"}}};
  return scaled(r.value(), s);
}
std::string to_string(Watts p) {
  static constexpr std::array<Scale, 4> s = {{{1e-3, "mW"}, {1.0, "W"}, {1e3, "kW"}, {1e6, "MW"}}};
  return scaled(p.value(), s);
}
std::string to_string(Joules e) {
  static constexpr std::array<Scale, 7> s = {{{1e-12, "pJ"}, {1e-9, "nJ"}, {1e-6, "uJ"},
                                              {1e-3, "mJ"}, {1.0, "J"}, {1e3, "kJ"}, {1e6, "MJ"}}};
  return scaled(e.value(), s);
}
std::string to_string(EnergyPerBit e) {
  return format_number(e.value() * 1e12) + " pJ/bit";
}
std::string to_string(Frequency f) {
  static constexpr std::array<Scale, 4> s = {{{1.0, "Hz"}, {1e3, "kHz"}, {1e6, "MHz"}, {1e9, "GHz"}}};
  return scaled(f.value(), s);
}

}  // namespace wallsim
