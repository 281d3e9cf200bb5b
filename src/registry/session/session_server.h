// SessionServer: the session role. It holds the clients' streams, is the
// authoritative copy of its own clients' publishers, forwards them to the
// data role, and keeps its subscribers up to date through the PushEngine.
//
// Registrations live as long as the stream that owns them. A registration id
// re-registered from another stream (a reconnecting client) moves to that
// stream, and the old stream's end no longer removes it.
//
// Thread-safety: not thread-safe. Every method runs on the registry loop;
// the gRPC layer posts into it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/event_loop.h"
#include "common/identity.h"
#include "registry/app/revision_service.h"
#include "registry/auth/authorizer.h"
#include "registry/data/data_service.h"
#include "registry/data/datum_id_pool.h"
#include "registry/metrics.h"
#include "registry/session/client_stream.h"
#include "registry/session/push_engine.h"
#include "registry/session/restart_warmup.h"

namespace cairn {

struct SessionOptions {
  std::string session_name = "local";
  // Applied when a client's Hello asks for 0; requests are clamped to
  // [min_keepalive_timeout, max_keepalive_timeout].
  std::chrono::milliseconds keepalive_timeout{30000};
  std::chrono::milliseconds min_keepalive_timeout{500};
  std::chrono::milliseconds max_keepalive_timeout{300000};
  // Publishers plus subscribers one stream may hold.
  size_t max_registrations_per_client = 100000;
  PushEngine::Options push;
};

class SessionServer final : private PushEngine::Transport {
 public:
  // REQUIRES: loop, data and metrics outlive the server.
  SessionServer(EventLoop& loop, DataService& data, RegistryMetrics& metrics,
                SessionOptions options);
  ~SessionServer() override;

  // Starts the keepalive sweep. REQUIRES: on the loop.
  void Start();

  // Where RegisterRevision requests go; without one they are refused with
  // UNIMPLEMENTED. REQUIRES: service outlives the server; call before Start.
  void SetRevisionService(RevisionService* service) { revisions_ = service; }

  // Checks every publish, subscribe and revision (and the queries of the
  // gRPC service) against `authorizer`'s policy, with the identity each
  // stream's client certificate proved. Null (the default, TLS off): every
  // request is allowed. REQUIRES: authorizer outlives the server; call
  // before Start.
  void SetAuthorizer(auth::Authorizer* authorizer) { authorizer_ = authorizer; }
  auth::Authorizer* authorizer() const { return authorizer_; }

  // The registry is stopping and its data role stops with it. Ends every
  // stream now (UNAVAILABLE: clients reconnect elsewhere or later), so that
  // the gRPC server's shutdown does not wait out its deadline for streams
  // that would never end by themselves; and streams that end from now on are
  // dropped without unpublishing their registrations one by one (each would
  // be a datum change fanned out to the data role's listeners for nothing);
  // their publishers are freed with this server.
  // Stopping a registry holding a million registrations took 15 s before.
  // REQUIRES: on the loop; only when the data role goes away with this
  // server (standalone).
  void PrepareForShutdown();

  // A restarted standalone registry: withhold every push until each client
  // stream of the previous run (`previous`, from ConnectedClients() of that
  // run) has returned and replayed (RestartWarmup), or `timeout` passed;
  // then push every subscriber the current view. Subscriptions are accepted
  // and answered meanwhile. Does nothing if `previous` is empty or timeout is
  // 0. Not for cluster mode: the data servers keep a dead session's
  // publishers for a lease. REQUIRES: on the loop, before the first stream;
  // metrics outlives the server.
  void BeginRestartWarmup(RestartWarmup::ClientCounts previous, std::chrono::milliseconds timeout,
                          RestartWarmupMetrics& metrics);
  bool warming_up() const { return warmup_ != nullptr; }

  // The client ids of the streams that said Hello, counted: what the next
  // run's warm-up waits for. The generation changes whenever they may have.
  RestartWarmup::ClientCounts ConnectedClients() const;
  uint64_t connected_clients_generation() const { return clients_generation_; }

  // Most inner messages one Batch may hold (registry.proto, "Batch").
  static constexpr int kMaxBatchMessages = 1000;

  // A new stream, from a client that proved `identity` (anonymous without
  // TLS). Returns its connection id.
  uint64_t OnConnect(std::string peer, std::shared_ptr<ClientStream> stream,
                     Identity identity = {});
  // One message from the stream. Calls stream->MessageHandled() when done.
  void OnMessage(uint64_t connection_id, pb::ClientMessage message);
  // The stream ended (client closed, cancelled, or broke). Idempotent.
  void OnDisconnect(uint64_t connection_id, const std::string& reason);

  // Queries (answers to the unary RPCs and the admin API). The Async forms
  // reply on the loop, inline or later: in cluster mode the datums are on the
  // data servers. Each replies exactly once while this server lives.
  using ListReply = std::function<void(pb::ListDataInfosResponse)>;
  using DescribeReply = std::function<void(absl::StatusOr<pb::DescribeResponse>)>;
  void ListDataInfosAsync(const pb::ListDataInfosRequest& request, ListReply reply);
  void DescribeAsync(const pb::DescribeRequest& request, DescribeReply reply);
  // The list from the data service's own List (standalone).
  pb::ListDataInfosResponse ListDataInfos(const pb::ListDataInfosRequest& request) const;
  pb::QueryByClientResponse QueryByClient(const pb::QueryByClientRequest& request) const;

  // Where ListDataInfosAsync gets the datums from, instead of the data
  // service's List (which in cluster mode knows only what this session
  // fetched): every data server's summaries (RemoteDataService::ListCluster).
  using DatumLister = std::function<void(const std::string& data_id_prefix,
                                         std::function<void(std::vector<DatumSummary>)> done)>;
  void SetDatumLister(DatumLister lister) { lister_ = std::move(lister); }

  size_t connection_count() const { return connections_.size(); }
  size_t publisher_count() const { return publishers_.size(); }
  const PushEngine& push_engine() const { return push_; }

 private:
  pb::ListDataInfosResponse ListFrom(const pb::ListDataInfosRequest& request,
                                     const std::vector<DatumSummary>& datums) const;
  pb::DescribeResponse DescribeFrom(const pb::DataInfoKey& key,
                                    const DatumSnapshot& snapshot) const;

  // One publisher of this session: the record as accepted (authoritative
  // copy) and the stream that owns it, linked into that stream's list.
  struct PublisherEntry {
    uint64_t connection_id = 0;
    std::shared_ptr<const PublisherRecord> record;  // its registration_id is the map's key
    PublisherEntry* prev = nullptr;
    PublisherEntry* next = nullptr;
  };
  struct Connection {
    uint64_t id = 0;
    std::string peer;
    Identity identity;  // what its certificate proved (registry/auth)
    bool said_hello = false;
    uint64_t stream_epoch = 0;  // Hello.stream_epoch
    std::string client_id;
    std::string app_name;
    std::string zone;
    bool accepts_delta_pushes = false;  // Hello.accepts_delta_pushes
    std::chrono::milliseconds keepalive_timeout{0};
    SteadyTime last_seen{};
    std::shared_ptr<ClientStream> stream;
    // What this stream's records name as their owner; made on first use
    // after each Hello and shared by the stream's records.
    std::shared_ptr<const OwnerRef> owner;
    // This stream's publishers: a list through their entries in publishers_
    // (head, in publish order), not a map of its own, since a registry holds
    // millions of publishers and each map node costs about 70 bytes.
    PublisherEntry* publishers = nullptr;
    size_t publisher_count = 0;
    // registration id -> push engine subscriber id
    std::unordered_map<std::string, uint64_t> subscribers;
    size_t registrations() const { return publisher_count + subscribers.size(); }
  };

  // The Results of one Batch's inner messages, sent as one ResultBatch when
  // the last of them is in (a data role in another process may answer them
  // later and out of order).
  struct PendingBatch {
    uint64_t connection_id = 0;
    size_t outstanding = 0;  // inner messages not answered yet, +1 while dispatching
    pb::ServerMessage message;
  };
  // Where a request's Result goes: on its own, or into its batch.
  struct ReplyTo {
    uint64_t request_id = 0;
    std::shared_ptr<PendingBatch> batch;
    // A publish, subscribe or revision: one of the registrations a Hello
    // announces as its replay (restart warm-up).
    bool registration = false;
  };

  void HandleHello(Connection& conn, uint64_t request_id, const pb::Hello& hello);
  void HandlePublish(Connection& conn, const ReplyTo& to, const pb::Publish& publish);
  void HandleSubscribe(Connection& conn, uint64_t request_id, const pb::Subscribe& subscribe);
  void HandleUnregister(Connection& conn, const ReplyTo& to, const pb::Unregister& request);
  void HandleRegisterRevision(Connection& conn, uint64_t request_id,
                              const pb::RegisterRevision& request);
  void HandleBatch(Connection& conn, uint64_t request_id, const pb::Batch& batch);
  void Reply(Connection& conn, const ReplyTo& to, const absl::Status& status,
             uint64_t datum_version = 0);
  void Reply(Connection& conn, uint64_t request_id, const absl::Status& status,
             uint64_t datum_version = 0) {
    Reply(conn, ReplyTo{request_id, nullptr}, status, datum_version);
  }
  // One more inner message of `batch` is answered; sends it after the last.
  void BatchAnswered(PendingBatch& batch);
  // A PushAck, alone or inside a Batch: acks for unknown subscribers (one
  // unsubscribed meanwhile) are ignored.
  void HandlePushAck(Connection& conn, const pb::PushAck& ack);
  void DropSubscriber(const std::string& registration_id);
  // Adds the entry to / removes it from conn's publisher list.
  static void Link(Connection& conn, PublisherEntry& entry);
  static void Unlink(Connection& conn, PublisherEntry& entry);
  absl::Status LimitReached(const Connection& conn) const;
  // OK when no authorizer is set or the policy allows `action` for conn's
  // identity; else PERMISSION_DENIED (counted and logged by the authorizer).
  absl::Status Authorize(const Connection& conn, const auth::Action& action);
  // A registration id held by another stream may be taken over only by the
  // same identity (a reconnecting client) or an admin.
  absl::Status AuthorizeTakeover(const Connection& conn, uint64_t owner_connection_id, auth::Op op,
                                 std::string_view data_id, const std::string& registration_id);
  void SweepKeepalives();
  // Ends the warm-up once every awaited client is back; updates its metrics.
  void WarmupProgress();
  void EndWarmup(bool timed_out);
  const std::shared_ptr<const OwnerRef>& OwnerOf(Connection& conn) const;
  pb::Owner OwnerProto(uint64_t connection_id) const;
  pb::SubscriberInfo SubscriberInfoOf(const PushEngine::SubscriberView& view) const;

  // PushEngine::Transport
  bool SendPush(uint64_t connection_id, EncodedPush&& push) override;

  EventLoop& loop_;
  DataService& data_;
  RegistryMetrics& metrics_;
  SessionOptions options_;
  PushEngine push_;
  RevisionService* revisions_ = nullptr;
  auth::Authorizer* authorizer_ = nullptr;
  DatumLister lister_;
  // Cleared by the destructor: query replies that come later are dropped.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  uint64_t next_connection_id_ = 1;
  std::unordered_map<uint64_t, Connection> connections_;
  // Every publisher of this session by registration id: a view of the
  // entry's record's own (no second copy of the id). Entries never move
  // (node-based map), so the connections' lists point into it.
  std::unordered_map<std::string_view, PublisherEntry> publishers_;
  // Registration ids whose publish is on its way to the data role: the
  // connection that sent the latest, and how many are in flight.
  struct Sending {
    uint64_t connection_id = 0;
    int in_flight = 0;
  };
  std::unordered_map<std::string, Sending> publishing_;
  DatumIdPool datum_ids_;
  std::unordered_map<std::string, uint64_t> subscriber_owner_;  // reg id -> connection
  std::unique_ptr<EventLoop::Timer> sweep_timer_;
  bool shutting_down_ = false;

  // Restart warm-up (standalone): set while pushes are withheld.
  std::unique_ptr<RestartWarmup> warmup_;
  RestartWarmupMetrics* warmup_metrics_ = nullptr;
  SteadyTime warmup_started_{};
  std::unique_ptr<EventLoop::Timer> warmup_timer_;
  uint64_t clients_generation_ = 0;
};

}  // namespace cairn
