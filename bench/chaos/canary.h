// The chaos suite's canaries (bench/chaos/run): the production shape of a
// registry's users, and the invariant they check.
//
// Publishing clients (each with its own list of servers, in a different
// order for different clients) hold `publishers_per_data_id` publishers of
// each of `data_ids` dataIds, spread round robin over the clients, and each
// also subscribes to every dataId. Pinned subscriber clients (one server in
// their list) subscribe to every dataId too, so every server has subscribers.
//
// Every push delivered to a subscriber callback is checked, keyed by the
// publishers' registration ids:
//   * false removal: the push lacks an id this subscriber has already been
//     shown while the client that owns the id is alive (every canary client
//     stays alive for the whole run, except when Rebalance() retires one on
//     purpose, which first marks its ids dead);
//   * duplicate: one push lists the same registration id twice.
// Convergence is measured against the expected sets (the live ids of each
// dataId): Observe() times how long after a fault ends every subscriber's
// last view is exactly its expected set. So that it measures more than "no
// harm done", StartChurn() changes one dataId while the fault holds: a probe
// publisher is replaced (unregistered, a new one published).
//
// Thread-safety: push callbacks run on the clients' dispatch threads and
// record under an internal mutex; every other method is for one driver
// thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "client/registry_client.h"

namespace cairn::chaos {

using Clock = std::chrono::steady_clock;

struct CanaryOptions {
  // One entry per publishing client: its servers, in order of preference.
  std::vector<std::vector<std::string>> publisher_servers;
  // One entry per pinned subscriber client: (label, server).
  std::vector<std::pair<std::string, std::string>> pinned_subscribers;
  int data_ids = 4;
  int publishers_per_data_id = 6;
  std::string data_id_prefix = "chaos";
  std::chrono::milliseconds keepalive{1000};
  std::chrono::milliseconds backoff_max{500};
};

// A push that dropped a live publisher the subscriber had been shown.
struct FalseRemoval {
  std::string fault;       // the phase label when it was received
  std::string subscriber;  // "<client>/<dataId>"
  uint64_t version = 0;
  size_t shown_before = 0;  // ids in the subscriber's previous view
  size_t in_push = 0;       // ids in this push
  std::vector<std::string> missing;
  double at_s = 0;  // seconds since the phase (the fault) began
};

// What one fault round observed (see Observe()).
struct RoundOutcome {
  double convergence_ms = 0;  // last moment any view was wrong, after the fault's end
  bool converged = false;     // within the budget, and still right at the end
  bool settled = false;       // the settled() condition held at the end
  int stale_subscribers = 0;  // views still wrong when the budget ran out
  std::string stale_detail;   // which, for the log
  std::string last_wrong;     // the views wrong at the last moment any was
};

class Canaries {
 public:
  explicit Canaries(CanaryOptions options);
  ~Canaries();  // closes every client
  Canaries(const Canaries&) = delete;
  Canaries& operator=(const Canaries&) = delete;

  // Connects the clients, publishes and subscribes, and waits (up to
  // `timeout`) until every view is exactly its expected set.
  absl::Status Start(std::chrono::milliseconds timeout);

  // Labels the pushes received from now on (false removals and duplicates
  // are counted per label).
  void SetPhase(const std::string& fault);

  // After a fault ended at `fault_end`: polls the views until every view has
  // matched its expected set for `quiet`, `settled()` holds (checked at most
  // every 250 ms) and at least `watch` passed since the fault's end (so that
  // late effects, such as a lease running out, land in this fault), or until
  // `budget` + `grace` after the fault's end. The convergence time is the
  // last moment a view was wrong (0 if none).
  RoundOutcome Observe(Clock::time_point fault_end, std::chrono::milliseconds budget,
                       const std::function<bool()>& settled, std::chrono::milliseconds quiet,
                       std::chrono::milliseconds watch,
                       std::chrono::milliseconds grace = std::chrono::seconds(20));

  // On a background thread: unregisters the last probe publisher (its
  // removal expected) and publishes a new one on the next dataId through the
  // next publishing client, waiting as long as the client must (a failover,
  // a restart). Observe() waits for it; JoinChurn() joins it.
  void StartChurn();
  void JoinChurn();

  // Publishing clients no longer on their first server (after a failover)
  // are closed and replaced by new ones with new publishers, so that the
  // publishers stay spread over the servers. Their ids are marked dead
  // first, so the removal is expected. Waits until every view matches.
  // Returns how many clients were replaced.
  int Rebalance(std::chrono::milliseconds timeout);

  // Whether every view is exactly its expected set.
  bool AllViewsMatch() { return MismatchCount() == 0; }
  // How many subscribers' views differ from their expected sets.
  int MismatchCount();
  // The views that differ, e.g. "pub1/chaos-0 has 5 of 6 (1 missing, 0 extra)".
  std::string Mismatches(size_t limit = 6);
  // Which server each publishing client is connected to, e.g. "s1:2 s2:2".
  std::string Spread(const std::map<std::string, std::string>& names);

  int64_t false_removals(const std::string& fault);
  int64_t duplicates(const std::string& fault);
  int64_t pushes();
  std::vector<FalseRemoval> removals();  // every recorded false removal
  int subscriber_count();
  int publisher_count();

 private:
  struct Subscriber;
  struct Client;
  absl::Status StartClient(Client& client);
  void Record(Subscriber& subscriber, const pb::Push& push);

  CanaryOptions options_;
  std::vector<std::unique_ptr<Client>> clients_;  // publishing, then pinned
  std::thread churn_;                             // StartChurn()'s, joined before the next
  std::atomic<bool> churning_{false};
  std::shared_ptr<Publisher> probe_;  // the last probe publisher (churn thread, then driver)
  size_t probe_client_ = 0;           // index in clients_ of its client
  int probes_ = 0;
  std::mutex mu_;  // guards everything below
  std::string phase_ = "setup";
  Clock::time_point phase_started_ = Clock::now();
  std::map<std::string, std::set<std::string>> expected_;  // dataId -> live ids
  std::vector<std::shared_ptr<Subscriber>> subscribers_;   // of live clients
  std::map<std::string, int64_t> false_removals_;
  std::map<std::string, int64_t> duplicates_;
  std::vector<FalseRemoval> removals_;
  int64_t pushes_ = 0;
};

}  // namespace cairn::chaos
