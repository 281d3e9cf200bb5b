// The fixture of the cluster fault tests (cluster_faults_test.cc,
// cluster_session_faults_test.cc): a real cluster on loopback (etcd, one
// meta, three data and two session processes; tests/support/cluster_harness.h)
// loaded the way production loads it, and checkers that see what a
// subscriber would suffer from.
//
// Load: 11 dataIds spread over the data servers' slots, each with publishers from every canary
// client (half of them list the sessions as s1,s2, half as s2,s1, so each dataId has publishers
// through both sessions), subscribers on both sessions, and churn clients that publish, republish
// with new data and unregister from their own threads while a fault happens.
//
// Checks, keyed by registration id (never by flattened data strings, which
// cannot show a ghost or a duplicate publisher):
//   * false removal: a push that lacks a registration id this subscriber was
//     already shown while its client still wants it (it was never asked to
//     unregister; every client here stays alive, connected or reconnecting);
//   * duplicate: the same registration id twice in one push (a dead
//     session's copy plus the replay);
//   * convergence: every view equals, id for id and data for data, what the
//     clients last had acknowledged, within a per-fault time budget.
//
// Thread-safety: the fixture's methods run on the test thread; the checkers
// (Ledger, View, Anomalies) are called from the clients' push threads too
// and lock internally.
#pragma once

#include <gtest/gtest.h>

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

#include "cairn/cluster/v1/cluster.pb.h"
#include "client/registry_client.h"
#include "cluster_harness.h"
#include "coord/etcd_client.h"
#include "registry/cluster/cluster_keys.h"

namespace cairn::cluster::faults {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// dataIds per data server among those it leads, and dataIds whose slot lives
// only on d2 and d3 (lost when both die): chosen from the balanced table.
constexpr int kIdsLedPerServer = 3;
constexpr int kIdsOnlyOnD2AndD3 = 2;
constexpr int kCanaryClients = 6;           // 3 through s1 first, 3 through s2 first
constexpr int kCanariesPerClientAndId = 2;  // 12 canary publishers per dataId
constexpr int kChurnClients = 4;            // 2 through s1 first, 2 through s2 first
constexpr int kSubscriberClients = 2;       // one per session, each on every dataId

pb::DataInfoKey Key(const std::string& data_id);

// How much slower than a normal build the budgets may be: 3 under
// AddressSanitizer (GCC and Clang define __SANITIZE_ADDRESS__ /
// __has_feature(address_sanitizer) in -DCAIRN_SANITIZE=ON builds), else 1;
// $CAIRN_TEST_TIME_SCALE overrides both.
double TimeScale();
milliseconds Scaled(milliseconds budget);

// Registration ids the test created, who owns them, and whether their owner
// still wants them. Ids the test never created are unknown (never "wanted").
class Ledger {
 public:
  // `client` must outlive every later call (the fixture closes the
  // subscribers, which call us, before any publishing client).
  void Add(const std::string& registration_id, const std::string& owner,
           const RegistryClient* client);
  // Called before asking the server to unregister it (or after a publish
  // whose id the client dropped): from then on a push may lack it.
  void MarkLeaving(const std::string& registration_id);
  bool Wanted(const std::string& registration_id) const;
  // "pub-1[s1,s2] via s2" (the session it is connected to now, or
  // "reconnecting").
  std::string Describe(const std::string& registration_id) const;
  // Session ids by client address, for Describe.
  void NameSession(const std::string& address, const std::string& id);

 private:
  struct Entry {
    std::string owner;
    const RegistryClient* client = nullptr;
    bool leaving = false;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> sessions_;
};

// What went wrong for subscribers, with times relative to the last Mark().
class Anomalies {
 public:
  void Mark(const std::string& phase);
  void FalseRemoval(const std::string& what);
  void Duplicate(const std::string& what);
  int false_removals() const;
  int duplicates() const;
  // The first few of each, one per line.
  std::string Report() const;

 private:
  std::string Stamp() const;  // "[phase +123 ms]", REQUIRES mu_
  mutable std::mutex mu_;
  std::string phase_ = "setup";
  Clock::time_point since_ = Clock::now();
  int false_removals_ = 0;
  int duplicates_ = 0;
  std::vector<std::string> lines_;
};

// Registration id -> data, as one subscriber last received it.
using PublisherMap = std::map<std::string, std::vector<std::string>>;

// One subscriber's view of one dataId; checks every push it receives.
class View {
 public:
  View(std::string data_id, std::string subscriber, std::shared_ptr<const Ledger> ledger,
       std::shared_ptr<Anomalies> anomalies)
      : data_id_(std::move(data_id)),
        subscriber_(std::move(subscriber)),
        ledger_(std::move(ledger)),
        anomalies_(std::move(anomalies)) {}
  void OnPush(const pb::Push& push);
  PublisherMap publishers() const;
  const std::string& data_id() const { return data_id_; }
  const std::string& subscriber() const { return subscriber_; }

 private:
  const std::string data_id_;
  const std::string subscriber_;
  const std::shared_ptr<const Ledger> ledger_;
  const std::shared_ptr<Anomalies> anomalies_;
  mutable std::mutex mu_;
  PublisherMap current_;
  std::set<std::string> shown_;  // every id any push showed
};

// One client that publishes, republishes with new data and unregisters on
// its own thread while Start()ed. Remembers what the server acknowledged.
class ChurnClient {
 public:
  ChurnClient(std::string name, std::unique_ptr<RegistryClient> client,
              std::vector<std::string> data_ids, std::shared_ptr<Ledger> ledger, uint32_t seed)
      : name_(std::move(name)),
        client_(std::move(client)),
        data_ids_(std::move(data_ids)),
        ledger_(std::move(ledger)),
        seed_(seed) {}
  ~ChurnClient() { Stop(); }
  // Publishes one publisher on every dataId, on the calling thread.
  absl::Status Seed();
  // Starts the thread: one operation, then `gap`, until Stop(). `publish_share`
  // of 100 operations are new publishers (the rest republish or unregister).
  void Start(milliseconds gap, int publish_share);
  void Stop();
  // dataId -> what this client last had acknowledged. REQUIRES: stopped.
  std::map<std::string, PublisherMap> Acknowledged() const;
  // Ids whose last operation never got an answer (excluded from the views'
  // comparison; each is also a failure).
  std::set<std::string> Uncertain() const;
  int failures() const { return failures_; }
  int operations() const { return operations_; }
  std::string failure_log() const;
  Clock::time_point last_ack() const;
  RegistryClient& client() { return *client_; }

 private:
  struct Live {
    std::string data_id;
    std::vector<std::string> data;
    std::shared_ptr<Publisher> handle;
  };
  void Run(milliseconds gap, int publish_share);
  void Publish(const std::string& data_id);
  void Republish(const std::string& id);
  void Unregister(const std::string& id);
  void Failed(const std::string& op, const absl::Status& status);

  const std::string name_;
  std::unique_ptr<RegistryClient> client_;
  const std::vector<std::string> data_ids_;
  const std::shared_ptr<Ledger> ledger_;
  uint32_t seed_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> failures_{0};
  std::atomic<int> operations_{0};
  int counter_ = 0;  // for unique data strings
  mutable std::mutex mu_;
  std::map<std::string, Live> live_;  // by registration id
  std::set<std::string> uncertain_;
  std::vector<std::string> failure_log_;
  Clock::time_point last_ack_ = Clock::now();
};

class ClusterFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // ---- the cluster
  absl::StatusOr<v1::SlotTable> Table();
  int64_t TableRevision();  // the table key's mod revision, -1 if unreadable
  // Every slot has a live leader and a live follower, and every live data
  // server leads some slot.
  bool Settled(const std::set<std::string>& live);
  // Settled, and at the planner's fixed point: leaders, and followers, per
  // live server differ by at most one, so no slot moves until a fault.
  bool Balanced(const std::set<std::string>& live);
  std::string Address(const std::string& id) { return cluster_.Find(id)->grpc_address; }
  // Fills data_ids_ from the balanced table: kIdsLedPerServer led by each of
  // d1, d2, d3 and kIdsOnlyOnD2AndD3 held only by d2 and d3, in distinct slots.
  void ChooseDataIds();

  // ---- clients
  std::unique_ptr<RegistryClient> NewClient(const std::string& name,
                                            const std::vector<std::string>& session_ids);
  // A client that keeps `kCanariesPerClientAndId` publishers on every dataId
  // for the whole test.
  void AddCanaryClient(const std::string& name, const std::vector<std::string>& session_ids);
  void AddSubscriberClient(const std::string& name, const std::vector<std::string>& session_ids);

  // ---- faults
  // Starts every churn client's thread; marks the anomaly clock.
  void StartChurn(milliseconds gap = milliseconds(20), int publish_share = 40);
  // Stops them (waits for their operation in flight) and folds what they
  // had acknowledged into the expected state.
  void StopChurn();
  // Runs churn around `fault`: churn for `before`, `fault` (which returns
  // the instant the fault hit), churn for `after`; returns that instant.
  Clock::time_point DuringChurn(const std::function<void()>& fault,
                                milliseconds before = milliseconds(300),
                                milliseconds after = milliseconds(1000));

  // ---- checks
  bool AllViewsMatch();
  // Which views differ from the expected state, and how (missing ids with
  // their owners, ghosts, wrong data).
  std::string Mismatch();
  // Asserts that every view matches within `budget` (scaled) of `since`;
  // prints the convergence time either way (and, if over budget, when it
  // did converge, if within 10 s more). Returns the ms, or -1.
  long ExpectConvergedWithin(const std::string& fault, Clock::time_point since,
                             milliseconds budget);
  // No false removal and no duplicate so far.
  void ExpectNoAnomalies(const std::string& fault);
  void ExpectNoChurnFailures();

  cairn::testing::ClusterHarness cluster_;
  std::vector<std::string> data_ids_;
  std::unique_ptr<coord::EtcdClient> etcd_;
  ClusterKeys keys_{"cairn"};
  std::shared_ptr<Ledger> ledger_ = std::make_shared<Ledger>();
  std::shared_ptr<Anomalies> anomalies_ = std::make_shared<Anomalies>();

  std::vector<std::unique_ptr<RegistryClient>> subscriber_clients_;
  std::vector<std::shared_ptr<Subscription>> subscriptions_;
  std::vector<std::shared_ptr<View>> views_;
  std::vector<std::unique_ptr<RegistryClient>> canary_clients_;
  std::vector<std::shared_ptr<Publisher>> canaries_;
  std::vector<std::unique_ptr<ChurnClient>> churn_;

  // What the canaries hold (fixed once published), and that plus what the
  // churn clients had acknowledged when last stopped. Test thread only.
  void RebuildExpected();
  std::map<std::string, PublisherMap> canary_expected_;  // dataId -> id -> data
  std::map<std::string, PublisherMap> expected_;
  std::set<std::string> uncertain_;
};

}  // namespace cairn::cluster::faults
