// Terminal tables and whole-or-nothing output files for the CLI.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace wallsim::cli {

/// Two-column "label  value" lines, labels padded to one width.
std::string key_value_table(const std::vector<std::pair<std::string, std::string>>& rows);

/// A CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s);

/// Files to write once every one of them has been rendered: nothing is written when a
/// renderer throws, and each file is replaced atomically.
class PendingFiles {
 public:
  void add(std::string path, std::string content);
  void write_all() const;

 private:
  std::vector<std::pair<std::string, std::string>> files_;
};

}  // namespace wallsim::cli
