// Where the CLI's outputs go (tools/ only). An output is written to a temporary file
// beside its destination and renamed over it only once complete, so an earlier output
// is never left half-written; what the path *is* (not its name) decides: a device, FIFO
// or socket is written into as it is, this process's own redirected standard output is
// written through, "-" is standard output. SIGINT, SIGTERM and SIGHUP remove the
// temporary file before the process ends.
#pragma once

#include <string>
#include <vector>

namespace gpucredit::tools {

/// Removes the pending temporary file on SIGINT, SIGTERM and SIGHUP; ignores SIGPIPE, so
/// that a reader going away makes a write fail (exit 1) instead of killing the process.
void install_signal_handlers();

/// One output destination, created when constructed; commit() makes it visible.
class output_file {
 public:
  /// Throws input_error when `path` is a directory, io_error when it cannot be created.
  explicit output_file(std::string path);
  /// Removes the temporary file unless committed.
  ~output_file();
  output_file(const output_file&) = delete;
  output_file& operator=(const output_file&) = delete;

  int fd() const noexcept { return fd_; }
  const std::string& name() const noexcept { return path_; }
  /// Whether commit() makes the bytes durable (fsync): a temporary file beside the
  /// destination. Writers then start the disk's writeback as they go (csv_writer).
  bool durable() const noexcept { return !temp_.empty(); }

  /// Makes the written bytes durable and visible under the destination's name. Throws
  /// io_error.
  void commit();

 private:
  std::string path_;
  std::string temp_;
  std::string target_;  // the regular file that commit() replaces
  int fd_ = -1;
  bool owned_ = false;  // an existing non-regular file opened directly
};

/// One output of a command: the flag that names it and its path ("-": standard output;
/// empty: not asked for).
struct named_output {
  std::string flag;
  std::string path;
};

/// Refuses (input_error, naming the flags) outputs that would lose data: one naming an
/// input, or two naming the same file or both standard output.
void refuse_clashing_outputs(const std::vector<named_output>& outputs, const std::vector<std::string>& inputs);

}  // namespace gpucredit::tools
