// etcd behind the bench's System interface, spoken to over its v3 gRPC API
// with our own subset of etcd's proto (proto/etcdv3, shared with src/coord).
//
// Model, as etcd-based registries do it: a connection = one gRPC channel (its
// own TCP connection) holding one lease (TTL 60 s, kept alive as etcd's own
// client does, see KeepAliveStream; revoked when the connection closes so its
// keys go at once, like a Cairn stream's publishers or a ZooKeeper session's
// ephemeral znodes); instance = key "/cb/<service>/<instance>" put with that
// lease, the value being the instance data; registrations in bulk (the
// register and hold workloads) = one Txn of puts per batch, success ops only
// (etcd 3.4 refuses a Txn of more than --max-txn-ops, default 128, operations
// and a request over --max-request-bytes, 1.5 MiB: a batch of 128 puts of
// ~100 bytes is ~20 KB); a change = a Put of the same key; subscriber
// = a Range of the prefix (initial view) followed by a prefix watch from the
// next revision, all watches of a connection multiplexed on one Watch stream
// (as etcd's own client does).
#include <atomic>
#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "anchor_servers.h"
#include "cairn_driver.h"
#include "driver.h"
#include "etcdv3/rpc_subset.grpc.pb.h"

namespace cairn::bench {
namespace {

namespace epb = ::etcdserverpb;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kLeaseTtlSeconds = 60;
// etcd's client (clientv3/lease.go) checks every 500 ms whether a lease is
// due, renews at a third of the TTL the last answer gave, sends again every
// 500 ms while no answer came, and reopens a failed stream after 500 ms.
constexpr auto kKeepAliveTick = milliseconds(500);

std::string Prefix(const std::string& service) { return absl::StrCat("/cb/", service, "/"); }

// The smallest key above every key that starts with `prefix`.
std::string PrefixEnd(std::string prefix) {
  prefix.back() = static_cast<char>(prefix.back() + 1);  // '/' + 1 = '0': no overflow
  return prefix;
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

std::chrono::system_clock::time_point In(std::chrono::nanoseconds d) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
}

class EtcdSystem;

class EtcdConnection final : public Connection {
 public:
  EtcdConnection(EtcdSystem* system, const std::string& target, seconds request_timeout)
      : system_(system),
        request_timeout_(request_timeout),
        channel_(NewDedicatedChannel(target)),
        kv_(epb::KV::NewStub(channel_)),
        lease_(epb::Lease::NewStub(channel_)),
        watch_(epb::Watch::NewStub(channel_)) {}
  ~EtcdConnection() override;

  // Connects and takes the lease.
  absl::Status Open();
  void Publish(const std::string& service, const std::string& instance, uint64_t gen,
               const std::string& data, DoneCallback done) override;
  void PublishBatch(std::vector<PublishRequest> batch, BatchDoneCallback done) override;
  absl::Status Subscribe(const std::string& service, ViewCallback on_view,
                         milliseconds timeout) override;

  // Called by the system's ticker every kKeepAliveTick; never blocks: the
  // stream's answers arrive on gRPC's threads, so a slow answer on one
  // connection delays no other connection's keep-alive.
  void KeepAliveTick(Clock::time_point now);

 private:
  struct Sub {
    ViewCallback on_view;
    std::map<std::string, uint64_t> instances;  // instance -> gen
    std::vector<InstanceView> view;
    bool created = false;  // guarded by watch_mu_
    std::string error;     // guarded by watch_mu_
  };
  struct PutCall {
    grpc::ClientContext context;
    epb::PutRequest request;
    epb::PutResponse response;
    DoneCallback done;
  };
  struct TxnCall {
    grpc::ClientContext context;
    epb::TxnRequest request;
    epb::TxnResponse response;
    BatchDoneCallback done;
  };

  // The lease's persistent LeaseKeepAlive stream. Owned by the connection;
  // its reactions report under keepalive_mu_ and it is destroyed only after
  // OnDone (keepalive_done_).
  class KeepAliveStream final
      : public grpc::ClientBidiReactor<epb::LeaseKeepAliveRequest, epb::LeaseKeepAliveResponse> {
   public:
    KeepAliveStream(EtcdConnection* owner, int64_t lease_id) : owner_(owner) {
      request_.set_id(lease_id);
      // Long-lived; the deadline only bounds a run that hangs.
      context_.set_deadline(In(std::chrono::hours(6)));
      owner->lease_->async()->LeaseKeepAlive(&context_, this);
      StartRead(&response_);
      StartCall();
    }
    // One write at a time: the owner's keepalive_writing_ says.
    void Send() { StartWrite(&request_); }
    void Cancel() { context_.TryCancel(); }

   private:
    void OnWriteDone(bool ok) override { owner_->OnKeepAliveWritten(ok); }
    void OnReadDone(bool ok) override {
      if (!ok) return;  // the stream ended; OnDone follows
      owner_->OnKeepAliveAnswer(response_.ttl());
      StartRead(&response_);
    }
    void OnDone(const grpc::Status& status) override { owner_->OnKeepAliveDone(status); }

    EtcdConnection* owner_;
    grpc::ClientContext context_;
    epb::LeaseKeepAliveRequest request_;
    epb::LeaseKeepAliveResponse response_;
  };
  void OnKeepAliveWritten(bool ok);
  void OnKeepAliveAnswer(int64_t ttl);
  void OnKeepAliveDone(const grpc::Status& status);
  void BeginCall();
  void EndCall();

  void DeliverView(Sub& sub);
  void WatchLoop();

  EtcdSystem* system_;
  const seconds request_timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<epb::KV::Stub> kv_;
  std::unique_ptr<epb::Lease::Stub> lease_;
  std::unique_ptr<epb::Watch::Stub> watch_;
  int64_t lease_id_ = 0;

  std::mutex keepalive_mu_;  // guards the fields below
  std::condition_variable keepalive_cv_;
  std::unique_ptr<KeepAliveStream> keepalive_;
  bool keepalive_done_ = false;         // keepalive_'s OnDone ran
  bool keepalive_writing_ = false;      // a keep-alive write is in flight
  Clock::time_point keepalive_due_;     // when the next keep-alive is to be sent
  Clock::time_point keepalive_reopen_;  // earliest reopen after a failed stream

  // Puts and Txns whose callback has not finished yet; the destructor waits
  // for zero.
  std::mutex calls_mu_;
  std::condition_variable calls_cv_;
  int64_t calls_in_flight_ = 0;

  std::mutex watch_mu_;  // guards the fields below and Sub::created / error
  std::condition_variable watch_cv_;
  grpc::ClientContext watch_context_;
  std::unique_ptr<grpc::ClientReaderWriter<epb::WatchRequest, epb::WatchResponse>> watch_stream_;
  std::mutex watch_write_mu_;
  std::unordered_map<int64_t, std::unique_ptr<Sub>> subs_;  // by watch id
  int64_t next_watch_id_ = 1;
  bool watch_ended_ = false;
  std::thread watch_reader_;
};

class EtcdSystem final : public System {
 public:
  explicit EtcdSystem(SystemOptions options)
      : options_(std::move(options)), server_(options_.in_memory) {}
  ~EtcdSystem() override {
    StopPinger();
    Stop();
  }

  std::string name() const override { return options_.in_memory ? "etcd-tmpfs" : "etcd"; }
  absl::Status Start() override {
    Stop();
    stopped_ = false;
    {
      std::lock_guard lock(warned_mu_);
      warned_.clear();
    }
    if (auto s = server_.Start(); !s.ok()) return s;
    StartPinger();
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<Connection>> Connect() override {
    auto c = std::make_unique<EtcdConnection>(this, server_.address(), options_.request_timeout);
    if (auto s = c->Open(); !s.ok()) return s;
    return std::unique_ptr<Connection>(std::move(c));
  }
  absl::StatusOr<int64_t> CountInstances(const std::vector<std::string>& services) override {
    // Every key under the services' common prefix: the workloads give each
    // workload's services a prefix of their own.
    auto channel = NewDedicatedChannel(server_.address());
    auto kv = epb::KV::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(In(seconds(60)));
    epb::RangeRequest request;
    std::string prefix = absl::StrCat("/cb/", CommonPrefix(services));
    request.set_key(prefix);
    request.set_range_end(PrefixEnd(prefix));
    request.set_count_only(true);
    epb::RangeResponse response;
    if (auto s = FromGrpc(kv->Range(&context, request, &response)); !s.ok()) return s;
    return response.count();
  }
  int64_t ServerRssBytes() const override { return server_.RssBytes(); }
  bool Running() const override { return server_.Running(); }
  void Stop() override {
    stopped_ = true;
    server_.Stop();
  }
  std::string LogTail() const override { return server_.LogTail(); }
  std::string address() const override { return server_.address(); }

  bool stopped() const { return stopped_; }
  // Prints the first warning of each kind once per server: a lease problem
  // usually hits every connection at once.
  void Warn(const std::string& what) {
    std::lock_guard lock(warned_mu_);
    std::string kind = what.substr(0, what.find('('));
    if (warned_.insert(kind).second) {
      std::cerr << name() << ": " << what << " (first of its kind)\n";
    }
  }
  void Track(EtcdConnection* c) {
    std::lock_guard lock(connections_mu_);
    connections_.insert(c);
  }
  void Untrack(EtcdConnection* c) {
    std::lock_guard lock(connections_mu_);
    connections_.erase(c);
  }

 private:
  // One ticker for every connection, as etcd's client has one send loop
  // per client: it only starts writes, whose answers come asynchronously.
  void StartPinger() {
    if (pinger_.joinable()) return;
    pinger_ = std::thread([this] {
      std::unique_lock lock(pinger_mu_);
      while (!pinger_stop_) {
        pinger_cv_.wait_for(lock, kKeepAliveTick, [&] { return pinger_stop_; });
        if (pinger_stop_ || stopped_) continue;
        auto now = Clock::now();
        std::lock_guard connections_lock(connections_mu_);
        for (auto* c : connections_) c->KeepAliveTick(now);
      }
    });
  }
  void StopPinger() {
    {
      std::lock_guard lock(pinger_mu_);
      pinger_stop_ = true;
    }
    pinger_cv_.notify_all();
    if (pinger_.joinable()) pinger_.join();
  }

  SystemOptions options_;
  EtcdServer server_;
  std::atomic<bool> stopped_{true};
  std::mutex connections_mu_;
  std::set<EtcdConnection*> connections_;
  std::mutex warned_mu_;
  std::set<std::string> warned_;
  std::mutex pinger_mu_;
  std::condition_variable pinger_cv_;
  bool pinger_stop_ = false;
  std::thread pinger_;
};

absl::Status EtcdConnection::Open() {
  if (!channel_->WaitForConnected(In(seconds(10)))) {
    return absl::UnavailableError("cannot connect to etcd in 10 s");
  }
  grpc::ClientContext context;
  context.set_deadline(In(seconds(10)));
  epb::LeaseGrantRequest request;
  request.set_ttl(kLeaseTtlSeconds);
  epb::LeaseGrantResponse response;
  if (auto s = FromGrpc(lease_->LeaseGrant(&context, request, &response)); !s.ok()) return s;
  if (!response.error().empty()) return absl::UnavailableError(response.error());
  lease_id_ = response.id();
  {
    std::lock_guard lock(keepalive_mu_);
    keepalive_due_ =
        Clock::now() + seconds(response.ttl() > 0 ? response.ttl() : kLeaseTtlSeconds) / 3;
  }
  system_->Track(this);
  return absl::OkStatus();
}

EtcdConnection::~EtcdConnection() {
  system_->Untrack(this);
  if (!system_->stopped() && lease_id_ != 0) {
    // Removes every key of this connection now (not at lease expiry), as a
    // closing Cairn stream or ZooKeeper session does.
    grpc::ClientContext context;
    context.set_deadline(In(seconds(10)));
    epb::LeaseRevokeRequest request;
    request.set_id(lease_id_);
    epb::LeaseRevokeResponse response;
    lease_->LeaseRevoke(&context, request, &response);
  }
  {
    std::unique_lock lock(calls_mu_);
    calls_cv_.wait(lock, [&] { return calls_in_flight_ == 0; });  // bounded by each deadline
  }
  {
    // Untracked above: no tick starts anything on the stream any more.
    std::unique_lock lock(keepalive_mu_);
    if (keepalive_ && !keepalive_done_) keepalive_->Cancel();
    keepalive_cv_.wait(lock,
                       [&] { return !keepalive_ || keepalive_done_; });  // prompt once cancelled
    keepalive_.reset();
  }
  bool has_watch;
  {
    std::lock_guard lock(watch_mu_);
    has_watch = watch_stream_ != nullptr;
  }
  if (has_watch) {
    watch_context_.TryCancel();
    watch_reader_.join();
    watch_stream_->Finish();
  }
}

void EtcdConnection::Publish(const std::string& service, const std::string& instance,
                             uint64_t /*gen*/, const std::string& data, DoneCallback done) {
  auto* call = new PutCall;
  call->context.set_deadline(In(request_timeout_));
  call->request.set_key(absl::StrCat(Prefix(service), instance));
  call->request.set_value(data);
  call->request.set_lease(lease_id_);
  call->done = std::move(done);
  BeginCall();
  kv_->async()->Put(&call->context, &call->request, &call->response,
                    [this, call](grpc::Status status) {
                      DoneCallback done = std::move(call->done);
                      delete call;
                      done(FromGrpc(status));
                      EndCall();
                    });
}

void EtcdConnection::PublishBatch(std::vector<PublishRequest> batch, BatchDoneCallback done) {
  // One Txn without compares: it always takes the success branch, applying
  // every put atomically in one raft entry, as etcd's clients batch writes.
  auto* call = new TxnCall;
  call->context.set_deadline(In(request_timeout_));
  for (const auto& r : batch) {
    auto* put = call->request.add_success()->mutable_request_put();
    put->set_key(absl::StrCat(Prefix(r.service), r.instance));
    put->set_value(r.data);
    put->set_lease(lease_id_);
  }
  call->done = std::move(done);
  const auto count = static_cast<int64_t>(batch.size());
  BeginCall();
  kv_->async()->Txn(&call->context, &call->request, &call->response,
                    [this, call, count](grpc::Status status) {
                      absl::Status s = FromGrpc(status);
                      if (s.ok() && !call->response.succeeded()) {
                        s = absl::InternalError("etcd Txn without compares did not succeed");
                      }
                      BatchDoneCallback done = std::move(call->done);
                      delete call;
                      done(count, s);
                      EndCall();
                    });
}

void EtcdConnection::BeginCall() {
  std::lock_guard lock(calls_mu_);
  ++calls_in_flight_;
}

void EtcdConnection::EndCall() {
  std::lock_guard lock(calls_mu_);
  if (--calls_in_flight_ == 0) calls_cv_.notify_all();
}

absl::Status EtcdConnection::Subscribe(const std::string& service, ViewCallback on_view,
                                       milliseconds timeout) {
  const std::string prefix = Prefix(service);
  {
    std::lock_guard lock(watch_mu_);
    if (watch_ended_) return absl::UnavailableError("watch stream ended");
    if (!watch_stream_) {
      watch_stream_ = watch_->Watch(&watch_context_);
      watch_reader_ = std::thread([this] { WatchLoop(); });
    }
  }
  // The initial view, then a watch from the revision right after it: no
  // change can fall between the two.
  grpc::ClientContext context;
  context.set_deadline(In(timeout));
  epb::RangeRequest range;
  range.set_key(prefix);
  range.set_range_end(PrefixEnd(prefix));
  epb::RangeResponse response;
  if (auto s = FromGrpc(kv_->Range(&context, range, &response)); !s.ok()) return s;

  auto owned = std::make_unique<Sub>();
  Sub* sub = owned.get();
  sub->on_view = std::move(on_view);
  for (const auto& kv : response.kvs()) {
    std::string key = kv.key();
    sub->instances[key.substr(prefix.size())] = ParseGen(kv.value());
  }
  // Delivered before the watch exists, so it cannot overlap a watch event.
  DeliverView(*sub);
  int64_t watch_id;
  {
    std::lock_guard lock(watch_mu_);
    watch_id = next_watch_id_++;
    subs_.emplace(watch_id, std::move(owned));
  }
  epb::WatchRequest request;
  auto* create = request.mutable_create_request();
  create->set_key(prefix);
  create->set_range_end(PrefixEnd(prefix));
  create->set_start_revision(response.header().revision() + 1);
  create->set_watch_id(watch_id);
  {
    std::lock_guard lock(watch_write_mu_);
    if (!watch_stream_->Write(request)) return absl::UnavailableError("watch stream broken");
  }
  std::unique_lock lock(watch_mu_);
  if (!watch_cv_.wait_for(lock, timeout,
                          [&] { return sub->created || !sub->error.empty() || watch_ended_; })) {
    return absl::DeadlineExceededError("watch not created in time");
  }
  if (!sub->error.empty()) return absl::UnavailableError(sub->error);
  if (!sub->created) return absl::UnavailableError("watch stream ended");
  return absl::OkStatus();
}

void EtcdConnection::DeliverView(Sub& sub) {
  sub.view.clear();
  for (const auto& [instance, gen] : sub.instances) sub.view.push_back({instance, gen});
  sub.on_view(sub.view);
}

void EtcdConnection::WatchLoop() {
  epb::WatchResponse response;
  while (watch_stream_->Read(&response)) {
    Sub* sub = nullptr;
    {
      std::lock_guard lock(watch_mu_);
      auto it = subs_.find(response.watch_id());
      if (it == subs_.end()) continue;
      sub = it->second.get();
      if (response.created()) sub->created = true;
      if (response.canceled()) {
        sub->error = absl::StrCat("watch canceled: ", response.cancel_reason(),
                                  " (compact revision ", response.compact_revision(), ")");
      }
      if (response.created() || response.canceled()) watch_cv_.notify_all();
    }
    if (response.events_size() == 0) continue;
    for (const auto& event : response.events()) {
      const std::string& key = event.kv().key();
      std::string instance = key.substr(key.rfind('/') + 1);
      if (event.type() == ::mvccpb::Event::DELETE) {
        sub->instances.erase(instance);
      } else {
        sub->instances[instance] = ParseGen(event.kv().value());
      }
    }
    DeliverView(*sub);
  }
  std::lock_guard lock(watch_mu_);
  watch_ended_ = true;
  watch_cv_.notify_all();
}

void EtcdConnection::KeepAliveTick(Clock::time_point now) {
  std::lock_guard lock(keepalive_mu_);
  if (keepalive_ && keepalive_done_ && now >= keepalive_reopen_) {
    keepalive_.reset();  // its OnDone has run: gRPC is done with it
    keepalive_done_ = false;
  }
  if (!keepalive_) {
    if (now < keepalive_reopen_) return;
    keepalive_ = std::make_unique<KeepAliveStream>(this, lease_id_);
    keepalive_writing_ = false;
  }
  if (keepalive_done_ || keepalive_writing_ || now < keepalive_due_) return;
  keepalive_writing_ = true;
  // Sent again at the next tick after this if no answer moves the due time.
  keepalive_due_ = now + kKeepAliveTick;
  keepalive_->Send();  // reactions run on gRPC's threads, never inline here
}

void EtcdConnection::OnKeepAliveWritten(bool ok) {
  std::lock_guard lock(keepalive_mu_);
  keepalive_writing_ = false;
  (void)ok;  // a failed write ends the stream: OnKeepAliveDone reports it
}

void EtcdConnection::OnKeepAliveAnswer(int64_t ttl) {
  if (ttl <= 0) {
    system_->Warn(
        absl::StrCat("lease ", lease_id_, " is gone (keep-alive answered TTL ", ttl, ")"));
    return;
  }
  std::lock_guard lock(keepalive_mu_);
  keepalive_due_ = Clock::now() + seconds(ttl) / 3;
}

void EtcdConnection::OnKeepAliveDone(const grpc::Status& status) {
  if (!system_->stopped() && status.error_code() != grpc::StatusCode::CANCELLED) {
    system_->Warn(absl::StrCat("lease keep-alive stream ended (", status.error_message(),
                               "); reopening it in 500 ms"));
  }
  std::lock_guard lock(keepalive_mu_);
  keepalive_done_ = true;
  keepalive_writing_ = false;
  keepalive_reopen_ = Clock::now() + kKeepAliveTick;
  keepalive_due_ = Clock::now();  // renew on the new stream at once
  keepalive_cv_.notify_all();
}

}  // namespace

std::unique_ptr<System> NewEtcdSystem(const SystemOptions& options) {
  return std::make_unique<EtcdSystem>(options);
}

}  // namespace cairn::bench
