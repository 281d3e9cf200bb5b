#include "client/client_core.h"

#include <algorithm>
#include <random>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/data_info.h"
#include "registry/app/app_model.h"
#include "spdlog/spdlog.h"

namespace cairn::client_internal {
namespace {

using std::chrono::milliseconds;

// How long Close() lets queued writes (e.g. unregisters) and the server's
// end of stream take before it cancels the call.
constexpr milliseconds kCloseGrace{1000};
// After our WritesDone went out, how long to wait for the server to finish.
constexpr milliseconds kFinishGrace{300};

std::string RandomHex(int digits) {
  std::random_device device;
  std::mt19937_64 rng((static_cast<uint64_t>(device()) << 32) ^ device());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < digits; ++i) out.push_back(kHex[rng() % 16]);
  return out;
}

absl::Status StatusFromResult(const pb::Result& result) {
  return absl::Status(static_cast<absl::StatusCode>(result.code()), result.message());
}

std::shared_ptr<grpc::Channel> MakeChannel(
    const std::string& target, const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  grpc::ChannelArguments args;
  // Find a restarted server quickly; our own backoff paces the streams.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // One connection per client, even when a process holds several clients of
  // the same server: the server identifies sessions by their peer address.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A push carries a whole datum: up to 256 KiB per publisher, many
  // publishers. The 4 MiB default would break large data infos.
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(target, credentials, args);
}

absl::Status ValidateOptions(const RegistryClientOptions& o) {
  if (o.servers.empty()) return absl::InvalidArgumentError("at least one server is required");
  for (const std::string& server : o.servers) {
    if (server.empty()) return absl::InvalidArgumentError("empty server address");
  }
  if (o.keepalive_interval <= milliseconds(0)) {
    return absl::InvalidArgumentError("keepalive_interval must be positive");
  }
  if (o.reconnect_backoff_initial <= milliseconds(0) ||
      o.reconnect_backoff_max < o.reconnect_backoff_initial) {
    return absl::InvalidArgumentError(
        "reconnect backoff must satisfy 0 < reconnect_backoff_initial <= reconnect_backoff_max");
  }
  if (o.request_timeout <= milliseconds(0)) {
    return absl::InvalidArgumentError("request_timeout must be positive");
  }
  if (o.tls.enabled()) {
    if (absl::Status s = ValidateTlsFiles(o.tls, /*server=*/false); !s.ok()) return s;
  }
  pb::Hello hello;
  hello.set_client_id(o.client_id);
  hello.set_app_name(o.app_name);
  hello.set_zone(o.zone);
  return ValidateHello(hello);
}

}  // namespace

absl::StatusOr<std::shared_ptr<ClientCore>> ClientCore::Create(RegistryClientOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  std::shared_ptr<ClientCore> core(new ClientCore(std::move(options)));
  core->Start();
  return core;
}

ClientCore::ClientCore(RegistryClientOptions options)
    : options_(std::move(options)),
      liveness_timeout_(std::max(3 * options_.keepalive_interval, milliseconds(3000))) {
  // Ids must not collide with another process using the same client_id: a
  // registration id owned by another stream would be taken over.
  id_prefix_ = options_.client_id.empty()
                   ? RandomHex(16)
                   : absl::StrCat(options_.client_id.substr(0, 96), ".", RandomHex(8));
  // Create() validated the TLS files; should they have gone since, the
  // channels fail to connect (UNAVAILABLE) rather than fall back to plaintext.
  auto credentials = MakeChannelCredentials(options_.tls);
  if (!credentials.ok()) {
    spdlog::error("registry client: {}", credentials.status().ToString());
    credentials = grpc::SslCredentials(grpc::SslCredentialsOptions());  // system roots only
  }
  for (const std::string& server : options_.servers) {
    channels_.push_back(MakeChannel(server, *credentials));
    stubs_.push_back(pb::Registry::NewStub(channels_.back()));
  }
  if (options_.spread_over_servers && !options_.servers.empty()) {
    next_server_ = std::random_device{}() % options_.servers.size();
  }
  std::unique_lock<std::mutex> lock(mu_);
  backoff_ = options_.reconnect_backoff_initial;
  next_connect_ = SteadyNow();
}

ClientCore::~ClientCore() { Close(); }

void ClientCore::Start() {
  control_thread_ = std::thread([this] { ControlLoop(); });
  dispatch_thread_ = std::thread([this] { DispatchLoop(); });
  dispatch_thread_id_.store(dispatch_thread_.get_id());
}

std::string ClientCore::NewRegistrationId() {
  return absl::StrCat(id_prefix_, ".", next_registration_.fetch_add(1));
}

// ---------------------------------------------------------------- control thread

void ClientCore::ControlLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    SteadyTime now = SteadyNow();
    if (stream_ != nullptr && stream_done_) {
      RetireStreamLocked(now);
      continue;
    }
    if (closing_) {
      if (stream_ == nullptr) break;
      // Let queued writes and the server's end of stream finish, within bounds.
      if (!stream_cancelled_ && (!connected_ || now >= close_deadline_)) {
        stream_->Cancel();
        stream_cancelled_ = true;
      }
      WaitUntilLocked(lock, stream_cancelled_ ? now + milliseconds(1000) : close_deadline_);
      continue;
    }
    if (stream_ == nullptr) {
      if (now >= next_connect_) {
        StartStreamLocked(now);
        continue;
      }
      WaitUntilLocked(lock, next_connect_);
      continue;
    }
    SteadyTime wake = now + milliseconds(1000);
    if (!stream_cancelled_) {
      SteadyTime dead_at = last_receive_ + liveness_timeout_;
      if (now >= dead_at) {
        last_error_ = absl::StrCat("no message from ", stream_->server(), " for ",
                                   liveness_timeout_.count(), "ms");
        spdlog::warn("registry client: {}; reconnecting", last_error_);
        stream_->Cancel();
        stream_cancelled_ = true;
      } else {
        wake = std::min(wake, dead_at);
      }
    }
    if (connected_ && !stream_cancelled_) {
      if (now >= next_ping_) {
        pb::ClientMessage ping;
        ping.mutable_ping()->set_nonce(next_ping_nonce_++);
        stream_->Send(std::move(ping));
        next_ping_ = now + options_.keepalive_interval;
      }
      wake = std::min(wake, next_ping_);
    }
    WaitUntilLocked(lock, wake);
  }
}

void ClientCore::WaitUntilLocked(std::unique_lock<std::mutex>& lock, SteadyTime deadline) {
  cv_.wait_until(lock, deadline);
}

void ClientCore::StartStreamLocked(SteadyTime now) {
  size_t index = next_server_;
  next_server_ = (next_server_ + 1) % options_.servers.size();
  stream_ = std::make_unique<SessionStream>(this, ++stream_generation_, options_.servers[index]);
  stream_done_ = false;
  stream_cancelled_ = false;
  connected_ = false;
  last_receive_ = now;
  spdlog::debug("registry client: opening a session to {}", options_.servers[index]);

  // Hello first, then every live registration, all queued before the call
  // starts so nothing the user sends later can overtake them.
  uint64_t hello_id = next_request_id_++;
  pb::ClientMessage hello;
  hello.set_request_id(hello_id);
  pb::Hello* body = hello.mutable_hello();
  body->set_client_id(options_.client_id);
  body->set_app_name(options_.app_name);
  body->set_zone(options_.zone);
  body->set_keepalive_timeout_ms(options_.keepalive_timeout_ms);
  body->set_accepts_delta_pushes(options_.delta_pushes);
  body->set_accepts_server_batches(options_.server_batches);
  // Above every earlier stream's, also across a restart of this process.
  stream_epoch_ =
      std::max<uint64_t>(stream_epoch_ + 1, std::chrono::duration_cast<std::chrono::microseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
  body->set_stream_epoch(stream_epoch_);
  // Every registration below is one message: a restarted server waits for
  // them before it pushes (Hello.replay_registrations).
  body->set_replay_registrations(static_cast<uint32_t>(registrations_.size()));
  inflight_[hello_id] = Inflight{Inflight::Op::kHello, nullptr, nullptr};
  stream_->Send(std::move(hello));
  // Revisions first: the server refuses an app instance whose revision it
  // does not know (e.g. a restarted server that lost it).
  for (auto& [id, reg] : registrations_) {
    if (reg->kind == Registration::Kind::kRevision) SendRegistrationLocked(reg);
  }
  for (auto& [id, reg] : registrations_) {
    if (reg->kind != Registration::Kind::kRevision) SendRegistrationLocked(reg);
  }
  // Take over what was unregistered without a stream; its Result sends the
  // unregister (HandleResultLocked). Not both at once: a cluster session
  // records a publisher only when the data server has answered, so an
  // unregister right behind the publish would find nothing to remove.
  for (auto& [id, reg] : orphans_) SendRegistrationLocked(reg);
  orphans_.clear();
  stream_->Start(stubs_[index].get());
}

void ClientCore::RetireStreamLocked(SteadyTime now) {
  bool was_connected = connected_;
  std::string server = stream_->server();
  // gRPC is done with the stream (OnDone returned to us): safe to delete.
  stream_.reset();
  connected_ = false;
  stream_done_ = false;
  // Nothing sent on that stream will be answered. Registrations are replayed
  // on the next stream and their waiters answered there; an unregister is
  // complete for the caller, since a server drops a stream's registrations
  // with it; a publisher's is sent again on the next stream (orphans_), for a
  // session that died without dropping anything.
  for (auto& [request_id, entry] : inflight_) {
    bool orphan = entry.reg != nullptr && !entry.reg->live &&
                  entry.reg->kind == Registration::Kind::kPublisher;
    if (entry.op == Inflight::Op::kRegister && orphan) orphans_[entry.reg->id] = entry.reg;
    if (entry.op != Inflight::Op::kUnregister) continue;
    if (entry.waiter != nullptr) {
      entry.waiter->done = true;
      entry.waiter->status = absl::OkStatus();
    }
    if (orphan) orphans_[entry.reg->id] = entry.reg;
  }
  inflight_.clear();
  cv_.notify_all();
  if (closing_) return;
  if (was_connected) {
    backoff_ = options_.reconnect_backoff_initial;
  } else {
    ++stats_.connect_failures;
  }
  next_connect_ = now + backoff_;
  spdlog::debug("registry client: session to {} ended ({}); next attempt in {}ms", server,
                last_error_, backoff_.count());
  backoff_ = std::min(backoff_ * 2, options_.reconnect_backoff_max);
}

// ---------------------------------------------------------------- stream events

void ClientCore::OnStreamMessage(SessionStream* stream, pb::ServerMessage message) {
  std::unique_lock<std::mutex> lock(mu_);
  SteadyTime now = SteadyNow();
  last_receive_ = now;
  if (!connected_) {
    connected_ = true;
    ++stats_.connections;
    if (stats_.connections > 1) ++stats_.reconnects;
    backoff_ = options_.reconnect_backoff_initial;
    next_ping_ = now + options_.keepalive_interval;
    last_error_.clear();
    spdlog::debug("registry client: connected to {}", stream->server());
  }
  HandleServerMessageLocked(stream, message, /*inside_batch=*/false);
  cv_.notify_all();
}

void ClientCore::HandleServerMessageLocked(SessionStream* stream, pb::ServerMessage& message,
                                           bool inside_batch) {
  switch (message.body_case()) {
    case pb::ServerMessage::kResult:
      HandleResultLocked(message.result());
      break;
    case pb::ServerMessage::kResultBatch:  // answers to a batch SessionStream coalesced
      for (const pb::Result& result : message.result_batch().results()) {
        HandleResultLocked(result);
      }
      break;
    case pb::ServerMessage::kPush:
      ++stats_.pushes_received;
      pushes_.push_back(PushItem{stream->generation(), std::move(*message.mutable_push())});
      break;
    case pb::ServerMessage::kBatch:
      if (inside_batch) break;  // servers never nest batches: ignore, as unknown
      for (pb::ServerMessage& inner : *message.mutable_batch()->mutable_messages()) {
        HandleServerMessageLocked(stream, inner, /*inside_batch=*/true);
      }
      break;
    default:  // pong, or a body this client does not know: liveness only
      break;
  }
}

void ClientCore::OnStreamDrained(SessionStream* /*stream*/) {
  std::unique_lock<std::mutex> lock(mu_);
  if (closing_) close_deadline_ = std::min(close_deadline_, SteadyNow() + kFinishGrace);
  cv_.notify_all();
}

void ClientCore::OnStreamDone(SessionStream* stream, const grpc::Status& status) {
  std::unique_lock<std::mutex> lock(mu_);
  // A stream we cancelled already has its reason in last_error_.
  if (!status.ok() && !closing_ && !stream_cancelled_) {
    last_error_ = absl::StrCat(stream->server(), ": ", status.error_message());
  }
  stream_done_ = true;
  cv_.notify_all();
}

void ClientCore::HandleResultLocked(const pb::Result& result) {
  auto it = inflight_.find(result.request_id());
  if (it == inflight_.end()) return;
  Inflight entry = std::move(it->second);
  inflight_.erase(it);
  absl::Status status = StatusFromResult(result);
  switch (entry.op) {
    case Inflight::Op::kHello:
      if (!status.ok()) {
        last_error_ = absl::StrCat("hello refused: ", status.ToString());
        spdlog::warn("registry client: {}", last_error_);
        stream_->Cancel();
        stream_cancelled_ = true;
      }
      return;
    case Inflight::Op::kRegister:
      if (!entry.reg->live && entry.reg->kind == Registration::Kind::kPublisher &&
          entry.waiter == nullptr) {
        // An orphan taken over (or a publish given up on): now remove it.
        if (status.ok()) SendUnregisterLocked(entry.reg, nullptr);
        return;
      }
      if (status.ok() && entry.reg->kind == Registration::Kind::kPublisher) {
        entry.reg->datum_version.store(result.datum_version());
      }
      if (entry.waiter != nullptr) {
        entry.waiter->done = true;
        entry.waiter->status = status;
        entry.waiter->datum_version = result.datum_version();
        if (entry.reg->waiter == entry.waiter) entry.reg->waiter = nullptr;
      } else if (!status.ok()) {
        // A replay the server refused: keep it for the next stream, report.
        ++stats_.replays_refused;
        spdlog::warn("registry client: server refused replay of {}: {}", entry.reg->id,
                     status.ToString());
      }
      return;
    case Inflight::Op::kUnregister:
      if (entry.waiter != nullptr) {
        entry.waiter->done = true;
        // Not found means not registered, which is what was asked for.
        entry.waiter->status = absl::IsNotFound(status) ? absl::OkStatus() : status;
      }
      return;
  }
}

// ---------------------------------------------------------------- sending

bool ClientCore::StreamWritableLocked() const {
  return stream_ != nullptr && !stream_done_ && !stream_cancelled_ && !closing_ &&
         stream_->writable();
}

void ClientCore::SendRegistrationLocked(const std::shared_ptr<Registration>& reg) {
  if (!StreamWritableLocked()) return;
  uint64_t request_id = next_request_id_++;
  pb::ClientMessage message;
  message.set_request_id(request_id);
  switch (reg->kind) {
    case Registration::Kind::kPublisher:
      *message.mutable_publish() = reg->publish;
      break;
    case Registration::Kind::kSubscriber:
      *message.mutable_subscribe() = reg->subscribe;
      break;
    case Registration::Kind::kRevision:
      *message.mutable_register_revision()->mutable_revision() = reg->revision;
      break;
  }
  if (!stream_->Send(std::move(message))) return;
  inflight_[request_id] = Inflight{Inflight::Op::kRegister, reg, reg->waiter};
  if (reg->waiter != nullptr) reg->waiter->sent = true;
}

bool ClientCore::SendUnregisterLocked(const std::shared_ptr<Registration>& reg,
                                      std::shared_ptr<Waiter> waiter) {
  if (!StreamWritableLocked()) return false;
  uint64_t request_id = next_request_id_++;
  pb::ClientMessage message;
  message.set_request_id(request_id);
  message.mutable_unregister()->set_registration_id(reg->id);
  if (!stream_->Send(std::move(message))) return false;
  if (waiter != nullptr) waiter->sent = true;
  inflight_[request_id] = Inflight{Inflight::Op::kUnregister, reg, std::move(waiter)};
  return true;
}

absl::Status ClientCore::AwaitLocked(std::unique_lock<std::mutex>& lock, const Waiter& waiter,
                                     SteadyTime deadline) {
  while (!waiter.done && !closing_) {
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) break;
  }
  if (waiter.done) return waiter.status;
  if (closing_) return absl::CancelledError("registry client closed");
  if (!connected_ || !waiter.sent) {
    return absl::UnavailableError(absl::StrCat(
        "no registry server answered within ", options_.request_timeout.count(), "ms",
        last_error_.empty() ? "" : " (last error: ", last_error_, last_error_.empty() ? "" : ")"));
  }
  return absl::DeadlineExceededError(absl::StrCat("no answer from ", stream_->server(), " within ",
                                                  options_.request_timeout.count(), "ms"));
}

// ---------------------------------------------------------------- user operations

absl::Status ClientCore::WaitConnected(milliseconds timeout) {
  SteadyTime deadline = SteadyNow() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  while (!connected_ && !closing_) {
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) break;
  }
  if (closing_) return absl::CancelledError("registry client closed");
  if (connected_) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("not connected within ", timeout.count(), "ms",
                                             last_error_.empty() ? "" : ": ", last_error_));
}

absl::Status ClientCore::Register(const std::shared_ptr<Registration>& reg) {
  std::shared_ptr<const PushCallback> dropped_callback;  // destroyed unlocked
  std::unique_lock<std::mutex> lock(mu_);
  if (closing_) return absl::CancelledError("registry client closed");
  SteadyTime deadline = SteadyNow() + options_.request_timeout;
  auto waiter = std::make_shared<Waiter>();
  reg->waiter = waiter;
  registrations_[reg->id] = reg;
  SendRegistrationLocked(reg);
  absl::Status status = AwaitLocked(lock, *waiter, deadline);
  if (status.ok()) return status;
  // Keep no registration. If the request may have reached the server
  // (sent, no answer), take it back there too.
  registrations_.erase(reg->id);
  reg->live = false;
  reg->waiter = nullptr;
  dropped_callback = std::move(reg->callback);
  if (waiter->sent && !waiter->done && reg->kind != Registration::Kind::kRevision) {
    SendUnregisterLocked(reg, nullptr);
  }
  return status;
}

absl::Status ClientCore::RegisterRevision(const pb::RevisionMeta& meta, bool resend) {
  std::string id = absl::StrCat("rev:", meta.revision());
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = registrations_.find(id);
    if (it != registrations_.end()) {
      if (!app::SameRevisionContent(it->second->revision, meta)) {
        return absl::AlreadyExistsError(absl::StrCat("this client already registered revision ",
                                                     meta.revision(), " with other content"));
      }
      if (!resend) return absl::OkStatus();
    }
  }
  auto reg = std::make_shared<Registration>(Registration::Kind::kRevision, id);
  reg->revision = meta;
  return Register(reg);
}

std::optional<pb::RevisionMeta> ClientCore::LocalRevision(const std::string& revision) const {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = registrations_.find(absl::StrCat("rev:", revision));
  if (it == registrations_.end()) return std::nullopt;
  return it->second->revision;
}

absl::StatusOr<pb::RevisionMeta> ClientCore::GetRevision(const std::string& revision) {
  pb::Registry::Stub* stub = nullptr;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (closing_) return absl::CancelledError("registry client closed");
    auto cached = revision_cache_.find(revision);
    if (cached != revision_cache_.end()) return cached->second;
    size_t index = next_server_;
    std::string server = connected_ && stream_ != nullptr ? stream_->server() : std::string();
    for (size_t i = 0; i < options_.servers.size(); ++i) {
      if (options_.servers[i] == server) index = i;
    }
    stub = stubs_[index].get();  // stubs live as long as the core
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
  context.set_wait_for_ready(true);
  pb::GetRevisionRequest request;
  request.set_revision(revision);
  pb::GetRevisionResponse response;
  grpc::Status status = stub->GetRevision(&context, request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  std::unique_lock<std::mutex> lock(mu_);
  revision_cache_[revision] = response.revision().meta();
  return response.revision().meta();
}

absl::Status ClientCore::Republish(const std::shared_ptr<Registration>& reg,
                                   std::vector<std::string> data) {
  std::unique_lock<std::mutex> lock(mu_);
  if (closing_) return absl::CancelledError("registry client closed");
  if (!reg->live) {
    return absl::FailedPreconditionError(
        absl::StrCat("publisher ", reg->id, " is no longer registered"));
  }
  SteadyTime deadline = SteadyNow() + options_.request_timeout;
  google::protobuf::RepeatedPtrField<std::string> previous;
  previous.Swap(reg->publish.mutable_data());
  for (std::string& entry : data) reg->publish.add_data(std::move(entry));
  if (absl::Status s = ValidatePublish(reg->publish); !s.ok()) {
    reg->publish.mutable_data()->Swap(&previous);
    return s;
  }
  uint64_t version = reg->publish.version() + 1;
  reg->publish.set_version(version);
  reg->version.store(version);
  auto waiter = std::make_shared<Waiter>();
  reg->waiter = waiter;
  SendRegistrationLocked(reg);
  absl::Status status = AwaitLocked(lock, *waiter, deadline);
  if (reg->waiter == waiter) reg->waiter = nullptr;
  // Refused: the server still has the previous data, so replays must carry
  // it. Timed out: the new data may have been applied; keep it.
  if (waiter->done && !status.ok() && reg->publish.version() == version) {
    reg->publish.mutable_data()->Swap(&previous);
  }
  return status;
}

absl::Status ClientCore::Unregister(const std::shared_ptr<Registration>& reg, bool wait) {
  std::shared_ptr<const PushCallback> dropped_callback;  // destroyed unlocked
  std::unique_lock<std::mutex> lock(mu_);
  // Whatever the outcome, when this returns no callback of `reg` runs: the
  // caller may be about to destroy what the callback uses.
  if (!reg->live) {
    WaitCallbackIdleLocked(lock, reg.get());
    return absl::OkStatus();
  }
  reg->live = false;
  reg->waiter = nullptr;
  registrations_.erase(reg->id);
  if (closing_) return wait ? absl::CancelledError("registry client closed") : absl::OkStatus();
  // The callback may capture the handle itself; dropping it breaks that cycle.
  dropped_callback = std::move(reg->callback);
  auto waiter = wait ? std::make_shared<Waiter>() : nullptr;
  absl::Status status;
  if (SendUnregisterLocked(reg, waiter)) {
    if (wait) status = AwaitLocked(lock, *waiter, SteadyNow() + options_.request_timeout);
  } else if (reg->kind == Registration::Kind::kPublisher) {
    // No stream: a server that closed ours dropped the registration with it,
    // but a session that died left a copy on the data servers (orphans_).
    orphans_[reg->id] = reg;
  }
  WaitCallbackIdleLocked(lock, reg.get());
  return status;
}

void ClientCore::WaitCallbackIdleLocked(std::unique_lock<std::mutex>& lock,
                                        const Registration* reg) {
  if (std::this_thread::get_id() == dispatch_thread_id_.load()) return;
  while (in_callback_ == reg) cv_.wait(lock);
}

// ---------------------------------------------------------------- dispatch thread

void ClientCore::DispatchLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    while (!dispatch_stop_ && pushes_.empty()) cv_.wait(lock);
    if (dispatch_stop_) break;
    PushItem item = std::move(pushes_.front());
    pushes_.pop_front();

    std::shared_ptr<Registration> reg;
    std::shared_ptr<const PushCallback> callback;
    bool need_full = false;
    auto it = registrations_.find(item.push.registration_id());
    if (it != registrations_.end() && it->second->kind == Registration::Kind::kSubscriber &&
        it->second->live) {
      reg = it->second;
      // A delta becomes the whole datum here; one that does not apply is
      // neither delivered nor taken: the ack asks for the whole datum.
      // Without deltas asked for, every push is whole and nothing is kept.
      auto outcome = options_.delta_pushes           ? reg->assembler.Apply(item.push)
                     : item.push.base_version() == 0 ? PushAssembler::Outcome::kWhole
                                                     : PushAssembler::Outcome::kNeedFull;
      if (outcome == PushAssembler::Outcome::kNeedFull) need_full = true;
      bool whole =
          outcome == PushAssembler::Outcome::kWhole || outcome == PushAssembler::Outcome::kApplied;
      uint64_t version = item.push.version();
      // Versions only grow: lower is stale, equal is a replay of what the
      // callback already saw. The first push is delivered whatever it holds.
      if (whole && (!reg->delivered_any || version > reg->delivered_version.load())) {
        reg->delivered_any = true;
        reg->delivered_version.store(version);
        callback = reg->callback;
      }
    }
    if (callback != nullptr) {
      ++stats_.pushes_delivered;
      in_callback_ = reg.get();
      lock.unlock();
      (*callback)(item.push);
      // Release user objects before relocking: their destructors may call in.
      callback.reset();
      reg.reset();
      lock.lock();
      in_callback_ = nullptr;
      cv_.notify_all();
    } else {
      ++stats_.pushes_dropped;
      if (reg != nullptr) {
        lock.unlock();
        reg.reset();
        lock.lock();
      }
    }
    // Ack on the stream that carried the push; a new stream replays anyway.
    if (StreamWritableLocked() && stream_->generation() == item.stream_generation) {
      pb::ClientMessage ack;
      ack.mutable_push_ack()->set_registration_id(item.push.registration_id());
      ack.mutable_push_ack()->set_push_id(item.push.push_id());
      if (need_full) ack.mutable_push_ack()->set_need_full(true);
      stream_->Send(std::move(ack));
    }
  }
}

// ---------------------------------------------------------------- shutdown, queries

void ClientCore::Close() {
  std::lock_guard<std::mutex> close_lock(close_mu_);
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!closing_) {
      closing_ = true;
      close_deadline_ = SteadyNow() + kCloseGrace;
      if (stream_ != nullptr) stream_->CloseWrites();
    }
    cv_.notify_all();
  }
  if (control_thread_.joinable()) control_thread_.join();
  {
    std::unique_lock<std::mutex> lock(mu_);
    dispatch_stop_ = true;
    cv_.notify_all();
  }
  // From a callback the dispatch thread is us: it stops once we return, and
  // a later Close() (the destructor) joins it.
  if (dispatch_thread_.joinable() && std::this_thread::get_id() != dispatch_thread_.get_id()) {
    dispatch_thread_.join();
  }
  std::vector<std::shared_ptr<const PushCallback>> callbacks;
  std::unordered_map<std::string, std::shared_ptr<Registration>> registrations;
  {
    std::unique_lock<std::mutex> lock(mu_);
    registrations.swap(registrations_);
    for (auto& [id, reg] : registrations) {
      reg->live = false;
      reg->waiter = nullptr;
      callbacks.push_back(std::move(reg->callback));
    }
    pushes_.clear();
    inflight_.clear();
  }
  // Destroyed here, unlocked: user callbacks may own handles.
}

std::string ClientCore::ConnectedServer() const {
  std::unique_lock<std::mutex> lock(mu_);
  return connected_ && stream_ != nullptr ? stream_->server() : std::string();
}

bool ClientCore::IsConnected() const {
  std::unique_lock<std::mutex> lock(mu_);
  return connected_;
}

RegistryClientStats ClientCore::stats() const {
  std::unique_lock<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace cairn::client_internal
