#include "cli/output.hpp"

#include <algorithm>
#include <ostream>

#include "core/io.hpp"

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
  for (const auto& [path, content] : files_) {
    write_file_atomically(path, [&](std::ostream& out) { out << content; });
  }
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
