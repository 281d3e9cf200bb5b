// The registry's admin HTTP endpoints:
//   GET /health                      200 {"status":"SERVING"} while the loop answers
//   GET /metrics                     Prometheus text format
//   GET /api/v1/datainfos[?prefix=P] ListDataInfosResponse as JSON
//   GET /api/v1/datainfo?data_id=D[&group=G&instance_id=I]   DescribeResponse as JSON
//   GET /api/v1/clients?address=A    QueryByClientResponse as JSON (host or host:port)
//   GET /api/v1/apps[?prefix=P]      ListAppsResponse as JSON
//   GET /api/v1/app?name=APP         DescribeAppResponse (instances by revision)
//   GET /api/v1/revision?id=ID       GetRevisionResponse (its interfaces)
//   GET /api/v1/interface?data_id=D[&group=G&instance_id=I]  DescribeInterfaceResponse
// JSON uses the proto field names of cairn.registry.v1, so the admin API and
// the gRPC queries describe the same facts in the same shape.
//
// With a `query_token`, every /api/v1/ route answers 401 unless the request
// carries `Authorization: Bearer <token>` (the same facts the gRPC queries
// keep for admins under authorization); /health and /metrics stay open.
#pragma once

#include <string>

#include "common/event_loop.h"
#include "core/http/admin_http_server.h"
#include "registry/app/app_queries.h"
#include "registry/metrics.h"
#include "registry/session/session_server.h"

namespace cairn {

// REQUIRES: loop, session, metrics and apps outlive the server's Stop().
// apps may be null: the app routes are then not installed.
void InstallAdminRoutes(http::AdminHttpServer& server, EventLoop& loop, SessionServer& session,
                        RegistryMetrics& metrics, AppQueries* apps = nullptr,
                        std::string query_token = "");

}  // namespace cairn
