// When each receiver (an ADS stream, or a Session API subscriber) first got
// each version of the watched service, for the xDS bench (xds_bench.cc).
//
// Versions are told apart by the port of the changed publisher's endpoint,
// which is unique per version: version 0 (the initial data) holds
// kInitialPort, change round r (1..rounds) moves it to kChangePortBase + r.
// A receiver reports every port it sees in the watched service's data
// (Observe); the first sighting of a version's port stamps its arrival.
//
// Thread-safety: Observe may be called from any thread, concurrently (one
// receiver's observations are expected from one thread at a time, but
// nothing breaks if not); the readers may run meanwhile.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace cairn::bench::xds {

using Clock = std::chrono::steady_clock;

// Ports of the watched service's first publisher (nothing listens there: they
// are only registry data). The second publisher keeps kSecondPort.
constexpr uint32_t kInitialPort = 20000;
constexpr uint32_t kSecondPort = 20001;
constexpr uint32_t kChangePortBase = 30000;

class DeliveryTracker {
 public:
  DeliveryTracker(int receivers, int rounds)
      : receivers_(receivers),
        rounds_(rounds),
        arrivals_(new std::atomic<int64_t>[static_cast<size_t>(receivers) * (rounds + 1)]),
        done_(new std::atomic<int>[rounds + 1]) {
    for (size_t i = 0; i < static_cast<size_t>(receivers) * (rounds + 1); ++i) arrivals_[i] = 0;
    for (int v = 0; v <= rounds; ++v) done_[v] = 0;
  }

  int receivers() const { return receivers_; }
  int rounds() const { return rounds_; }

  // The version a port stands for, or -1.
  int VersionOf(uint32_t port) const {
    if (port == kInitialPort) return 0;
    if (port > kChangePortBase && port <= kChangePortBase + static_cast<uint32_t>(rounds_)) {
      return static_cast<int>(port - kChangePortBase);
    }
    return -1;
  }
  static uint32_t PortOf(int version) {
    return version == 0 ? kInitialPort : kChangePortBase + static_cast<uint32_t>(version);
  }

  // Receiver `r` got data holding `port` at `now`.
  void Observe(int r, uint32_t port, Clock::time_point now) {
    int v = VersionOf(port);
    if (v < 0 || r < 0 || r >= receivers_) return;
    int64_t expected = 0;
    int64_t stamp = std::max<int64_t>(1, now.time_since_epoch().count());
    if (Slot(v, r).compare_exchange_strong(expected, stamp, std::memory_order_acq_rel)) {
      done_[v].fetch_add(1, std::memory_order_acq_rel);
    }
  }

  // Receivers that got version v so far.
  int Done(int v) const { return done_[v].load(std::memory_order_acquire); }

  // Receiver r's arrival of version v; nullopt-like: time_point{} if none.
  Clock::time_point Arrival(int v, int r) const {
    int64_t t = Slot(v, r).load(std::memory_order_acquire);
    return t == 0 ? Clock::time_point{} : Clock::time_point(Clock::duration(t));
  }

 private:
  std::atomic<int64_t>& Slot(int v, int r) const {
    return arrivals_[static_cast<size_t>(v) * receivers_ + r];
  }

  const int receivers_;
  const int rounds_;
  std::unique_ptr<std::atomic<int64_t>[]> arrivals_;
  std::unique_ptr<std::atomic<int>[]> done_;
};

}  // namespace cairn::bench::xds
