// RestartWarmup: which clients of the previous run a restarted standalone
// registry still waits for before it pushes anything.
//
// After a restart the registry's memory is empty and its clients come back
// one by one, each replaying its registrations. A subscriber pushed before
// every publisher is back would be shown live publishers as removed, so the
// session withholds pushes (docs/ARCHITECTURE.md, "Restart and reconnect")
// until every client of the previous run has returned or a timeout passes.
// This class is the bookkeeping only: who is awaited, who has returned. The
// session server owns the timer and the pushes.
//
// A client "returns" when one of its streams has said Hello and then had
// every registration it announced in that Hello (Hello.replay_registrations)
// answered; a Hello announcing 0 returns at once. Clients are matched by
// client id, counted: an id the previous run saw on 3 streams is awaited 3
// times (several processes may share an id, or leave it empty). Streams of
// ids the previous run did not have, or beyond its count, are new clients
// and change nothing: they do not extend the warm-up.
//
// Thread-safety: not thread-safe; the session server calls it on its loop.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace cairn {

class RestartWarmup {
 public:
  // Client id -> streams it had open when the previous run last recorded them.
  using ClientCounts = std::map<std::string, uint32_t>;

  explicit RestartWarmup(ClientCounts previous);

  // A stream said Hello announcing `replay` registrations to follow. A
  // second Hello on the same stream starts its count again.
  void OnHello(uint64_t connection_id, const std::string& client_id, uint32_t replay);
  // One publish, subscribe or revision registration of the stream was
  // answered (accepted or refused).
  void OnRegistrationAnswered(uint64_t connection_id);
  // The stream ended: if its replay was not complete, its client is still awaited.
  void OnDisconnect(uint64_t connection_id);

  bool AllReturned() const { return awaited_ == 0; }
  // Streams of the previous run not back yet, and how many there were.
  uint64_t awaited() const { return awaited_; }
  uint64_t expected() const { return expected_; }
  // Up to `limit` ids still awaited, "id" or "id x N", for log lines.
  std::string AwaitedSummary(size_t limit) const;

 private:
  struct Replaying {
    std::string client_id;
    uint64_t left = 0;  // announced registrations not answered yet
  };
  void Returned(const std::string& client_id);

  ClientCounts remaining_;  // id -> streams still awaited (entries > 0 only)
  std::unordered_map<uint64_t, Replaying> replaying_;
  uint64_t expected_ = 0;
  uint64_t awaited_ = 0;
};

// The warm-up's Prometheus metrics (standalone only). Registered once per
// process, in the registry's metric registry; any thread may update them.
struct RestartWarmupMetrics {
  explicit RestartWarmupMetrics(prometheus::Registry& registry);
  prometheus::Gauge& active;    // 1 while pushes are withheld
  prometheus::Gauge& awaited;   // client streams of the previous run not back yet
  prometheus::Gauge& duration;  // seconds the last warm-up lasted
};

}  // namespace cairn
