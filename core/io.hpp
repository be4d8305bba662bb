// Output files are written whole or not at all: content goes to a temporary file beside the
// target, which is renamed over it only when the writer returned without throwing.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

namespace wallsim {

/// Writes `path` atomically through `write`; "-" writes to standard output.
/// Throws wallsim::Error naming the path when the file cannot be written.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

/// Reads a whole text file; throws wallsim::Error naming the path when it cannot.
std::string read_text_file(const std::string& path);

}  // namespace wallsim
