// See output_file.hpp.
#include "output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

#include "gpucredit/error.hpp"

namespace gpucredit::tools {
namespace {

std::string errno_text(int errnum) { return std::strerror(errnum); }

// The temporary output file being written, for the signal handler to remove: a run
// interrupted by SIGINT, SIGTERM or SIGHUP leaves no partial file behind. (SIGKILL
// cannot be caught: then a hidden ".NAME.gpucredit-XXXXXX" file may stay, and the
// destination still holds its earlier content.)
char pending_temp[4096] = {};
volatile std::sig_atomic_t pending_temp_set = 0;

extern "C" void remove_pending_temp(int signal_number) {
  if (pending_temp_set != 0) ::unlink(pending_temp);
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

void track_temp(const std::string& path) {
  pending_temp_set = 0;
  if (path.size() >= sizeof pending_temp) return;
  std::memcpy(pending_temp, path.c_str(), path.size() + 1);
  pending_temp_set = 1;
}

void untrack_temp() { pending_temp_set = 0; }

}  // namespace

void install_signal_handlers() {
  for (const int signal_number : {SIGINT, SIGTERM, SIGHUP}) std::signal(signal_number, remove_pending_temp);
  std::signal(SIGPIPE, SIG_IGN);
}

output_file::output_file(std::string path) : path_(std::move(path)) {
  if (path_ == "-") {
    fd_ = STDOUT_FILENO;
    return;
  }
  std::filesystem::path target(path_);
  struct stat existing {};
  if (::stat(path_.c_str(), &existing) == 0) {
    if (S_ISDIR(existing.st_mode)) throw input_error(path_, 0, "is a directory");
    struct stat standard_output {};
    const bool is_standard_output = ::fstat(STDOUT_FILENO, &standard_output) == 0 &&
                                    standard_output.st_dev == existing.st_dev &&
                                    standard_output.st_ino == existing.st_ino;
    if (is_standard_output && S_ISREG(existing.st_mode)) {
      // This process's own standard output (`--out /dev/stdout > file`): write through
      // it, so the shell's redirection (truncate or append) holds.
      fd_ = STDOUT_FILENO;
      return;
    }
    if (!S_ISREG(existing.st_mode)) {
      // What the path is decides, never its name: a device, FIFO or socket
      // (/dev/stdout on a pipe, /dev/null, /dev/full, a named pipe) is written into as
      // it is; renaming a file over it would replace the name itself. A regular file,
      // wherever it lives (/dev/shm too), is replaced whole below.
      fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd_ < 0) throw io_error(path_ + ": cannot open for writing: " + errno_text(errno));
      owned_ = true;
      return;
    }
    // Through a symbolic link, replace the file it names, not the link.
    target = std::filesystem::canonical(target);
  }
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  std::string pattern = (dir / ("." + target.filename().string() + ".gpucredit-XXXXXX")).string();
  fd_ = ::mkstemp(pattern.data());
  if (fd_ < 0) throw io_error(path_ + ": cannot create a file there: " + errno_text(errno));
  temp_ = pattern;
  target_ = target.string();
  track_temp(temp_);
  // mkstemp makes the file 0600; give it what a plain create would (0666 less umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd_, 0666 & ~mask);
}

output_file::~output_file() {
  if (!temp_.empty()) {
    untrack_temp();
    ::close(fd_);
    ::unlink(temp_.c_str());
  } else if (owned_ && fd_ >= 0) {
    ::close(fd_);
  }
}

void output_file::commit() {
  if (owned_) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw io_error(path_ + ": cannot close: " + errno_text(errno));
    return;
  }
  if (temp_.empty()) return;
  if (::fsync(fd_) != 0) throw io_error(path_ + ": cannot flush to disk: " + errno_text(errno));
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw io_error(path_ + ": cannot close: " + errno_text(errno));
  }
  fd_ = -1;
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    const int errnum = errno;
    untrack_temp();
    ::unlink(temp_.c_str());
    temp_.clear();
    throw io_error(path_ + ": cannot replace: " + errno_text(errnum));
  }
  untrack_temp();
  temp_.clear();
}

namespace {

// Whether two paths name the same file: the same inode when both exist, else the same
// path once made absolute and normal.
bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {};
  struct stat sb {};
  const bool a_exists = ::stat(a.c_str(), &sa) == 0;
  const bool b_exists = ::stat(b.c_str(), &sb) == 0;
  if (a_exists && b_exists) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  if (a_exists != b_exists) return false;
  std::error_code ec;
  const std::filesystem::path ca = std::filesystem::weakly_canonical(a, ec);
  if (ec) return a == b;
  const std::filesystem::path cb = std::filesystem::weakly_canonical(b, ec);
  if (ec) return a == b;
  return ca == cb;
}

}  // namespace

// Refuses outputs that would lose data: one naming an input (replacing it would lose
// it), or two naming the same file (one would replace the other). Names the flags.
void refuse_clashing_outputs(const std::vector<named_output>& outputs, const std::vector<std::string>& inputs) {
  if (std::count(inputs.begin(), inputs.end(), "-") > 1) {
    throw input_error("stdin", 0, "two inputs read standard input; give at most one of them as -");
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const named_output& out = outputs[i];
    if (out.path.empty()) continue;
    for (std::size_t j = 0; j < i; ++j) {
      const named_output& other = outputs[j];
      if (other.path.empty()) continue;
      const bool both_stdout = out.path == "-" && other.path == "-";
      if (both_stdout || (out.path != "-" && other.path != "-" && same_file(out.path, other.path))) {
        throw input_error(out.path, 0,
                          other.flag + " and " + out.flag + " name the same " +
                              (both_stdout ? std::string("standard output") : "file") + "; give each its own");
      }
    }
    if (out.path == "-") continue;
    struct stat out_stat {};
    if (::stat(out.path.c_str(), &out_stat) != 0) continue;  // does not exist yet
    for (const std::string& in : inputs) {
      struct stat in_stat {};
      if (::stat(in.c_str(), &in_stat) == 0 && in_stat.st_dev == out_stat.st_dev && in_stat.st_ino == out_stat.st_ino &&
          S_ISREG(out_stat.st_mode)) {
        throw input_error(out.path, 0, out.flag + " names the input file '" + in + "'; refusing to overwrite it");
      }
    }
  }
}

}  // namespace gpucredit::tools
