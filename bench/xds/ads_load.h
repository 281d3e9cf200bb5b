// The xDS side of the xDS bench: N concurrent ADS streams
// (envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources,
// state of the world) to one registry, opened with gRPC's callback API over
// a few channels that do not share a connection. Each stream behaves as a
// proxyless client does on EDS: a first request with node.id and its
// resource names, then an ACK (version_info + response_nonce, same names) for
// every response. Every port of the watched service's ClusterLoadAssignment
// is reported to the DeliveryTracker with the arrival time of the response.
//
// Thread-safety: Start/Stop and the getters from one thread; the streams run
// on gRPC's threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "delivery.h"

namespace grpc {
class Channel;
}

namespace cairn::bench::xds {

inline constexpr char kEdsType[] =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

struct AdsLoadOptions {
  std::string target;  // "127.0.0.1:PORT"
  int channels = 20;   // streams i goes on channel i mod channels
  // names[i]: the resource names stream i subscribes to (EDS).
  std::vector<std::vector<std::string>> names;
  // The service whose ClusterLoadAssignment is reported to the tracker.
  std::string watched;
  std::string node_prefix = "xds-bench";  // node.id = prefix + "-" + i
  // false: the streams open and send nothing (the --idle-probe diagnostic:
  // what an open stream costs before any subscription).
  bool send_requests = true;
};

class AdsStream;

class AdsLoad {
 public:
  AdsLoad(AdsLoadOptions options, DeliveryTracker* tracker);
  ~AdsLoad();  // Stop(10 s)
  AdsLoad(const AdsLoad&) = delete;
  AdsLoad& operator=(const AdsLoad&) = delete;

  // Opens every stream (returns at once; the streams connect in the
  // background).
  void Start();
  // Cancels every stream and waits (at most `timeout`) until each has ended.
  // Streams that did not end in time are leaked rather than freed under gRPC.
  // Returns how many did not end. Idempotent.
  int Stop(std::chrono::milliseconds timeout);

  int streams() const { return static_cast<int>(options_.names.size()); }
  // Streams that ended before Stop (refused, reset...), and the first such
  // status as text.
  int Failed() const { return failed_.load(); }
  std::string FirstError() const;
  int64_t Responses() const { return responses_.load(); }
  int64_t Acks() const { return acks_.load(); }
  int64_t DecodeErrors() const { return decode_errors_.load(); }
  // Smallest and largest number of resources in a stream's first response
  // (-1 before every stream has had one).
  int MinFirstResources() const;
  int MaxFirstResources() const;

 private:
  friend class AdsStream;
  void OnStreamDone(int index, bool cancelled_by_us, const std::string& error);

  const AdsLoadOptions options_;
  DeliveryTracker* const tracker_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<AdsStream>> streams_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> ended_{0};
  std::atomic<int> failed_{0};
  std::atomic<int64_t> responses_{0};
  std::atomic<int64_t> acks_{0};
  std::atomic<int64_t> decode_errors_{0};
  mutable std::mutex mu_;
  std::string first_error_;
  bool stopped_ = false;
};

}  // namespace cairn::bench::xds
