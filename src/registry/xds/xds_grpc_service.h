// The gRPC face of the xDS server: the ADS service
// (envoy.service.discovery.v3.AggregatedDiscoveryService: state of the world
// and delta) and XdsAdmin (what `cairnctl xds`
// reads), both registered on the registry's gRPC server.
//
// Like the Session stream, gRPC's threads never touch xDS state: every
// request is posted to the registry loop. Each ADS stream is a reactor with
// a bounded read window (requests waiting for the loop; past it the reactor
// stops reading). Its outbound queue stays short: the server keeps at most
// one response per resource type awaiting an ACK.
// Streams over `max_streams` end at once with RESOURCE_EXHAUSTED; so does a
// stream whose queue passes two responses per type (a client ACKing what it
// has not read).
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
// Both methods are raw so that an undecodable request ends the stream with
// INVALID_ARGUMENT and a reason.
using AdsServiceBase =
    ads::AggregatedDiscoveryService::WithRawCallbackMethod_StreamAggregatedResources<
        ads::AggregatedDiscoveryService::WithRawCallbackMethod_DeltaAggregatedResources<
            ads::AggregatedDiscoveryService::Service>>;

class XdsGrpcService final : public AdsServiceBase {
 public:
  // REQUIRES: loop, server and metrics outlive the gRPC server this is
  // registered on.
  XdsGrpcService(EventLoop& loop, XdsServer& server, XdsMetrics& metrics,
                 XdsServiceOptions options);

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamAggregatedResources(
      grpc::CallbackServerContext* context) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* DeltaAggregatedResources(
      grpc::CallbackServerContext* context) override;

  // Streams open, as counted on gRPC's side (the cap's count).
  size_t open_streams() const { return open_streams_.load(); }

 private:
  friend class AdsReactor;
  // A stream of either method; both count toward max_streams.
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* NewStream(
      grpc::CallbackServerContext* context, bool delta);
  EventLoop& loop_;
  XdsServer& server_;
  XdsMetrics& metrics_;
  XdsServiceOptions options_;
  std::atomic<size_t> open_streams_{0};
};

class XdsAdminService final : public cairn::registry::v1::XdsAdmin::CallbackService {
 public:
  // REQUIRES: loop, server and authorizer (null: every caller may list)
  // outlive the gRPC server this is registered on.
  XdsAdminService(EventLoop& loop, XdsServer& server, auth::Authorizer* authorizer)
      : loop_(loop), server_(server), authorizer_(authorizer) {}

  grpc::ServerUnaryReactor* ListClients(
      grpc::CallbackServerContext* context,
      const cairn::registry::v1::ListXdsClientsRequest* request,
      cairn::registry::v1::ListXdsClientsResponse* response) override;

 private:
  EventLoop& loop_;
  XdsServer& server_;
  auth::Authorizer* authorizer_;
};

}  // namespace cairn::xds
