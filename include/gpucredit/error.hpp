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

/// A backend was asked for that was not compiled in or has no device.
class backend_error : public error {
 public:
  using error::error;
};

}  // namespace gpucredit
