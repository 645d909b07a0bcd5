// A file mapped for reading in place, and the SIGBUS handler that turns a file shrinking
// under its mapping into an error (mapped_file.hpp).
#include "cpu/io/mapped_file.hpp"

#include <utility>

#if defined(__linux__)
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#endif

namespace gpucredit::detail {

#if defined(__linux__)
namespace {

// The live mappings, as the handler reads them: lock-free atomics only (a signal handler
// may read nothing else). A slot is taken with `used`, published by setting `end` last,
// and withdrawn by clearing `end` first.
struct registered {
  std::atomic<bool> used{false};
  std::atomic<std::uintptr_t> begin{0};
  std::atomic<std::uintptr_t> end{0};
  std::atomic<bool> shrank{false};
};
constexpr int registry_slots = 64;  // mappings live at once (each read of a file holds one)
registered registry[registry_slots];
std::uintptr_t page_bytes = 4096;
struct sigaction previous_handler {};
bool handler_installed = false;

void on_sigbus(int signal_number, siginfo_t* info, void* context) {
  const auto at = reinterpret_cast<std::uintptr_t>(info->si_addr);
  for (registered& r : registry) {
    const std::uintptr_t end = r.end.load(std::memory_order_acquire);
    if (at < r.begin.load(std::memory_order_relaxed) || at >= end) continue;
    // A page of the mapping past the file's end: zeros in its place, and the read goes on.
    void* page = reinterpret_cast<void*>(at & ~(page_bytes - 1));
    if (::mmap(page, page_bytes, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
      r.shrank.store(true, std::memory_order_relaxed);
      return;
    }
    break;
  }
  // Not a mapped file's page: what would have happened without this handler.
  if ((previous_handler.sa_flags & SA_SIGINFO) != 0 && previous_handler.sa_sigaction != nullptr) {
    previous_handler.sa_sigaction(signal_number, info, context);
    return;
  }
  if ((previous_handler.sa_flags & SA_SIGINFO) == 0 && previous_handler.sa_handler != SIG_DFL &&
      previous_handler.sa_handler != SIG_IGN) {
    previous_handler.sa_handler(signal_number);
    return;
  }
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  sigemptyset(&fallback.sa_mask);
  ::sigaction(SIGBUS, &fallback, nullptr);
  // A fault repeats when the handler returns, now ending the process; a SIGBUS sent by
  // another process is raised again.
  if (info->si_code <= 0) ::raise(SIGBUS);
}

bool install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    const long page = ::sysconf(_SC_PAGESIZE);
    if (page > 0) page_bytes = static_cast<std::uintptr_t>(page);
    struct sigaction action {};
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    handler_installed = ::sigaction(SIGBUS, &action, &previous_handler) == 0;
  });
  return handler_installed;
}

}  // namespace

std::optional<mapped_file> mapped_file::map(int fd, std::size_t size) {
  if (size == 0 || !install_handler()) return std::nullopt;
  int slot = -1;
  for (int i = 0; i < registry_slots && slot < 0; ++i) {
    bool expected = false;
    if (registry[i].used.compare_exchange_strong(expected, true)) slot = i;
  }
  if (slot < 0) return std::nullopt;
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    registry[slot].used.store(false);
    return std::nullopt;
  }
  registered& r = registry[slot];
  r.shrank.store(false, std::memory_order_relaxed);
  r.begin.store(reinterpret_cast<std::uintptr_t>(p), std::memory_order_relaxed);
  r.end.store(reinterpret_cast<std::uintptr_t>(p) + size, std::memory_order_release);
  return mapped_file(static_cast<char*>(p), size, slot);
}

bool mapped_file::shrank() const noexcept {
  return slot_ >= 0 && registry[slot_].shrank.load(std::memory_order_relaxed);
}

void mapped_file::release() noexcept {
  if (slot_ < 0) return;
  registered& r = registry[slot_];
  r.end.store(0, std::memory_order_release);
  r.begin.store(0, std::memory_order_relaxed);
  ::munmap(data_, size_);
  r.used.store(false);
  slot_ = -1;
}

#else

std::optional<mapped_file> mapped_file::map(int, std::size_t) { return std::nullopt; }
bool mapped_file::shrank() const noexcept { return false; }
void mapped_file::release() noexcept {}

#endif

mapped_file::~mapped_file() { release(); }

mapped_file::mapped_file(mapped_file&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      slot_(std::exchange(other.slot_, -1)) {}

mapped_file& mapped_file::operator=(mapped_file&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    slot_ = std::exchange(other.slot_, -1);
  }
  return *this;
}

}  // namespace gpucredit::detail
