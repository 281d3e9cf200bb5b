#include "registry/cluster/remote_data_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/data_info.h"
#include "registry/app/app_model.h"
#include "registry/cluster/peer_channel.h"
#include "registry/cluster/wire.h"

namespace cairn::cluster {
namespace {
constexpr auto kRpcTimeout = std::chrono::seconds(5);
constexpr auto kRewatchDelay = std::chrono::milliseconds(300);
constexpr int kMaxFetchAttempts = 50;  // x retry_interval before answering from the cache
}  // namespace

struct RemoteDataService::Peer {
  std::string address;
  std::unique_ptr<v1::DataNode::Stub> stub;
  WatchReactor* watch = nullptr;  // deletes itself in OnDone; cleared by WatchEnded
  std::unique_ptr<EventLoop::Timer> rewatch_timer;
};

// The change feed from one data server. Owns itself from Start to OnDone.
class RemoteDataService::WatchReactor final : public grpc::ClientReadReactor<v1::ChangeNotice> {
 public:
  // Null when the service is stopping.
  static WatchReactor* Start(RemoteDataService* owner, const std::string& address,
                             v1::DataNode::Stub* stub) {
    auto* reactor = new WatchReactor(owner, address);
    if (!owner->calls_.Begin(&reactor->ctx_)) {
      delete reactor;
      return nullptr;
    }
    reactor->request_.set_session(owner->options_.session_id);
    stub->async()->Watch(&reactor->ctx_, &reactor->request_, reactor);
    reactor->StartRead(&reactor->notice_);
    reactor->StartCall();
    return reactor;
  }
  // Safe even if the reactor already ended and deleted itself.
  static void Cancel(AsyncCalls& calls, WatchReactor* reactor) { calls.TryCancel(&reactor->ctx_); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    owner_->calls_.PostUnlessClosing(
        [owner = owner_, alive = owner_->alive_, notice = std::move(notice_)] {
          if (*alive) owner->OnNotice(notice);
        });
    notice_.Clear();
    StartRead(&notice_);
  }
  void OnDone(const grpc::Status& status) override {
    if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
      spdlog::debug("watch of data server {} ended: {}", address_, status.error_message());
    }
    owner_->calls_.PostUnlessClosing(
        [owner = owner_, alive = owner_->alive_, address = address_, self = this] {
          if (!*alive) return;
          auto it = owner->peers_.find(address);
          if (it != owner->peers_.end() && it->second->watch == self) it->second->watch = nullptr;
          owner->WatchEnded(address);
        });
    owner_->calls_.End(&ctx_);
    delete this;
  }

 private:
  WatchReactor(RemoteDataService* owner, std::string address)
      : owner_(owner), address_(std::move(address)) {}
  RemoteDataService* owner_;
  std::string address_;
  grpc::ClientContext ctx_;
  v1::WatchRequest request_;
  v1::ChangeNotice notice_;
};

RemoteDataService::RemoteDataService(EventLoop& loop, RemoteDataOptions options)
    : loop_(loop), options_(std::move(options)), calls_(loop), slots_(options_.slot_count) {}

RemoteDataService::~RemoteDataService() {
  *alive_ = false;
  calls_.CancelAllAndWait();
}

void RemoteDataService::Start() {
  anti_entropy_timer_ =
      loop_.RunAfter(options_.anti_entropy_interval, [this] { CompareDigests(); });
  cache_sweep_timer_ = loop_.RunAfter(options_.datum_cache_idle / 2, [this] { SweepCache(); });
}

void RemoteDataService::DropCached(const std::function<bool(const std::string&, Cached&)>& drop) {
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (!drop(it->first, it->second)) {
      ++it;
      continue;
    }
    notified_.erase(it->first);
    it = cache_.erase(it);
  }
  if (options_.cached_datums != nullptr) {
    options_.cached_datums->Set(static_cast<double>(cache_.size()));
  }
}

void RemoteDataService::SweepCache() {
  DropCached([this](const std::string& id, Cached& cached) {
    if (!cached.read && !waiters_.contains(id)) return true;
    cached.read = false;  // a second chance until the next sweep
    return false;
  });
  cache_sweep_timer_ = loop_.RunAfter(options_.datum_cache_idle / 2, [this] { SweepCache(); });
}

void RemoteDataService::Stop() {
  calls_.CancelAllAndWait();  // the watches' OnDone post nothing from now on
}

size_t RemoteDataService::queued_writes() const {
  size_t n = 0;
  for (const Slot& slot : slots_) n += slot.queue.size();
  return n;
}

// ---- the cluster

void RemoteDataService::OnView(const ClusterSnapshot& snapshot) {
  view_ = snapshot;
  for (const auto& [id, member] : view_.data) known_addresses_[id] = member.address();
  if (view_.table != nullptr) {
    if (view_.table->slots_size() != static_cast<int>(slots_.size())) {
      spdlog::error("slot table has {} slots; this session is configured for {}",
                    view_.table->slots_size(), slots_.size());
    } else {
      for (uint32_t i = 0; i < slots_.size(); ++i) {
        const v1::SlotAssignment& a = view_.table->slots(static_cast<int>(i));
        Slot& slot = slots_[i];
        bool new_leader = a.leader() != slot.leader;
        slot.epoch = a.epoch();
        slot.leader = a.leader();
        // A new leader rebuilds the slot from every session: send our part.
        if (new_leader && !slot.leader.empty()) EnqueueSync(i);
      }
    }
  }
  EnsureWatches();
  ScheduleFlush();
}

std::string RemoteDataService::AddressOf(const std::string& data_id) const {
  auto member = view_.data.find(data_id);
  if (member != view_.data.end()) return member->second.address();
  // A server that left membership (draining) still serves the slots the
  // table gives it until they move.
  auto known = known_addresses_.find(data_id);
  return known != known_addresses_.end() ? known->second : std::string();
}

v1::DataNode::Stub* RemoteDataService::StubFor(const std::string& leader_id) {
  std::string address = AddressOf(leader_id);
  if (address.empty()) return nullptr;
  auto& peer = peers_[address];
  if (peer == nullptr) {
    peer = std::make_unique<Peer>();
    peer->address = address;
    peer->stub = v1::DataNode::NewStub(NewPeerChannel(address, options_.peer_credentials));
  }
  return peer->stub.get();
}

void RemoteDataService::EnsureWatches() {
  std::set<std::string> live;
  for (const auto& [id, member] : view_.data) {
    live.insert(member.address());
    StubFor(id);
  }
  std::set<std::string> routed;  // addresses the table still sends us to
  for (const Slot& slot : slots_) {
    if (!slot.leader.empty()) routed.insert(AddressOf(slot.leader));
  }
  for (auto it = peers_.begin(); it != peers_.end();) {
    Peer& peer = *it->second;
    if (!live.contains(peer.address) && routed.contains(peer.address)) {
      ++it;  // draining: keep the stub for writes and fetches
      continue;
    }
    if (!live.contains(peer.address)) {
      if (peer.watch != nullptr) WatchReactor::Cancel(calls_, peer.watch);  // OnDone finds no peer
      it = peers_.erase(it);
      continue;
    }
    if (peer.watch == nullptr && peer.rewatch_timer == nullptr) {
      peer.watch = WatchReactor::Start(this, peer.address, peer.stub.get());
      if (peer.watch != nullptr) WatchStarted(peer.address);
    }
    ++it;
  }
}

void RemoteDataService::WatchStarted(const std::string& address) {
  // Whatever this server missed while we were not watching (it restarted
  // under the same id, or notices were lost) is made good now: our part of
  // every slot it leads goes again, and the datums we cache there are
  // fetched again once (the push engine skips versions a subscriber has).
  // A data server that restarted keeps its id (and maybe not its address):
  // its slots need our part again even though the table did not change.
  std::set<std::string> returning;
  for (const auto& [id, member] : view_.data) {
    if (member.address() != address) continue;
    if (!watched_before_.insert(id).second) returning.insert(id);
  }
  std::set<uint32_t> led;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].leader.empty() || AddressOf(slots_[i].leader) != address) continue;
    led.insert(i);
    if (returning.contains(slots_[i].leader)) EnqueueSync(i);
  }
  if (led.empty()) return;
  // Forget the copies (not a made-up newer version: if the server's version
  // is still the cached one, a fetch could never satisfy it and every answer
  // would trigger another); the next Fetch asks the leader. The listeners
  // re-check every datum of those slots they hold, cached here or not.
  DropCached(
      [&led](const std::string&, Cached& cached) { return led.contains(cached.snapshot->slot); });
  uint32_t slot_count = options_.slot_count;
  auto affected = [&led, slot_count](const std::string& id) {
    return led.contains(SlotOf(id, slot_count));
  };
  for (DataChangeListener* listener : listeners_) listener->OnDatumsMaybeChanged(affected);
}

void RemoteDataService::WatchEnded(const std::string& address) {
  auto it = peers_.find(address);
  if (it == peers_.end()) return;
  it->second->rewatch_timer = loop_.RunAfter(kRewatchDelay, [this, address] {
    auto peer = peers_.find(address);
    if (peer == peers_.end()) return;
    peer->second->rewatch_timer.reset();
    EnsureWatches();
  });
}

// ---- writes

void RemoteDataService::Publish(std::shared_ptr<const PublisherRecord> record,
                                VersionCallback done) {
  uint32_t slot = SlotOf(record->data_info_id(), options_.slot_count);
  PendingWrite write;
  auto& held = slots_[slot].held[record->registration_id];
  write.previous = held;
  held = record;
  write.kind = PendingWrite::Kind::kPublish;
  write.record = std::move(record);
  write.done = std::move(done);
  Enqueue(slot, std::move(write));
}

void RemoteDataService::Unpublish(const std::string& data_info_id,
                                  const std::string& registration_id, const OwnerRef& owner,
                                  VersionCallback done) {
  uint32_t slot = SlotOf(data_info_id, options_.slot_count);
  auto& held = slots_[slot].held;
  auto it = held.find(registration_id);
  if (it != held.end() && it->second->owner->SameStream(owner)) held.erase(it);
  PendingWrite write;
  write.kind = PendingWrite::Kind::kUnpublish;
  write.unpublish.set_data_info_id(data_info_id);
  write.unpublish.set_registration_id(registration_id);
  write.unpublish.set_owner_session(owner.session);
  write.unpublish.set_owner_connection(owner.connection_id);
  write.done = std::move(done);
  Enqueue(slot, std::move(write));
}

void RemoteDataService::Enqueue(uint32_t slot, PendingWrite write) {
  write.queued_at = SteadyNow();
  slots_[slot].queue.push_back(std::move(write));
  ScheduleFlush();
}

void RemoteDataService::EnqueueSync(uint32_t slot) {
  Slot& s = slots_[slot];
  // One unsent sync is enough: it reads the held set when it goes out.
  for (size_t i = s.in_flight; i < s.queue.size(); ++i) {
    if (s.queue[i].kind == PendingWrite::Kind::kSync) return;
  }
  PendingWrite write;
  write.kind = PendingWrite::Kind::kSync;
  Enqueue(slot, std::move(write));
}

void RemoteDataService::ScheduleFlush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  loop_.Post([this, alive = alive_] {
    if (!*alive) return;
    flush_posted_ = false;
    FlushWrites();
    FlushFetches();
  });
}

void RemoteDataService::FlushWrites() {
  struct Outgoing {
    v1::ApplyRequest request;
    std::vector<std::pair<uint32_t, size_t>> sent;  // slot, writes
  };
  std::map<std::string, Outgoing> outgoing;  // by leader id
  SteadyTime now = SteadyNow();
  bool unsent = false;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (s.in_flight > 0 || s.queue.empty()) continue;
    // Writes that could not be placed for too long fail (the client retries).
    while (!s.queue.empty() && now - s.queue.front().queued_at > options_.write_timeout) {
      PendingWrite write = std::move(s.queue.front());
      s.queue.pop_front();
      WriteFailed(
          i, write,
          absl::UnavailableError(absl::StrCat("no data server accepted the write for slot ", i,
                                              " within ", options_.write_timeout.count(), " ms")));
    }
    if (s.queue.empty()) continue;
    if (s.leader.empty() || StubFor(s.leader) == nullptr) {
      unsent = true;  // no route yet: look again shortly (and time writes out)
      continue;
    }
    Outgoing& out = outgoing[s.leader];
    if (static_cast<size_t>(out.request.ops_size()) >= options_.max_ops_per_request) continue;
    size_t n = std::min(s.queue.size(),
                        options_.max_ops_per_request - static_cast<size_t>(out.request.ops_size()));
    for (size_t k = 0; k < n; ++k) {
      const PendingWrite& write = s.queue[k];
      v1::WriteOp* op = out.request.add_ops();
      op->set_slot(i);
      op->set_epoch(s.epoch);
      switch (write.kind) {
        case PendingWrite::Kind::kPublish:
          ToWire(*write.record, op->mutable_publish());
          break;
        case PendingWrite::Kind::kUnpublish:
          *op->mutable_unpublish() = write.unpublish;
          break;
        case PendingWrite::Kind::kSync: {
          v1::SlotSyncWire* sync = op->mutable_sync();
          sync->set_session(options_.session_id);
          sync->set_max_seen_version(s.max_seen_version);
          for (const auto& [id, record] : s.held) ToWire(*record, sync->add_publishers());
          break;
        }
      }
    }
    s.in_flight = n;
    out.sent.emplace_back(i, n);
  }
  if (unsent) ScheduleRetry();
  for (auto& [leader, out] : outgoing) {
    out.request.set_session(options_.session_id);
    out.request.set_observed_version(max_seen_version_);
    v1::DataNode::Stub* stub = StubFor(leader);
    calls_.Unary<v1::ApplyRequest, v1::ApplyResponse>(
        [stub](auto* ctx, auto* req, auto* resp, auto cb) {
          stub->async()->Apply(ctx, req, resp, std::move(cb));
        },
        std::move(out.request), kRpcTimeout,
        [this, leader = leader, sent = std::move(out.sent)](const grpc::Status& status,
                                                            v1::ApplyResponse& response) {
          OnApplied(leader, sent, status, response);
        });
  }
}

void RemoteDataService::OnApplied(const std::string& leader,
                                  const std::vector<std::pair<uint32_t, size_t>>& sent,
                                  const grpc::Status& status, const v1::ApplyResponse& response) {
  bool retry = false;
  int index = 0;
  for (const auto& [slot, count] : sent) {
    Slot& s = slots_[slot];
    s.in_flight = 0;
    if (!status.ok() || response.results_size() < index + static_cast<int>(count)) {
      spdlog::debug("Apply to data server {} failed: {}", leader, status.error_message());
      retry = true;
      index += static_cast<int>(count);
      continue;
    }
    size_t k = 0;
    for (; k < count; ++k) {
      const v1::OpResult& result = response.results(index + static_cast<int>(k));
      absl::Status op_status = StatusOf(result.code(), result.message());
      if (absl::IsAborted(op_status) || absl::IsUnavailable(op_status)) {
        retry = true;
        break;  // this write and the ones after it in the slot go again, in order
      }
      PendingWrite write = std::move(s.queue.front());
      s.queue.pop_front();
      s.max_seen_version = std::max(s.max_seen_version, result.version());
      max_seen_version_ = std::max(max_seen_version_, result.version());
      if (!op_status.ok()) {
        WriteFailed(slot, write, op_status);
      } else if (write.done) {
        write.done(result.version());
      }
    }
    index += static_cast<int>(count);
  }
  if (retry) {
    ScheduleRetry();
  } else {
    ScheduleFlush();
  }
}

void RemoteDataService::WriteFailed(uint32_t slot, PendingWrite& write,
                                    const absl::Status& status) {
  // A publish that failed for good is not this session's publisher: the
  // session server does not keep it, so neither may the held set (a later
  // SlotSync would resurrect it). Put back what it replaced.
  if (write.kind == PendingWrite::Kind::kPublish) {
    auto& held = slots_[slot].held;
    auto it = held.find(write.record->registration_id);
    if (it != held.end() && it->second == write.record) {
      if (write.previous != nullptr) {
        it->second = write.previous;
      } else {
        held.erase(it);
      }
    }
  }
  if (write.done) write.done(status);
}

void RemoteDataService::ScheduleRetry() {
  if (retry_timer_ != nullptr) return;
  retry_timer_ = loop_.RunAfter(options_.retry_interval, [this] {
    retry_timer_.reset();
    FlushWrites();
    FlushFetches();
  });
}

// ---- reads

void RemoteDataService::Fetch(const std::string& data_info_id, SnapshotCallback done) {
  auto cached = cache_.find(data_info_id);
  if (cached != cache_.end()) {
    auto notified = notified_.find(data_info_id);
    if (notified == notified_.end() || cached->second.snapshot->version >= notified->second) {
      cached->second.read = true;
      done(cached->second.snapshot);
      return;
    }
  }
  auto& waiting = waiters_[data_info_id];
  waiting.push_back(std::move(done));
  if (waiting.size() == 1) {
    to_fetch_.push_back(data_info_id);
    ScheduleFlush();
  }
}

void RemoteDataService::FlushFetches() {
  if (to_fetch_.empty()) return;
  std::map<std::string, std::vector<std::string>> by_leader;
  std::vector<std::string> unroutable;
  for (std::string& id : to_fetch_) {
    const Slot& s = slots_[SlotOf(id, options_.slot_count)];
    if (s.leader.empty() || StubFor(s.leader) == nullptr) {
      if (++fetch_attempts_[id] >= kMaxFetchAttempts) {
        fetch_attempts_.erase(id);
        AnswerFromCache(id);
        continue;
      }
      unroutable.push_back(std::move(id));
    } else {
      by_leader[s.leader].push_back(std::move(id));
    }
  }
  to_fetch_ = std::move(unroutable);
  if (!to_fetch_.empty() && fetch_retry_timer_ == nullptr) {
    fetch_retry_timer_ = loop_.RunAfter(options_.retry_interval, [this] {
      fetch_retry_timer_.reset();
      FlushFetches();
    });
  }
  for (auto& [leader, ids] : by_leader) {
    v1::FetchRequest request;
    for (const std::string& id : ids) request.add_data_info_ids(id);
    v1::DataNode::Stub* stub = StubFor(leader);
    calls_.Unary<v1::FetchRequest, v1::FetchResponse>(
        [stub](auto* ctx, auto* req, auto* resp, auto cb) {
          stub->async()->Fetch(ctx, req, resp, std::move(cb));
        },
        std::move(request), kRpcTimeout,
        [this, ids = std::move(ids)](const grpc::Status& status, v1::FetchResponse& response) {
          OnFetched(ids, status, response);
        });
  }
}

void RemoteDataService::OnFetched(const std::vector<std::string>& ids, const grpc::Status& status,
                                  v1::FetchResponse& response) {
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string& id = ids[i];
    bool ok = status.ok() && static_cast<int>(i) < response.datums_size() &&
              response.datums(static_cast<int>(i)).code() == 0;
    if (!ok) {
      // Mis-routed, or the slot is being rebuilt: ask again shortly. After
      // many attempts answer from the cache, so a push engine is not stuck.
      if (++fetch_attempts_[id] < kMaxFetchAttempts) {
        to_fetch_.push_back(id);
        continue;
      }
      fetch_attempts_.erase(id);
      AnswerFromCache(id);
      continue;
    }
    fetch_attempts_.erase(id);
    v1::DatumWire& wire = *response.mutable_datums(static_cast<int>(i));
    auto snapshot = std::make_shared<DatumSnapshot>();
    snapshot->data_info_id = id;
    ParseDataInfoId(id, &snapshot->key);
    snapshot->version = wire.version();
    snapshot->slot = wire.slot();
    snapshot->publishers.reserve(wire.publishers_size());
    for (const v1::PublisherWire& p : wire.publishers()) {
      auto record = FromWire(p, &ids_);
      if (record.ok()) snapshot->publishers.push_back(std::move(*record));
    }
    Slot& s = slots_[SlotOf(id, options_.slot_count)];
    s.max_seen_version = std::max(s.max_seen_version, snapshot->version);
    max_seen_version_ = std::max(max_seen_version_, snapshot->version);
    auto [cached, added] = cache_.try_emplace(id);
    if (added && options_.cached_datums != nullptr) options_.cached_datums->Increment();
    if (added || cached->second.snapshot->version <= snapshot->version) {
      cached->second.snapshot = snapshot;
    }
    cached->second.read = true;
    uint64_t answered = cached->second.snapshot->version;
    Answer(id, cached->second.snapshot);
    // A notice newer than this answer came while it was on its way: tell the
    // listeners again, so their next Fetch asks for it.
    auto notified = notified_.find(id);
    if (notified != notified_.end() && notified->second > answered) {
      uint64_t version = notified->second;
      for (DataChangeListener* listener : listeners_) listener->OnDatumChanged(id, version);
    }
  }
  if (!to_fetch_.empty() && fetch_retry_timer_ == nullptr) {
    fetch_retry_timer_ = loop_.RunAfter(options_.retry_interval, [this] {
      fetch_retry_timer_.reset();
      FlushFetches();
    });
  }
}

void RemoteDataService::AnswerFromCache(const std::string& id) {
  auto cached = cache_.find(id);
  if (cached != cache_.end()) {
    Answer(id, cached->second.snapshot);
    return;
  }
  // Nothing known: an empty snapshot at version 0, which a subscriber that
  // already has data ignores (its acked version is higher).
  auto empty = std::make_shared<DatumSnapshot>();
  empty->data_info_id = id;
  empty->slot = SlotOf(id, options_.slot_count);
  ParseDataInfoId(id, &empty->key);
  Answer(id, empty);
}

void RemoteDataService::Answer(const std::string& id,
                               const std::shared_ptr<const DatumSnapshot>& snapshot) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  std::vector<SnapshotCallback> waiting = std::move(it->second);
  waiters_.erase(it);
  for (auto& done : waiting) done(snapshot);
}

void RemoteDataService::OnNotice(const v1::ChangeNotice& notice) {
  for (const v1::DatumVersion& change : notice.changes()) {
    const std::string& id = change.data_info_id();
    Slot& s = slots_[SlotOf(id, options_.slot_count)];
    s.max_seen_version = std::max(s.max_seen_version, change.version());
    max_seen_version_ = std::max(max_seen_version_, change.version());
    if (apps_observer_ && !absl::StartsWith(id, std::string(app::kAppDataIdPrefix))) {
      apps_observer_(id, change.version(), {change.apps().begin(), change.apps().end()});
    }
    auto cached = cache_.find(id);
    if (cached != cache_.end() && cached->second.snapshot->version >= change.version()) continue;
    // Remember the version only for datums this session reads; others are
    // fetched fresh whenever asked.
    if (cached != cache_.end() || waiters_.contains(id)) {
      uint64_t& known = notified_[id];
      known = std::max(known, change.version());
    }
    for (DataChangeListener* listener : listeners_) listener->OnDatumChanged(id, change.version());
  }
}

std::vector<DatumSummary> RemoteDataService::List(const std::string& prefix) const {
  std::vector<DatumSummary> out;
  for (const auto& [id, cached] : cache_) {
    const auto& snapshot = cached.snapshot;
    if (snapshot->version == 0 || !absl::StartsWith(snapshot->key.data_id(), prefix)) continue;
    out.push_back(DatumSummary{id, snapshot->key, snapshot->version,
                               static_cast<uint32_t>(snapshot->publishers.size()), snapshot->slot});
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.data_info_id < b.data_info_id; });
  return out;
}

void RemoteDataService::ListCluster(const std::string& prefix,
                                    std::function<void(std::vector<DatumSummary>)> done) {
  struct Gather {
    std::vector<DatumSummary> datums;
    size_t left = 0;
    std::function<void(std::vector<DatumSummary>)> done;
  };
  auto gather = std::make_shared<Gather>();
  gather->done = std::move(done);
  auto finish = [gather] {
    std::sort(gather->datums.begin(), gather->datums.end(),
              [](const auto& a, const auto& b) { return a.data_info_id < b.data_info_id; });
    gather->done(std::move(gather->datums));
  };
  std::vector<std::pair<std::string, v1::DataNode::Stub*>> servers;
  for (const auto& [id, member] : view_.data) {
    if (v1::DataNode::Stub* stub = StubFor(id)) servers.emplace_back(id, stub);
  }
  gather->left = servers.size();
  if (servers.empty()) {
    finish();
    return;
  }
  v1::SummariesRequest request;
  request.set_data_id_prefix(prefix);
  for (const auto& [id, stub] : servers) {
    calls_.Unary<v1::SummariesRequest, v1::SummariesResponse>(
        [stub = stub](auto* ctx, auto* req, auto* resp, auto cb) {
          stub->async()->Summaries(ctx, req, resp, std::move(cb));
        },
        request, kRpcTimeout,
        [this, gather, finish, server = id](const grpc::Status& status,
                                            v1::SummariesResponse& response) {
          if (!status.ok()) {
            spdlog::warn("list: data server {} did not answer: {}", server, status.error_message());
          }
          for (const v1::DatumSummaryWire& d : response.datums()) {
            // Followers hold copies too: count each datum once, from its leader.
            if (d.slot() >= slots_.size() || slots_[d.slot()].leader != server) continue;
            DatumSummary summary;
            summary.data_info_id = d.data_info_id();
            if (!ParseDataInfoId(d.data_info_id(), &summary.key)) continue;
            summary.version = d.version();
            summary.publishers = d.publishers();
            summary.slot = d.slot();
            gather->datums.push_back(std::move(summary));
          }
          if (--gather->left == 0) finish();
        });
  }
}

void RemoteDataService::AddListener(DataChangeListener* listener) {
  listeners_.push_back(listener);
}

void RemoteDataService::RemoveListener(DataChangeListener* listener) {
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

// ---- anti-entropy

void RemoteDataService::CompareDigests() {
  anti_entropy_timer_ =
      loop_.RunAfter(options_.anti_entropy_interval, [this] { CompareDigests(); });
  std::map<std::string, v1::DigestRequest> by_leader;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    // A slot with writes on their way would differ for no fault.
    if (s.leader.empty() || !s.queue.empty()) continue;
    uint64_t hash = 0;
    for (const auto& [id, record] : s.held) hash ^= DigestOf(*record);
    v1::SlotDigest* digest = by_leader[s.leader].add_slots();
    digest->set_slot(i);
    digest->set_epoch(s.epoch);
    digest->set_count(s.held.size());
    digest->set_hash(hash);
  }
  for (auto& [leader, request] : by_leader) {
    v1::DataNode::Stub* stub = StubFor(leader);
    if (stub == nullptr) continue;
    request.set_session(options_.session_id);
    calls_.Unary<v1::DigestRequest, v1::DigestResponse>(
        [stub](auto* ctx, auto* req, auto* resp, auto cb) {
          stub->async()->CompareDigests(ctx, req, resp, std::move(cb));
        },
        std::move(request), kRpcTimeout,
        [this, leader = leader](const grpc::Status& status, v1::DigestResponse& response) {
          if (!status.ok()) return;
          for (uint32_t slot : response.mismatched()) {
            if (slot >= slots_.size() || !slots_[slot].queue.empty()) continue;
            spdlog::info("anti-entropy: slot {} differs on data server {}; re-sending it", slot,
                         leader);
            EnqueueSync(slot);
          }
        });
  }
}

}  // namespace cairn::cluster
