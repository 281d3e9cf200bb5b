#include "registry/data/version_clock.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "absl/strings/numbers.h"
#include "common/clock.h"

namespace cairn {
namespace {
constexpr char kWatermarkKey[] = "data/version_watermark";
}

absl::StatusOr<VersionClock> VersionClock::Open(KvStore* store) {
  uint64_t stored = 0;
  if (store != nullptr) {
    auto value = store->Get(kWatermarkKey);
    if (value.ok()) {
      if (!absl::SimpleAtoi(*value, &stored)) {
        return absl::DataLossError("version watermark in the store is not a number");
      }
    } else if (!absl::IsNotFound(value.status())) {
      return value.status();
    }
  }
  uint64_t start = std::max<uint64_t>(stored, static_cast<uint64_t>(WallMicros()));
  return VersionClock(store, start, stored);
}

uint64_t VersionClock::Next() {
  last_ = std::max(last_ + 1, static_cast<uint64_t>(WallMicros()));
  if (store_ != nullptr && last_ >= watermark_) {
    uint64_t next_mark = last_ + kReserveMicros;
    if (auto s = store_->Put(kWatermarkKey, std::to_string(next_mark)); s.ok()) {
      watermark_ = next_mark;
    } else {
      // Keep serving: the versions stay monotonic within this process; only
      // a restart before the next successful write could reuse versions.
      spdlog::error("cannot persist version watermark: {}", s.ToString());
    }
  }
  return last_;
}

}  // namespace cairn
