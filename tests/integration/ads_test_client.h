// A raw ADS (state of the world) client for the registry's xDS tests: one
// StreamAggregatedResources call on its own channel, a reader thread that
// queues every response, and bounded waits for the next one or the end of
// the stream. Tracks, per type, what a real client would (the names it asked
// for, the last nonce it read and the last version it ACKed), so a test can
// ACK, NACK and change subscriptions with one call.
//
// Thread-safety: the public methods are for one test thread; the reader
// thread only touches the queue and the final status (under mu_).
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"

namespace cairn::testing {

namespace xds = ::envoy::service::discovery::v3;

inline constexpr char kLdsType[] = "type.googleapis.com/envoy.config.listener.v3.Listener";
inline constexpr char kRdsType[] = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
inline constexpr char kCdsType[] = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
inline constexpr char kEdsType[] =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
inline constexpr char kAdsMethod[] =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

class AdsStream {
 public:
  // Starts the call at once (no request is sent until the first Send).
  explicit AdsStream(const std::string& target, std::string node_id = "xds-test-node")
      : node_id_(std::move(node_id)) {
    channel_ = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    stub_ = xds::AggregatedDiscoveryService::NewStub(channel_);
    // A safety net only: every wait below is bounded on its own.
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(180));
    stream_ = stub_->StreamAggregatedResources(&context_);
    reader_ = std::thread([this] { ReadLoop(); });
  }
  ~AdsStream() { Close(); }
  AdsStream(const AdsStream&) = delete;
  AdsStream& operator=(const AdsStream&) = delete;

  // Cancels the call and joins the reader. Idempotent.
  void Close() {
    context_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }

  // Sends `request` as is. False once the stream is broken.
  bool Send(const xds::DiscoveryRequest& request) {
    std::lock_guard lock(write_mu_);
    if (finished_writes_) return false;
    return stream_->Write(request);
  }

  // Sends a request of `type` for `names` with the tracked version and nonce
  // (a subscription or a subscription change); the node only on the first.
  bool Subscribe(const std::string& type, const std::vector<std::string>& names) {
    names_[type] = names;
    return Send(Build(type, names, acked_version_[type], last_nonce_[type]));
  }
  // ACKs `response` (its version and nonce, the tracked names).
  bool Ack(const xds::DiscoveryResponse& response) {
    const std::string& type = response.type_url();
    acked_version_[type] = response.version_info();
    return Send(Build(type, names_[type], response.version_info(), response.nonce()));
  }
  // NACKs `response`: its nonce, the last ACKed version, an error_detail.
  bool Nack(const xds::DiscoveryResponse& response, const std::string& message) {
    const std::string& type = response.type_url();
    auto request = Build(type, names_[type], acked_version_[type], response.nonce());
    request.mutable_error_detail()->set_code(3);  // INVALID_ARGUMENT
    request.mutable_error_detail()->set_message(message);
    return Send(request);
  }
  // A request with explicit names, version and nonce (e.g. a stale one); the
  // tracked names stay as they were.
  bool SendWith(const std::string& type, const std::vector<std::string>& names,
                const std::string& version, const std::string& nonce) {
    return Send(Build(type, names, version, nonce));
  }

  // The next response within `timeout`; records its nonce as the latest of
  // its type (what the client has read).
  std::optional<xds::DiscoveryResponse> Next(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || finished_; });
    if (queue_.empty()) return std::nullopt;
    xds::DiscoveryResponse response = std::move(queue_.front());
    queue_.pop_front();
    last_nonce_[response.type_url()] = response.nonce();
    ++received_;
    return response;
  }

  // Waits for the end of the stream; its status, or nullopt on timeout.
  std::optional<grpc::Status> Finished(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return finished_; })) return std::nullopt;
    return status_;
  }
  bool finished() {
    std::lock_guard lock(mu_);
    return finished_;
  }
  // Responses taken with Next() so far.
  int received() const { return received_; }
  const std::string& acked_version(const std::string& type) { return acked_version_[type]; }
  const std::string& last_nonce(const std::string& type) { return last_nonce_[type]; }

  xds::DiscoveryRequest Build(const std::string& type, const std::vector<std::string>& names,
                              const std::string& version, const std::string& nonce) {
    xds::DiscoveryRequest request;
    if (!node_sent_) {
      request.mutable_node()->set_id(node_id_);
      request.mutable_node()->set_cluster("xds-test");
      node_sent_ = true;
    }
    request.set_type_url(type);
    request.set_version_info(version);
    request.set_response_nonce(nonce);
    for (const auto& name : names) request.add_resource_names(name);
    return request;
  }

 private:
  void ReadLoop() {
    xds::DiscoveryResponse response;
    while (stream_->Read(&response)) {
      std::lock_guard lock(mu_);
      queue_.push_back(response);
      cv_.notify_all();
    }
    grpc::Status status;
    {
      std::lock_guard lock(write_mu_);
      finished_writes_ = true;
      status = stream_->Finish();
    }
    std::lock_guard lock(mu_);
    status_ = status;
    finished_ = true;
    cv_.notify_all();
  }

  std::string node_id_;
  bool node_sent_ = false;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<xds::AggregatedDiscoveryService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<xds::DiscoveryRequest, xds::DiscoveryResponse>> stream_;
  std::thread reader_;

  std::mutex write_mu_;
  bool finished_writes_ = false;  // guarded by write_mu_

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<xds::DiscoveryResponse> queue_;  // guarded by mu_
  bool finished_ = false;                     // guarded by mu_
  grpc::Status status_;                       // guarded by mu_

  // Test-thread state.
  std::map<std::string, std::vector<std::string>> names_;
  std::map<std::string, std::string> acked_version_;
  std::map<std::string, std::string> last_nonce_;
  int received_ = 0;
};

// Sends `bytes` (not a protobuf) as the first message of a raw
// StreamAggregatedResources call and returns the call's status, or nullopt
// if it did not end within `timeout`.
inline std::optional<grpc::Status> SendRawBytes(const std::string& target, const std::string& bytes,
                                                std::chrono::milliseconds timeout) {
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  auto deadline = std::chrono::system_clock::now() + timeout;
  context.set_deadline(deadline);
  auto call = stub.PrepareCall(&context, kAdsMethod, &cq);
  // Each step waits for its own tag; the context deadline bounds them all.
  auto step = [&](void* want) {
    void* tag = nullptr;
    bool ok = false;
    while (cq.AsyncNext(&tag, &ok, deadline + std::chrono::seconds(1)) ==
           grpc::CompletionQueue::GOT_EVENT) {
      if (tag == want) return ok;
    }
    return false;
  };
  int tags[4];
  call->StartCall(&tags[0]);
  std::optional<grpc::Status> result;
  if (step(&tags[0])) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buffer(&slice, 1);
    call->Write(buffer, &tags[1]);
    step(&tags[1]);
    grpc::ByteBuffer response;
    call->Read(&response, &tags[2]);
    step(&tags[2]);  // no response expected: the read fails when the call ends
  }
  grpc::Status status;
  call->Finish(&status, &tags[3]);
  if (step(&tags[3])) result = status;
  context.TryCancel();
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  return result;
}

// Resources of a response by name, unpacked as T (failed unpacks are absent).
template <typename T>
std::map<std::string, T> ByName(const xds::DiscoveryResponse& response) {
  std::map<std::string, T> out;
  for (const auto& any : response.resources()) {
    T resource;
    if (!any.UnpackTo(&resource)) continue;
    if constexpr (std::is_same_v<T, envoy::config::endpoint::v3::ClusterLoadAssignment>) {
      out[resource.cluster_name()] = resource;
    } else {
      out[resource.name()] = resource;
    }
  }
  return out;
}

}  // namespace cairn::testing
