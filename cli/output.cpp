#include "cli/output.hpp"

#include <algorithm>
#include <ostream>

#include <filesystem>
#include <map>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "engine/distribute.hpp"
#include "report/hdf5.hpp"

namespace wallsim::cli {

std::string key_value_table(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.first.size());
  std::string out;
  for (const auto& [k, v] : rows) {
    out += k;
    out.append(width + 2 - k.size(), ' ');
    out += v;
    out += '\n';
  }
  return out;
}

void PendingFiles::add(std::string path, std::string content) {
  if (!path.empty()) files_.emplace_back(std::move(path), std::move(content));
}

void PendingFiles::write_all() const {
  if (!engine::World::get().root()) return;  // under MPI, rank 0 alone writes
  write_outputs(files_);
}

CLI::Option* add_output_option(CLI::App& cmd, const std::string& name, std::string& path, const std::string& help) {
  return cmd.add_option(name, path, help)
      ->group(kOutputGroup)
      ->check(CLI::Validator(
          [](std::string& s) { return s.empty() ? std::string("an empty path (a file name, or '-' for standard output)") : ""; },
          "FILE"));
}

void check_outputs(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands()) {
    std::vector<std::pair<std::string, std::string>> given;  // flag, path
    for (const CLI::Option* opt : sub->get_options()) {
      if (opt->get_group() != kOutputGroup || opt->count() == 0) continue;
      for (const std::string& path : opt->results()) given.emplace_back(opt->get_name(), path);
    }
    std::map<std::string, std::string> seen;  // identity -> flag
    for (const auto& [flag, path] : given) {
      check_output_path(flag, path);
      const std::string id = output_identity(path);
      if (auto [it, fresh] = seen.emplace(id, flag); !fresh) {
        throw Error(it->second + " and " + flag, path == "-" ? "both write to standard output; give one of them a file"
                                                             : "name the same file ('" + path + "'); give each output its own file");
      }
    }
  }
}

namespace {
std::string& command_line() {
  static std::string line;
  return line;
}
}  // namespace

void set_command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) line += (i ? " " : "") + std::string(argv[i]);
  command_line() = line;
}

void describe(report::Hdf5File& f, const std::string& input, const CommonFlags& common) {
  f.attribute("/", "producer", std::string("wallsim 0.1.0"));
  f.attribute("/", "command", command_line());
  f.attribute("/", "seed", static_cast<std::int64_t>(common.seed));
  std::string sets;
  for (const auto& s : common.sets) sets += (sets.empty() ? "" : "\n") + s;
  f.attribute("/", "sets", sets);
  f.attribute("/", "input", input);
  std::error_code ec;
  if (std::filesystem::is_regular_file(input, ec)) f.attribute("/", "scenario", read_text_file(input));
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace wallsim::cli
