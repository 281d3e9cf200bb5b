#include "registry/cluster/data_role.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <unordered_set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cairn/cluster/v1/cluster.grpc.pb.h"
#include "common/clock.h"
#include "common/data_info.h"
#include "common/host_port.h"
#include "coord/membership.h"
#include "registry/app/app_model.h"
#include "registry/app/revision_store.h"
#include "registry/cluster/async_calls.h"
#include "registry/cluster/cluster_view.h"
#include "registry/cluster/data_views.h"
#include "registry/cluster/peer_channel.h"
#include "registry/cluster/revision_collector.h"
#include "registry/cluster/slot_rebuilds.h"
#include "registry/cluster/watch_stream.h"
#include "registry/cluster/wire.h"
#include "registry/data/local_data_server.h"

namespace cairn::cluster {
namespace {

constexpr size_t kMaxChangesPerNotice = 1000;
constexpr auto kPeerTimeout = std::chrono::seconds(5);
constexpr auto kSweepInterval = std::chrono::milliseconds(500);
constexpr auto kCatchUpRetry = std::chrono::milliseconds(300);

grpc::Status Unavailable(std::string message) {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, std::move(message));
}

}  // namespace

// Everything below runs on `loop` unless it says otherwise.
struct DataRole::Impl final : public cpb::DataNode::CallbackService, public DataChangeListener {
  enum class Role { kNone, kFollower, kLeader };
  struct SlotState {
    Role role = Role::kNone;
    uint64_t epoch = 0;
    std::string leader;
    std::vector<std::string> followers;
    bool ready = false;                       // leader: serving reads and notices
    bool caught_up = false;                   // follower: has a copy of the slot
    std::unique_ptr<EventLoop::Timer> timer;  // catch-up retry
  };

  // Replication to one follower goes in order: one Replicate in flight, and
  // whatever the leader applies meanwhile waits and goes in the next one.
  struct FollowerLink {
    cpb::ReplicateRequest pending;
    bool in_flight = false;
  };

  Impl(coord::EtcdClient& client, DataRoleOptions options)
      : client(client),
        options(std::move(options)),
        keys(this->options.cluster),
        store(this->options.slot_count, *VersionClock::Open(nullptr)),
        slots(this->options.slot_count),
        rebuilds({this->options.rebuild_timeout, this->options.session_lease}),
        calls(loop) {}

  coord::EtcdClient& client;
  const DataRoleOptions options;
  const ClusterKeys keys;
  EventLoop loop{"cairn-data"};
  LocalDataServer store;
  DatumIdPool ids;
  std::vector<SlotState> slots;
  SlotRebuilds rebuilds;  // the led slots not served yet
  SteadyTime overdue_logged{};
  ClusterSnapshot view;
  std::string address;
  AsyncCalls calls;
  std::map<std::string, std::unique_ptr<cpb::DataNode::Stub>> peers;          // by address
  std::shared_ptr<grpc::ChannelCredentials> peer_credentials;                 // null: plaintext
  std::map<std::string, std::vector<std::shared_ptr<WatchStream>>> watchers;  // by session
  std::map<std::string, SteadyTime> disconnected_since;  // sessions owning data, not watching
  std::vector<cpb::DatumVersion> pending_notices;
  std::map<std::string, FollowerLink> followers_out;  // by follower id
  bool notice_flush_posted = false;
  std::unique_ptr<EventLoop::Timer> sweep_timer;
  EventLoop etcd_io{"cairn-data-etcd"};  // blocking etcd calls of the collector
  std::unique_ptr<RevisionCollector> collector;
  std::unique_ptr<ClusterView> cluster_view;
  std::unique_ptr<coord::MemberRegistration> membership;
  std::unique_ptr<grpc::Server> server;
  bool stopped = false;

  // ---- gRPC handlers (gRPC threads): each posts its work to the loop.
  grpc::ServerUnaryReactor* Apply(grpc::CallbackServerContext* ctx, const cpb::ApplyRequest* req,
                                  cpb::ApplyResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    loop.Post([this, req, resp, reactor] {
      HandleApply(*req, resp);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  grpc::ServerUnaryReactor* Fetch(grpc::CallbackServerContext* ctx, const cpb::FetchRequest* req,
                                  cpb::FetchResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    loop.Post([this, req, resp, reactor] {
      HandleFetch(*req, resp);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  grpc::ServerUnaryReactor* Replicate(grpc::CallbackServerContext* ctx,
                                      const cpb::ReplicateRequest* req,
                                      cpb::ReplicateResponse* /*resp*/) override {
    auto* reactor = ctx->DefaultReactor();
    loop.Post([this, req, reactor] {
      HandleReplicate(*req);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  grpc::ServerUnaryReactor* FetchSlot(grpc::CallbackServerContext* ctx,
                                      const cpb::FetchSlotRequest* req,
                                      cpb::FetchSlotResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    loop.Post([this, req, resp, reactor] {
      HandleFetchSlot(*req, resp);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  grpc::ServerUnaryReactor* CompareDigests(grpc::CallbackServerContext* ctx,
                                           const cpb::DigestRequest* req,
                                           cpb::DigestResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    loop.Post([this, req, resp, reactor] {
      HandleDigests(*req, resp);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  grpc::ServerUnaryReactor* Summaries(grpc::CallbackServerContext* ctx,
                                      const cpb::SummariesRequest* req,
                                      cpb::SummariesResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    loop.Post([this, req, resp, reactor] {
      for (const DatumSummary& d : store.List(req->data_id_prefix())) {
        const SlotState& s = slots[d.slot];
        if (s.role != Role::kLeader) continue;
        cpb::DatumSummaryWire* out = resp->add_datums();
        out->set_data_info_id(d.data_info_id);
        out->set_version(d.version);
        out->set_publishers(d.publishers);
        out->set_slot(d.slot);
      }
      resp->set_publishers_held(store.publisher_count());
      for (const SlotState& s : slots) {
        if (s.role == Role::kLeader) resp->set_slots_led(resp->slots_led() + 1);
        if (s.role == Role::kFollower) resp->set_slots_followed(resp->slots_followed() + 1);
      }
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  grpc::ServerWriteReactor<cpb::ChangeNotice>* Watch(grpc::CallbackServerContext* /*ctx*/,
                                                     const cpb::WatchRequest* req) override {
    auto state = std::make_shared<WatchStream>();
    std::string session = req->session();
    auto* reactor = new WatchStream::Reactor(state, [this, state, session] {
      loop.Post([this, state, session] { WatcherGone(session, state); });
    });
    if (session.empty()) {
      state->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "WatchRequest.session must name the session"));
      return reactor;
    }
    loop.Post([this, state, session] { WatcherAdded(session, state); });
    return reactor;
  }

  // ---- writes
  static bool Retryable(const absl::Status& s) {
    return absl::IsAborted(s) || absl::IsUnavailable(s);
  }

  // Whether this server may apply a session's write for `slot` at `epoch`.
  absl::Status CheckLeader(uint32_t slot, uint64_t epoch) const {
    if (slot >= slots.size()) {
      return absl::InvalidArgumentError(absl::StrCat("slot ", slot, " out of range"));
    }
    const SlotState& s = slots[slot];
    if (epoch > s.epoch) {
      return absl::UnavailableError(absl::StrCat("data server ", options.id, " has slot ", slot,
                                                 " at epoch ", s.epoch, ", older than ", epoch,
                                                 "; retry"));
    }
    if (s.role != Role::kLeader || epoch < s.epoch) {
      return absl::AbortedError(absl::StrCat("data server ", options.id, " does not lead slot ",
                                             slot, " at epoch ", epoch, " (epoch ", s.epoch,
                                             ", leader '", s.leader, "')"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> ApplyOp(const std::string& session, const cpb::WriteOp& op) {
    absl::StatusOr<uint64_t> result = uint64_t{0};
    switch (op.op_case()) {
      case cpb::WriteOp::kPublish: {
        auto record = FromWire(op.publish(), &ids);
        if (!record.ok()) return record.status();
        if (SlotOf((*record)->data_info_id(), options.slot_count) != op.slot()) {
          return absl::InvalidArgumentError(absl::StrCat("dataInfoId ", (*record)->data_info_id(),
                                                         " is not in slot ", op.slot()));
        }
        // A retried write from a session the client has left must not take
        // the publisher back from the session it re-registered through.
        if (RegisteredLaterElsewhere(**record)) return CurrentVersion((*record)->data_info_id());
        store.Publish(*record, [&result](absl::StatusOr<uint64_t> v) { result = std::move(v); });
        return result;
      }
      case cpb::WriteOp::kUnpublish: {
        const cpb::UnpublishWire& u = op.unpublish();
        OwnerRef owner{u.owner_session(), u.owner_connection(), {}, {}};
        store.Unpublish(u.data_info_id(), u.registration_id(), owner,
                        [&result](absl::StatusOr<uint64_t> v) { result = std::move(v); });
        return result;
      }
      case cpb::WriteOp::kSync:
        return ApplySync(op.slot(), session, op.sync());
      default:
        return absl::InvalidArgumentError("WriteOp without an operation");
    }
  }

  // Makes `session`'s part of the slot exactly the given publishers.
  absl::StatusOr<uint64_t> ApplySync(uint32_t slot, const std::string& session,
                                     const cpb::SlotSyncWire& sync) {
    if (slot >= slots.size()) return absl::InvalidArgumentError("slot out of range");
    store.ObserveVersion(sync.max_seen_version());
    std::unordered_set<std::string> keep;
    for (const cpb::PublisherWire& wire : sync.publishers()) {
      auto record = FromWire(wire, &ids);
      if (!record.ok() || SlotOf((*record)->data_info_id(), options.slot_count) != slot) continue;
      keep.insert((*record)->registration_id);
      if (RegisteredLaterElsewhere(**record)) continue;
      // An older version than the stored one is refused; the stored one stays.
      store.Publish(*record, [](absl::StatusOr<uint64_t>) {});
    }
    for (const auto& record : store.PublishersInSlot(slot)) {
      if (record->owner->session == session && !keep.contains(record->registration_id)) {
        store.Unpublish(record->data_info_id(), record->registration_id, *record->owner,
                        [](absl::StatusOr<uint64_t>) {});
      }
    }
    return uint64_t{0};
  }

  // Whether another session registered this publisher after `record` was
  // registered (its client moved there): a sync from the session it left,
  // sent before that session saw the client go, must not take it back.
  bool RegisteredLaterElsewhere(const PublisherRecord& record) {
    bool later = false;
    store.Fetch(record.data_info_id(), [&](std::shared_ptr<const DatumSnapshot> snapshot) {
      auto it = std::lower_bound(
          snapshot->publishers.begin(), snapshot->publishers.end(), record.registration_id,
          [](const auto& r, const std::string& id) { return r->registration_id < id; });
      if (it == snapshot->publishers.end() || (*it)->registration_id != record.registration_id) {
        return;
      }
      const OwnerRef& stored = *(*it)->owner;
      const OwnerRef& incoming = *record.owner;
      if (stored.session == incoming.session) return;
      // Two streams of one client: the client's own stream epochs order
      // them. A session that was frozen (SIGSTOP, a partition) may apply a
      // write from the client's old stream after the client replayed it
      // elsewhere, at a later wall-clock time; its epoch is still older.
      if (stored.client_id == incoming.client_id && stored.stream_epoch != 0 &&
          incoming.stream_epoch != 0) {
        later = stored.stream_epoch > incoming.stream_epoch;
        return;
      }
      later = (*it)->registered_at_ms > record.registered_at_ms;
    });
    return later;
  }

  uint64_t CurrentVersion(const std::string& data_info_id) {
    uint64_t version = 0;
    store.Fetch(data_info_id,
                [&](std::shared_ptr<const DatumSnapshot> s) { version = s->version; });
    return version;
  }

  void HandleApply(const cpb::ApplyRequest& req, cpb::ApplyResponse* resp) {
    store.ObserveVersion(req.observed_version());
    std::map<std::string, cpb::ReplicateRequest> replicate;  // by follower id
    for (const cpb::WriteOp& op : req.ops()) {
      cpb::OpResult* out = resp->add_results();
      absl::Status leads = CheckLeader(op.slot(), op.epoch());
      absl::StatusOr<uint64_t> result = leads.ok() ? ApplyOp(req.session(), op) : leads;
      if (!result.ok()) {
        out->set_code(static_cast<int32_t>(result.status().code()));
        out->set_message(std::string(result.status().message()));
        continue;
      }
      out->set_version(*result);
      SlotState& s = slots[op.slot()];
      for (const std::string& follower : s.followers) {
        cpb::ReplicateRequest& r = replicate[follower];
        *r.add_ops() = op;
        r.add_versions(store.last_version());
      }
      if (op.has_sync()) rebuilds.Synced(op.slot(), req.session());
    }
    // The session is alive: its lease starts over (still running, since a
    // session that stopped watching may have had writes on their way).
    if (auto it = disconnected_since.find(req.session()); it != disconnected_since.end()) {
      it->second = SteadyNow();
    }
    for (auto& [follower, request] : replicate) {
      request.set_leader(options.id);
      SendReplicate(follower, std::move(request));
    }
    if (rebuilds.size() > 0) ReviewRebuilds();
  }

  void SendReplicate(const std::string& follower, cpb::ReplicateRequest request) {
    FollowerLink& link = followers_out[follower];
    for (int i = 0; i < request.ops_size(); ++i) {
      *link.pending.add_ops() = std::move(*request.mutable_ops(i));
      link.pending.add_versions(i < request.versions_size() ? request.versions(i) : 0);
    }
    if (!link.in_flight) FlushReplication(follower);
  }

  void FlushReplication(const std::string& follower) {
    FollowerLink& link = followers_out[follower];
    if (link.pending.ops_size() == 0) return;
    cpb::DataNode::Stub* stub = PeerById(follower);
    if (stub == nullptr) {  // not a member (yet): it catches up when it joins
      link.pending.Clear();
      return;
    }
    cpb::ReplicateRequest request = std::move(link.pending);
    link.pending = cpb::ReplicateRequest();
    request.set_leader(options.id);
    link.in_flight = true;
    calls.Unary<cpb::ReplicateRequest, cpb::ReplicateResponse>(
        [stub](auto* ctx, auto* req, auto* resp, auto cb) {
          stub->async()->Replicate(ctx, req, resp, std::move(cb));
        },
        std::move(request), kPeerTimeout,
        [this, follower](const grpc::Status& status, cpb::ReplicateResponse&) {
          // A lost replication is repaired when the follower is promoted:
          // every session then re-sends the slot.
          if (!status.ok()) {
            spdlog::debug("replication to {} failed: {}", follower, status.error_message());
          }
          followers_out[follower].in_flight = false;
          FlushReplication(follower);
        });
  }

  void HandleReplicate(const cpb::ReplicateRequest& req) {
    for (int i = 0; i < req.ops_size(); ++i) {
      const cpb::WriteOp& op = req.ops(i);
      if (op.slot() >= slots.size() || slots[op.slot()].role != Role::kFollower) continue;
      // Only from the leader this follower knows: a deposed leader that
      // wakes up (SIGSTOP, a partition) must not remove publishers here by
      // sweeping leases it no longer owns. A write dropped for a table this
      // follower has not seen yet is repaired at promotion (every session
      // re-sends the slot to a new leader).
      const SlotState& s = slots[op.slot()];
      if (req.leader() != s.leader || op.epoch() < s.epoch) continue;
      if (i < req.versions_size()) store.ObserveVersion(req.versions(i));
      (void)ApplyOp(op.has_sync() ? op.sync().session() : std::string(), op);
    }
  }

  // ---- reads
  void HandleFetch(const cpb::FetchRequest& req, cpb::FetchResponse* resp) {
    for (const std::string& id : req.data_info_ids()) {
      cpb::DatumWire* out = resp->add_datums();
      out->set_data_info_id(id);
      uint32_t slot = SlotOf(id, options.slot_count);
      out->set_slot(slot);
      const SlotState& s = slots[slot];
      if (s.role != Role::kLeader) {
        out->set_code(static_cast<int32_t>(absl::StatusCode::kAborted));
        out->set_message(absl::StrCat("not the leader of slot ", slot));
        continue;
      }
      if (!s.ready) {
        out->set_code(static_cast<int32_t>(absl::StatusCode::kUnavailable));
        out->set_message(absl::StrCat("slot ", slot, " is being rebuilt"));
        continue;
      }
      store.Fetch(id, [out](std::shared_ptr<const DatumSnapshot> snapshot) {
        out->set_version(snapshot->version);
        for (const auto& record : snapshot->publishers) ToWire(*record, out->add_publishers());
      });
    }
  }

  void HandleFetchSlot(const cpb::FetchSlotRequest& req, cpb::FetchSlotResponse* resp) {
    if (req.slot() >= slots.size() || slots[req.slot()].role != Role::kLeader) {
      resp->set_code(static_cast<int32_t>(absl::StatusCode::kAborted));
      resp->set_message(absl::StrCat("not the leader of slot ", req.slot()));
      return;
    }
    for (const auto& record : store.PublishersInSlot(req.slot())) {
      ToWire(*record, resp->add_publishers());
    }
    resp->set_max_version(store.last_version());
  }

  void HandleDigests(const cpb::DigestRequest& req, cpb::DigestResponse* resp) {
    for (const cpb::SlotDigest& digest : req.slots()) {
      if (!CheckLeader(digest.slot(), digest.epoch()).ok() || !slots[digest.slot()].ready) {
        continue;  // the session re-routes; nothing to compare here
      }
      uint64_t count = 0, hash = 0;
      for (const auto& record : store.PublishersInSlot(digest.slot())) {
        if (record->owner->session != req.session()) continue;
        ++count;
        hash ^= DigestOf(*record);
      }
      if (count != digest.count() || hash != digest.hash()) resp->add_mismatched(digest.slot());
    }
  }

  // The revisions of an app's instances, if this server leads the app's
  // datum and has rebuilt its slot (RevisionCollector).
  std::optional<std::set<std::string>> RevisionsInUse(const std::string& app_name) {
    const SlotState& s = slots[SlotOf(DataInfoId(app::AppKey(app_name)), options.slot_count)];
    if (s.role != Role::kLeader || !s.ready) return std::nullopt;
    return RevisionsOfApp(store, app_name);
  }

  // ---- change notices
  void OnDatumChanged(const std::string& data_info_id, uint64_t version) override {
    const SlotState& s = slots[SlotOf(data_info_id, options.slot_count)];
    if (s.role != Role::kLeader || !s.ready) return;
    cpb::DatumVersion change;
    change.set_data_info_id(data_info_id);
    change.set_version(version);
    pending_notices.push_back(std::move(change));
    if (notice_flush_posted) return;
    notice_flush_posted = true;
    loop.Post([this] { FlushNotices(); });
  }

  void FlushNotices() {
    notice_flush_posted = false;
    // One entry per datum, at its newest version, with its apps (cluster.proto
    // DatumVersion.apps) as they are now.
    std::map<std::string, uint64_t> newest;
    for (const cpb::DatumVersion& change : pending_notices) {
      uint64_t& version = newest[change.data_info_id()];
      version = std::max(version, change.version());
    }
    pending_notices.clear();
    std::vector<cpb::DatumVersion> changes;
    changes.reserve(newest.size());
    for (const auto& [id, version] : newest) changes.push_back(NoticeFor(store, id, version));
    for (size_t begin = 0; begin < changes.size(); begin += kMaxChangesPerNotice) {
      cpb::ChangeNotice notice;
      size_t end = std::min(changes.size(), begin + kMaxChangesPerNotice);
      for (size_t i = begin; i < end; ++i) *notice.add_changes() = changes[i];
      for (auto& [session, streams] : watchers) {
        for (auto& stream : streams) stream->Send(notice);
      }
    }
  }

  // What a new watcher is told first: every datum of a ready slot this
  // server leads whose publishers name an app, so that the session's
  // app -> datums index (DatumVersion.apps) starts complete.
  void SendAppIndex(WatchStream& stream) {
    cpb::ChangeNotice notice;
    for (const DatumSummary& datum : store.List("")) {
      const SlotState& s = slots[datum.slot];
      if (s.role != Role::kLeader || !s.ready) continue;
      if (absl::StartsWith(datum.data_info_id, std::string(app::kAppDataIdPrefix))) continue;
      cpb::DatumVersion change = NoticeFor(store, datum.data_info_id, datum.version);
      if (change.apps().empty()) continue;
      *notice.add_changes() = std::move(change);
      if (notice.changes_size() >= static_cast<int>(kMaxChangesPerNotice)) {
        stream.Send(notice);
        notice.Clear();
      }
    }
    if (notice.changes_size() > 0) stream.Send(notice);
  }

  void WatcherAdded(const std::string& session, std::shared_ptr<WatchStream> stream) {
    if (stopped) {
      stream->Close(Unavailable("data server stopping"));
      return;
    }
    SendAppIndex(*stream);
    watchers[session].push_back(std::move(stream));
    disconnected_since.erase(session);
    ReviewRebuilds();  // a rebuilding slot now waits for this session too
  }

  void WatcherGone(const std::string& session, const std::shared_ptr<WatchStream>& stream) {
    auto it = watchers.find(session);
    if (it == watchers.end()) return;
    std::erase(it->second, stream);
    if (!it->second.empty()) return;
    watchers.erase(it);
    disconnected_since.emplace(session, SteadyNow());
    spdlog::info(
        "session {} stopped watching; its publishers go {} ms after it also leaves membership, "
        "unless it returns",
        session, options.session_lease.count());
    ReviewRebuilds();
  }

  // The sessions this server must hear from before serving a rebuilt slot:
  // every session incarnation in membership, and every one watching us.
  std::set<std::string> LiveSessions() const {
    std::set<std::string> live = view.SessionIncarnations();
    for (const auto& [session, streams] : watchers) live.insert(session);
    return live;
  }

  // Serves the rebuilding slots whose every live session has synced (or
  // that waited a whole session lease), and says which ones still wait.
  void ReviewRebuilds() {
    if (rebuilds.size() == 0) return;
    std::set<std::string> live = LiveSessions();
    SteadyTime now = SteadyNow();
    for (const SlotRebuilds::Ready& r : rebuilds.TakeReady(live, now)) {
      if (slots[r.slot].role != Role::kLeader) continue;
      if (!r.complete) {
        spdlog::error(
            "slot {}: sessions {} did not re-send their part within the session lease ({} ms); "
            "serving without it",
            r.slot, absl::StrJoin(r.missing, ","), options.session_lease.count());
      }
      MakeReady(r.slot, r.complete ? "every live session synced" : "session lease over");
    }
    if (now - overdue_logged < std::chrono::seconds(2)) return;
    auto overdue = rebuilds.Overdue(live, now);
    if (overdue.empty()) return;
    overdue_logged = now;
    std::map<std::string, std::vector<uint32_t>> by_session;
    for (const auto& [slot, missing] : overdue) {
      for (const std::string& session : missing) by_session[session].push_back(slot);
    }
    for (const auto& [session, waiting] : by_session) {
      spdlog::warn(
          "{} slots wait for session {} to re-send its part (e.g. slot {}); sessions keep "
          "pushing the last complete version meanwhile",
          waiting.size(), session, waiting.front());
    }
  }

  // Removes the publishers of sessions whose lease ran out, in the slots
  // this server leads (followers follow through replication).
  void SweepLeases() {
    sweep_timer = loop.RunAfter(kSweepInterval, [this] { SweepLeases(); });
    ReviewRebuilds();
    SteadyTime now = SteadyNow();
    std::set<std::string> expired;
    std::set<std::string> members = view.SessionIncarnations();
    for (auto it = disconnected_since.begin(); it != disconnected_since.end();) {
      // A session still in membership is alive, only cut off from us: its
      // publishers stay (its clients are connected). The lease runs from
      // when it is neither watching nor a member.
      if (members.contains(it->first)) {
        it->second = now;
        ++it;
      } else if (now - it->second >= options.session_lease) {
        expired.insert(it->first);
        it = disconnected_since.erase(it);
      } else {
        ++it;
      }
    }
    if (expired.empty()) return;
    spdlog::info("session lease expired for {}; removing their publishers",
                 absl::StrJoin(expired, ","));
    for (uint32_t slot = 0; slot < slots.size(); ++slot) {
      if (slots[slot].role != Role::kLeader) continue;
      std::map<std::string, cpb::ReplicateRequest> replicate;
      for (const auto& record : store.PublishersInSlot(slot)) {
        if (!expired.contains(record->owner->session)) continue;
        cpb::WriteOp op;
        op.set_slot(slot);
        op.set_epoch(slots[slot].epoch);
        auto* u = op.mutable_unpublish();
        u->set_data_info_id(record->data_info_id());
        u->set_registration_id(record->registration_id);
        u->set_owner_session(record->owner->session);
        u->set_owner_connection(record->owner->connection_id);
        (void)ApplyOp({}, op);
        for (const std::string& follower : slots[slot].followers) {
          *replicate[follower].add_ops() = op;
          replicate[follower].add_versions(store.last_version());
        }
      }
      for (auto& [follower, request] : replicate) SendReplicate(follower, std::move(request));
    }
  }

  // ---- the slot table
  void OnView(const ClusterSnapshot& snapshot) {
    if (stopped) return;
    view = snapshot;
    if (view.table == nullptr) return;
    const cpb::SlotTable& table = *view.table;
    if (table.slots_size() != static_cast<int>(slots.size())) {
      spdlog::error("slot table has {} slots; this data server is configured for {}",
                    table.slots_size(), slots.size());
      return;
    }
    int led = 0, followed = 0, dropped = 0;
    for (uint32_t i = 0; i < slots.size(); ++i) {
      const cpb::SlotAssignment& a = table.slots(static_cast<int>(i));
      SlotState& s = slots[i];
      Role role = Role::kNone;
      if (a.leader() == options.id) {
        role = Role::kLeader;
      } else if (std::find(a.followers().begin(), a.followers().end(), options.id) !=
                 a.followers().end()) {
        role = Role::kFollower;
      }
      Role old = s.role;
      s.epoch = a.epoch();
      s.leader = a.leader();
      s.followers.assign(a.followers().begin(), a.followers().end());
      if (role == Role::kLeader && old != Role::kLeader) {
        BecomeLeader(i);
        ++led;
      } else if (role == Role::kFollower && old != Role::kFollower) {
        ++followed;
        rebuilds.End(i);
        s.role = Role::kFollower;
        s.ready = false;
        s.timer.reset();
        // A demoted leader already has the slot; a new follower copies it.
        s.caught_up = old == Role::kLeader;
        if (!s.caught_up) CatchUp(i);
      } else if (role == Role::kNone && old != Role::kNone) {
        ++dropped;
        rebuilds.End(i);
        s.role = Role::kNone;
        s.ready = false;
        s.timer.reset();
        store.DropSlot(i);
      }
    }
    if (led + followed + dropped > 0) {
      spdlog::info(
          "slot table epoch {}: now leading {} more slots (rebuilding from {} sessions), "
          "following {} more, dropped {}",
          table.epoch(), led, LiveSessions().size(), followed, dropped);
    }
    // Sessions that left the cluster will never sync.
    ReviewRebuilds();
  }

  void BecomeLeader(uint32_t slot) {
    SlotState& s = slots[slot];
    s.role = Role::kLeader;
    s.ready = false;
    s.timer.reset();
    rebuilds.Begin(slot, SteadyNow());
    // Start the lease of every owner that is not watching us.
    for (const auto& record : store.PublishersInSlot(slot)) {
      const std::string& owner = record->owner->session;
      if (!watchers.contains(owner)) disconnected_since.emplace(owner, SteadyNow());
    }
    spdlog::debug("leading slot {} at epoch {}; rebuilding from the live sessions", slot, s.epoch);
  }

  void MakeReady(uint32_t slot, const char* why) {
    SlotState& s = slots[slot];
    s.ready = true;
    rebuilds.End(slot);
    s.timer.reset();
    spdlog::debug("slot {} ready ({})", slot, why);
    // New versions for everything in the slot, above whatever the previous
    // leader handed out, so every session re-fetches and pushes forward.
    store.ObserveVersion(static_cast<uint64_t>(WallMicros()) + 1'000'000);
    store.TouchSlot(slot);
  }

  void CatchUp(uint32_t slot) {
    SlotState& s = slots[slot];
    cpb::DataNode::Stub* stub = PeerById(s.leader);
    if (stub == nullptr) {
      s.timer = loop.RunAfter(kCatchUpRetry, [this, slot] { RetryCatchUp(slot); });
      return;
    }
    cpb::FetchSlotRequest request;
    request.set_slot(slot);
    std::string leader = s.leader;
    calls.Unary<cpb::FetchSlotRequest, cpb::FetchSlotResponse>(
        [stub](auto* ctx, auto* req, auto* resp, auto cb) {
          stub->async()->FetchSlot(ctx, req, resp, std::move(cb));
        },
        std::move(request), kPeerTimeout,
        [this, slot, leader](const grpc::Status& status, cpb::FetchSlotResponse& resp) {
          SlotState& s = slots[slot];
          if (s.role != Role::kFollower || s.caught_up || s.leader != leader) return;
          if (!status.ok() || resp.code() != 0) {
            s.timer = loop.RunAfter(kCatchUpRetry, [this, slot] { RetryCatchUp(slot); });
            return;
          }
          store.DropSlot(slot);
          store.ObserveVersion(resp.max_version());
          for (const cpb::PublisherWire& wire : resp.publishers()) {
            auto record = FromWire(wire, &ids);
            if (record.ok()) store.Publish(*record, [](absl::StatusOr<uint64_t>) {});
          }
          s.caught_up = true;
          spdlog::debug("slot {}: caught up with {} publishers from {}", slot,
                        resp.publishers_size(), leader);
        });
  }
  void RetryCatchUp(uint32_t slot) {
    if (slots[slot].role == Role::kFollower && !slots[slot].caught_up) CatchUp(slot);
  }

  cpb::DataNode::Stub* PeerById(const std::string& id) {
    auto member = view.data.find(id);
    if (member == view.data.end() || id == options.id) return nullptr;
    const std::string& addr = member->second.address();
    auto& stub = peers[addr];
    if (stub == nullptr) {
      stub = cpb::DataNode::NewStub(NewPeerChannel(addr, peer_credentials));
    }
    return stub.get();
  }

  size_t SlotsLed() const {
    size_t n = 0;
    for (const SlotState& s : slots) n += s.role == Role::kLeader ? 1 : 0;
    return n;
  }
};

DataRole::DataRole(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
DataRole::~DataRole() { Stop(); }
const std::string& DataRole::address() const { return impl_->address; }

absl::StatusOr<std::unique_ptr<DataRole>> DataRole::Start(coord::EtcdClient& client,
                                                          DataRoleOptions options) {
  if (options.id.empty()) return absl::InvalidArgumentError("data role needs an id");
  if (options.slot_count == 0) return absl::InvalidArgumentError("slot count must be > 0");
  auto hp = SplitHostPort(options.listen);
  if (!hp.ok()) return hp.status();
  TlsFiles server_tls = options.tls;
  if (server_tls.ca_file.empty()) server_tls.require_client_cert = false;
  auto server_credentials = MakeServerCredentials(server_tls);
  if (!server_credentials.ok()) return server_credentials.status();
  std::string peer_id = options.peer_id;
  if (!server_tls.ca_file.empty()) {
    // Only registry servers call this port: a certificate from the CA is not
    // enough (every app has one), the caller must prove the peer identity.
    if (peer_id.empty()) {
      auto own = CertificateFileIdentity(server_tls.cert_file);
      if (!own.ok()) return own.status();
      if (own->spiffe_id.empty() && own->common_name.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("data role: the certificate ", server_tls.cert_file,
                         " names no identity (no SPIFFE URI, no CN); set cluster_peer_id"));
      }
      peer_id = own->Name();
    }
    RequirePeer(**server_credentials, peer_id);
  }
  std::shared_ptr<grpc::ChannelCredentials> peer_credentials;
  if (options.tls.enabled()) {
    auto made = MakeChannelCredentials(options.tls);
    if (!made.ok()) return made.status();
    peer_credentials = std::move(*made);
  }
  auto impl = std::make_shared<Impl>(client, std::move(options));
  Impl& r = *impl;
  r.peer_credentials = std::move(peer_credentials);
  r.store.AddListener(&r);
  r.loop.Start();

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(r.options.listen, *server_credentials, &port);
  builder.RegisterService(&r);
  builder.SetMaxReceiveMessageSize(256 << 20);
  ConfigurePeerServer(builder);
  r.server = builder.BuildAndStart();
  if (r.server == nullptr || port == 0) {
    r.loop.Stop();
    return absl::UnavailableError(absl::StrCat("data role: cannot listen on ", r.options.listen));
  }
  r.address = absl::StrCat(hp->first, ":", port);
  if (r.peer_credentials) {
    // Sessions and other data servers reach this one only if its certificate
    // chains to the CA and names its address. Check that as they would,
    // before joining: a member no peer can reach would get slots nobody can
    // use.
    auto probe = NewPeerChannel(r.address, r.peer_credentials);
    if (!probe->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
      r.server->Shutdown(std::chrono::system_clock::now());
      r.server->Wait();
      r.loop.Stop();
      return absl::FailedPreconditionError(absl::StrCat(
          "data role: a TLS connection to its own address ", r.address, " fails: its certificate (",
          r.options.tls.cert_file, ") must chain to the CA (", r.options.tls.ca_file,
          ") and name that address; not joining the cluster"));
    }
  }

  r.cluster_view = std::make_unique<ClusterView>(
      client, r.keys, r.loop, [&r](const ClusterSnapshot& snapshot) { r.OnView(snapshot); });
  std::unique_ptr<DataRole> role(new DataRole(impl));
  if (auto s = r.cluster_view->Start(); !s.ok()) return s;
  cpb::MemberInfo info;
  info.set_id(r.options.id);
  info.set_role("data");
  info.set_address(r.address);
  info.set_started_at_ms(WallMillis());
  r.membership = std::make_unique<coord::MemberRegistration>(
      client, r.keys.Member("data", r.options.id), info.SerializeAsString(), r.options.lease_ttl);
  if (auto s = r.membership->Start(); !s.ok()) return s;
  RevisionCollector::Options gc;
  gc.revision_prefix = r.keys.Kv() + kRevisionKeyPrefix;
  gc.gc_after = r.options.revision_gc_after;
  gc.sweep_interval =
      std::clamp(gc.gc_after / 4, std::chrono::milliseconds(20), std::chrono::milliseconds(30000));
  r.collector = std::make_unique<RevisionCollector>(
      client, r.loop, r.etcd_io, gc,
      [&r](const std::string& app_name) { return r.RevisionsInUse(app_name); });
  r.etcd_io.Start();
  r.loop.Post([&r] {
    r.SweepLeases();
    r.collector->Start();
  });
  spdlog::info("data {} serving DataNode on {} ({})", r.options.id, r.address,
               !r.options.tls.enabled() ? "plaintext"
               : r.options.tls.ca_file.empty()
                   ? "TLS"
                   : absl::StrCat("mTLS, peers verified against the CA and must be ", peer_id));
  return role;
}

bool DataRole::Drain() {
  Impl& r = *impl_;
  if (r.stopped) return true;
  spdlog::info("data {} draining: leaving membership so its slots move", r.options.id);
  r.membership->Leave();
  // Without etcd no meta leader can move the slots: do not wait for it.
  if (auto table = r.client.Get(r.keys.SlotTable());
      !table.ok() && !absl::IsNotFound(table.status())) {
    spdlog::warn("data {}: etcd unreachable ({}); stopping without handing slots over",
                 r.options.id, table.status().ToString());
    return false;
  }
  SteadyTime deadline = SteadyNow() + r.options.drain_timeout;
  while (SteadyNow() < deadline) {
    std::promise<size_t> led;
    r.loop.Post([&r, &led] { led.set_value(r.view.table ? r.SlotsLed() : 0); });
    size_t n = led.get_future().get();
    if (n == 0) {
      spdlog::info("data {} drained: it leads no slot", r.options.id);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  spdlog::warn("data {}: drain timed out", r.options.id);
  return false;
}

void DataRole::Stop() {
  Impl& r = *impl_;
  if (r.stopped) return;
  if (r.membership) r.membership->Leave();
  if (r.cluster_view) r.cluster_view->Stop();
  std::promise<void> closed;
  r.loop.Post([&r, &closed] {
    r.stopped = true;
    for (auto& [session, streams] : r.watchers) {
      for (auto& stream : streams) stream->Close(Unavailable("data server stopping"));
    }
    closed.set_value();
  });
  closed.get_future().wait();
  r.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  r.server->Wait();
  r.calls.CancelAllAndWait();
  std::promise<void> dropped;
  r.loop.Post([&r, &dropped] {
    if (r.collector) r.collector->Stop();
    r.sweep_timer.reset();
    for (auto& s : r.slots) s.timer.reset();
    r.watchers.clear();
    r.store.RemoveListener(&r);
    dropped.set_value();
  });
  dropped.get_future().wait();
  r.etcd_io.Stop();
  r.loop.Stop();
}

}  // namespace cairn::cluster
