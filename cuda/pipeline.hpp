// The chunk scheduler of the device engine (internal, plain C++): a batch is cut into
// chunks that go through a transport's buffer sets ("slots") in turn. On CUDA a slot is
// a stream with its own pinned staging and device buffers, and every step the
// transport takes is asynchronous except `finish`, so with three slots the copy in of
// chunk k + 1, the compute of chunk k and the copy back of chunk k - 1 overlap. On
// Thrust's OpenMP system the same schedule runs with a transport whose steps complete
// at once, so every CI run exercises this code.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace gpucredit::device {

/// One chunk of a batch: items [offset, offset + count), chunk `index` of the batch,
/// on buffer set `slot`.
struct chunk {
  std::uint64_t index = 0;
  std::uint64_t offset = 0;
  std::uint64_t count = 0;
  unsigned slot = 0;
};

/// What a transport provides (a concept in words, checked by use):
/// - `unsigned slots() const`: how many buffer sets it has (at least 1);
/// - `void stage(const chunk&)`: bring the chunk's input into its slot and start it on
///   its way to the device (may return before the copy completes);
/// - `void launch(const chunk&)`: start the compute of the chunk and the copy of its
///   answers back (may return before either completes);
/// - `void finish(const chunk&)`: wait until the chunk's answers are back and hand them
///   to the caller. Called once per chunk, in chunk order, and before its slot is
///   staged again.
///
/// Runs `total` items in chunks of at most `chunk_size` through `t`. When a step
/// throws, the chunks in flight are left to the transport (its next use must wait for
/// its slots first).
template <class Transport>
void run_pipeline(Transport& t, std::uint64_t total, std::uint64_t chunk_size) {
  if (total == 0) return;
  const unsigned slots = t.slots() == 0 ? 1 : t.slots();
  std::vector<std::optional<chunk>> in_flight(slots);
  std::uint64_t next_to_finish = 0;  // chunk order, whatever the slot
  const std::uint64_t chunks = (total + chunk_size - 1) / chunk_size;
  auto finish_through = [&](std::uint64_t k) {  // finishes every chunk up to and including k
    while (next_to_finish <= k) {
      std::optional<chunk>& pending = in_flight[next_to_finish % slots];
      t.finish(*pending);
      pending.reset();
      ++next_to_finish;
    }
  };
  for (std::uint64_t k = 0; k < chunks; ++k) {
    const unsigned slot = static_cast<unsigned>(k % slots);
    if (in_flight[slot].has_value()) finish_through(in_flight[slot]->index);
    const std::uint64_t offset = k * chunk_size;
    const chunk c{k, offset, total - offset < chunk_size ? total - offset : chunk_size, slot};
    t.stage(c);
    t.launch(c);
    in_flight[slot] = c;
  }
  if (chunks > 0) finish_through(chunks - 1);
}

}  // namespace gpucredit::device
