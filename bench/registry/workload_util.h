// Building blocks shared by the workloads: error tallies, opening many
// connections, and a pump that keeps a window of publishes in flight.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "driver.h"
#include "workloads.h"

namespace cairn::bench {

// Failures of one workload phase. Thread-safe.
class Tally {
 public:
  void Fail(const std::string& what);
  void Fail(const absl::Status& status) { Fail(status.ToString()); }
  int64_t failed() const;
  // Adds `errors` to the results and prints the first error, if any.
  void Report(Results& results, const std::string& workload, const std::string& system) const;

 private:
  mutable std::mutex mu_;
  int64_t failed_ = 0;
  std::string first_;
};

// Opens `count` connections (a few at a time, in parallel). On any failure
// returns the first error; the connections opened so far are closed.
absl::StatusOr<std::vector<std::unique_ptr<Connection>>> ConnectMany(System& system, int count);

// Runs fn(i) for i in [0, count) on `count` threads and joins them.
void ParallelFor(int count, const std::function<void(int)>& fn);

// Registers instances 0..count-1 on one connection, named by `name(i)`, with
// up to `window` registrations in flight; records each registration's
// latency. Whenever the window has room it hands the connection one batch
// (Connection::PublishBatch) of min(free window, batch_max, left)
// registrations: etcd sends it as one Txn, ZooKeeper as one multi, Cairn as
// that many publishes its client coalesces. So W in flight is W
// registrations in ceil(W / batch_max) or more requests, never more than W.
// Issues nothing new once `deadline` has passed.
//
// Thread-safety: the pump's callbacks run on driver threads; Wait from any one
// thread. The pump must outlive its connection's callbacks (destroy the
// connection first, or Wait until Finished).
class Pump {
 public:
  using Namer = std::function<void(int64_t i, std::string* service, std::string* instance)>;
  Pump(Connection& connection, Namer name, int64_t count, int window, int batch_max,
       Clock::time_point deadline, Tally& tally);

  void Start();
  // Waits until every issued publish was answered and nothing more will be
  // issued, or until `deadline` (then returns false).
  bool Wait(Clock::time_point deadline);
  int64_t ok() const;
  // Latencies (ms) of the successful registrations; call after Wait.
  std::vector<double> TakeLatencies();

 private:
  void Issue();
  void OnDone(int64_t answered, const absl::Status& status, Clock::time_point started);

  Connection& connection_;
  Namer name_;
  const int64_t count_;
  const int64_t window_;
  const int batch_max_;
  const Clock::time_point deadline_;
  Tally& tally_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t next_ = 0;
  int64_t in_flight_ = 0;
  int64_t callbacks_running_ = 0;  // OnDone calls not yet returned
  int64_t ok_ = 0;
  bool issuing_ = false;  // one thread runs the issue loop; others ask it to go on
  bool reissue_ = false;
  bool stopped_ = false;  // deadline passed: no more issuing
  std::vector<double> latencies_;
};

// Sorts `values` and adds <prefix>_p50_ms, _p99_ms and _p999_ms (and _max_ms
// if `with_max`).
void AddPercentiles(Results& results, const std::string& workload, const std::string& system,
                    const std::string& prefix, std::vector<double> values, bool with_max = false);

}  // namespace cairn::bench
