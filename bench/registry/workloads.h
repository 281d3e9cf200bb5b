// The five registry workloads, each written once against the System /
// Connection interface (driver.h) and run against every system in turn.
//
//   register  N instances from C connections, W registrations in flight per
//             connection, sent in batches of up to B (--batch-max; see Pump):
//             registrations/s and the latency of one registration.
//   hold      N instances (per_service per service) held by C connections:
//             server RSS before and after, bytes per instance.
//   hold-10m  hold at SOFARegistry's production scale, 10,000,000 instances
//             (Cairn only, first round only; not in the default set): RSS
//             and registrations/s while filling it.
//   push      one publisher, one subscriber, idle: publish-call to subscriber
//             callback latency over R changes.
//   fanout    one service with P publishers and S subscribers over K
//             connections: time until the last subscriber has one change.
//   storm     M services with one publisher and one subscriber each, changes
//             at a fixed rate for D seconds: push latency, then (after a settle
//             period) subscribers whose view differs from the final state.
//
// Every wait is bounded (phase_timeout or a per-step limit); a phase that
// times out records what it reached and its errors instead of hanging.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "driver.h"

namespace cairn::bench {

struct Sizes {
  int64_t register_instances = 100000;
  int register_connections = 100;
  int register_window = 16;  // registrations in flight per connection
  // Largest batch of registrations one request carries, for every system
  // (etcd: puts per Txn, at most its --max-txn-ops, 128 by default;
  // ZooKeeper: creates per multi; Cairn: its client coalesces only what
  // waits behind its write in flight, never more than the window, so this
  // holds for it while register_window <= batch_max).
  int batch_max = 128;
  std::chrono::milliseconds floor_duration{3000};
  // Whether `register` also measures the grpc-direct floor (not in warm-up).
  bool with_floor = true;
  // Prefix of the service names register and push use: the warm-up's
  // differ from the measured ones, so that nothing it left can be seen.
  std::string name_prefix;

  int64_t hold_instances = 1000000;
  int hold_per_service = 100;  // also the service size in `register`
  int hold_connections = 100;
  std::chrono::seconds hold_timeout{900};
  // hold-10m: the same shape (per_service, connections) at this size.
  int64_t hold10m_instances = 10000000;
  std::chrono::seconds hold10m_timeout{1800};

  int push_repeats = 2000;

  int fanout_publishers = 100;
  int fanout_subscribers = 10000;
  int fanout_connections = 100;
  int fanout_repeats = 50;

  int storm_services = 10000;
  int storm_connections = 100;           // subscriber connections
  int storm_publisher_connections = 10;  // publishers spread over these
  int64_t storm_changes_per_min = 100000;
  std::chrono::seconds storm_duration{60};
  std::chrono::seconds storm_settle{10};

  // Upper bound on any one timed phase other than hold.
  std::chrono::seconds phase_timeout{300};
  // Pause before reading RSS, so that the server's last allocations land.
  std::chrono::milliseconds rss_settle{2000};
};

struct Record {
  std::string workload;
  std::string system;
  std::string metric;
  double value;
  std::string unit;
  std::string note;         // optional, "" = none
  int round = -1;           // -1: not a per-round record
  double spread_pct = NAN;  // median records: (max - min) / median * 100
  int rounds = 0;           // median records: how many rounds it summarizes
};

// Collects the records of a run. Thread-safe.
class Results {
 public:
  void Add(const std::string& workload, const std::string& system, const std::string& metric,
           double value, const std::string& unit);
  void Add(Record record);
  std::vector<Record> records() const;

 private:
  mutable std::mutex mu_;
  std::vector<Record> records_;
};

void RunRegister(System& system, const Sizes& sizes, Results& results);
// Stops `system` before closing its connections: tearing down a million
// registrations one connection at a time would take longer than holding them.
// Records under `workload` ("hold", or "hold-10m" with the sizes set).
void RunHold(System& system, const Sizes& sizes, Results& results,
             const std::string& workload = "hold");
void RunPush(System& system, const Sizes& sizes, Results& results);
void RunFanout(System& system, const Sizes& sizes, Results& results);
void RunStorm(System& system, const Sizes& sizes, Results& results);

}  // namespace cairn::bench
