// The registry's admin HTTP endpoints:
//   GET /health                      200 {"status":"SERVING"} while the loop answers
//   GET /metrics                     Prometheus text format
//   GET /api/v1/datainfos[?prefix=P] ListDataInfosResponse as JSON
//   GET /api/v1/datainfo?data_id=D[&group=G&instance_id=I]   DescribeResponse as JSON
//   GET /api/v1/clients?address=A    QueryByClientResponse as JSON (host or host:port)
// JSON uses the proto field names of cairn.registry.v1, so the admin API and
// the gRPC queries describe the same facts in the same shape.
#pragma once

#include "common/event_loop.h"
#include "core/http/admin_http_server.h"
#include "registry/metrics.h"
#include "registry/session/session_server.h"

namespace cairn {

// REQUIRES: loop, session and metrics outlive the server's Stop().
void InstallAdminRoutes(http::AdminHttpServer& server, EventLoop& loop, SessionServer& session,
                        RegistryMetrics& metrics);

}  // namespace cairn
