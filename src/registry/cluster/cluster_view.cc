#include "registry/cluster/cluster_view.h"

#include <spdlog/spdlog.h>

#include <future>

namespace cairn::cluster {
namespace {

std::map<std::string, v1::MemberInfo> ParseMembers(const coord::PrefixWatcher::Snapshot& keys) {
  std::map<std::string, v1::MemberInfo> out;
  for (const auto& [id, value] : keys) {
    v1::MemberInfo info;
    if (!info.ParseFromString(value)) {
      spdlog::warn("ignoring unreadable member key {}", id);
      continue;
    }
    out[id] = std::move(info);
  }
  return out;
}

}  // namespace

std::string SessionIncarnation(const v1::MemberInfo& session) {
  return session.id() + "@" + std::to_string(session.started_at_ms());
}

std::set<std::string> ClusterSnapshot::SessionIncarnations() const {
  std::set<std::string> out;
  for (const auto& [id, member] : sessions) out.insert(SessionIncarnation(member));
  return out;
}

ClusterView::ClusterView(coord::EtcdClient& client, const ClusterKeys& keys, EventLoop& loop,
                         Callback on_change)
    : loop_(loop), on_change_(std::move(on_change)), alive_(std::make_shared<bool>(true)) {
  table_ = std::make_unique<coord::PrefixWatcher>(
      client, keys.SlotTable(), [this](const coord::PrefixWatcher::Snapshot& keys) {
        std::shared_ptr<v1::SlotTable> table;
        auto it = keys.find("");
        if (it != keys.end()) {
          table = std::make_shared<v1::SlotTable>();
          if (!table->ParseFromString(it->second)) {
            spdlog::error("slot table in etcd is unreadable; keeping the previous one");
            return;
          }
        }
        {
          std::lock_guard lock(mu_);
          latest_.table = std::move(table);
        }
        Changed();
      });
  data_ = std::make_unique<coord::PrefixWatcher>(
      client, keys.Members("data"), [this](const coord::PrefixWatcher::Snapshot& keys) {
        auto members = ParseMembers(keys);
        {
          std::lock_guard lock(mu_);
          latest_.data = std::move(members);
        }
        Changed();
      });
  sessions_ = std::make_unique<coord::PrefixWatcher>(
      client, keys.Members("session"), [this](const coord::PrefixWatcher::Snapshot& keys) {
        auto members = ParseMembers(keys);
        {
          std::lock_guard lock(mu_);
          latest_.sessions = std::move(members);
        }
        Changed();
      });
}

ClusterView::~ClusterView() { Stop(); }

absl::Status ClusterView::Start() {
  if (auto s = table_->Start(); !s.ok()) return s;
  if (auto s = data_->Start(); !s.ok()) return s;
  if (auto s = sessions_->Start(); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    complete_ = true;
  }
  Changed();
  return absl::OkStatus();
}

void ClusterView::Changed() {
  {
    std::lock_guard lock(mu_);
    // Nothing goes out before all three prefixes were read: a table without
    // its members would make a new slot leader rebuild from no session.
    if (!complete_ || post_pending_) return;  // a queued post reads the newest state
    post_pending_ = true;
  }
  loop_.Post([this, alive = alive_] {
    if (!*alive) return;
    ClusterSnapshot snapshot;
    {
      std::lock_guard lock(mu_);
      post_pending_ = false;
      snapshot = latest_;
    }
    on_change_(snapshot);
  });
}

void ClusterView::Stop() {
  if (stopped_) return;
  stopped_ = true;
  table_.reset();
  data_.reset();
  sessions_.reset();
  if (loop_.IsInLoopThread()) {
    *alive_ = false;
    return;
  }
  std::promise<void> done;
  loop_.Post([&] {
    *alive_ = false;
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace cairn::cluster
