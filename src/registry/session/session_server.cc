#include "registry/session/session_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "registry/app/app_model.h"

namespace cairn {

SessionServer::SessionServer(EventLoop& loop, DataService& data, RegistryMetrics& metrics,
                             SessionOptions options)
    : loop_(loop),
      data_(data),
      metrics_(metrics),
      options_(std::move(options)),
      push_(loop, data, *this, metrics, options_.push) {}

SessionServer::~SessionServer() { *alive_ = false; }

void SessionServer::Start() { SweepKeepalives(); }

uint64_t SessionServer::OnConnect(std::string peer, std::shared_ptr<ClientStream> stream,
                                  Identity identity) {
  uint64_t id = next_connection_id_++;
  Connection& conn = connections_[id];
  conn.id = id;
  conn.peer = std::move(peer);
  conn.identity = std::move(identity);
  conn.keepalive_timeout = options_.keepalive_timeout;
  conn.last_seen = SteadyNow();
  conn.stream = std::move(stream);
  metrics_.connections.Increment();
  metrics_.connections_opened.Increment();
  spdlog::debug("connection {} from {}", id, conn.peer);
  return id;
}

void SessionServer::OnMessage(uint64_t connection_id, pb::ClientMessage message) {
  auto it = connections_.find(connection_id);
  if (it == connections_.end()) return;  // closed meanwhile: nothing to answer
  Connection& conn = it->second;
  conn.last_seen = SteadyNow();
  uint64_t request_id = message.request_id();
  if (auto s = RejectUnknownFields(message); !s.ok()) {
    metrics_.bad_messages.Increment();
    Reply(conn, request_id, s);
  } else {
    switch (message.body_case()) {
      case pb::ClientMessage::kHello:
        HandleHello(conn, request_id, message.hello());
        break;
      case pb::ClientMessage::kPublish:
        HandlePublish(conn, ReplyTo{request_id, nullptr, /*registration=*/true}, message.publish());
        break;
      case pb::ClientMessage::kSubscribe:
        HandleSubscribe(conn, request_id, message.subscribe());
        break;
      case pb::ClientMessage::kUnregister:
        HandleUnregister(conn, ReplyTo{request_id, nullptr}, message.unregister());
        break;
      case pb::ClientMessage::kBatch:
        HandleBatch(conn, request_id, message.batch());
        break;
      case pb::ClientMessage::kRegisterRevision:
        HandleRegisterRevision(conn, request_id, message.register_revision());
        break;
      case pb::ClientMessage::kPushAck:
        HandlePushAck(conn, message.push_ack());
        break;
      case pb::ClientMessage::kPing: {
        pb::ServerMessage pong;
        pong.mutable_pong()->set_nonce(message.ping().nonce());
        conn.stream->Send(std::move(pong), /*droppable=*/false);
        break;
      }
      case pb::ClientMessage::BODY_NOT_SET:
        metrics_.bad_messages.Increment();
        Reply(conn, request_id,
              absl::InvalidArgumentError("client message has no body (hello, publish, "
                                         "subscribe, unregister, push_ack, ping, "
                                         "register_revision or batch)"));
        break;
    }
  }
  // The connection may have been closed by the handler; the stream outlives it.
  auto again = connections_.find(connection_id);
  if (again != connections_.end()) again->second.stream->MessageHandled();
}

void SessionServer::Reply(Connection& conn, const ReplyTo& to, const absl::Status& status,
                          uint64_t datum_version) {
  if (to.registration && warmup_ != nullptr) {
    warmup_->OnRegistrationAnswered(conn.id);
    WarmupProgress();  // the push it may release is posted: the Result goes first
  }
  if (status.ok()) {
    metrics_.requests_ok.Increment();
  } else {
    metrics_.requests_refused.Increment();
  }
  if (to.request_id == 0) {
    if (!status.ok()) {
      spdlog::debug("connection {}: refused a request without id: {}", conn.id, status.ToString());
    }
    if (to.batch) BatchAnswered(*to.batch);
    return;
  }
  pb::ServerMessage message;
  pb::Result* result =
      to.batch ? to.batch->message.mutable_result_batch()->add_results() : message.mutable_result();
  result->set_request_id(to.request_id);
  result->set_code(static_cast<int32_t>(status.code()));
  if (!status.ok()) result->set_message(std::string(status.message()));
  result->set_datum_version(datum_version);
  if (to.batch) {
    BatchAnswered(*to.batch);
  } else {
    conn.stream->Send(std::move(message), /*droppable=*/false);
  }
}

void SessionServer::HandleBatch(Connection& conn, uint64_t request_id, const pb::Batch& batch) {
  // Check the whole batch before applying any of it, so that a refused batch
  // changes nothing and gets one clear answer.
  absl::Status invalid;
  if (batch.messages_size() == 0 || batch.messages_size() > kMaxBatchMessages) {
    invalid = absl::InvalidArgumentError(absl::StrCat("a batch holds 1..", kMaxBatchMessages,
                                                      " messages; this one holds ",
                                                      batch.messages_size()));
  }
  for (int i = 0; invalid.ok() && i < batch.messages_size(); ++i) {
    pb::ClientMessage::BodyCase body = batch.messages(i).body_case();
    if (body == pb::ClientMessage::kBatch) {
      invalid = absl::InvalidArgumentError(
          absl::StrCat("message ", i, " of the batch is itself a batch; batches do not nest"));
    } else if (body != pb::ClientMessage::kPublish && body != pb::ClientMessage::kUnregister &&
               body != pb::ClientMessage::kPushAck) {
      invalid = absl::InvalidArgumentError(absl::StrCat(
          "message ", i,
          " of the batch is not a publish, unregister or push_ack (only those batch)"));
    }
  }
  if (!invalid.ok()) {
    metrics_.bad_messages.Increment();
    Reply(conn, request_id, invalid);
    return;
  }
  auto pending = std::make_shared<PendingBatch>();
  pending->connection_id = conn.id;
  // +1 until every inner message is dispatched: answers that come back at
  // once must not send the batch early.
  pending->outstanding = 1;
  pending->message.mutable_result_batch()->mutable_results()->Reserve(batch.messages_size());
  for (const pb::ClientMessage& inner : batch.messages()) {
    if (inner.has_push_ack()) {  // no answer, so not outstanding
      HandlePushAck(conn, inner.push_ack());
      continue;
    }
    ReplyTo to{inner.request_id(), pending, /*registration=*/inner.has_publish()};
    ++pending->outstanding;
    if (inner.has_publish()) {
      HandlePublish(conn, to, inner.publish());
    } else {
      HandleUnregister(conn, to, inner.unregister());
    }
  }
  BatchAnswered(*pending);
}

void SessionServer::HandlePushAck(Connection& conn, const pb::PushAck& ack) {
  auto sub = conn.subscribers.find(ack.registration_id());
  if (sub != conn.subscribers.end()) push_.OnAck(sub->second, ack.push_id(), ack.need_full());
}

void SessionServer::BatchAnswered(PendingBatch& batch) {
  if (--batch.outstanding > 0) return;
  if (batch.message.result_batch().results_size() == 0) return;  // nobody asked
  auto it = connections_.find(batch.connection_id);
  if (it == connections_.end()) return;
  it->second.stream->Send(std::move(batch.message), /*droppable=*/false);
}

void SessionServer::HandleHello(Connection& conn, uint64_t request_id, const pb::Hello& hello) {
  if (auto s = ValidateHello(hello); !s.ok()) {
    Reply(conn, request_id, s);
    return;
  }
  if (!conn.said_hello || conn.client_id != hello.client_id()) ++clients_generation_;
  conn.said_hello = true;
  conn.client_id = hello.client_id();
  conn.stream_epoch = hello.stream_epoch();
  conn.owner.reset();  // records published from now on name the new client id
  conn.app_name = hello.app_name();
  conn.zone = hello.zone();
  conn.accepts_delta_pushes = hello.accepts_delta_pushes();
  conn.stream->SetServerBatches(hello.accepts_server_batches());
  if (hello.keepalive_timeout_ms() != 0) {
    conn.keepalive_timeout =
        std::clamp(std::chrono::milliseconds(hello.keepalive_timeout_ms()),
                   options_.min_keepalive_timeout, options_.max_keepalive_timeout);
  }
  Reply(conn, request_id, absl::OkStatus());
  if (warmup_ != nullptr) {
    warmup_->OnHello(conn.id, conn.client_id, hello.replay_registrations());
    WarmupProgress();
  }
}

absl::Status SessionServer::LimitReached(const Connection& conn) const {
  return absl::ResourceExhaustedError(
      absl::StrCat("this stream already holds ", conn.registrations(),
                   " registrations; the limit is ", options_.max_registrations_per_client));
}

namespace {

// The app an "app:<APP>" dataId (an app-level record) names, else empty.
std::string_view AppOfDataId(std::string_view data_id) {
  if (!data_id.starts_with(app::kAppDataIdPrefix)) return {};
  return data_id.substr(app::kAppDataIdPrefix.size());
}

}  // namespace

absl::Status SessionServer::Authorize(const Connection& conn, const auth::Action& action) {
  if (authorizer_ == nullptr) return absl::OkStatus();
  return authorizer_->Check(conn.identity, action);
}

absl::Status SessionServer::AuthorizeTakeover(const Connection& conn, uint64_t owner_connection_id,
                                              auth::Op op, std::string_view data_id,
                                              const std::string& registration_id) {
  if (authorizer_ == nullptr || owner_connection_id == conn.id) return absl::OkStatus();
  auto owner = connections_.find(owner_connection_id);
  if (owner == connections_.end()) return absl::OkStatus();
  const Identity& holder = owner->second.identity;
  if (holder.Name() == conn.identity.Name() &&
      holder.authenticated == conn.identity.authenticated) {
    return absl::OkStatus();  // the same workload on a new stream (a reconnect)
  }
  if (authorizer_->IsAdmin(conn.identity)) return absl::OkStatus();
  return authorizer_->Deny(
      conn.identity, op, "registration-owner",
      absl::StrCat(std::string(auth::OpName(op)), " of '", std::string(data_id), "' by ",
                   conn.identity.Name(), " denied by rule 'registration-owner': registration id ",
                   registration_id, " is held by another identity (", holder.Name(), ")"));
}

void SessionServer::HandlePublish(Connection& conn, const ReplyTo& to, const pb::Publish& publish) {
  if (auto s = ValidatePublish(publish); !s.ok()) {
    Reply(conn, to, s);
    return;
  }
  const std::string& reg_id = publish.registration_id();
  auto record = std::make_shared<PublisherRecord>();
  record->datum = datum_ids_.Get(NormalizeKey(publish.key()));
  auto existing = publishers_.find(reg_id);
  // Who holds the id: its publisher here, else a publish of it still on its
  // way to the data role (a takeover racing that publish is checked too).
  uint64_t holder = existing != publishers_.end() ? existing->second.connection_id : 0;
  if (auto sending = publishing_.find(reg_id); holder == 0 && sending != publishing_.end()) {
    holder = sending->second.connection_id;
  }
  record->app_name = publish.app_name().empty() ? conn.app_name : publish.app_name();
  if (authorizer_ != nullptr) {
    // A record that names no app is the caller's: stamped with the app its
    // certificate names, so that no record escapes the own-app rule.
    if (record->app_name.empty()) record->app_name = conn.identity.app;
    auth::Action action{auth::Op::kPublish, publish.key().data_id(), {}};
    if (std::string_view app = AppOfDataId(action.data_id); !app.empty()) {
      action.claimed_apps.push_back(app);
    }
    if (!record->app_name.empty()) action.claimed_apps.push_back(record->app_name);
    absl::Status allowed = Authorize(conn, action);
    if (allowed.ok() && holder != 0) {
      allowed = AuthorizeTakeover(conn, holder, auth::Op::kPublish, action.data_id, reg_id);
    }
    if (!allowed.ok()) {
      Reply(conn, to, allowed);
      return;
    }
  }
  // After authorization: what an id is used for is told only to who may
  // take it over.
  if (existing != publishers_.end() &&
      existing->second.record->data_info_id() != record->data_info_id()) {
    Reply(
        conn, to,
        absl::InvalidArgumentError(absl::StrCat("registration id ", reg_id, " is already used for ",
                                                existing->second.record->data_info_id())));
    return;
  }
  bool known_here = existing != publishers_.end() && existing->second.connection_id == conn.id;
  if (!known_here && conn.registrations() >= options_.max_registrations_per_client) {
    Reply(conn, to, LimitReached(conn));
    return;
  }
  record->registration_id = reg_id;
  record->data.assign(publish.data().begin(), publish.data().end());
  record->zone = !publish.zone().empty() ? publish.zone()
                 : !conn.zone.empty()    ? conn.zone
                                         : std::string(kDefaultZone);
  record->attributes.insert(publish.attributes().begin(), publish.attributes().end());
  record->version = publish.version();
  record->owner = OwnerOf(conn);
  record->registered_at_ms = WallMillis();

  uint64_t conn_id = conn.id;
  Sending& sending = publishing_[reg_id];
  sending.connection_id = conn_id;
  ++sending.in_flight;
  data_.Publish(record, [this, conn_id, to, record](absl::StatusOr<uint64_t> version) {
    if (auto sent = publishing_.find(record->registration_id);
        sent != publishing_.end() && --sent->second.in_flight == 0) {
      publishing_.erase(sent);
    }
    auto it = connections_.find(conn_id);
    if (!version.ok()) {
      if (it != connections_.end()) Reply(it->second, to, version.status());
      return;
    }
    if (it == connections_.end()) {
      // The stream ended while the data role was answering: undo.
      data_.Unpublish(record->data_info_id(), record->registration_id, *record->owner,
                      [](absl::StatusOr<uint64_t>) {});
      return;
    }
    std::string_view key = record->registration_id;
    auto found = publishers_.find(key);
    if (found == publishers_.end()) {
      PublisherEntry& entry =
          publishers_.emplace(key, PublisherEntry{conn_id, record}).first->second;
      Link(it->second, entry);
    } else {
      PublisherEntry& entry = found->second;
      if (entry.connection_id != conn_id) {
        // Taken over from an older stream of the same client.
        auto old = connections_.find(entry.connection_id);
        if (old != connections_.end()) Unlink(old->second, entry);
        entry.connection_id = conn_id;
        Link(it->second, entry);
      }
      // Re-key the node to the new record: the key views the record's id and
      // the old record may die now. The entry stays where it is.
      auto node = publishers_.extract(found);
      node.key() = key;
      node.mapped().record = record;
      publishers_.insert(std::move(node));
    }
    metrics_.publishers.Set(static_cast<double>(publishers_.size()));
    Reply(it->second, to, absl::OkStatus(), *version);
  });
}

void SessionServer::HandleSubscribe(Connection& conn, uint64_t request_id,
                                    const pb::Subscribe& subscribe) {
  const ReplyTo to{request_id, nullptr, /*registration=*/true};
  if (auto s = ValidateSubscribe(subscribe); !s.ok()) {
    Reply(conn, to, s);
    return;
  }
  const std::string& reg_id = subscribe.registration_id();
  if (authorizer_ != nullptr) {
    auth::Action action{auth::Op::kSubscribe, subscribe.key().data_id(), {}};
    if (std::string_view app = AppOfDataId(action.data_id); !app.empty()) {
      action.claimed_apps.push_back(app);
    }
    absl::Status allowed = Authorize(conn, action);
    if (auto owner = subscriber_owner_.find(reg_id);
        allowed.ok() && owner != subscriber_owner_.end()) {
      allowed =
          AuthorizeTakeover(conn, owner->second, auth::Op::kSubscribe, action.data_id, reg_id);
    }
    if (!allowed.ok()) {
      Reply(conn, to, allowed);
      return;
    }
  }
  bool known_here = conn.subscribers.count(reg_id) > 0;
  if (!known_here && conn.registrations() >= options_.max_registrations_per_client) {
    Reply(conn, to, LimitReached(conn));
    return;
  }
  DropSubscriber(reg_id);  // a re-subscribe (or a reconnect) replaces the old one
  PushEngine::SubscriberSpec spec;
  spec.registration_id = reg_id;
  spec.key = NormalizeKey(subscribe.key());
  spec.scope =
      subscribe.scope() == pb::SCOPE_UNSPECIFIED ? pb::SCOPE_DATACENTER : subscribe.scope();
  spec.zone = !subscribe.zone().empty() ? subscribe.zone()
              : !conn.zone.empty()      ? conn.zone
                                        : std::string(kDefaultZone);
  spec.connection_id = conn.id;
  spec.accepts_deltas = conn.accepts_delta_pushes;
  // Answer first: the first push is queued and goes out after the result.
  Reply(conn, to, absl::OkStatus());
  conn.subscribers[reg_id] = push_.Subscribe(std::move(spec));
  subscriber_owner_[reg_id] = conn.id;
}

void SessionServer::HandleRegisterRevision(Connection& conn, uint64_t request_id,
                                           const pb::RegisterRevision& request) {
  const ReplyTo to{request_id, nullptr, /*registration=*/true};
  if (authorizer_ != nullptr) {
    // A revision is its app's record, and says which interfaces the app
    // serves: each of them must be publishable by the caller for that app,
    // or a revision could make the app a provider of an interface the
    // policy keeps from it.
    const pb::RevisionMeta& meta = request.revision();
    std::string app_data_id = std::string(app::kAppDataIdPrefix) + meta.app_name();
    absl::Status allowed =
        Authorize(conn, auth::Action{auth::Op::kPublish, app_data_id, {meta.app_name()}});
    for (int i = 0; allowed.ok() && i < meta.interfaces_size(); ++i) {
      allowed = Authorize(
          conn,
          auth::Action{auth::Op::kPublish, meta.interfaces(i).key().data_id(), {meta.app_name()}});
    }
    if (!allowed.ok()) {
      Reply(conn, to, allowed);
      return;
    }
  }
  if (revisions_ == nullptr) {
    Reply(conn, to,
          absl::UnimplementedError("this server does not support application-level discovery"));
    return;
  }
  uint64_t conn_id = conn.id;
  revisions_->RegisterRevision(request.revision(), [this, conn_id, to](absl::Status s) {
    auto it = connections_.find(conn_id);
    if (it != connections_.end()) Reply(it->second, to, s);
  });
}

void SessionServer::DropSubscriber(const std::string& reg_id) {
  auto owner = subscriber_owner_.find(reg_id);
  if (owner == subscriber_owner_.end()) return;
  auto conn = connections_.find(owner->second);
  if (conn != connections_.end()) {
    auto sub = conn->second.subscribers.find(reg_id);
    if (sub != conn->second.subscribers.end()) {
      push_.Unsubscribe(sub->second);
      conn->second.subscribers.erase(sub);
    }
  }
  subscriber_owner_.erase(owner);
}

void SessionServer::HandleUnregister(Connection& conn, const ReplyTo& to,
                                     const pb::Unregister& request) {
  const std::string& reg_id = request.registration_id();
  auto pub = publishers_.find(reg_id);
  if (pub != publishers_.end() && pub->second.connection_id == conn.id) {
    std::shared_ptr<const PublisherRecord> record = pub->second.record;
    Unlink(conn, pub->second);
    publishers_.erase(pub);
    metrics_.publishers.Set(static_cast<double>(publishers_.size()));
    uint64_t conn_id = conn.id;
    data_.Unpublish(record->data_info_id(), reg_id, *record->owner,
                    [this, conn_id, to](absl::StatusOr<uint64_t> version) {
                      auto it = connections_.find(conn_id);
                      if (it == connections_.end()) return;
                      Reply(it->second, to, version.status(), version.value_or(0));
                    });
    return;
  }
  if (conn.subscribers.count(reg_id) > 0) {
    DropSubscriber(reg_id);
    Reply(conn, to, absl::OkStatus());
    return;
  }
  Reply(
      conn, to,
      absl::NotFoundError(absl::StrCat("no publisher or subscriber ", reg_id, " on this stream")));
}

void SessionServer::OnDisconnect(uint64_t connection_id, const std::string& reason) {
  auto it = connections_.find(connection_id);
  if (it == connections_.end()) return;
  Connection conn = std::move(it->second);
  connections_.erase(it);
  if (conn.said_hello) ++clients_generation_;
  if (warmup_ != nullptr) warmup_->OnDisconnect(connection_id);
  spdlog::debug("connection {} ({}) closed: {}; removing {} publishers, {} subscribers",
                connection_id, conn.peer, reason, conn.publisher_count, conn.subscribers.size());
  // Shutting down: the entries stay in publishers_ until this server is
  // destroyed, which frees them in one pass instead of a hash lookup each
  // (a stream that still publishes one of them takes it over as usual).
  for (PublisherEntry* entry = shutting_down_ ? nullptr : conn.publishers; entry != nullptr;) {
    PublisherEntry* next = entry->next;
    // Every entry on the list belongs to this connection (takeovers unlink).
    std::shared_ptr<const PublisherRecord> record = std::move(entry->record);
    publishers_.erase(record->registration_id);
    entry = next;
    data_.Unpublish(record->data_info_id(), record->registration_id, *record->owner,
                    [](absl::StatusOr<uint64_t>) {});
  }
  for (auto& [reg_id, subscriber_id] : conn.subscribers) {
    push_.Unsubscribe(subscriber_id);
    auto owner = subscriber_owner_.find(reg_id);
    if (owner != subscriber_owner_.end() && owner->second == connection_id) {
      subscriber_owner_.erase(owner);
    }
  }
  metrics_.publishers.Set(static_cast<double>(publishers_.size()));
  metrics_.connections.Decrement();
  metrics_.connections_closed.Increment();
}

void SessionServer::Link(Connection& conn, PublisherEntry& entry) {
  entry.prev = nullptr;
  entry.next = conn.publishers;
  if (conn.publishers != nullptr) conn.publishers->prev = &entry;
  conn.publishers = &entry;
  ++conn.publisher_count;
}

void SessionServer::Unlink(Connection& conn, PublisherEntry& entry) {
  if (entry.prev != nullptr) {
    entry.prev->next = entry.next;
  } else {
    conn.publishers = entry.next;
  }
  if (entry.next != nullptr) entry.next->prev = entry.prev;
  entry.prev = entry.next = nullptr;
  --conn.publisher_count;
}

void SessionServer::PrepareForShutdown() {
  shutting_down_ = true;
  for (auto& [id, conn] : connections_) {
    conn.stream->Close(absl::UnavailableError("the registry is shutting down"));
  }
}

void SessionServer::SweepKeepalives() {
  SteadyTime now = SteadyNow();
  std::vector<uint64_t> expired;
  for (const auto& [id, conn] : connections_) {
    if (now - conn.last_seen > conn.keepalive_timeout) expired.push_back(id);
  }
  for (uint64_t id : expired) {
    Connection& conn = connections_.at(id);
    auto timeout_ms = conn.keepalive_timeout.count();
    spdlog::warn("connection {} ({}, client '{}') sent nothing for {} ms: closing it", id,
                 conn.peer, conn.client_id, timeout_ms);
    metrics_.keepalive_expired.Increment();
    conn.stream->Close(absl::UnavailableError(
        absl::StrCat("no message within the keepalive timeout of ", timeout_ms, " ms")));
    OnDisconnect(id, "keepalive timeout");
  }
  // Sweep often enough that a connection is removed within a quarter of the
  // shortest allowed timeout after it expires.
  auto period = std::clamp(options_.min_keepalive_timeout / 4, std::chrono::milliseconds(50),
                           std::chrono::milliseconds(1000));
  sweep_timer_ = loop_.RunAfter(period, [this] { SweepKeepalives(); });
}

void SessionServer::BeginRestartWarmup(RestartWarmup::ClientCounts previous,
                                       std::chrono::milliseconds timeout,
                                       RestartWarmupMetrics& metrics) {
  warmup_metrics_ = &metrics;
  if (previous.empty() || timeout.count() <= 0) return;
  warmup_ = std::make_unique<RestartWarmup>(std::move(previous));
  warmup_started_ = SteadyNow();
  push_.Hold();
  metrics.active.Set(1);
  metrics.awaited.Set(static_cast<double>(warmup_->awaited()));
  spdlog::info(
      "restart warm-up: withholding pushes until the {} client streams of the previous run are "
      "back and have replayed their registrations, at most {} ms (restart_warmup_ms)",
      warmup_->expected(), timeout.count());
  warmup_timer_ = loop_.RunAfter(timeout, [this] { EndWarmup(/*timed_out=*/true); });
}

void SessionServer::WarmupProgress() {
  if (warmup_ == nullptr) return;
  warmup_metrics_->awaited.Set(static_cast<double>(warmup_->awaited()));
  if (warmup_->AllReturned()) EndWarmup(/*timed_out=*/false);
}

void SessionServer::EndWarmup(bool timed_out) {
  if (warmup_ == nullptr) return;
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyNow() - warmup_started_);
  if (timed_out) {
    spdlog::warn(
        "restart warm-up ended after {} ms: timeout; {} of {} client streams of the previous run "
        "did not return ({}); pushing every subscriber the current view",
        took.count(), warmup_->awaited(), warmup_->expected(), warmup_->AwaitedSummary(10));
  } else {
    spdlog::info(
        "restart warm-up ended after {} ms: all {} client streams of the previous run returned; "
        "pushing every subscriber the current view",
        took.count(), warmup_->expected());
  }
  warmup_metrics_->active.Set(0);
  warmup_metrics_->awaited.Set(static_cast<double>(warmup_->awaited()));
  warmup_metrics_->duration.Set(std::chrono::duration<double>(took).count());
  warmup_.reset();
  push_.Resume();
  // Last: this may be the timer's own callback.
  warmup_timer_.reset();
}

RestartWarmup::ClientCounts SessionServer::ConnectedClients() const {
  RestartWarmup::ClientCounts counts;
  for (const auto& [id, conn] : connections_) {
    if (conn.said_hello) ++counts[conn.client_id];
  }
  return counts;
}

bool SessionServer::SendPush(uint64_t connection_id, EncodedPush&& push) {
  auto it = connections_.find(connection_id);
  if (it == connections_.end()) return false;
  return it->second.stream->SendPush(std::move(push));
}

const std::shared_ptr<const OwnerRef>& SessionServer::OwnerOf(Connection& conn) const {
  if (!conn.owner) {
    conn.owner = std::make_shared<const OwnerRef>(
        OwnerRef{options_.session_name, conn.id, conn.client_id, conn.peer, conn.stream_epoch});
  }
  return conn.owner;
}

}  // namespace cairn
