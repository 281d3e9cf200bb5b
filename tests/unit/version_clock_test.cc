#include "registry/data/version_clock.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/clock.h"

namespace cairn {
namespace {

TEST(VersionClockTest, VersionsStrictlyGrow) {
  auto clock = VersionClock::Open(nullptr);
  ASSERT_TRUE(clock.ok());
  uint64_t previous = 0;
  for (int i = 0; i < 10000; ++i) {
    uint64_t v = clock->Next();
    ASSERT_GT(v, previous);
    previous = v;
  }
}

TEST(VersionClockTest, RestartStartsAboveEveryEarlierVersion) {
  auto dir = std::filesystem::temp_directory_path() / ("cairn-vc-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto store = OpenSqliteKvStore(dir.string());
  ASSERT_TRUE(store.ok());
  // Pretend an earlier process ran with a clock far ahead of ours.
  uint64_t future = static_cast<uint64_t>(WallMicros()) + 3'600'000'000ULL;
  ASSERT_TRUE((*store)->Put("data/version_watermark", std::to_string(future)).ok());
  uint64_t last_of_first_run;
  {
    auto clock = VersionClock::Open(store->get());
    ASSERT_TRUE(clock.ok());
    EXPECT_GT(clock->Next(), future);
    last_of_first_run = clock->Next();
  }
  auto clock = VersionClock::Open(store->get());
  ASSERT_TRUE(clock.ok());
  EXPECT_GT(clock->Next(), last_of_first_run);
  std::filesystem::remove_all(dir);
}

TEST(VersionClockTest, CorruptWatermarkIsRefused) {
  auto dir = std::filesystem::temp_directory_path() / ("cairn-vc2-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto store = OpenSqliteKvStore(dir.string());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Put("data/version_watermark", "garbage").ok());
  EXPECT_EQ(VersionClock::Open(store->get()).status().code(), absl::StatusCode::kDataLoss);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cairn
