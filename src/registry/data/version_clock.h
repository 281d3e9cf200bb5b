// VersionClock: datum versions that only grow, also across restarts.
//
// A version is max(previous + 1, wall clock in microseconds). A watermark a
// little ahead of the newest version is kept in the durable store, and a new
// process starts above it, so a server restart (or a wall clock stepping
// back) never hands out a version a client has already seen.
//
// Thread-safety: not thread-safe; owned by the registry loop.
#pragma once

#include <algorithm>
#include <cstdint>

#include "absl/status/statusor.h"
#include "store/kv_store.h"

namespace cairn {

class VersionClock {
 public:
  // How far ahead of the newest version the stored watermark is kept: one
  // durable write per this many microseconds of version progress.
  static constexpr uint64_t kReserveMicros = 10'000'000;

  // Reads the watermark. store may be null (tests): versions then start at
  // the wall clock.
  static absl::StatusOr<VersionClock> Open(KvStore* store);

  // Returns a version greater than every version this or an earlier process
  // returned. May write the watermark (one fsync, rarely).
  uint64_t Next();
  uint64_t last() const { return last_; }
  // Versions from now on are above `version` (cluster mode: a version another
  // data server handed out, replicated or reported by a session).
  void Observe(uint64_t version) { last_ = std::max(last_, version); }

 private:
  VersionClock(KvStore* store, uint64_t last, uint64_t watermark)
      : store_(store), last_(last), watermark_(watermark) {}
  KvStore* store_;
  uint64_t last_;
  uint64_t watermark_;
};

}  // namespace cairn
