// A regular file's bytes mapped into memory, read in place (internal). Reading a large
// input this way costs no copy and no zero-filled pages: the pages are the kernel's own
// cache of the file, faulted in by the cores that parse them. Private and writable (a
// page the reader writes to, unescaping a quoted field, becomes a private copy; the
// file is never written).
//
// The hazard of a mapping is a file that shrinks while it is read (another program
// truncating it): touching a page past the new end raises SIGBUS, which would kill the
// process. A handler, installed once, turns that into an error: a fault inside a live
// mapping gets a page of zeros mapped over it, the mapping is marked `shrank`, and the
// read goes on; the reader then reports the file as changed while it was read instead
// of whatever the zeros made of it. A fault anywhere else goes to the handler that was
// there before (or ends the process as SIGBUS does). Linux only: elsewhere map()
// declines and the file is read as before.
#pragma once

#include <cstddef>
#include <optional>

namespace gpucredit::detail {

class mapped_file {
 public:
  /// The first `size` bytes of the open regular file `fd`, mapped; nullopt when the
  /// system declines (the caller then reads the file instead).
  static std::optional<mapped_file> map(int fd, std::size_t size);
  ~mapped_file();
  mapped_file(mapped_file&& other) noexcept;
  mapped_file& operator=(mapped_file&& other) noexcept;
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  /// Whether a page past the file's end was touched: the file shrank while mapped, and
  /// what was read from that page was zeros, not the file.
  bool shrank() const noexcept;

 private:
  mapped_file(char* data, std::size_t size, int slot) noexcept : data_(data), size_(size), slot_(slot) {}
  void release() noexcept;

  char* data_ = nullptr;
  std::size_t size_ = 0;
  int slot_ = -1;  // its place in the registry the SIGBUS handler reads
};

}  // namespace gpucredit::detail
