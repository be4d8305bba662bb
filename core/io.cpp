#include "core/io.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <iostream>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.hpp"

namespace wallsim {
namespace {

namespace fs = std::filesystem;

std::string errno_text(int err) { return std::strerror(err); }

/// What kind of thing `st` is, for a message.
std::string kind_of(const struct stat& st) {
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "not a regular file";
}

/// The directory a file path sits in ("." for a bare name).
std::string directory_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

/// Closes a descriptor on scope exit unless released.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void write_all(int fd, const std::string& content, const std::string& path) {
  const char* p = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw OutputError(path + ": write failed: " + errno_text(n < 0 ? errno : EIO));
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

/// The mode a new output file gets: 0666 less the umask, as a shell redirection gives (the
/// umask read once: reading it means setting it, which other threads must not see).
mode_t new_file_mode() {
  static const mode_t mode = [] {
    const mode_t mask = ::umask(0);
    ::umask(mask);
    return static_cast<mode_t>(0666 & ~mask);
  }();
  return mode;
}

/// The temporary beside `target`: a hidden name that mkstemp completes, short enough for any
/// file name the target may have (a long name is cut: the temporary is renamed anyway).
std::string temporary_template(const std::string& target) {
  std::string name = fs::path(target).filename().string();
  constexpr std::size_t kKeep = 200;  // + ".", ".wallsim-XXXXXX": within NAME_MAX (255)
  if (name.size() > kKeep) name.resize(kKeep);
  return directory_of(target) + "/." + name + ".wallsim-XXXXXX";
}

}  // namespace

void check_output_path(const std::string& flag, const std::string& path) {
  if (path.empty()) throw Error(flag, "an empty path (give a file name, or '-' for standard output)");
  if (path == "-") return;
  const std::string shown = flag + " " + path;
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode) && ::stat(path.c_str(), &st) != 0) {
      throw Error(shown, "a symlink to nothing (" + errno_text(errno) + "); outputs follow a symlink to its file");
    }
    if (!S_ISREG(st.st_mode)) {
      throw Error(shown, "is " + kind_of(st) + "; an output goes to a regular file or '-' (standard output)");
    }
    if (::access(path.c_str(), W_OK) != 0) throw Error(shown, "cannot be written: " + errno_text(errno));
    const std::string dir = directory_of(output_identity(path));
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
      throw Error(shown, "its directory cannot be written (" + errno_text(errno) + "), so it cannot be replaced");
    }
    return;
  }
  if (errno != ENOENT) throw Error(shown, "cannot be reached: " + errno_text(errno));
  const std::string dir = directory_of(path);
  struct stat dst{};
  if (::stat(dir.c_str(), &dst) != 0) throw Error(shown, "directory " + dir + ": " + errno_text(errno));
  if (!S_ISDIR(dst.st_mode)) throw Error(shown, dir + " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throw Error(shown, "directory " + dir + " cannot be written: " + errno_text(errno));
  }
}

std::string output_identity(const std::string& path) {
  if (path == "-") return path;
  std::error_code ec;
  fs::path p = fs::canonical(path, ec);  // an existing file, symlinks resolved
  if (ec) p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? path : p.string();
}

void write_outputs(const std::vector<std::pair<std::string, std::string>>& files) {
  struct Pending {
    std::string path, target, tmp;
  };
  std::vector<Pending> pending;
  try {
    for (const auto& [path, content] : files) {
      if (path == "-") continue;
      Pending p{path, output_identity(path), {}};
      std::string tmpl = temporary_template(p.target);
      Fd fd{::mkstemp(tmpl.data())};
      if (fd.fd < 0) throw OutputError(path + ": cannot create a temporary file beside it: " + errno_text(errno));
      p.tmp = tmpl;
      pending.push_back(p);
      struct stat st{};
      const mode_t mode = ::stat(p.target.c_str(), &st) == 0 ? (st.st_mode & 07777) : new_file_mode();
      if (::fchmod(fd.fd, mode) != 0) throw OutputError(path + ": " + errno_text(errno));
      write_all(fd.fd, content, path);
      if (::fsync(fd.fd) != 0) throw OutputError(path + ": write failed: " + errno_text(errno));
      const int closed = ::close(fd.fd);
      fd.fd = -1;
      if (closed != 0) throw OutputError(path + ": write failed: " + errno_text(errno));
    }
    // Every file is written: replace the targets, checking again that each is still a file.
    for (std::size_t i = 0; i < pending.size(); ++i) {
      const Pending& p = pending[i];
      struct stat st{};
      if (::lstat(p.target.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
        throw OutputError(p.path + ": became " + kind_of(st) + " while wallsim ran; not replaced");
      }
      if (::rename(p.tmp.c_str(), p.target.c_str()) != 0) {
        throw OutputError(p.path + ": cannot replace: " + errno_text(errno));
      }
      pending[i].tmp.clear();
    }
  } catch (...) {
    for (const auto& p : pending) {
      if (!p.tmp.empty()) ::unlink(p.tmp.c_str());
    }
    throw;
  }
  for (const auto& p : pending) {  // the renames themselves reach the disk
    Fd dir{::open(directory_of(p.target).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dir.fd >= 0) ::fsync(dir.fd);
  }
  for (const auto& [path, content] : files) {
    if (path == "-") write_stdout(content);
  }
}

void write_stdout(const std::string& text) {
  std::cout << text;
  flush_stdout();
}

void flush_stdout() {
  errno = 0;
  std::cout.flush();
  const bool failed = std::fflush(stdout) != 0 || std::ferror(stdout) != 0 || std::cout.fail();
  if (failed) {
    const int err = errno != 0 ? errno : EIO;
    std::clearerr(stdout);
    std::cout.clear();
    throw OutputError("standard output: write failed: " + errno_text(err));
  }
}

std::string read_text_file(const std::string& path, std::size_t max_bytes) {
  // Non-blocking open, so a FIFO nobody writes reads as empty instead of waiting forever.
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (fd.fd < 0) throw Error(path, "cannot open: " + errno_text(errno));
  struct stat st{};
  if (::fstat(fd.fd, &st) != 0) throw Error(path, "cannot read: " + errno_text(errno));
  if (S_ISDIR(st.st_mode)) throw Error(path, "is a directory, not a file");
  const int flags = ::fcntl(fd.fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd.fd, F_SETFL, flags & ~O_NONBLOCK);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(path, "cannot read: " + errno_text(errno));
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > max_bytes) {
      throw Error(path, "is larger than " + std::to_string(max_bytes >> 20) +
                                         " MiB, the most wallsim reads from one input file");
    }
    text.append(buf, static_cast<std::size_t>(n));
  }
  return text;
}

}  // namespace wallsim
