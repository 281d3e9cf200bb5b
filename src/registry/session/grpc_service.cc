#include "registry/session/grpc_service.h"

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "common/grpc_status.h"
#include "common/grpc_tls.h"
#include "registry/session/client_stream.h"

namespace cairn {
namespace {

// ServerBatch limits: the batch stays well under a client's default 4 MiB
// receive limit, and one write never holds up the stream for long.
constexpr size_t kMaxBatchMessages = 1000;
constexpr size_t kMaxBatchBytes = 1 << 20;
// Field numbers of ServerMessage.batch and ServerBatch.messages (checked
// against the generated code below).
constexpr int kServerMessageBatchField = 5;
constexpr int kServerBatchMessagesField = 1;
static_assert(pb::ServerMessage::kBatchFieldNumber == kServerMessageBatchField);
static_assert(pb::ServerBatch::kMessagesFieldNumber == kServerBatchMessagesField);

// One client's Session stream. Lives as long as both gRPC (until OnDone) and
// the session role (until it drops the connection) hold it: `self_` is the
// gRPC side's reference.
class SessionReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                             public ClientStream,
                             public std::enable_shared_from_this<SessionReactor> {
 public:
  SessionReactor(EventLoop& loop, SessionServer& session, GrpcServiceOptions options,
                 std::string peer, Identity identity)
      : loop_(loop),
        session_(session),
        options_(options),
        peer_(std::move(peer)),
        identity_(std::move(identity)) {}

  void Begin() {
    self_ = shared_from_this();
    loop_.Post([this, keep = self_] {
      connection_id_ = session_.OnConnect(peer_, keep, identity_);
      std::lock_guard lock(mu_);
      if (!done_ && !close_requested_) StartRead(&incoming_);
    });
  }

  // ClientStream
  bool Send(pb::ServerMessage&& message, bool droppable) override {
    // Serialize outside the lock.
    grpc::ByteBuffer bytes;
    bool own_buffer = false;
    if (!grpc::SerializationTraits<pb::ServerMessage>::Serialize(message, &bytes, &own_buffer)
             .ok()) {
      return false;
    }
    return Enqueue(std::move(bytes), droppable);
  }

  bool SendPush(EncodedPush&& push) override {
    // Two slices: this subscriber's small head (copied) and the datum body,
    // which stays shared with every other stream it is queued on: the
    // slice holds a reference to it until gRPC has written it.
    auto* body = new std::shared_ptr<const std::string>(std::move(push.body));
    grpc::Slice slices[2] = {
        grpc::Slice(push.head),
        grpc::Slice(const_cast<char*>((*body)->data()), (*body)->size(), &ReleaseBody, body)};
    return Enqueue(grpc::ByteBuffer(slices, 2), /*droppable=*/true);
  }

  void SetServerBatches(bool on) override {
    std::lock_guard lock(mu_);
    accepts_batches_ = on;
  }

  void Close(const absl::Status& status) override {
    {
      std::lock_guard lock(mu_);
      if (close_requested_ || done_) return;
      close_requested_ = true;
      close_status_ = ToGrpcStatus(status);
      // Keep only the message being written (gRPC holds a pointer to it).
      if (writing_) {
        outbound_.erase(outbound_.begin() + 1, outbound_.end());
        return;  // OnWriteDone finishes
      }
      if (!TakeFinishLocked()) return;
    }
    Finish(close_status_);
  }

  void MessageHandled() override {
    std::lock_guard lock(mu_);
    --unhandled_;
    MaybeResumeReadLocked();
  }

  // grpc::ServerBidiReactor
  void OnReadDone(bool ok) override {
    if (!ok) {
      // Client half-closed, or the stream broke: either way it is over.
      PostDisconnect("stream closed by client");
      Close(absl::OkStatus());
      return;
    }
    pb::ClientMessage message;
    grpc::Status decoded =
        grpc::SerializationTraits<pb::ClientMessage>::Deserialize(&incoming_, &message);
    incoming_.Clear();
    if (!decoded.ok()) {
      PostDisconnect("undecodable message");
      Close(absl::InvalidArgumentError(
          "cannot decode the ClientMessage (malformed protobuf, or a string field that is "
          "not valid UTF-8); closing the stream"));
      return;
    }
    std::lock_guard lock(mu_);
    ++unhandled_;
    // Post before starting the next read: the next OnReadDone may run on
    // another gRPC thread, and messages must reach the loop in stream order.
    loop_.Post([this, keep = shared_from_this(), message = std::move(message)]() mutable {
      session_.OnMessage(connection_id_, std::move(message));
    });
    reading_ = false;
    MaybeResumeReadLocked();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      outbound_.pop_front();
      if (!ok && !close_requested_) {
        // The stream broke; nothing more can be written.
        close_requested_ = true;
        close_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
      }
      if (!outbound_.empty() && !close_requested_) {
        CoalesceFrontLocked();
        StartWrite(&outbound_.front());
        MaybeResumeReadLocked();
        return;
      }
      writing_ = false;
      outbound_.clear();
      if (!close_requested_) {
        MaybeResumeReadLocked();
        return;
      }
      // gRPC calls OnDone only after Finish, and a Close that came while this
      // write was out (or the break itself) left the Finish to us: without
      // it the call, and a server Shutdown waiting on it, never ends.
      if (!TakeFinishLocked()) return;
    }
    // Finish may complete inline and reach OnDone: never call it under mu_.
    Finish(close_status_);
  }

  void OnCancel() override {
    PostDisconnect("stream cancelled");
    Close(absl::CancelledError("stream cancelled"));
  }

  void OnDone() override {
    {
      std::lock_guard lock(mu_);
      done_ = true;
      outbound_.clear();
    }
    PostDisconnect("stream done");
    auto last_reference = std::move(self_);  // may delete this when it goes out of scope
  }

 private:
  static void ReleaseBody(void* body) {
    delete static_cast<std::shared_ptr<const std::string>*>(body);
  }

  bool Enqueue(grpc::ByteBuffer&& bytes, bool droppable) {
    std::lock_guard lock(mu_);
    if (done_ || close_requested_) return false;
    if (droppable && outbound_.size() >= options_.max_outbound) return false;
    outbound_.push_back(std::move(bytes));
    if (!writing_) {
      writing_ = true;
      StartWrite(&outbound_.front());
    }
    return true;
  }

  // Replaces the messages at the front of the queue, those that waited while
  // the previous write was on the wire, with one ServerBatch holding them
  // (up to the limits below). No copy: the batch is a few header bytes
  // around the messages' own slices. Nothing ever waits for a batch to
  // fill: a message that finds the stream idle leaves at once, alone.
  // REQUIRES: mu_ held, no write in flight.
  void CoalesceFrontLocked() {
    if (!accepts_batches_ || outbound_.size() < 2) return;
    size_t taken = 0;
    size_t body_bytes = 0;  // of the ServerBatch
    while (taken < outbound_.size() && taken < kMaxBatchMessages) {
      size_t size = outbound_[taken].Length();
      size_t field = 1 + VarintSize(size) + size;  // tag, length, message
      if (body_bytes + field > kMaxBatchBytes) break;
      body_bytes += field;
      ++taken;
    }
    if (taken < 2) return;  // a large message goes alone
    std::vector<grpc::Slice> slices;
    slices.reserve(1 + 3 * taken);
    std::string header;
    AppendFieldHeader(header, kServerMessageBatchField, body_bytes);
    slices.emplace_back(header);
    for (size_t i = 0; i < taken; ++i) {
      header.clear();
      AppendFieldHeader(header, kServerBatchMessagesField, outbound_[i].Length());
      slices.emplace_back(header);
      std::vector<grpc::Slice> parts;
      if (!outbound_[i].Dump(&parts).ok()) return;  // leave the queue as it was
      for (auto& part : parts) slices.push_back(std::move(part));
    }
    grpc::ByteBuffer batch(slices.data(), slices.size());
    outbound_.erase(outbound_.begin(), outbound_.begin() + static_cast<std::ptrdiff_t>(taken));
    outbound_.push_front(std::move(batch));
  }

  static size_t VarintSize(size_t value) {
    size_t n = 1;
    while (value >= 0x80) {
      value >>= 7;
      ++n;
    }
    return n;
  }

  // A length-delimited field's tag and length, in protobuf wire format.
  static void AppendFieldHeader(std::string& out, int field, size_t length) {
    out.push_back(static_cast<char>((field << 3) | 2));  // fields < 16: one byte
    while (length >= 0x80) {
      out.push_back(static_cast<char>((length & 0x7f) | 0x80));
      length >>= 7;
    }
    out.push_back(static_cast<char>(length));
  }

  void PostDisconnect(std::string reason) {
    loop_.Post([this, keep = shared_from_this(), reason = std::move(reason)] {
      session_.OnDisconnect(connection_id_, reason);
    });
  }

  // Returns true exactly once: the caller then calls Finish() after
  // releasing mu_. REQUIRES: mu_ held.
  bool TakeFinishLocked() {
    if (finished_) return false;
    finished_ = true;
    return true;
  }

  // REQUIRES: mu_ held.
  void MaybeResumeReadLocked() {
    if (reading_ || done_ || close_requested_ || connection_id_ == 0) return;
    if (unhandled_ >= options_.read_window || outbound_.size() >= options_.max_outbound) return;
    reading_ = true;
    StartRead(&incoming_);
  }

  EventLoop& loop_;
  SessionServer& session_;
  const GrpcServiceOptions options_;
  const std::string peer_;
  const Identity identity_;                 // what the client's certificate proved
  std::atomic<uint64_t> connection_id_{0};  // set on the loop before the first read
  std::shared_ptr<SessionReactor> self_;

  grpc::ByteBuffer incoming_;  // owned by the outstanding read

  std::mutex mu_;
  std::deque<grpc::ByteBuffer> outbound_;  // front is being written while writing_
  bool writing_ = false;
  bool reading_ = true;  // the first read is started by Begin's posted task
  size_t unhandled_ = 0;
  bool close_requested_ = false;
  bool finished_ = false;
  bool done_ = false;
  bool accepts_batches_ = false;  // the client said accepts_server_batches
  grpc::Status close_status_;
};

// The identity the caller of `context` proved (anonymous without TLS).
Identity CallerOf(grpc::CallbackServerContext* context) {
  std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  return auth ? PeerIdentity(*auth) : Identity{};
}

// OK without an authorizer (TLS off) or when the policy allows the caller
// `op` on `data_id`. Runs on gRPC's thread: the authorizer is thread-safe.
absl::Status AuthorizeCall(SessionServer& session, grpc::CallbackServerContext* context,
                           auth::Op op, std::string_view data_id) {
  auth::Authorizer* authorizer = session.authorizer();
  if (authorizer == nullptr) return absl::OkStatus();
  std::vector<std::string_view> apps;
  if (data_id.starts_with("app:")) apps.push_back(data_id.substr(4));
  return authorizer->Check(CallerOf(context), auth::Action{op, data_id, std::move(apps)});
}

// Finishes the call with `denied` if it is not OK; returns whether it did.
bool FinishIfDenied(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor** reactor,
                    const absl::Status& denied) {
  if (denied.ok()) return false;
  *reactor = context->DefaultReactor();
  (*reactor)->Finish(ToGrpcStatus(denied));
  return true;
}

template <typename Request, typename Fn>
grpc::ServerUnaryReactor* RunOnLoop(EventLoop& loop, grpc::CallbackServerContext* context,
                                    const Request* request, Fn fn) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (auto s = RejectUnknownFields(*request); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  loop.Post([reactor, fn = std::move(fn)] { reactor->Finish(ToGrpcStatus(fn())); });
  return reactor;
}

// Runs `start(reply)` on the loop; the call finishes when `reply` gets the
// answer (a StatusOr<Response>), inline or later.
template <typename Request, typename Response, typename Start>
grpc::ServerUnaryReactor* RunAsyncOnLoop(EventLoop& loop, grpc::CallbackServerContext* context,
                                         const Request* request, Response* response, Start start) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (auto s = RejectUnknownFields(*request); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  loop.Post([response, reactor, start = std::move(start)] {
    start([response, reactor](absl::StatusOr<Response> result) {
      if (!result.ok()) {
        reactor->Finish(ToGrpcStatus(result.status()));
        return;
      }
      *response = std::move(*result);
      reactor->Finish(grpc::Status::OK);
    });
  });
  return reactor;
}

}  // namespace

GrpcRegistryService::GrpcRegistryService(EventLoop& loop, SessionServer& session,
                                         GrpcServiceOptions options, AppQueries* apps)
    : loop_(loop), session_(session), options_(options), apps_(apps) {}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* GrpcRegistryService::Session(
    grpc::CallbackServerContext* context) {
  auto reactor = std::make_shared<SessionReactor>(loop_, session_, options_, context->peer(),
                                                  CallerOf(context));
  reactor->Begin();
  return reactor.get();
}

grpc::ServerUnaryReactor* GrpcRegistryService::ListDataInfos(
    grpc::CallbackServerContext* context, const pb::ListDataInfosRequest* request,
    pb::ListDataInfosResponse* response) {
  grpc::ServerUnaryReactor* denied = nullptr;
  if (FinishIfDenied(context, &denied, AuthorizeCall(session_, context, auth::Op::kQuery, ""))) {
    return denied;
  }
  return RunAsyncOnLoop(loop_, context, request, response, [this, request](auto reply) {
    session_.ListDataInfosAsync(*request,
                                [reply](pb::ListDataInfosResponse r) { reply(std::move(r)); });
  });
}

grpc::ServerUnaryReactor* GrpcRegistryService::Describe(grpc::CallbackServerContext* context,
                                                        const pb::DescribeRequest* request,
                                                        pb::DescribeResponse* response) {
  grpc::ServerUnaryReactor* denied = nullptr;
  if (FinishIfDenied(
          context, &denied,
          AuthorizeCall(session_, context, auth::Op::kQuery, request->key().data_id()))) {
    return denied;
  }
  return RunAsyncOnLoop(loop_, context, request, response, [this, request](auto reply) {
    session_.DescribeAsync(*request, std::move(reply));
  });
}

grpc::ServerUnaryReactor* GrpcRegistryService::QueryByClient(
    grpc::CallbackServerContext* context, const pb::QueryByClientRequest* request,
    pb::QueryByClientResponse* response) {
  grpc::ServerUnaryReactor* denied = nullptr;
  if (FinishIfDenied(context, &denied, AuthorizeCall(session_, context, auth::Op::kQuery, ""))) {
    return denied;
  }
  return RunOnLoop(loop_, context, request, [this, request, response] {
    *response = session_.QueryByClient(*request);
    return absl::OkStatus();
  });
}

namespace {
absl::Status NoApps() {
  return absl::UnimplementedError("this server does not support application-level discovery");
}

// Runs an app query on the loop; it may answer later (cluster mode).
template <typename Request, typename Response, typename Query>
grpc::ServerUnaryReactor* AppQuery(EventLoop& loop, AppQueries* apps,
                                   grpc::CallbackServerContext* context, const Request* request,
                                   Response* response, Query query) {
  return RunAsyncOnLoop(loop, context, request, response, [apps, request, query](auto reply) {
    if (apps == nullptr) {
      reply(NoApps());
      return;
    }
    query(*apps, *request, std::move(reply));
  });
}
}  // namespace

grpc::ServerUnaryReactor* GrpcRegistryService::GetRevision(grpc::CallbackServerContext* context,
                                                           const pb::GetRevisionRequest* request,
                                                           pb::GetRevisionResponse* response) {
  // Resolving a revision is part of subscribing to app-level data.
  grpc::ServerUnaryReactor* denied = nullptr;
  if (FinishIfDenied(context, &denied,
                     AuthorizeCall(session_, context, auth::Op::kSubscribe,
                                   "revision:" + request->revision()))) {
    return denied;
  }
  return AppQuery(
      loop_, apps_, context, request, response,
      [](AppQueries& apps, const auto& r, auto reply) { apps.QueryRevision(r, std::move(reply)); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::ListApps(grpc::CallbackServerContext* context,
                                                        const pb::ListAppsRequest* request,
                                                        pb::ListAppsResponse* response) {
  grpc::ServerUnaryReactor* denied = nullptr;
  if (FinishIfDenied(context, &denied, AuthorizeCall(session_, context, auth::Op::kQuery, ""))) {
    return denied;
  }
  return AppQuery(
      loop_, apps_, context, request, response,
      [](AppQueries& apps, const auto& r, auto reply) { apps.QueryApps(r, std::move(reply)); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::DescribeApp(grpc::CallbackServerContext* context,
                                                           const pb::DescribeAppRequest* request,
                                                           pb::DescribeAppResponse* response) {
  grpc::ServerUnaryReactor* denied = nullptr;
  if (FinishIfDenied(
          context, &denied,
          AuthorizeCall(session_, context, auth::Op::kQuery, "app:" + request->app_name()))) {
    return denied;
  }
  return AppQuery(
      loop_, apps_, context, request, response,
      [](AppQueries& apps, const auto& r, auto reply) { apps.QueryApp(r, std::move(reply)); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::DescribeInterface(
    grpc::CallbackServerContext* context, const pb::DescribeInterfaceRequest* request,
    pb::DescribeInterfaceResponse* response) {
  // Checked as a subscribe to the interface: the answer (which apps serve it,
  // how many interface-level publishers) is what a subscriber of it sees, and
  // a sidecar in app-level discovery asks it for every outbound cluster.
  grpc::ServerUnaryReactor* denied = nullptr;
  if (FinishIfDenied(
          context, &denied,
          AuthorizeCall(session_, context, auth::Op::kSubscribe, request->key().data_id()))) {
    return denied;
  }
  return AppQuery(loop_, apps_, context, request, response,
                  [](AppQueries& apps, const auto& r, auto reply) {
                    apps.QueryInterface(r, std::move(reply));
                  });
}

}  // namespace cairn
