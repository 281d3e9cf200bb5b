#include "registry/cluster/revision_collector.h"

#include <spdlog/spdlog.h>

#include "common/data_info.h"

namespace cairn::cluster {

RevisionCollector::RevisionCollector(coord::EtcdClient& client, EventLoop& loop, EventLoop& io_loop,
                                     Options options, InUse in_use)
    : client_(client),
      loop_(loop),
      io_loop_(io_loop),
      options_(std::move(options)),
      in_use_(std::move(in_use)) {}

RevisionCollector::~RevisionCollector() { *alive_ = false; }

void RevisionCollector::Start() {
  timer_ = loop_.RunAfter(options_.sweep_interval, [this] { Sweep(); });
}

void RevisionCollector::Stop() {
  *alive_ = false;
  timer_.reset();
}

void RevisionCollector::Sweep() {
  // The read runs off the loop; the next sweep is scheduled when it is back.
  // The io task touches nothing of this object: it may outlive it.
  io_loop_.Post(
      [&client = client_, &loop = loop_, prefix = options_.revision_prefix, this, alive = alive_] {
        absl::StatusOr<coord::RangeResult> range = client.GetPrefix(prefix);
        absl::StatusOr<std::vector<Seen>> seen = std::vector<Seen>();
        if (!range.ok()) {
          seen = range.status();
        } else {
          for (const coord::KeyValue& kv : range->kvs) {
            pb::RevisionInfo info;
            if (!info.ParseFromString(kv.value)) continue;  // not ours to judge
            seen->push_back(
                Seen{kv.key.substr(prefix.size()), info.meta().app_name(), kv.mod_revision});
          }
        }
        loop.Post([this, alive, seen = std::move(seen)]() mutable {
          if (*alive) OnRead(std::move(seen));
        });
      });
}

void RevisionCollector::OnRead(absl::StatusOr<std::vector<Seen>> seen) {
  timer_ = loop_.RunAfter(options_.sweep_interval, [this] { Sweep(); });
  if (!seen.ok()) {
    spdlog::warn("revision collector: cannot read revisions from etcd: {}",
                 seen.status().ToString());
    return;
  }
  SteadyTime now = SteadyNow();
  std::unordered_map<std::string, Unreferenced> still;
  std::vector<std::pair<std::string, int64_t>> dead;  // (etcd key, mod revision)
  std::unordered_map<std::string, std::optional<std::set<std::string>>> by_app;
  for (const Seen& s : *seen) {
    auto uses = by_app.find(s.app_name);
    if (uses == by_app.end()) uses = by_app.emplace(s.app_name, in_use_(s.app_name)).first;
    if (!uses->second.has_value() || uses->second->contains(s.revision)) continue;
    Unreferenced entry{now, s.mod_revision};
    if (auto known = unreferenced_.find(s.revision);
        known != unreferenced_.end() && known->second.mod_revision == s.mod_revision) {
      entry = known->second;  // a rewrite (a client registered it again) restarts the count
    }
    if (now - entry.since >= options_.gc_after) {
      dead.emplace_back(options_.revision_prefix + s.revision, s.mod_revision);
      continue;
    }
    still.emplace(s.revision, entry);
  }
  unreferenced_ = std::move(still);
  if (dead.empty()) return;
  io_loop_.Post([&client = client_, &loop = loop_, this, alive = alive_, dead = std::move(dead)] {
    size_t deleted = 0;
    for (const auto& [key, mod_revision] : dead) {
      auto result = client.Txn({coord::Compare::ModRevisionIs(key, mod_revision)},
                               {coord::TxnOp::Delete(key)}, {});
      if (result.ok() && result->succeeded) ++deleted;
    }
    if (deleted > 0) {
      spdlog::info("garbage-collected {} unreferenced app revisions from etcd", deleted);
    }
    loop.Post([this, alive, deleted] {
      if (*alive) deleted_ += deleted;
    });
  });
}

}  // namespace cairn::cluster
