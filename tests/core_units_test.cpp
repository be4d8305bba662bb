#include <catch2/catch.hpp>

#include <random>

#include "core/error.hpp"
#include "core/units.hpp"

using namespace wallsim;
using Catch::Matchers::Contains;

TEST_CASE("core::units parse the unit strings of SPEC.md", "[core]") {
  SECTION("bits and bytes are never confused") {
    // 400 Gb/s = 400e9 bits/s = 50e9 bytes/s.
    CHECK(parse<Bandwidth>("400 Gb/s", "x").value() == Approx(50e9));
    CHECK(parse<Bandwidth>("50 GB/s", "x").value() == Approx(50e9));
    CHECK(parse<Bandwidth>("400 Gbps", "x").value() == Approx(50e9));
    CHECK(parse<Bandwidth>("1.2 Tb/s", "x").value() == Approx(150e9));
    CHECK(parse<Bytes>("8 b", "x").value() == Approx(1.0));
    CHECK(parse<Bytes>("1 Gb", "x").value() == Approx(125e6));
  }
  SECTION("SI and binary prefixes") {
    CHECK(parse<Bytes>("80 GiB", "x").value() == Approx(80.0 * 1024 * 1024 * 1024));
    CHECK(parse<Bytes>("80 GB", "x").value() == Approx(80e9));
    CHECK(parse<Bytes>("48 kB", "x").value() == Approx(48e3));
    CHECK(parse<Bytes>("1 KiB", "x").value() == Approx(1024));
  }
  SECTION("times, FLOPs, power, energy, frequency") {
    CHECK(parse<Seconds>("1.5 us", "x").value() == Approx(1.5e-6));
    CHECK(parse<Seconds>("300 ns", "x").value() == Approx(3e-7));
    CHECK(parse<Seconds>("54 d", "x").value() == Approx(54 * 86400.0));
    CHECK(parse<FlopRate>("989 TFLOP/s", "x").value() == Approx(989e12));
    CHECK(parse<FlopRate>("125 PFLOPS", "x").value() == Approx(125e15));
    CHECK(parse<Flops>("6 PFLOP", "x").value() == Approx(6e15));
    CHECK(parse<Watts>("700 W", "x").value() == Approx(700));
    CHECK(parse<Watts>("1.2 kW", "x").value() == Approx(1200));
    CHECK(parse<Joules>("2 kWh", "x").value() == Approx(7.2e6));
    CHECK(parse<EnergyPerBit>("10 pJ/bit", "x").value() == Approx(1e-11));
    CHECK(parse<EnergyPerBit>("8 pJ/B", "x").value() == Approx(1e-12));
    CHECK(parse<Frequency>("1.98 GHz", "x").value() == Approx(1.98e9));
    CHECK(parse_count("1.5T", "x") == Approx(1.5e12));
    CHECK(parse_count("70B", "x") == Approx(70e9));
    CHECK(parse_count("16K", "x") == Approx(16e3));
  }
  SECTION("no space between number and unit is fine") {
    CHECK(parse<Bytes>("8GiB", "x").value() == Approx(8.0 * (1 << 30)));
  }
}

TEST_CASE("core::units bad strings are errors that quote the text and name the key", "[core]") {
  CHECK_THROWS_WITH(parse<Bandwidth>("400 Gbs", "cluster.scale_out.bandwidth"),
                    Contains("cluster.scale_out.bandwidth: unknown unit 'Gbs' in '400 Gbs'"));
  CHECK_THROWS_WITH(parse<Bandwidth>("450 GB", "k"), Contains("'450 GB' is a size, not a bandwidth"));
  CHECK_THROWS_WITH(parse<Watts>("abc", "gpu.tdp"), Contains("gpu.tdp: 'abc' is not a power"));
  CHECK_THROWS_WITH(parse<Watts>("-5 W", "k"), Contains("must not be negative"));
  CHECK_THROWS_WITH(parse<Seconds>("400", "k"), Contains("has no unit"));
  CHECK_THROWS_WITH(parse<Seconds>("", "k"), Contains("empty value"));
  CHECK_THROWS_WITH(parse_count("3X", "k"), Contains("unknown multiplier"));
  CHECK(parse<Bytes>("4096", "k", /*bare_ok=*/true).value() == 4096.0);
}

TEST_CASE("core::units typed arithmetic", "[core]") {
  using namespace units;
  // 1 GiB over 50 GB/s = 2^30 / 50e9 s.
  const Seconds t = gib(1) / gbyte_per_s(50);
  CHECK(t.value() == Approx(1073741824.0 / 50e9));
  CHECK((gbyte_per_s(50) * t).value() == Approx(gib(1).value()));
  CHECK((watts(700) * seconds(2)).value() == Approx(1400));
  // 10 pJ/bit x 1 byte = 80 pJ.
  CHECK((pj_per_bit(10) * bytes(1)).value() == Approx(80e-12));
  CHECK((Flops::of(989e12) / tflop_per_s(989)).value() == Approx(1.0));
  CHECK(gib(2) / gib(1) == Approx(2.0));
  CHECK(us(1) < ms(1));
}

TEST_CASE("core::units printing", "[core]") {
  using namespace units;
  CHECK(to_string(gib(80)) == "80 GiB");
  CHECK(to_string(gbyte_per_s(50)) == "50 GB/s");
  CHECK(to_string(us(1.5)) == "1.5 us");
  CHECK(to_string(tflop_per_s(989)) == "989 TFLOP/s");
  CHECK(to_string(watts(700)) == "700 W");
  // Zero is written in the base unit, whatever the smallest prefix.
  CHECK(to_string(Watts{}) == "0 W");
  CHECK(to_string(Seconds{}) == "0 s");
  CHECK(to_string(Bytes{}) == "0 B");
  CHECK(to_string(Joules{}) == "0 J");
  CHECK(to_string(pj_per_bit(10)) == "10 pJ/bit");
}

TEST_CASE("core::units property: printing and parsing round-trip to 4 digits", "[core][property]") {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> exponent(-9.0, 15.0);
  for (int i = 0; i < 2000; ++i) {
    const double v = std::pow(10.0, exponent(rng));
    CHECK(parse<Bytes>(to_string(Bytes::of(v)), "x").value() == Approx(v).epsilon(6e-4));
    CHECK(parse<Bandwidth>(to_string(Bandwidth::of(v)), "x").value() == Approx(v).epsilon(6e-4));
    CHECK(parse<Seconds>(to_string(Seconds::of(v)), "x").value() == Approx(v).epsilon(6e-4));
    CHECK(parse<Watts>(to_string(Watts::of(v)), "x").value() == Approx(v).epsilon(6e-4));
  }
}

TEST_CASE("core::units property: any text parses to a finite value or a wallsim::Error",
          "[core][property]") {
  const std::string alphabet = "0123456789.eE+- kKMGTPiBbsWJHzFLOP/pnum\xC2\xB5hd";
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<size_t> len(0, 12), pick(0, alphabet.size() - 1);
  const Dimension dims[] = {Dimension::kBytes, Dimension::kSeconds, Dimension::kBandwidth,
                            Dimension::kFlopRate, Dimension::kWatts, Dimension::kCount};
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    for (size_t n = len(rng); n > 0; --n) s += alphabet[pick(rng)];
    for (auto d : dims) {
      try {
        const double v = parse_quantity(s, d, "fuzz");
        CHECK(std::isfinite(v));
        CHECK(v >= 0.0);
        ++parsed;
      } catch (const Error& e) {
        CHECK(std::string(e.what()).rfind("fuzz: ", 0) == 0);
      }
    }
  }
  CHECK(parsed > 0);
}
