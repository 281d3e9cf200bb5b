// XdsPart: the xDS control plane as one piece a registry process adds to its
// session role (standalone, or a cluster session server): metrics, the
// server on the registry loop, and its two gRPC services on the registry's
// gRPC port.
//
// Life: Create (before the loop runs anything for it), Register on the
// ServerBuilder, then at shutdown CloseStreams (so the gRPC server's
// Shutdown need not wait for ADS streams) and DestroyOnLoop before the data
// service it listens to goes.
//
// Thread-safety: Create, Register and CloseStreams from the thread that
// starts and stops the registry; the server itself runs on the loop.
#pragma once

#include <memory>

#include <grpcpp/grpcpp.h>

#include "common/event_loop.h"
#include "registry/xds/xds_grpc_service.h"
#include "registry/xds/xds_metrics.h"
#include "registry/xds/xds_server.h"

namespace cairn::xds {

struct XdsPartOptions {
  bool enabled = true;
  XdsServerOptions server;
  XdsServiceOptions service;
};

class XdsPart {
 public:
  // Null when options.enabled is false. REQUIRES: loop, data and registry
  // outlive the part; authorizer (may be null) too.
  static std::unique_ptr<XdsPart> Create(EventLoop& loop, DataService& data,
                                         prometheus::Registry& registry,
                                         auth::Authorizer* authorizer, XdsPartOptions options);

  void Register(grpc::ServerBuilder& builder);
  // Ends every ADS stream (UNAVAILABLE). Returns once the loop has done it.
  void CloseStreams();
  // Destroys the server on the loop (it unregisters from the data service).
  // Returns once done. REQUIRES: the gRPC server has shut down.
  void DestroyOnLoop();

  XdsServer* server() { return server_.get(); }

 private:
  XdsPart(EventLoop& loop, prometheus::Registry& registry) : loop_(loop), metrics_(registry) {}

  EventLoop& loop_;
  XdsMetrics metrics_;
  std::unique_ptr<XdsServer> server_;
  std::unique_ptr<XdsGrpcService> service_;
  std::unique_ptr<XdsAdminService> admin_;
};

}  // namespace cairn::xds
