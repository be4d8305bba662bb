// Terminal tables and whole-or-nothing output files for the CLI.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

namespace wallsim::cli {

/// Two-column "label  value" lines, labels padded to one width.
std::string key_value_table(const std::vector<std::pair<std::string, std::string>>& rows);

/// A CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s);

/// The option group every output-file flag is in (--json, --csv, --svg, ...).
inline constexpr const char* kOutputGroup = "Output files";

/// Adds an output-file flag: in kOutputGroup, an empty path refused while parsing.
CLI::Option* add_output_option(CLI::App& cmd, const std::string& name, std::string& path, const std::string& help);

/// Checks the output flags given to the chosen subcommand before its work: each path can
/// take an output (core/io.hpp check_output_path), no two flags name one file, and at most
/// one writes to standard output. A wallsim::Error naming the flag otherwise.
void check_outputs(const CLI::App& app);

/// Files to write once every one of them has been rendered: nothing is written when a
/// renderer throws, and all are committed together (core/io.hpp write_outputs).
class PendingFiles {
 public:
  void add(std::string path, std::string content);
  void write_all() const;

 private:
  std::vector<std::pair<std::string, std::string>> files_;
};

}  // namespace wallsim::cli
