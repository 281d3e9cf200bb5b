#include "coord/membership.h"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace cairn::coord {

// ---------------------------------------------------------------- MemberRegistration

struct MemberRegistration::State {
  mutable std::mutex mu;
  std::condition_variable cv;
  bool started = false;     // guarded by mu
  bool stop = false;        // guarded by mu
  bool wake = false;        // guarded by mu
  bool registered = false;  // guarded by mu
  // Registration thread (and Start, before the thread exists) only:
  int64_t lease = 0;
  std::unique_ptr<LeaseKeeper> keeper;
  std::thread thread;
};

MemberRegistration::MemberRegistration(EtcdClient& client, std::string key, std::string value,
                                       std::chrono::seconds ttl)
    : client_(client),
      key_(std::move(key)),
      value_(std::move(value)),
      ttl_(ttl),
      state_(std::make_unique<State>()) {}

MemberRegistration::~MemberRegistration() { Leave(); }

absl::Status MemberRegistration::RegisterOnce() {
  State& s = *state_;
  if (s.keeper != nullptr && s.keeper->lost()) {
    s.keeper.reset();
    s.lease = 0;
  }
  if (s.lease == 0) {
    auto lease = client_.GrantLease(ttl_);
    if (!lease.ok()) return lease.status();
    s.lease = *lease;
    s.keeper = client_.KeepAlive(s.lease, ttl_, [this] {
      {
        std::lock_guard<std::mutex> lock(state_->mu);
        state_->wake = true;
        state_->registered = false;
      }
      state_->cv.notify_all();
    });
  }
  // Put only if the key is not already ours with the same value: a re-check
  // then costs one read-only transaction and no watch event for anyone.
  auto txn = client_.Txn({Compare::LeaseIs(key_, s.lease), Compare::ValueIs(key_, value_)}, {},
                         {TxnOp::Put(key_, value_, s.lease)});
  if (!txn.ok()) return txn.status();
  std::lock_guard<std::mutex> lock(s.mu);
  s.registered = true;
  return absl::OkStatus();
}

absl::Status MemberRegistration::Start() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->started) return absl::FailedPreconditionError("already started");
    state_->started = true;
  }
  absl::Status first = RegisterOnce();
  state_->thread = std::thread([this] { Run(); });
  return first;
}

void MemberRegistration::Run() {
  for (;;) {
    // Re-check about three times per TTL; after an error, sooner.
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(ttl_) / 3;
    {
      std::unique_lock<std::mutex> lock(state_->mu);
      if (!state_->registered) wait = std::chrono::milliseconds(300);
      state_->cv.wait_for(lock, wait, [this] { return state_->stop || state_->wake; });
      state_->wake = false;
      if (state_->stop) break;
    }
    if (!RegisterOnce().ok()) {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->registered = false;
    }
  }
  state_->keeper.reset();
  if (state_->lease != 0) client_.RevokeLease(state_->lease).IgnoreError();
  state_->lease = 0;
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->registered = false;
}

void MemberRegistration::Leave() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->cv.notify_all();
  if (state_->thread.joinable()) state_->thread.join();
}

bool MemberRegistration::registered() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->registered;
}

// ---------------------------------------------------------------- PrefixWatcher

struct PrefixWatcher::State {
  mutable std::mutex mu;
  std::condition_variable cv;
  bool started = false;          // guarded by mu
  bool stop = false;             // guarded by mu
  bool relist = false;           // guarded by mu: the watch died, read again
  Snapshot snapshot;             // guarded by mu
  int64_t revision = 0;          // guarded by mu: the snapshot is as of this revision
  std::unique_ptr<Watch> watch;  // watcher thread (and Start) only
  std::thread thread;
};

PrefixWatcher::PrefixWatcher(EtcdClient& client, std::string prefix, ChangeCallback on_change)
    : client_(client),
      prefix_(std::move(prefix)),
      on_change_(std::move(on_change)),
      state_(std::make_unique<State>()) {}

PrefixWatcher::PrefixWatcher(EtcdClient& client, std::string prefix, ChangesCallback on_changes)
    : client_(client),
      prefix_(std::move(prefix)),
      on_changes_(std::move(on_changes)),
      state_(std::make_unique<State>()) {}

PrefixWatcher::~PrefixWatcher() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->cv.notify_all();
  if (state_->thread.joinable()) state_->thread.join();
  state_->watch.reset();
}

PrefixWatcher::Snapshot PrefixWatcher::Get() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->snapshot;
}

absl::Status PrefixWatcher::Load() {
  auto range = client_.GetPrefix(prefix_);
  if (!range.ok()) return range.status();
  Snapshot snapshot;
  for (const auto& kv : range->kvs) snapshot[kv.key.substr(prefix_.size())] = kv.value;
  // The old watch goes before anything is told, so no event of it follows
  // the new read.
  state_->watch.reset();
  if (on_changes_) {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->revision = range->revision;
    }
    on_changes_(Changes{true, std::move(snapshot), {}});
  } else {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->snapshot = snapshot;
      state_->revision = range->revision;
    }
    if (on_change_) on_change_(snapshot);
  }
  // Events are applied on the watch's thread, in order, after the read.
  state_->watch = client_.WatchPrefix(
      prefix_, range->revision + 1,
      [this](const std::vector<WatchEvent>& events, int64_t revision) {
        if (on_changes_) {
          Changes changes;
          for (const auto& event : events) {
            std::string name = event.kv.key.substr(prefix_.size());
            if (event.type == WatchEvent::Type::kPut) {
              std::erase(changes.deletes, name);
              changes.puts[name] = event.kv.value;
            } else {
              changes.puts.erase(name);
              changes.deletes.push_back(std::move(name));
            }
          }
          {
            std::lock_guard<std::mutex> lock(state_->mu);
            state_->revision = revision;
          }
          on_changes_(std::move(changes));
          return;
        }
        Snapshot copy;
        {
          std::lock_guard<std::mutex> lock(state_->mu);
          for (const auto& event : events) {
            std::string name = event.kv.key.substr(prefix_.size());
            if (event.type == WatchEvent::Type::kPut) {
              state_->snapshot[name] = event.kv.value;
            } else {
              state_->snapshot.erase(name);
            }
          }
          state_->revision = revision;
          if (on_change_) copy = state_->snapshot;
        }
        if (on_change_) on_change_(copy);
      },
      [this](const absl::Status&) {
        {
          std::lock_guard<std::mutex> lock(state_->mu);
          state_->relist = true;
        }
        state_->cv.notify_all();
      });
  return absl::OkStatus();
}

absl::Status PrefixWatcher::Start() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->started) return absl::FailedPreconditionError("already started");
    state_->started = true;
  }
  absl::Status first = Load();
  if (!first.ok()) {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->relist = true;
  }
  state_->thread = std::thread([this] { Run(); });
  return first;
}

void PrefixWatcher::Run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(state_->mu);
      state_->cv.wait(lock, [this] { return state_->stop || state_->relist; });
      if (state_->stop) return;
      state_->relist = false;
    }
    if (!Load().ok()) {
      std::unique_lock<std::mutex> lock(state_->mu);
      state_->relist = true;
      state_->cv.wait_for(lock, std::chrono::milliseconds(300), [this] { return state_->stop; });
    }
  }
}

}  // namespace cairn::coord
