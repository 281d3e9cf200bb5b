// GrpcRegistryService: the public gRPC API (cairn.registry.v1.Registry) on
// top of a SessionServer.
//
// gRPC's callback threads never touch registry state: every message and
// query is posted to the registry loop. Each Session stream is a reactor
// with a bounded outbound queue and a bounded read window:
//   * at most `read_window` received messages (a Batch is one) wait for
//     the loop; past that the reactor stops reading, so a client flooding
//     requests is slowed to the registry's pace instead of growing memory;
//   * at most `max_outbound` messages wait to be written; past that pushes
//     are refused (the push engine retries later) and reading pauses.
//
// Thread-safety: gRPC calls it from its own threads; it is safe for that.
#pragma once

#include <grpcpp/grpcpp.h>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "common/event_loop.h"
#include "registry/app/app_queries.h"
#include "registry/session/session_server.h"

namespace cairn {

struct GrpcServiceOptions {
  size_t read_window = 64;
  size_t max_outbound = 4096;
};

// Session is registered "raw" (ByteBuffer in and out): the reactor decodes
// each message itself, so that a message gRPC could not decode ends the
// stream with INVALID_ARGUMENT and a reason, instead of looking like a normal
// half-close to the server and an OK status to the client.
using RegistryServiceBase = pb::Registry::WithRawCallbackMethod_Session<
    pb::Registry::WithCallbackMethod_ListDataInfos<pb::Registry::WithCallbackMethod_Describe<
        pb::Registry::WithCallbackMethod_QueryByClient<pb::Registry::WithCallbackMethod_GetRevision<
            pb::Registry::WithCallbackMethod_ListApps<pb::Registry::WithCallbackMethod_DescribeApp<
                pb::Registry::WithCallbackMethod_DescribeInterface<pb::Registry::Service>>>>>>>>;

class GrpcRegistryService final : public RegistryServiceBase {
 public:
  // REQUIRES: loop, session and apps outlive the gRPC server this is
  // registered on. apps may be null: the app-level queries are UNIMPLEMENTED.
  GrpcRegistryService(EventLoop& loop, SessionServer& session, GrpcServiceOptions options,
                      AppQueries* apps = nullptr);

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Session(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListDataInfos(grpc::CallbackServerContext* context,
                                          const pb::ListDataInfosRequest* request,
                                          pb::ListDataInfosResponse* response) override;
  grpc::ServerUnaryReactor* Describe(grpc::CallbackServerContext* context,
                                     const pb::DescribeRequest* request,
                                     pb::DescribeResponse* response) override;
  grpc::ServerUnaryReactor* QueryByClient(grpc::CallbackServerContext* context,
                                          const pb::QueryByClientRequest* request,
                                          pb::QueryByClientResponse* response) override;
  grpc::ServerUnaryReactor* GetRevision(grpc::CallbackServerContext* context,
                                        const pb::GetRevisionRequest* request,
                                        pb::GetRevisionResponse* response) override;
  grpc::ServerUnaryReactor* ListApps(grpc::CallbackServerContext* context,
                                     const pb::ListAppsRequest* request,
                                     pb::ListAppsResponse* response) override;
  grpc::ServerUnaryReactor* DescribeApp(grpc::CallbackServerContext* context,
                                        const pb::DescribeAppRequest* request,
                                        pb::DescribeAppResponse* response) override;
  grpc::ServerUnaryReactor* DescribeInterface(grpc::CallbackServerContext* context,
                                              const pb::DescribeInterfaceRequest* request,
                                              pb::DescribeInterfaceResponse* response) override;

 private:
  EventLoop& loop_;
  SessionServer& session_;
  GrpcServiceOptions options_;
  AppQueries* apps_;
};

}  // namespace cairn
