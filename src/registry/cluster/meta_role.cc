#include "registry/cluster/meta_role.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "cairn/cluster/v1/cluster.pb.h"
#include "coord/leader_election.h"
#include "coord/membership.h"
#include "registry/cluster/cluster_keys.h"

namespace cairn::cluster {

struct MetaRole::State {
  explicit State(const std::string& cluster) : keys(cluster) {}
  const ClusterKeys keys;
  mutable std::mutex mu;
  std::condition_variable cv;
  bool stop = false;         // guarded by mu
  bool wake = false;         // guarded by mu: membership or leadership changed
  uint64_t table_epoch = 0;  // guarded by mu
  bool stopped = false;      // Stop() has run (caller thread only)
  std::unique_ptr<coord::MemberRegistration> registration;
  std::unique_ptr<coord::PrefixWatcher> data_servers;
  std::unique_ptr<coord::LeaderElection> election;
  std::thread thread;

  void Wake() {
    {
      std::lock_guard<std::mutex> lock(mu);
      wake = true;
    }
    cv.notify_all();
  }
};

MetaRole::MetaRole(coord::EtcdClient& client, MetaRoleOptions options)
    : client_(client),
      options_(std::move(options)),
      state_(std::make_unique<State>(options_.cluster)) {}

MetaRole::~MetaRole() { Stop(); }

absl::StatusOr<std::unique_ptr<MetaRole>> MetaRole::Start(coord::EtcdClient& client,
                                                          MetaRoleOptions options) {
  if (options.id.empty()) return absl::InvalidArgumentError("meta role: empty id");
  std::unique_ptr<MetaRole> role(new MetaRole(client, std::move(options)));
  State& s = *role->state_;
  const MetaRoleOptions& o = role->options_;

  v1::MemberInfo info;
  info.set_id(o.id);
  info.set_role("meta");
  info.set_address(o.address);
  info.set_started_at_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count());
  s.registration = std::make_unique<coord::MemberRegistration>(
      client, s.keys.Member("meta", o.id), info.SerializeAsString(), o.lease_ttl);
  if (auto status = s.registration->Start(); !status.ok()) return status;

  s.data_servers = std::make_unique<coord::PrefixWatcher>(
      client, s.keys.Members("data"), [&s](const coord::PrefixWatcher::Snapshot&) { s.Wake(); });
  if (auto status = s.data_servers->Start(); !status.ok()) return status;

  coord::ElectionOptions election;
  election.key = s.keys.MetaLeader();
  election.value = o.id;
  election.ttl = o.lease_ttl;
  s.election =
      std::make_unique<coord::LeaderElection>(client, election, [&s, id = o.id](bool leader) {
        spdlog::info("meta {}: {}", id, leader ? "leader" : "standby");
        s.Wake();
      });
  s.election->Start();
  role->state_->thread = std::thread([r = role.get()] { r->Run(); });
  return role;
}

void MetaRole::Stop() {
  State& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.stop = true;
  }
  s.cv.notify_all();
  if (s.thread.joinable()) s.thread.join();
  s.election.reset();  // resigns
  s.data_servers.reset();
  s.registration.reset();  // leaves
}

bool MetaRole::IsLeader() const {
  return state_->election != nullptr && state_->election->IsLeader();
}

uint64_t MetaRole::table_epoch() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->table_epoch;
}

void MetaRole::Run() {
  State& s = *state_;
  bool again = false;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(s.mu);
      // Not leading: only a wake-up (leadership, membership) matters. While
      // a plan is unfinished: the next step after step_interval.
      auto wait = again ? options_.step_interval : std::chrono::milliseconds(2000);
      s.cv.wait_for(lock, wait, [&s] { return s.stop || s.wake; });
      if (s.stop) return;
      s.wake = false;
    }
    again = s.election->IsLeader() && Reconcile();
  }
}

bool MetaRole::Reconcile() {
  State& s = *state_;
  const int64_t term = s.election->leader_revision();
  if (term == 0) return false;
  SlotTable previous;
  int64_t previous_revision = 0;
  auto stored = client_.Get(s.keys.SlotTable());
  if (stored.ok()) {
    auto parsed = ParseSlotTable(stored->value);
    if (!parsed.ok()) {
      spdlog::error("meta {}: the stored slot table is unreadable ({}); not overwriting it",
                    options_.id, parsed.status().ToString());
      return false;
    }
    previous = std::move(*parsed);
    previous_revision = stored->mod_revision;
  } else if (stored.status().code() != absl::StatusCode::kNotFound) {
    return true;  // etcd trouble: try again soon
  }
  std::vector<std::string> live;
  for (const auto& [id, value] : s.data_servers->Get()) live.push_back(id);
  SlotPlanOptions plan_options = options_.plan;
  // A new cluster gets its whole table at once: there is no data to move.
  if (previous.slots.empty()) plan_options.max_moves = 0;
  auto plan = PlanSlotTable(previous, live, plan_options);
  if (!plan.ok()) {
    spdlog::error("meta {}: cannot plan the slot table: {}", options_.id, plan.status().ToString());
    return false;
  }
  if (plan->table.epoch != previous.epoch) {
    auto txn =
        client_.Txn({{s.keys.MetaLeader(),
                      coord::Compare::Target::kCreateRevision,
                      coord::Compare::Op::kEqual,
                      term,
                      {}},
                     coord::Compare::ModRevisionIs(s.keys.SlotTable(), previous_revision)},
                    {coord::TxnOp::Put(s.keys.SlotTable(),
                                       SerializeSlotTable(plan->table, plan_options.replicas))});
    if (!txn.ok() || !txn->succeeded) return true;  // re-read and retry (or lost leadership)
    spdlog::info("meta {}: slot table epoch {} ({} data servers, {} repairs, {} moves{})",
                 options_.id, plan->table.epoch, live.size(), plan->repairs, plan->moves,
                 plan->stable ? ", stable" : "");
  }
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.table_epoch = plan->table.epoch;
  }
  return !plan->stable;
}

}  // namespace cairn::cluster
