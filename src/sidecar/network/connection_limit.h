// ConnectionLimit: the open connections of one listener, across workers,
// against its max_connections.
//
// TryAcquire() hands out a slot per accepted connection; the slot is
// released when its last copy is destroyed (the Connection holds it, see
// Connection::HoldSlot), so whatever path closes the connection frees it.
// Over the limit TryAcquire() returns null and counts a rejection: the
// caller closes the socket at once, and open connections are not affected.
//
// Thread-safety: every method may be called from any thread (atomics). The
// limit must outlive every slot it handed out.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace cairn::sidecar {

class ConnectionLimit {
 public:
  using Slot = std::shared_ptr<void>;

  explicit ConnectionLimit(uint32_t max_connections) : max_(max_connections) {}
  ConnectionLimit(const ConnectionLimit&) = delete;
  ConnectionLimit& operator=(const ConnectionLimit&) = delete;

  // A slot, or null when max_connections are open (0: no limit).
  Slot TryAcquire() {
    uint32_t now = open_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (max_ != 0 && now > max_) {
      open_.fetch_sub(1, std::memory_order_relaxed);
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    // The deleter ignores its pointer: the slot stands for a count.
    return Slot(
        this, [](ConnectionLimit* limit) { limit->open_.fetch_sub(1, std::memory_order_relaxed); });
  }

  uint32_t open() const { return open_.load(std::memory_order_relaxed); }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }
  uint32_t max() const { return max_; }

 private:
  const uint32_t max_;
  std::atomic<uint32_t> open_{0};
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace cairn::sidecar
