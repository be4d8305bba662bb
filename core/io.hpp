// Files in and out. Output files are written whole or not at all, and never onto anything but
// a regular file: each content goes to a fresh temporary file beside its target (mkstemp:
// O_CREAT|O_EXCL, an unpredictable name), every write and the close are checked, the file is
// fsynced, and only when every output of the command is written are they renamed over their
// targets. A symlink is followed: its target file is replaced, the link stays. Inputs are
// read up to a stated size, so /dev/zero or a runaway file is an error, not an out-of-memory.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace wallsim {

/// An output that could not be written once the work was done (a full disk, an I/O error,
/// a closed standard output): the CLI exits 1. Bad output paths are found before the work
/// and are wallsim::Error (exit 2).
class OutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Checks that `path` can take an output, before any work: "-" (standard output), or an
/// existing regular file, or a new file in an existing, writable directory; a symlink is
/// checked at its target. A device, FIFO, socket or directory, an empty path, a missing or
/// unwritable directory is a wallsim::Error naming `flag` and the path.
void check_output_path(const std::string& flag, const std::string& path);

/// Where `path` writes: the file a symlink chain ends at, else `path` itself, made absolute
/// and normal, so that two flags naming one file can be told apart from two files.
std::string output_identity(const std::string& path);

/// Writes each (path, content) whole, all or none: every file is written to its temporary
/// first, then all are renamed; "-" goes to standard output after the files are in place.
/// An OutputError names the path that failed; no temporary is left behind.
void write_outputs(const std::vector<std::pair<std::string, std::string>>& files);

/// Writes `text` to standard output and flushes it; an OutputError when that fails.
void write_stdout(const std::string& text);

/// Flushes standard output; an OutputError naming it when any write to it failed.
void flush_stdout();

/// The largest input file wallsim reads by default (scenarios, presets, validation cases).
inline constexpr std::size_t kMaxInputBytes = std::size_t{16} << 20;

/// Reads a whole text file of at most `max_bytes`; a wallsim::Error naming the path when it
/// cannot be read, is a directory, or is larger (read in pieces, so /dev/zero stops there).
std::string read_text_file(const std::string& path, std::size_t max_bytes = kMaxInputBytes);

}  // namespace wallsim
