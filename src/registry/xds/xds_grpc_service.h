// The gRPC face of the xDS server: the ADS service
// (envoy.service.discovery.v3.AggregatedDiscoveryService, state of the world;
// the delta method answers UNIMPLEMENTED) and XdsAdmin (what `cairnctl xds`
// reads), both registered on the registry's gRPC server.
//
// Like the Session stream, gRPC's threads never touch xDS state: every
// request is posted to the registry loop. Each ADS stream is a reactor with
// a bounded read window (requests waiting for the loop; past it the reactor
// stops reading). Its outbound queue needs no bound of its own: the server
// keeps at most one response per resource type awaiting an ACK.
// Streams over `max_streams` end at once with RESOURCE_EXHAUSTED.
//
// Thread-safety: gRPC calls it from its own threads; it is safe for that.
#pragma once

#include <atomic>

#include <grpcpp/grpcpp.h>

#include "cairn/registry/v1/xds_admin.grpc.pb.h"
#include "common/event_loop.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "registry/xds/xds_server.h"

namespace cairn::xds {

struct XdsServiceOptions {
  size_t max_streams = 10000;
  size_t read_window = 16;
};

namespace ads = envoy::service::discovery::v3;
// StreamAggregatedResources is raw so that an undecodable request ends the
// stream with INVALID_ARGUMENT and a reason; the delta method keeps the
// generated default (UNIMPLEMENTED).
using AdsServiceBase =
    ads::AggregatedDiscoveryService::WithRawCallbackMethod_StreamAggregatedResources<
        ads::AggregatedDiscoveryService::WithCallbackMethod_DeltaAggregatedResources<
            ads::AggregatedDiscoveryService::Service>>;

class XdsGrpcService final : public AdsServiceBase {
 public:
  // REQUIRES: loop, server and metrics outlive the gRPC server this is
  // registered on.
  XdsGrpcService(EventLoop& loop, XdsServer& server, XdsMetrics& metrics,
                 XdsServiceOptions options);

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamAggregatedResources(
      grpc::CallbackServerContext* context) override;

  // Streams open, as counted on gRPC's side (the cap's count).
  size_t open_streams() const { return open_streams_.load(); }

 private:
  friend class AdsReactor;
  EventLoop& loop_;
  XdsServer& server_;
  XdsMetrics& metrics_;
  XdsServiceOptions options_;
  std::atomic<size_t> open_streams_{0};
};

class XdsAdminService final : public cairn::registry::v1::XdsAdmin::CallbackService {
 public:
  // REQUIRES: loop and server outlive the gRPC server this is registered on.
  XdsAdminService(EventLoop& loop, XdsServer& server) : loop_(loop), server_(server) {}

  grpc::ServerUnaryReactor* ListClients(
      grpc::CallbackServerContext* context,
      const cairn::registry::v1::ListXdsClientsRequest* request,
      cairn::registry::v1::ListXdsClientsResponse* response) override;

 private:
  EventLoop& loop_;
  XdsServer& server_;
};

}  // namespace cairn::xds
