#include "coord/leader_election.h"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace cairn::coord {

struct LeaderElection::State {
  mutable std::mutex mu;
  std::condition_variable cv;
  bool started = false;         // guarded by mu
  bool stop = false;            // guarded by mu
  bool wake = false;            // guarded by mu: the key changed or the lease was lost
  bool leader = false;          // guarded by mu
  std::string leader_value;     // guarded by mu
  int64_t leader_revision = 0;  // guarded by mu
  // guarded by mu: the keeper of the lease we campaign with, if any (owned
  // by the election's thread, which clears this before destroying it).
  const LeaseKeeper* keeper = nullptr;
  std::thread thread;
};

LeaderElection::LeaderElection(EtcdClient& client, ElectionOptions options,
                               ChangeCallback on_change)
    : client_(client),
      options_(std::move(options)),
      on_change_(std::move(on_change)),
      state_(std::make_unique<State>()) {}

LeaderElection::~LeaderElection() { Resign(); }

void LeaderElection::Start() {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->started) return;
  state_->started = true;
  state_->thread = std::thread([this] { Run(); });
}

void LeaderElection::Resign() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->cv.notify_all();
  if (state_->thread.joinable()) state_->thread.join();
}

bool LeaderElection::IsLeader() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  // Leadership lasts only while the lease does: after a freeze past the TTL
  // the flag may still say true until the election's thread runs again.
  return state_->leader && state_->keeper != nullptr && !state_->keeper->lost();
}

std::string LeaderElection::Leader() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->leader_value;
}

int64_t LeaderElection::leader_revision() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->leader ? state_->leader_revision : 0;
}

void LeaderElection::Run() {
  auto wake = [this] {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->wake = true;
    }
    state_->cv.notify_all();
  };
  // Sets the observed state; reports a transition outside the lock.
  auto set_state = [this](bool leader, std::string value, int64_t revision) {
    bool changed;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      changed = state_->leader != leader;
      state_->leader = leader;
      state_->leader_value = std::move(value);
      state_->leader_revision = revision;
    }
    if (changed && on_change_) on_change_(leader);
  };

  int64_t lease = 0;
  std::unique_ptr<LeaseKeeper> keeper;
  auto publish_keeper = [this](const LeaseKeeper* current) {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->keeper = current;
  };
  // Every change of the key wakes the loop. Opened once, before the first
  // campaign, so no deletion can slip between a failed campaign and the wait.
  std::unique_ptr<Watch> watch = client_.WatchPrefix(
      options_.key, 0, [&](const std::vector<WatchEvent>&, int64_t) { wake(); });
  watch->WaitUntilCreated(client_.options().request_timeout);

  for (;;) {
    std::chrono::milliseconds wait = options_.recheck;
    if (keeper != nullptr && keeper->lost()) {
      // Our lease is gone (or about to be, on etcd's side): so is our key.
      set_state(false, "", 0);
      publish_keeper(nullptr);  // before the keeper goes
      keeper.reset();
      lease = 0;
    }
    if (lease == 0) {
      auto granted = client_.GrantLease(options_.ttl);
      if (granted.ok()) {
        lease = *granted;
        keeper = client_.KeepAlive(lease, options_.ttl, wake);
        publish_keeper(keeper.get());
      } else {
        wait = options_.retry;
      }
    }
    if (lease != 0) {
      auto txn = client_.Txn({Compare::Absent(options_.key)},
                             {TxnOp::Put(options_.key, options_.value, lease)},
                             {TxnOp::Get(options_.key)});
      if (!txn.ok()) {
        // Unknown: keep the current belief; the keeper ends leadership if
        // etcd stays unreachable for a TTL.
        wait = options_.retry;
      } else if (txn->succeeded) {
        set_state(true, options_.value, txn->revision);
      } else if (!txn->gets.empty() && !txn->gets[0].empty()) {
        const KeyValue& current = txn->gets[0][0];
        // Our own key (an earlier campaign whose answer was lost, or a
        // re-check while leading) means we lead.
        bool ours = current.lease == lease;
        set_state(ours, current.value, ours ? current.create_revision : 0);
      } else {
        wait = options_.retry;  // deleted between compare and read: go again
      }
    }
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->cv.wait_for(lock, wait, [this] { return state_->stop || state_->wake; });
    state_->wake = false;
    if (state_->stop) break;
  }

  watch.reset();
  if (lease != 0) {
    publish_keeper(nullptr);
    keeper.reset();
    // Delete the key only if it is still ours, then drop the lease (which
    // would delete it anyway): a standby sees the deletion at once.
    client_.Txn({Compare::LeaseIs(options_.key, lease)}, {TxnOp::Delete(options_.key)})
        .status()
        .IgnoreError();
    client_.RevokeLease(lease).IgnoreError();
  }
  set_state(false, "", 0);
}

}  // namespace cairn::coord
