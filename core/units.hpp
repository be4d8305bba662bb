// Strong unit types. Every quantity is held in its SI base unit (bytes, seconds, bytes/s,
// FLOP, FLOP/s, watts, joules, joules/bit, hertz) inside a type that only combines with the
// types it physically can: Bytes / Bandwidth is Seconds, Watts * Seconds is Joules, and so on.
// A raw double never crosses a module boundary carrying a unit; `.value()` unwraps at the edge.
#pragma once

#include <compare>
#include <string>
#include <string_view>

namespace wallsim {

/// A quantity of one dimension, stored in SI base units. Tag names the dimension.
template <class Tag>
class Quantity {
 public:
  constexpr Quantity() = default;
  /// Wraps a value already in the SI base unit of this dimension.
  static constexpr Quantity of(double si) { return Quantity(si); }
  /// The value in the SI base unit.
  [[nodiscard]] constexpr double value() const { return v_; }

  constexpr Quantity& operator+=(Quantity o) { v_ += o.v_; return *this; }
  constexpr Quantity& operator-=(Quantity o) { v_ -= o.v_; return *this; }
  constexpr Quantity& operator*=(double k) { v_ *= k; return *this; }
  constexpr Quantity& operator/=(double k) { v_ /= k; return *this; }
  friend constexpr Quantity operator+(Quantity a, Quantity b) { return Quantity(a.v_ + b.v_); }
  friend constexpr Quantity operator-(Quantity a, Quantity b) { return Quantity(a.v_ - b.v_); }
  friend constexpr Quantity operator-(Quantity a) { return Quantity(-a.v_); }
  friend constexpr Quantity operator*(Quantity a, double k) { return Quantity(a.v_ * k); }
  friend constexpr Quantity operator*(double k, Quantity a) { return Quantity(a.v_ * k); }
  friend constexpr Quantity operator/(Quantity a, double k) { return Quantity(a.v_ / k); }
  /// The ratio of two quantities of one dimension is a plain number.
  friend constexpr double operator/(Quantity a, Quantity b) { return a.v_ / b.v_; }
  friend constexpr auto operator<=>(Quantity, Quantity) = default;

 private:
  constexpr explicit Quantity(double v) : v_(v) {}
  double v_ = 0.0;
};

namespace dim {
struct Bytes {};
struct Seconds {};
struct Bandwidth {};
struct Flops {};
struct FlopRate {};
struct Watts {};
struct Joules {};
struct EnergyPerBit {};
struct Frequency {};
}  // namespace dim

using Bytes = Quantity<dim::Bytes>;                ///< bytes
using Seconds = Quantity<dim::Seconds>;            ///< seconds
using Bandwidth = Quantity<dim::Bandwidth>;        ///< bytes per second
using Flops = Quantity<dim::Flops>;                ///< floating-point operations
using FlopRate = Quantity<dim::FlopRate>;          ///< FLOP per second
using Watts = Quantity<dim::Watts>;                ///< watts
using Joules = Quantity<dim::Joules>;              ///< joules
using EnergyPerBit = Quantity<dim::EnergyPerBit>;  ///< joules per bit
using Frequency = Quantity<dim::Frequency>;        ///< hertz

// Typed arithmetic across dimensions.
constexpr Seconds operator/(Bytes b, Bandwidth r) { return Seconds::of(b.value() / r.value()); }
constexpr Bytes operator*(Bandwidth r, Seconds t) { return Bytes::of(r.value() * t.value()); }
constexpr Bytes operator*(Seconds t, Bandwidth r) { return r * t; }
constexpr Bandwidth operator/(Bytes b, Seconds t) { return Bandwidth::of(b.value() / t.value()); }
constexpr Seconds operator/(Flops f, FlopRate r) { return Seconds::of(f.value() / r.value()); }
constexpr Flops operator*(FlopRate r, Seconds t) { return Flops::of(r.value() * t.value()); }
constexpr FlopRate operator/(Flops f, Seconds t) { return FlopRate::of(f.value() / t.value()); }
constexpr Joules operator*(Watts p, Seconds t) { return Joules::of(p.value() * t.value()); }
constexpr Joules operator*(Seconds t, Watts p) { return p * t; }
constexpr Watts operator/(Joules e, Seconds t) { return Watts::of(e.value() / t.value()); }
constexpr Joules operator*(EnergyPerBit e, Bytes b) { return Joules::of(e.value() * 8.0 * b.value()); }
constexpr Joules operator*(Bytes b, EnergyPerBit e) { return e * b; }
constexpr double operator*(Frequency f, Seconds t) { return f.value() * t.value(); }

/// Named constructors for the common cases; `Bytes::of` etc. take SI base units.
namespace units {
constexpr Bytes bytes(double n) { return Bytes::of(n); }
constexpr Bytes kib(double n) { return Bytes::of(n * 1024.0); }
constexpr Bytes mib(double n) { return Bytes::of(n * 1024.0 * 1024.0); }
constexpr Bytes gib(double n) { return Bytes::of(n * 1024.0 * 1024.0 * 1024.0); }
constexpr Bytes gb(double n) { return Bytes::of(n * 1e9); }
constexpr Seconds seconds(double n) { return Seconds::of(n); }
constexpr Seconds minutes(double n) { return Seconds::of(n * 60.0); }
constexpr Seconds ms(double n) { return Seconds::of(n * 1e-3); }
constexpr Seconds us(double n) { return Seconds::of(n * 1e-6); }
constexpr Seconds ns(double n) { return Seconds::of(n * 1e-9); }
constexpr Bandwidth gbit_per_s(double n) { return Bandwidth::of(n * 1e9 / 8.0); }
constexpr Bandwidth gbyte_per_s(double n) { return Bandwidth::of(n * 1e9); }
constexpr FlopRate tflop_per_s(double n) { return FlopRate::of(n * 1e12); }
constexpr Watts watts(double n) { return Watts::of(n); }
constexpr EnergyPerBit pj_per_bit(double n) { return EnergyPerBit::of(n * 1e-12); }
}  // namespace units

/// The dimensions a unit string can carry (Count: a plain number with an optional K/M/B/T
/// multiplier, e.g. "1.5T" tokens or "70B" parameters).
enum class Dimension {
  kBytes, kSeconds, kBandwidth, kFlops, kFlopRate, kWatts, kJoules, kEnergyPerBit,
  kFrequency, kCount
};

/// A name for the dimension, as used in error messages ("a bandwidth").
std::string_view dimension_name(Dimension d);

/// Parses "400 Gb/s", "1.5 us", "80 GiB", ... into the SI base value of `want`.
/// Throws wallsim::Error naming `path` and quoting `text` when the text is not such a value.
/// `bare_ok`: a number with no unit is taken as the base unit (bytes, seconds, ...).
double parse_quantity(std::string_view text, Dimension want, std::string_view path,
                      bool bare_ok = false);

/// The Dimension a unit type carries.
template <class Q> struct DimensionOf;
template <> struct DimensionOf<Bytes> { static constexpr Dimension value = Dimension::kBytes; };
template <> struct DimensionOf<Seconds> { static constexpr Dimension value = Dimension::kSeconds; };
template <> struct DimensionOf<Bandwidth> { static constexpr Dimension value = Dimension::kBandwidth; };
template <> struct DimensionOf<Flops> { static constexpr Dimension value = Dimension::kFlops; };
template <> struct DimensionOf<FlopRate> { static constexpr Dimension value = Dimension::kFlopRate; };
template <> struct DimensionOf<Watts> { static constexpr Dimension value = Dimension::kWatts; };
template <> struct DimensionOf<Joules> { static constexpr Dimension value = Dimension::kJoules; };
template <> struct DimensionOf<EnergyPerBit> { static constexpr Dimension value = Dimension::kEnergyPerBit; };
template <> struct DimensionOf<Frequency> { static constexpr Dimension value = Dimension::kFrequency; };

/// parse<Bandwidth>("400 Gb/s", "cluster.scale_out.bandwidth"), and so on for every unit type.
template <class Q>
Q parse(std::string_view text, std::string_view path, bool bare_ok = false) {
  return Q::of(parse_quantity(text, DimensionOf<Q>::value, path, bare_ok));
}

/// A plain count with an optional K/M/B/T multiplier ("1.5T" tokens, "70B" parameters).
double parse_count(std::string_view text, std::string_view path);

/// Human-readable forms with 4 significant digits: "80 GiB", "50 GB/s", "1.5 us", ...
std::string to_string(Bytes b);
std::string to_string(Seconds t);
std::string to_string(Bandwidth r);
std::string to_string(Flops f);
std::string to_string(FlopRate r);
std::string to_string(Watts p);
std::string to_string(Joules e);
std::string to_string(EnergyPerBit e);
std::string to_string(Frequency f);

/// "%.4g" of a plain number, with trailing zeros dropped.
std::string format_number(double x, int significant = 4);

}  // namespace wallsim
