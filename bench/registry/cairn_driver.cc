// Cairn behind the bench's System interface: a `cairn registry` child process
// and Session streams driven directly (through cairn_client's SessionStream,
// the same write path RegistryClient uses), so that many publishes can be in
// flight on one stream (RegistryClient::Publish blocks per call) and the
// timing is taken around the same kind of asynchronous call as for etcd and
// ZooKeeper. Like RegistryClient, publishes queued behind the write in
// flight go out coalesced into one Batch message (SessionStream does it) and
// come back as one ResultBatch.
//
// Model: service = dataInfoId (data_id = the service name); instance = one
// publisher with registration id "<service>/<instance>"; a change = the same
// registration re-published with version gen + 1; subscriber = a Subscribe on
// the stream, whose pushes carry every publisher of the dataInfoId and are
// acked at once.
#include "cairn_driver.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "anchor_servers.h"
#include "cairn/registry/v1/registry.grpc.pb.h"
#include "client/session_stream.h"
#include "common/grpc_tls.h"
#include "driver.h"

namespace cairn::bench {

namespace pb = ::cairn::registry::v1;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::shared_ptr<grpc::Channel> NewDedicatedChannel(
    const std::string& target, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, std::move(credentials), args);
}

namespace {

// The channel credentials of the running Cairn system: insecure, or over
// mTLS (SystemOptions::tls_dir) the workloads' identity and the admin's.
// Written by CairnSystem::Start on the main thread before any connection or
// floor measurement exists, read afterwards.
struct CairnCredentials {
  std::shared_ptr<grpc::ChannelCredentials> session = grpc::InsecureChannelCredentials();
  std::shared_ptr<grpc::ChannelCredentials> admin = grpc::InsecureChannelCredentials();
};
CairnCredentials& Credentials() {
  static CairnCredentials credentials;
  return credentials;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientCredentials(
    const std::string& dir, const std::string& name) {
  TlsFiles files;
  files.cert_file = dir + "/" + name + ".crt";
  files.key_file = dir + "/" + name + ".key";
  files.ca_file = dir + "/ca.crt";
  return MakeChannelCredentials(files);
}

class CairnSystem;

// One Session stream, driven by cairn_client's SessionStream (the callback
// API with a write queue, as RegistryClient uses), so that neither an ack nor
// a publish ever blocks the thread that reads. Results go to the waiting
// DoneCallbacks and pushes to the subscriptions' callbacks, which are then
// acked, all on gRPC's threads (one read at a time per stream).
class CairnConnection final : public Connection, private client_internal::StreamObserver {
 public:
  CairnConnection(CairnSystem* system, const std::string& target, std::string client_id)
      : system_(system),
        client_id_(std::move(client_id)),
        channel_(NewDedicatedChannel(target, Credentials().session)),
        stub_(pb::Registry::NewStub(channel_)) {}
  ~CairnConnection() override;

  absl::Status Open();
  void Publish(const std::string& service, const std::string& instance, uint64_t gen,
               const std::string& data, DoneCallback done) override;
  absl::Status Subscribe(const std::string& service, ViewCallback on_view,
                         milliseconds timeout) override;
  // Keeps the stream alive past the server's keepalive timeout.
  void Ping();

 private:
  struct Sub {
    ViewCallback on_view;
    // The instances seen, by registration id: replaced by a whole push,
    // updated by a delta (as the etcd driver applies watch events).
    std::map<std::string, std::pair<std::string, uint64_t>> instances;
    uint64_t version = 0;
    bool have_whole = false;
    std::vector<InstanceView> view;  // reused between pushes; one push at a time
    int pushes = 0;                  // guarded by mu_
  };

  // Queues `message` after registering `done` for its Result.
  void Send(pb::ClientMessage message, DoneCallback done);
  void HandlePush(const pb::Push& push);
  // Completes the DoneCallbacks of these Results.
  void HandleResults(const pb::Result* const* results, int count);

  void OnStreamMessage(client_internal::SessionStream* stream, pb::ServerMessage message) override;
  void OnStreamDrained(client_internal::SessionStream*) override {}
  void OnStreamDone(client_internal::SessionStream* stream, const grpc::Status& status) override;

  CairnSystem* system_;
  const std::string client_id_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Registry::Stub> stub_;
  // Deleted by the destructor once gRPC is done with it (OnStreamDone).
  client_internal::SessionStream* stream_ = nullptr;
  std::atomic<uint64_t> next_request_id_{1};
  std::atomic<uint64_t> next_subscription_{1};

  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<uint64_t, DoneCallback> pending_;          // by request id
  std::unordered_map<std::string, std::unique_ptr<Sub>> subs_;  // by registration id
  bool stream_done_ = false;
};

class CairnSystem final : public System {
 public:
  explicit CairnSystem(SystemOptions options) : options_(std::move(options)) {}
  ~CairnSystem() override {
    StopPinger();
    Stop();
  }

  std::string name() const override { return "cairn"; }
  bool delta_pushes() const { return options_.cairn_delta_pushes; }
  bool server_batches() const { return options_.cairn_server_batches; }

  absl::Status Start() override {
    Stop();
    dir_ = std::make_unique<ScratchDir>("cairn");
    std::string ready = dir_->File("ready");
    std::vector<std::string> argv = {
        options_.bin_dir + "/cairn",
        "registry",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--data-dir",
        dir_->File("data"),
        "--ready-file",
        ready,
        "--max-registrations-per-client",
        std::to_string(std::max<int64_t>(options_.max_registrations_per_connection, 1000)),
        "--log-level",
        "warn"};
    Credentials() = CairnCredentials{};
    if (!options_.tls_dir.empty()) {
      const std::string& d = options_.tls_dir;
      argv.insert(argv.end(), {"--tls-cert", d + "/registry.crt", "--tls-key", d + "/registry.key",
                               "--tls-ca", d + "/ca.crt"});
      auto session = ClientCredentials(d, "bench");
      if (!session.ok()) return session.status();
      auto admin = ClientCredentials(d, "cairnctl");
      if (!admin.ok()) return admin.status();
      Credentials().session = *session;
      Credentials().admin = *admin;
    }
    auto process = ServerProcess::Start(argv, dir_->File("log"));
    if (!process.ok()) return process.status();
    process_ = std::move(*process);
    // The server renames the ready file into place, so once it exists it is
    // complete.
    auto deadline = Clock::now() + seconds(30);
    while (!std::filesystem::exists(ready) && process_->Running() && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    std::ifstream in(ready);
    std::string line;
    address_.clear();
    while (std::getline(in, line)) {
      if (line.rfind("grpc=", 0) == 0) address_ = line.substr(5);
    }
    if (address_.empty()) {
      return absl::UnavailableError(
          absl::StrCat("cairn registry did not start; log:\n", process_->LogTail()));
    }
    StartPinger();
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<Connection>> Connect() override {
    auto connection = std::make_unique<CairnConnection>(
        this, address_, absl::StrCat("bench-", next_client_.fetch_add(1)));
    if (auto s = connection->Open(); !s.ok()) return s;
    return std::unique_ptr<Connection>(std::move(connection));
  }

  absl::StatusOr<int64_t> CountInstances(const std::vector<std::string>& services) override {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // hold-10m lists 100,000 services: over gRPC's default 4 MiB.
    args.SetMaxReceiveMessageSize(-1);
    auto stub =
        pb::Registry::NewStub(grpc::CreateCustomChannel(address_, Credentials().admin, args));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + seconds(60));
    pb::ListDataInfosRequest request;
    request.set_data_id_prefix(CommonPrefix(services));
    pb::ListDataInfosResponse response;
    grpc::Status s = stub->ListDataInfos(&context, request, &response);
    if (!s.ok()) return absl::UnavailableError(s.error_message());
    std::set<std::string> wanted(services.begin(), services.end());
    int64_t count = 0;
    for (const auto& info : response.data_infos()) {
      if (wanted.count(info.key().data_id())) count += info.publishers();
    }
    return count;
  }
  int64_t ServerRssBytes() const override { return process_ ? process_->RssBytes() : 0; }
  bool Running() const override { return process_ && process_->RssBytes() > 0; }
  void Stop() override {
    process_.reset();
    dir_.reset();
  }
  std::string LogTail() const override { return process_ ? process_->LogTail() : ""; }
  std::string address() const override { return address_; }

  void Track(CairnConnection* c) {
    std::lock_guard lock(connections_mu_);
    connections_.insert(c);
  }
  // After this returns the pinger no longer uses `c`.
  void Untrack(CairnConnection* c) {
    std::lock_guard lock(connections_mu_);
    connections_.erase(c);
  }

 private:
  // Pings every open stream every 5 s, as RegistryClient does: an idle
  // subscriber stream must outlive the server's 30 s keepalive timeout.
  void StartPinger() {
    if (pinger_.joinable()) return;
    pinger_ = std::thread([this] {
      std::unique_lock lock(pinger_mu_);
      while (!pinger_stop_) {
        pinger_cv_.wait_for(lock, seconds(5), [&] { return pinger_stop_; });
        if (pinger_stop_) break;
        std::lock_guard connections_lock(connections_mu_);
        for (auto* c : connections_) c->Ping();
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
  std::unique_ptr<ScratchDir> dir_;
  std::unique_ptr<ServerProcess> process_;
  std::string address_;
  std::atomic<int64_t> next_client_{0};

  std::mutex connections_mu_;
  std::set<CairnConnection*> connections_;
  std::mutex pinger_mu_;
  std::condition_variable pinger_cv_;
  bool pinger_stop_ = false;
  std::thread pinger_;
};

absl::Status CairnConnection::Open() {
  if (!channel_->WaitForConnected(std::chrono::system_clock::now() + seconds(20))) {
    return absl::UnavailableError("cannot connect to cairn in 20 s");
  }
  stream_ = new client_internal::SessionStream(this, 1, client_id_);
  // Shared with the callback, which may run after a timed-out Open returned.
  struct HelloWait {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<absl::Status> status;
  };
  auto wait = std::make_shared<HelloWait>();
  pb::ClientMessage message;
  message.mutable_hello()->set_client_id(client_id_);
  message.mutable_hello()->set_app_name("bench");
  message.mutable_hello()->set_accepts_delta_pushes(system_->delta_pushes());
  message.mutable_hello()->set_accepts_server_batches(system_->server_batches());
  Send(std::move(message), [wait](const absl::Status& s) {
    std::lock_guard lock(wait->mu);
    wait->status = s;
    wait->cv.notify_all();
  });
  stream_->Start(stub_.get());
  std::unique_lock lock(wait->mu);
  if (!wait->cv.wait_for(lock, seconds(20), [&] { return wait->status.has_value(); })) {
    return absl::DeadlineExceededError("no answer to Hello in 20 s");
  }
  if (wait->status->ok()) system_->Track(this);
  return *wait->status;
}

CairnConnection::~CairnConnection() {
  system_->Untrack(this);
  if (stream_ == nullptr) return;
  // The server ends the stream (dropping this stream's registrations) once it
  // has read the half-close; do not wait long for a server that is gone.
  stream_->CloseWrites();
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, seconds(5), [&] { return stream_done_; })) {
    stream_->Cancel();
    cv_.wait(lock, [&] { return stream_done_; });  // a cancelled call ends promptly
  }
  delete stream_;
}

void CairnConnection::OnStreamDone(client_internal::SessionStream*, const grpc::Status&) {
  std::unordered_map<uint64_t, DoneCallback> failed;
  {
    std::lock_guard lock(mu_);
    failed.swap(pending_);
  }
  for (auto& [id, done] : failed) done(absl::UnavailableError("stream ended"));
  std::lock_guard lock(mu_);
  stream_done_ = true;
  cv_.notify_all();
}

void CairnConnection::Send(pb::ClientMessage message, DoneCallback done) {
  uint64_t id = next_request_id_.fetch_add(1);
  message.set_request_id(id);
  bool registered = false;
  {
    std::lock_guard lock(mu_);
    if (!stream_done_) {
      pending_.emplace(id, std::move(done));
      registered = true;
    }
  }
  if (registered) {
    if (stream_->Send(std::move(message))) return;
    // Not sent (the stream no longer writes): fail it here unless OnStreamDone
    // has already taken it, so that it is answered exactly once.
    std::lock_guard lock(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    done = std::move(it->second);
    pending_.erase(it);
  }
  done(absl::UnavailableError("stream ended"));
}

void CairnConnection::Publish(const std::string& service, const std::string& instance, uint64_t gen,
                              const std::string& data, DoneCallback done) {
  pb::ClientMessage message;
  pb::Publish* publish = message.mutable_publish();
  publish->set_registration_id(absl::StrCat(service, "/", instance));
  publish->mutable_key()->set_data_id(service);
  publish->add_data(data);
  publish->set_version(gen + 1);  // publisher versions must grow
  Send(std::move(message), std::move(done));
}

absl::Status CairnConnection::Subscribe(const std::string& service, ViewCallback on_view,
                                        milliseconds timeout) {
  std::string registration_id = absl::StrCat(client_id_, ".s", next_subscription_.fetch_add(1));
  Sub* sub;
  {
    std::lock_guard lock(mu_);
    auto owned = std::make_unique<Sub>();
    owned->on_view = std::move(on_view);
    sub = owned.get();
    // Registered before the request: the first push may follow the Result at once.
    subs_.emplace(registration_id, std::move(owned));
  }
  pb::ClientMessage message;
  message.mutable_subscribe()->set_registration_id(registration_id);
  message.mutable_subscribe()->mutable_key()->set_data_id(service);
  auto result = std::make_shared<std::optional<absl::Status>>();
  Send(std::move(message), [this, result](const absl::Status& s) {
    std::lock_guard lock(mu_);
    *result = s;
    cv_.notify_all();
  });
  // Established = the Result came and the initial push was delivered.
  std::unique_lock lock(mu_);
  bool done = cv_.wait_for(lock, timeout, [&] {
    return stream_done_ || (result->has_value() && (!(*result)->ok() || sub->pushes > 0));
  });
  if (!done) return absl::DeadlineExceededError("no subscribe result and first push in time");
  if (result->has_value() && !(*result)->ok()) return **result;
  if (sub->pushes == 0) return absl::UnavailableError("stream ended");
  return absl::OkStatus();
}

void CairnConnection::Ping() {
  pb::ClientMessage message;  // request id 0: no answer wanted
  message.mutable_ping()->set_nonce(1);
  stream_->Send(std::move(message));
}

void CairnConnection::HandlePush(const pb::Push& push) {
  Sub* sub = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = subs_.find(push.registration_id());
    if (it != subs_.end()) sub = it->second.get();
  }
  bool need_full = false;
  if (sub != nullptr) {
    bool delta = push.base_version() != 0;
    if (delta && (!sub->have_whole || push.base_version() != sub->version)) {
      need_full = push.version() > sub->version;  // else a replay: ack it
    } else {
      if (!delta) sub->instances.clear();
      for (const auto& id : push.removed()) sub->instances.erase(id);
      for (const auto& zone : push.zones()) {
        for (const auto& p : zone.publishers()) {
          const std::string& id = p.registration_id();
          size_t slash = id.rfind('/');
          std::string instance = slash == std::string::npos ? id : id.substr(slash + 1);
          sub->instances[id] = {std::move(instance), p.data_size() > 0 ? ParseGen(p.data(0)) : 0};
        }
      }
      sub->have_whole = true;
      sub->version = push.version();
      sub->view.clear();
      for (const auto& [id, entry] : sub->instances)
        sub->view.push_back({entry.first, entry.second});
      sub->on_view(sub->view);
      std::lock_guard lock(mu_);
      ++sub->pushes;
      cv_.notify_all();
    }
  }
  // Acked after the callback, as RegistryClient does: the ack releases the
  // next push for this subscriber.
  pb::ClientMessage ack;
  ack.mutable_push_ack()->set_registration_id(push.registration_id());
  ack.mutable_push_ack()->set_push_id(push.push_id());
  if (need_full) ack.mutable_push_ack()->set_need_full(true);
  stream_->Send(std::move(ack));
}

void CairnConnection::HandleResults(const pb::Result* const* results, int count) {
  // Take every callback under one lock, run them without it (a callback may
  // publish again on this connection).
  std::vector<std::pair<DoneCallback, const pb::Result*>> ready;
  ready.reserve(static_cast<size_t>(count));
  {
    std::lock_guard lock(mu_);
    for (int i = 0; i < count; ++i) {
      auto it = pending_.find(results[i]->request_id());
      if (it == pending_.end()) continue;
      ready.emplace_back(std::move(it->second), results[i]);
      pending_.erase(it);
    }
  }
  for (auto& [done, r] : ready) {
    done(r->code() == 0 ? absl::OkStatus()
                        : absl::Status(static_cast<absl::StatusCode>(r->code()), r->message()));
  }
}

void CairnConnection::OnStreamMessage(client_internal::SessionStream* stream,
                                      pb::ServerMessage message) {
  if (message.has_result()) {
    const pb::Result* result = &message.result();
    HandleResults(&result, 1);
  } else if (message.has_result_batch()) {
    // The answers to publishes that SessionStream sent as one Batch.
    const auto& results = message.result_batch().results();
    HandleResults(results.data(), results.size());
  } else if (message.has_push()) {
    HandlePush(message.push());
  } else if (message.has_batch()) {
    // Messages that queued on the server while it wrote: each as if alone.
    for (pb::ServerMessage& inner : *message.mutable_batch()->mutable_messages()) {
      if (!inner.has_batch()) OnStreamMessage(stream, std::move(inner));
    }
  }
}

}  // namespace

std::unique_ptr<System> NewCairnSystem(const SystemOptions& options) {
  return std::make_unique<CairnSystem>(options);
}

UnaryFloor MeasureUnaryFloor(const std::string& cairn_address, int threads, milliseconds duration) {
  std::vector<std::vector<double>> latencies(threads);
  std::vector<int64_t> errors(threads, 0);
  std::barrier start(threads + 1);
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto channel = NewDedicatedChannel(cairn_address, Credentials().admin);
      auto stub = pb::Registry::NewStub(channel);
      channel->WaitForConnected(std::chrono::system_clock::now() + seconds(10));
      pb::ListDataInfosRequest request;
      request.set_data_id_prefix("\x01none");
      start.arrive_and_wait();
      // Also bounded in count, should the clock misbehave.
      for (int i = 0; i < 10'000'000 && !stop.load(std::memory_order_relaxed); ++i) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + seconds(5));
        pb::ListDataInfosResponse response;
        auto begin = Clock::now();
        if (stub->ListDataInfos(&context, request, &response).ok()) {
          latencies[t].push_back(Ms(Clock::now() - begin));
        } else {
          ++errors[t];
        }
      }
    });
  }
  start.arrive_and_wait();
  auto begin = Clock::now();
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& w : workers) w.join();
  double elapsed_s = std::chrono::duration<double>(Clock::now() - begin).count();
  std::vector<double> all;
  UnaryFloor floor;
  for (int t = 0; t < threads; ++t) {
    all.insert(all.end(), latencies[t].begin(), latencies[t].end());
    floor.errors += errors[t];
  }
  std::sort(all.begin(), all.end());
  floor.calls_per_s = static_cast<double>(all.size()) / elapsed_s;
  floor.p50_ms = Percentile(all, 0.50);
  floor.p99_ms = Percentile(all, 0.99);
  return floor;
}

}  // namespace cairn::bench
