// The device engine's host-side parts that need no device: the chunk scheduler
// (cuda/pipeline.hpp) against a transport that records what it is asked, and the cost
// model behind `--backend auto` (cuda/cost_model.hpp).
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/cost_model.hpp"
#include "cuda/pipeline.hpp"

namespace gpucredit::device {
namespace {

// Checks the scheduler's promises as it goes: every item staged once, in chunks in
// order; a chunk launched right after it is staged; finished once, in chunk order; and
// a slot never staged again before its previous chunk finished.
struct recording_transport {
  unsigned slot_count;
  std::uint64_t total;
  std::vector<int> slot_busy;  // the chunk in flight on each slot, or -1
  std::vector<std::string> log;
  std::uint64_t next_offset = 0;
  std::uint64_t next_finish = 0;
  std::uint64_t most_in_flight = 0;
  std::uint64_t in_flight = 0;
  int staged_not_launched = -1;

  unsigned slots() const { return slot_count; }
  void stage(const chunk& c) {
    ASSERT_LT(c.slot, slot_count);
    ASSERT_EQ(slot_busy[c.slot], -1) << "slot " << c.slot << " staged while chunk " << slot_busy[c.slot] << " is in flight";
    ASSERT_EQ(c.offset, next_offset);
    ASSERT_GT(c.count, 0U);
    ASSERT_EQ(staged_not_launched, -1);
    next_offset += c.count;
    slot_busy[c.slot] = static_cast<int>(c.index);
    staged_not_launched = static_cast<int>(c.index);
    ++in_flight;
    most_in_flight = std::max(most_in_flight, in_flight);
  }
  void launch(const chunk& c) {
    ASSERT_EQ(staged_not_launched, static_cast<int>(c.index));
    staged_not_launched = -1;
  }
  void finish(const chunk& c) {
    ASSERT_EQ(c.index, next_finish) << "chunks finish in order";
    ASSERT_EQ(slot_busy[c.slot], static_cast<int>(c.index));
    slot_busy[c.slot] = -1;
    ++next_finish;
    --in_flight;
  }
};

TEST(Scheduler, EveryChunkOnceInOrderAndNoSlotReusedEarly) {
  for (const unsigned slots : {1U, 2U, 3U, 5U}) {
    for (const std::uint64_t total : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{7}, std::uint64_t{1000},
                                      std::uint64_t{1001}, std::uint64_t{99999}}) {
      for (const std::uint64_t chunk_size : {std::uint64_t{1}, std::uint64_t{3}, std::uint64_t{1000}}) {
        if (total / chunk_size > 20000) continue;
        recording_transport t{slots, total, std::vector<int>(slots, -1), {}};
        run_pipeline(t, total, chunk_size);
        ASSERT_FALSE(HasFatalFailure());
        EXPECT_EQ(t.next_offset, total) << "every item staged";
        EXPECT_EQ(t.next_finish, (total + chunk_size - 1) / chunk_size) << "every chunk finished";
        EXPECT_EQ(t.in_flight, 0U);
        const std::uint64_t chunks = (total + chunk_size - 1) / chunk_size;
        EXPECT_EQ(t.most_in_flight, std::min<std::uint64_t>(chunks, slots)) << "every slot used: the overlap";
      }
    }
  }
}

// A transport whose compute fails on one chunk: the error reaches the caller and no
// later chunk is staged.
struct failing_transport {
  std::uint64_t fail_at;
  std::uint64_t staged = 0;
  unsigned slots() const { return 3; }
  void stage(const chunk&) { ++staged; }
  void launch(const chunk& c) {
    if (c.index == fail_at) throw std::runtime_error("device failed");
  }
  void finish(const chunk&) {}
};

TEST(Scheduler, AFailingChunkStopsTheBatch) {
  failing_transport t{4};
  EXPECT_THROW(run_pipeline(t, 100, 10), std::runtime_error);
  EXPECT_EQ(t.staged, 5U);
}

cost_model model_with(unsigned cores) {
  cost_model m;
  m.host_cores = cores;
  return m;
}

TEST(CostModel, SmallBatchesStayOnTheHost) {
  for (const unsigned cores : {2U, 16U, 64U}) {
    const cost_model m = model_with(cores);
    for (const bool sorted : {false, true}) {
      EXPECT_FALSE(m.prefer_device({100, sorted, false, 800})) << cores << " cores";
      EXPECT_FALSE(m.prefer_device({1, sorted, true, 16})) << cores << " cores";
    }
  }
}

TEST(CostModel, LargeRandomBatchesFromHostMemoryGoToTheDevice) {
  // 10^8 random queries: the host needs 69 ns / cores each, the link 20 bytes / 25 GB/s.
  EXPECT_TRUE(model_with(2).prefer_device({100000000, false, false, 800000000}));
  EXPECT_TRUE(model_with(16).prefer_device({100000000, false, false, 800000000}));
}

TEST(CostModel, SortedBatchesOnManyCoresAreBoundByTheLink) {
  // Sorted: 21 ns / query / core. With 64 cores the host answers in 0.33 ns a query,
  // faster than 20 bytes cross PCIe (0.8 ns): the host wins however large the batch.
  EXPECT_FALSE(model_with(64).prefer_device({1000000000, true, false, 8000000000}));
  EXPECT_TRUE(model_with(2).prefer_device({1000000000, true, false, 8000000000}));
}

TEST(CostModel, GridsGeneratedOnTheDeviceWinOnceLarge) {
  // 10^6 accounts x 720 times: only the totals (or the balances, when asked) come back.
  const std::uint64_t cells = 720000000;
  EXPECT_TRUE(model_with(64).prefer_device({cells, true, true, 720 * 16}));
  EXPECT_TRUE(model_with(16).prefer_device({cells, true, true, cells * 8}));
  // A grid of a few accounts is not worth a launch.
  EXPECT_FALSE(model_with(16).prefer_device({720, true, true, 720 * 16}));
}

TEST(CostModel, TimesGrowWithTheBatch) {
  const cost_model m = model_with(8);
  double last_host = 0;
  double last_device = 0;
  for (std::uint64_t q = 1; q < (std::uint64_t{1} << 34); q *= 4) {
    const batch_shape b{q, false, false, q * 8};
    EXPECT_GE(m.host_seconds(b), last_host);
    EXPECT_GE(m.device_seconds(b), last_device);
    last_host = m.host_seconds(b);
    last_device = m.device_seconds(b);
  }
}

}  // namespace
}  // namespace gpucredit::device
