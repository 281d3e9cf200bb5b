#include "registry/xds/xds_grpc_service.h"

#include <list>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/grpc_tls.h"

namespace cairn::xds {

// One ADS stream. Lives as long as both gRPC (until OnDone) and the xDS
// server (until it drops the stream) hold it: `self_` is gRPC's reference.
class AdsReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                         public XdsStream,
                         public std::enable_shared_from_this<AdsReactor> {
 public:
  // `delta`: a DeltaAggregatedResources stream (DeltaDiscoveryRequests).
  AdsReactor(XdsGrpcService& service, std::string peer, Identity identity, bool delta)
      : service_(service), peer_(std::move(peer)), identity_(std::move(identity)), delta_(delta) {}

  void Begin() {
    self_ = shared_from_this();
    service_.loop_.Post([this, keep = self_] {
      stream_id_ = service_.server_.OnConnect(peer_, keep, identity_, delta_);
      std::lock_guard lock(mu_);
      if (!done_ && !close_requested_) {
        reading_ = true;
        StartRead(&incoming_);
      }
    });
  }

  // A stream over the cap: ends before it starts.
  void Refuse(const grpc::Status& status) {
    self_ = shared_from_this();
    {
      std::lock_guard lock(mu_);
      close_requested_ = true;
      finished_ = true;
    }
    refused_ = true;
    Finish(status);
  }

  // XdsStream
  bool Send(EncodedResponse&& response) override {
    // The stream's own head (copied), then each resource's bytes, shared
    // with every stream sent the same version: the slice holds a reference
    // until gRPC has written it.
    std::vector<grpc::Slice> slices;
    slices.reserve(1 + response.resources.size());
    slices.emplace_back(response.head);
    for (auto& resource : response.resources) {
      auto* held = new std::shared_ptr<const std::string>(std::move(resource));
      slices.emplace_back(const_cast<char*>((*held)->data()), (*held)->size(), &ReleaseResource,
                          held);
    }
    grpc::ByteBuffer bytes(slices.data(), slices.size());
    std::unique_lock lock(mu_);
    if (done_ || close_requested_) return false;
    if (outbound_.size() >= kMaxQueued) {
      // The server sends a type's next response only after an ACK, so only
      // a client that ACKs what it has not read (nonces are predictable)
      // gets here: end the stream rather than queue without bound.
      lock.unlock();
      service_.metrics_.rejected_streams.Add({{"reason", "not_reading"}}).Increment();
      Close(absl::ResourceExhaustedError(
          "the client acknowledges responses it has not read; closing the stream"));
      return false;
    }
    outbound_.push_back(std::move(bytes));
    if (!writing_) {
      writing_ = true;
      StartWrite(&outbound_.front());
    }
    return true;
  }

  void Close(const absl::Status& status) override {
    {
      std::lock_guard lock(mu_);
      if (close_requested_ || done_) return;
      close_requested_ = true;
      close_status_ = ToGrpcStatus(status);
      if (writing_) {
        // Keep only the response being written (gRPC holds a pointer to it).
        outbound_.erase(std::next(outbound_.begin()), outbound_.end());
        return;  // OnWriteDone finishes
      }
      if (!TakeFinishLocked()) return;
    }
    Finish(close_status_);
  }

  void RequestHandled() override {
    std::lock_guard lock(mu_);
    --unhandled_;
    MaybeResumeReadLocked();
  }

  // grpc::ServerBidiReactor
  void OnReadDone(bool ok) override {
    if (!ok) {
      PostDisconnect();
      Close(absl::OkStatus());
      return;
    }
    if (delta_) {
      Dispatch<DeltaDiscoveryRequest>(&XdsServer::OnDeltaRequest);
    } else {
      Dispatch<DiscoveryRequest>(&XdsServer::OnRequest);
    }
  }

  // Decodes the message read into `incoming_` as Request and posts it to
  // `handle` on the loop; an undecodable one ends the stream.
  template <typename Request>
  void Dispatch(void (XdsServer::*handle)(uint64_t, Request)) {
    Request request;
    grpc::Status decoded = grpc::SerializationTraits<Request>::Deserialize(&incoming_, &request);
    incoming_.Clear();
    if (!decoded.ok()) {
      service_.metrics_.rejected_streams.Add({{"reason", "undecodable"}}).Increment();
      PostDisconnect();
      Close(absl::InvalidArgumentError(absl::StrCat(
          "cannot decode the ", Request::descriptor()->name(),
          " (malformed protobuf, or a string that is not valid UTF-8); closing the stream")));
      return;
    }
    std::lock_guard lock(mu_);
    ++unhandled_;
    // Post before the next read: requests must reach the loop in order.
    // (No implicit `this` in this lambda: GCC 12's UBSan takes the closure
    // for the object when a lambda in a member template reaches members
    // through it, and reports a bad vptr; CI's sanitizer run caught it.)
    XdsServer* server = &service_.server_;
    service_.loop_.Post(
        [server, keep = shared_from_this(), handle, request = std::move(request)]() mutable {
          (server->*handle)(keep->stream_id_, std::move(request));
        });
    reading_ = false;
    MaybeResumeReadLocked();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      outbound_.pop_front();
      if (!ok && !close_requested_) {
        close_requested_ = true;
        close_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
      }
      if (!outbound_.empty() && !close_requested_) {
        StartWrite(&outbound_.front());
        return;
      }
      writing_ = false;
      outbound_.clear();
      if (!close_requested_) return;
      if (!TakeFinishLocked()) return;
    }
    Finish(close_status_);
  }

  void OnCancel() override {
    PostDisconnect();
    Close(absl::CancelledError("stream cancelled"));
  }

  void OnDone() override {
    {
      std::lock_guard lock(mu_);
      done_ = true;
      outbound_.clear();
    }
    service_.open_streams_.fetch_sub(1);
    if (!refused_) PostDisconnect();
    auto last_reference = std::move(self_);  // may delete this
  }

 private:
  // One response per type awaits its ACK, and one may be on the wire.
  static constexpr size_t kMaxQueued = 2 * kResourceTypes;

  static void ReleaseResource(void* resource) {
    delete static_cast<std::shared_ptr<const std::string>*>(resource);
  }

  void PostDisconnect() {
    service_.loop_.Post(
        [this, keep = shared_from_this()] { service_.server_.OnDisconnect(stream_id_); });
  }

  // REQUIRES: mu_ held.
  bool TakeFinishLocked() {
    if (finished_) return false;
    finished_ = true;
    return true;
  }

  // REQUIRES: mu_ held.
  void MaybeResumeReadLocked() {
    if (reading_ || done_ || close_requested_ || unhandled_ >= service_.options_.read_window) {
      return;
    }
    reading_ = true;
    StartRead(&incoming_);
  }

  XdsGrpcService& service_;
  const std::string peer_;
  const Identity identity_;
  const bool delta_;
  uint64_t stream_id_ = 0;  // set on the loop before the first read
  std::shared_ptr<AdsReactor> self_;
  bool refused_ = false;

  std::mutex mu_;
  grpc::ByteBuffer incoming_;
  // At most one response per type waits (the server sends the next after
  // the ACK): a list, which costs nothing while empty, unlike a deque's
  // first block, and keeps the front's address while others are added.
  std::list<grpc::ByteBuffer> outbound_;
  size_t unhandled_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool close_requested_ = false;
  bool finished_ = false;
  bool done_ = false;
  grpc::Status close_status_;
};

XdsGrpcService::XdsGrpcService(EventLoop& loop, XdsServer& server, XdsMetrics& metrics,
                               XdsServiceOptions options)
    : loop_(loop), server_(server), metrics_(metrics), options_(options) {}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
XdsGrpcService::StreamAggregatedResources(grpc::CallbackServerContext* context) {
  return NewStream(context, /*delta=*/false);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
XdsGrpcService::DeltaAggregatedResources(grpc::CallbackServerContext* context) {
  return NewStream(context, /*delta=*/true);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* XdsGrpcService::NewStream(
    grpc::CallbackServerContext* context, bool delta) {
  std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  auto reactor = std::make_shared<AdsReactor>(*this, context->peer(),
                                              auth ? PeerIdentity(*auth) : Identity{}, delta);
  size_t open = open_streams_.fetch_add(1) + 1;
  if (open > options_.max_streams) {
    metrics_.rejected_streams.Add({{"reason", "stream_cap"}}).Increment();
    reactor->Refuse(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 "this registry serves at most " +
                                     std::to_string(options_.max_streams) +
                                     " ADS streams (xds_max_streams); try another session server"));
    return reactor.get();
  }
  reactor->Begin();
  return reactor.get();
}

grpc::ServerUnaryReactor* XdsAdminService::ListClients(
    grpc::CallbackServerContext* context, const cairn::registry::v1::ListXdsClientsRequest* request,
    cairn::registry::v1::ListXdsClientsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (authorizer_ != nullptr) {
    // Like the Registry service's list queries: who is connected and what
    // they ask for is the operator's, `query` on "" (which only * matches).
    std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
    absl::Status allowed = authorizer_->Check(auth ? PeerIdentity(*auth) : Identity{},
                                              auth::Action{auth::Op::kQuery, "", {}});
    if (!allowed.ok()) {
      reactor->Finish(ToGrpcStatus(allowed));
      return reactor;
    }
  }
  loop_.Post([this, reactor, response, prefix = request->node_id_prefix()] {
    *response = server_.ListClients(prefix);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

}  // namespace cairn::xds
