// The library's exception types. The library never prints, aborts or exits: it throws
// one of these and leaves talking to people to the caller (the CLI does it).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace gpucredit {

/// Base of every exception gpucredit throws on purpose.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bad input: a malformed file, a bad field, a call with a negative amount, a balance
/// beyond int64. `what()` reads "SOURCE:LINE: REASON" (or "SOURCE: REASON" when there
/// is no line), the form the CLI prints. Message wording is not API; the type and the
/// three accessors are.
class input_error : public error {
 public:
  /// `line` 0 means "no line" (a call, a whole file).
  input_error(std::string source, std::uint64_t line, std::string reason);

  const std::string& source() const noexcept { return source_; }
  std::uint64_t line() const noexcept { return line_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string source_;
  std::uint64_t line_;
  std::string reason_;
};

/// An operating-system failure outside the input's fault: a file that cannot be
/// written, a full disk.
class io_error : public error {
 public:
  using error::error;
};

/// A query backend's failure: one of the two below.
class backend_error : public error {
 public:
  using error::error;
};

/// The backend asked for cannot run here: an unknown name, a backend not compiled into
/// this build, no usable device (none found, or one this build has no code for). The
/// caller's choice is at fault: the CLI exits 2.
class backend_unavailable : public backend_error {
 public:
  using backend_error::backend_error;
};

/// The device failed while it worked (out of device memory, a failed launch or copy, a
/// sticky CUDA error): a system failure, the CLI exits 1.
class device_error : public backend_error {
 public:
  using backend_error::backend_error;
};

}  // namespace gpucredit
