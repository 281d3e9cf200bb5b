#include "registrar.h"

#include "percentile.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <unordered_map>

#include "client/session_stream.h"

namespace cairn::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace pb = ::cairn::registry::v1;

std::shared_ptr<grpc::Channel> DedicatedChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection per stream
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

// One stream: publishes its quota with `window` in flight, refilling from
// the answers (on gRPC threads).
struct Registrar::Conn final : public client_internal::StreamObserver {
  Conn(const std::string& server, int window)
      : window(window), channel(DedicatedChannel(server)), stub(pb::Registry::NewStub(channel)) {
    stream = new client_internal::SessionStream(this, 1, server);
  }

  void Begin(const std::string& tag, int64_t first, int64_t count, int services) {
    std::lock_guard lock(mu);
    tag_ = tag;
    next = first;
    end = first + count;
    services_ = services;
    if (!started) {
      pb::ClientMessage hello;
      hello.set_request_id(0);
      hello.mutable_hello()->set_client_id("bench-registrar-" + std::to_string(first));
      hello.mutable_hello()->set_app_name("bench");
      stream->Send(std::move(hello));
      stream->Start(stub.get());
      started = true;
    }
    for (int i = 0; i < window && next < end; ++i) SendNextLocked();
  }

  // REQUIRES: mu held.
  void SendNextLocked() {
    int64_t n = next++;
    pb::ClientMessage message;
    message.set_request_id(static_cast<uint64_t>(n) + 1);
    pb::Publish* publish = message.mutable_publish();
    publish->set_registration_id(tag_ + "-" + std::to_string(n));
    publish->mutable_key()->set_data_id("bench.svc." + std::to_string(n % services_));
    std::string data = "bolt://10.0.0." + std::to_string(n % 250) +
                       ":12200?instance=" + std::to_string(n) + "&weight=100&app=bench";
    data.resize(100, 'x');
    publish->add_data(std::move(data));
    publish->set_version(1);
    sent_at[message.request_id()] = Clock::now();
    stream->Send(std::move(message));
  }

  void OnResult(const pb::Result& result, std::vector<double>& latencies) {
    auto it = sent_at.find(result.request_id());
    if (it == sent_at.end()) return;  // the Hello
    latencies.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - it->second).count());
    sent_at.erase(it);
    if (result.code() == 0) {
      ++accepted;
    } else {
      ++failed;
    }
    if (next < end) SendNextLocked();
  }

  void OnStreamMessage(client_internal::SessionStream*, pb::ServerMessage message) override {
    std::vector<double> latencies;
    {
      std::lock_guard lock(mu);
      if (message.has_result()) OnResult(message.result(), latencies);
      if (message.has_result_batch()) {
        for (const pb::Result& r : message.result_batch().results()) OnResult(r, latencies);
      }
      all_latencies.insert(all_latencies.end(), latencies.begin(), latencies.end());
    }
    answered.notify_all();
  }
  void OnStreamDrained(client_internal::SessionStream*) override {}
  void OnStreamDone(client_internal::SessionStream*, const grpc::Status&) override {
    std::lock_guard lock(mu);
    done = true;
    answered.notify_all();
  }

  bool Finished() const { return accepted + failed >= end - first_of_run || done; }

  const int window;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::Registry::Stub> stub;
  client_internal::SessionStream* stream = nullptr;  // deleted after OnStreamDone
  std::mutex mu;
  std::condition_variable answered;
  std::string tag_;
  int64_t next = 0, end = 0, first_of_run = 0;
  int services_ = 1;
  int64_t accepted = 0, failed = 0;
  bool started = false, done = false;
  std::unordered_map<uint64_t, Clock::time_point> sent_at;
  std::vector<double> all_latencies;
};

Registrar::Registrar(std::vector<std::string> servers, int connections, int window)
    : servers_(std::move(servers)), connections_(connections), window_(window) {
  for (int i = 0; i < connections_; ++i) {
    conns_.push_back(std::make_unique<Conn>(servers_[i % servers_.size()], window_));
  }
}

Registrar::~Registrar() { Close(); }

RegisterResult Registrar::Run(int64_t instances, int services, const std::string& tag,
                              std::chrono::seconds timeout) {
  int64_t per = instances / connections_;
  Clock::time_point start = Clock::now();
  for (int i = 0; i < connections_; ++i) {
    Conn& c = *conns_[i];
    std::lock_guard lock(c.mu);
    c.accepted = c.failed = 0;
    c.all_latencies.clear();
    c.first_of_run = static_cast<int64_t>(i) * per;
  }
  for (int i = 0; i < connections_; ++i) {
    conns_[i]->Begin(tag, static_cast<int64_t>(i) * per, per, services);
  }
  Clock::time_point deadline = start + timeout;
  RegisterResult result;
  std::vector<double> latencies;
  for (auto& c : conns_) {
    std::unique_lock lock(c->mu);
    c->answered.wait_until(lock, deadline, [&] { return c->Finished(); });
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& c : conns_) {
    std::lock_guard lock(c->mu);
    result.accepted += c->accepted;
    result.failed += c->failed;
    latencies.insert(latencies.end(), c->all_latencies.begin(), c->all_latencies.end());
  }
  result.per_second = static_cast<double>(result.accepted) / result.seconds;
  std::sort(latencies.begin(), latencies.end());
  if (!latencies.empty()) {
    result.p50_ms = NearestRank(latencies, 0.5);
    result.p99_ms = NearestRank(latencies, 0.99);
  }
  return result;
}

void Registrar::Close() {
  for (auto& c : conns_) {
    if (c->started) c->stream->Cancel();
  }
  for (auto& c : conns_) {
    if (!c->started) {
      delete c->stream;
      continue;
    }
    std::unique_lock lock(c->mu);
    c->answered.wait_for(lock, std::chrono::seconds(10), [&] { return c->done; });
    bool done = c->done;
    lock.unlock();
    if (done) delete c->stream;  // else leak it rather than free what gRPC may still use
  }
  conns_.clear();
}

}  // namespace cairn::bench
