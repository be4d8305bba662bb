// End-to-end: bad input and hostile paths. The corpus in tests/bad_input/*.txt holds one
// command per line with its exit code and a fragment of its message; the cases below it set up
// what a line cannot (devices, FIFOs, symlinks, files that must stay unchanged).
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/text.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

using Result = wallsim::test::CliResult;

std::string slurp(const fs::path& p) { return wallsim::test::slurp(p.string()); }

/// A fresh, empty directory of its own for each call.
fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("wallsim-bad-" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

/// Runs `wallsim ARGS` in `cwd` through /bin/sh, with a timeout so a runaway fails the test;
/// a redirection in ARGS (`>/dev/full`) takes precedence over the capture.
Result run_in(const fs::path& cwd, const std::string& args, const fs::path& io) {
  return wallsim::test::run_captured("cd '" + cwd.string() + "' && export WALLSIM_DATA='" +
                                         wallsim::test::source_path("data") + "' && { timeout 60 '" + WALLSIM_BIN +
                                         "' " + args + " ; }",
                                     (io / "stdout").string(), (io / "stderr").string());
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

struct CorpusCase {
  std::string where;  // file:line
  int code = 0;
  std::string fragment, args;
};

std::vector<CorpusCase> read_corpus() {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(wallsim::test::source_path("tests/bad_input"))) {
    if (e.path().extension() == ".txt") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<CorpusCase> cases;
  for (const auto& file : files) {
    std::istringstream in(slurp(file));
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (line.empty() || line[0] == '#') continue;
      const auto first = line.find(" | "), second = line.find(" | ", first + 3);
      REQUIRE(second != std::string::npos);
      cases.push_back({file.filename().string() + ":" + std::to_string(n), std::stoi(line.substr(0, first)),
                       line.substr(first + 3, second - first - 3), line.substr(second + 3)});
    }
  }
  return cases;
}

std::string mode_of(const fs::path& p) {
  struct stat st{};
  if (::lstat(p.c_str(), &st) != 0) return "missing";
  if (S_ISCHR(st.st_mode)) return "char device";
  if (S_ISFIFO(st.st_mode)) return "fifo";
  if (S_ISLNK(st.st_mode)) return "symlink";
  if (S_ISREG(st.st_mode)) return "file";
  return "other";
}

const std::string kTiny = "'" + wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml") + "'";

}  // namespace

TEST_CASE("cli bad-input corpus: each command's exit code and message, nothing written", "[cli][bad_input]") {
  const auto cases = read_corpus();
  REQUIRE(cases.size() >= 20);
  const fs::path io = fresh_dir("io");
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.where << ": " << c.args) {
      const fs::path d = fresh_dir("case");
      auto expand = [&](const std::string& s) {
        std::string x = replace_all(s, "$S", "'" + wallsim::test::source_path("data/scenarios") + "'");
        x = replace_all(x, "$F", "'" + wallsim::test::source_path("tests/bad_input/files") + "'");
        return replace_all(x, "$D", d.string());
      };
      const Result r = run_in(d, expand(c.args), io);
      INFO(c.where << ": wallsim " << expand(c.args) << "\nstderr: " << r.err);
      CHECK(r.code == c.code);
      CHECK_THAT(r.err, Contains(expand(c.fragment)));
      if (c.code == 2) CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);  // one line
      CHECK(fs::is_empty(d));  // no output, no temporary left behind
    }
  }
}

TEST_CASE("cli outputs: devices, FIFOs and directories are refused before the work", "[cli][bad_input]") {
  const fs::path d = fresh_dir("special"), io = fresh_dir("special-io");
  SECTION("a FIFO stays a FIFO") {
    REQUIRE(::mkfifo((d / "fifo").c_str(), 0644) == 0);
    const Result r = run_in(d, "run " + kTiny + " --json fifo", io);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("--json fifo: is a FIFO"));
    CHECK(mode_of(d / "fifo") == "fifo");
  }
  SECTION("/dev/full stays a device, and standard output on it fails with exit 1") {
    Result r = run_in(d, "run " + kTiny + " --json /dev/full", io);
    CHECK(r.code == 2);
    CHECK(mode_of("/dev/full") == "char device");
    r = run_in(d, "run " + kTiny + " --json - >/dev/full", io);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("standard output: write failed: No space left on device"));
    r = run_in(d, "run " + kTiny + " --quiet --csv - >/dev/full", io);
    CHECK(r.code == 1);
    CHECK(mode_of("/dev/full") == "char device");
  }
}

TEST_CASE("cli outputs: a symlink is followed, a planted temporary name is never written through", "[cli][bad_input]") {
  const fs::path d = fresh_dir("links"), io = fresh_dir("links-io");
  SECTION("the link's target file is replaced and the link stays") {
    { std::ofstream(d / "target.json") << "old"; }
    fs::create_symlink("target.json", d / "link.json");
    const Result r = run_in(d, "run " + kTiny + " --quiet --json link.json", io);
    REQUIRE(r.code == 0);
    CHECK(mode_of(d / "link.json") == "symlink");
    CHECK_THAT(slurp(d / "target.json"), Contains("\"step_time_s\""));
  }
  SECTION("a symlink to nothing is refused") {
    fs::create_symlink("nowhere/x.json", d / "dangling.json");
    const Result r = run_in(d, "run " + kTiny + " --json dangling.json", io);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("a symlink to nothing"));
  }
  SECTION("symlinks planted at the old predictable temporary names are left alone") {
    // The temporary was `<path>.tmp.<pid>`: plant links for the next pids to a victim file.
    { std::ofstream(d / "victim") << "precious"; }
    const pid_t next = ::getpid();
    for (int i = 0; i < 200; ++i) fs::create_symlink(d / "victim", d / ("out.json.tmp." + std::to_string(next + i)));
    const Result r = run_in(d, "run " + kTiny + " --quiet --json out.json", io);
    REQUIRE(r.code == 0);
    CHECK(slurp(d / "victim") == "precious");
    CHECK_THAT(slurp(d / "out.json"), Contains("\"step_time_s\""));
  }
  int temporaries = 0;
  for (const auto& e : fs::directory_iterator(d)) temporaries += e.path().filename().string().find(".wallsim-") != std::string::npos;
  CHECK(temporaries == 0);
}

TEST_CASE("cli outputs: a command's files are written all or none, and existing files keep their bytes", "[cli][bad_input]") {
  const fs::path d = fresh_dir("allornone"), io = fresh_dir("allornone-io");
  { std::ofstream(d / "a.json") << "before"; }
  SECTION("an unwritable second output is found before the work; the first file is untouched") {
    const Result r = run_in(d, "search " + kTiny + " --json a.json --csv /nonexistent/b.csv", io);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("--csv /nonexistent/b.csv"));
    CHECK(r.out.empty());  // nothing computed, nothing printed
    CHECK(slurp(d / "a.json") == "before");
  }
  SECTION("a read-only directory: refused, nothing created") {
    if (::geteuid() == 0) SUCCEED("root writes any directory; the permission check cannot be seen");
    else {
      fs::create_directories(d / "ro");
      fs::permissions(d / "ro", fs::perms::owner_read | fs::perms::owner_exec);
      const Result r = run_in(d, "run " + kTiny + " --json ro/x.json", io);
      CHECK(r.code == 2);
      CHECK_THAT(r.err, Contains("cannot be written"));
      fs::permissions(d / "ro", fs::perms::owner_all);
    }
  }
  SECTION("a target name of 250 characters is written (its temporary's name is cut to fit NAME_MAX)") {
    const std::string name(250, 'n');
    const Result r = run_in(d, "run " + kTiny + " --quiet --json " + name, io);
    REQUIRE(r.code == 0);
    CHECK_THAT(slurp(d / name), Contains("\"step_time_s\""));
  }
  SECTION("a file written keeps the mode of the one it replaces") {
    fs::permissions(d / "a.json", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    const Result r = run_in(d, "run " + kTiny + " --quiet --json a.json", io);
    REQUIRE(r.code == 0);
    CHECK(fs::status(d / "a.json").permissions() == (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
  }
}

TEST_CASE("cli results that were wrong without a word: partitioned fabrics and tapered Clos", "[cli][bad_input]") {
  const fs::path d = fresh_dir("wrong"), io = fresh_dir("wrong-io");
  SECTION("topo on a fabric cut by failures counts unreachable pairs, not 0-hop ones") {
    // k=4 fat-tree, 16 hosts; edge0's 2 hosts are cut off from the other 14 and each other:
    // 2 x 15 + 14 x 2 = 58 of the 240 ordered pairs are unreachable (hand count as in
    // topology_metrics_test); the rest keep the healthy 6-hop diameter.
    const Result r = run_in(d, "topo 'fat-tree:k=4,bandwidth=100GB/s,latency=1us' --fail-node edge0 --json -", io);
    REQUIRE(r.code == 0);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j["unreachable_pairs"].get<double>() == 58.0);
    CHECK(j["diameter_hops"].get<double>() == 6.0);
  }
  SECTION("sweep over spines with the analytic model: fewer spines never give a faster step") {
    const Result r = run_in(d,
                            "sweep '" + wallsim::test::source_path("data/scenarios/llama3-70b-1024xh100.yaml") +
                                "' --vary cluster.scale_out.spines=16,2 --json -",
                            io);
    REQUIRE(r.code == 0);
    const auto j = nlohmann::json::parse(r.out);
    REQUIRE(j["points"].size() == 2);
    CHECK(j["points"][1]["step_time_s"].get<double>() > j["points"][0]["step_time_s"].get<double>());
  }
}
