// Large columns (internal): on huge pages, and joined from parts. The event columns,
// the replay's intervals and the index are reserved at their largest size and then
// written row by row: at 4 KiB a page, a ledger of 5 x 10^7 events takes a page fault
// every 4 KiB it writes, and the replay's reads of each account's rows, scattered over
// the event columns, miss the TLB. Asking for transparent huge pages on these arrays
// cuts the faults 512-fold and the TLB misses with them. Only on these: with every
// allocation on huge pages (glibc's hugetlb tunable) reading the file took longer. The
// kernel may decline (no huge page free, THP set to `never`, not Linux): the pages then
// stay small, the answers the same.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace gpucredit::detail {

/// Arrays smaller than this are left as they are (a huge page is 2 MiB).
inline constexpr std::size_t huge_pages_min_bytes = std::size_t{16} << 20;

/// Asks for transparent huge pages on the whole 2 MiB pages inside [p, p + bytes), not
/// yet written. Only a hint: never fails, changes no byte.
inline void advise_huge_pages(const void* p, std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (bytes < huge_pages_min_bytes) return;
  constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
  const auto first = (reinterpret_cast<std::uintptr_t>(p) + huge - 1) & ~(huge - 1);
  const auto last = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(huge - 1);
  if (first < last) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

/// v.reserve(count), the room on huge pages where v is still empty (its rows are then
/// all written after this).
template <class T>
void reserve_on_huge_pages(std::vector<T>& v, std::size_t count) {
  const bool fresh = v.capacity() < count && v.empty();
  v.reserve(count);
  if (fresh) advise_huge_pages(v.data(), count * sizeof(T));
}

/// std::allocator, except that a value made without arguments is left uninitialised:
/// `std::vector<T, uninitialized_allocator<T>>(n)` holds n rows for the caller to write,
/// not n zeros written first (a pass over fresh memory, its page faults on one thread,
/// before the rows are written on every core).
template <class T>
struct uninitialized_allocator : std::allocator<T> {
  static_assert(std::is_trivially_default_constructible_v<T>, "only for plain rows");
  template <class U>
  struct rebind {
    using other = uninitialized_allocator<U>;
  };
  uninitialized_allocator() noexcept = default;
  template <class U>
  uninitialized_allocator(const uninitialized_allocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    std::construct_at(p, std::forward<Args>(args)...);
  }
};

/// Appends `part` to `out` and frees `part`: parts' columns joined one column at a time
/// hold at most one column twice. Into room `out` reserved for every part, nothing
/// but `part` is copied.
template <class T>
void append_column(std::vector<T>& out, std::vector<T>& part) {
  out.insert(out.end(), part.begin(), part.end());
  std::vector<T>().swap(part);
}

}  // namespace gpucredit::detail
