#include "registry/server/admin_routes.h"

#include <google/protobuf/util/json_util.h>

#include <future>

#include "absl/strings/str_cat.h"
#include "sidecar/server/admin_auth.h"  // header-only bearer token helpers

namespace cairn {
namespace {

constexpr auto kLoopTimeout = std::chrono::seconds(5);

http::Response Json(int status, std::string body) {
  http::Response response;
  response.status = status;
  response.content_type = "application/json";
  response.body = std::move(body);
  response.body.push_back('\n');
  return response;
}

http::Response JsonError(int status, std::string_view message) {
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped.push_back('\\');
    if (static_cast<unsigned char>(c) >= 0x20) escaped.push_back(c);
  }
  return Json(status, absl::StrCat("{\"error\":\"", escaped, "\"}"));
}

http::Response ProtoJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) return JsonError(500, status.ToString());
  return Json(200, std::move(out));
}

// Runs fn on the registry loop and waits for its answer: registry state is
// only ever read on its own thread.
template <typename Fn>
http::Response OnLoop(EventLoop& loop, Fn fn) {
  auto task = std::make_shared<std::packaged_task<http::Response()>>(std::move(fn));
  std::future<http::Response> answer = task->get_future();
  loop.Post([task] { (*task)(); });
  if (answer.wait_for(kLoopTimeout) != std::future_status::ready) {
    return JsonError(503, "registry loop did not answer within 5 s");
  }
  return answer.get();
}

std::string QueryParam(const http::Request& request, const std::string& name) {
  auto it = request.query.find(name);
  return it == request.query.end() ? std::string() : it->second;
}

// Answers a query that may fail: NOT_FOUND is 404, other refusals 400.
template <typename Response>
http::Response StatusOrJson(const absl::StatusOr<Response>& result) {
  if (result.ok()) return ProtoJson(*result);
  int code = absl::IsNotFound(result.status()) ? 404 : 400;
  return JsonError(code, std::string(result.status().message()));
}

// Runs a query on the registry loop and waits for its reply, which may come
// later (cluster mode fetches from the data servers first).
template <typename Response, typename Query>
http::Response AsyncQueryJson(EventLoop& loop, Query query) {
  auto promise = std::make_shared<std::promise<http::Response>>();
  std::future<http::Response> answer = promise->get_future();
  loop.Post([promise, query = std::move(query)] {
    query([promise](absl::StatusOr<Response> result) { promise->set_value(StatusOrJson(result)); });
  });
  if (answer.wait_for(kLoopTimeout) != std::future_status::ready) {
    return JsonError(503, "registry did not answer within 5 s");
  }
  try {
    return answer.get();
  } catch (const std::future_error&) {  // the loop stopped with the query queued
    return JsonError(503, "registry is stopping");
  }
}

// Registers query routes, behind the bearer token when there is one.
class QueryRoutes {
 public:
  QueryRoutes(http::AdminHttpServer& server, std::string token)
      : server_(server), token_(std::move(token)) {}
  void Handle(const std::string& path, http::AdminHttpServer::Handler handler) {
    if (token_.empty()) {
      server_.Handle("GET", path, std::move(handler));
      return;
    }
    server_.Handle(
        "GET", path, [token = token_, handler = std::move(handler)](const http::Request& request) {
          if (!sidecar::BearerTokenMatches(http::FindHeader(request, "authorization"), token)) {
            http::Response denied =
                JsonError(401, "this query needs Authorization: Bearer <admin_token_file>");
            denied.headers.emplace_back("WWW-Authenticate", "Bearer");
            return denied;
          }
          return handler(request);
        });
  }

 private:
  http::AdminHttpServer& server_;
  const std::string token_;
};

void InstallAppRoutes(QueryRoutes& server, EventLoop& loop, AppQueries& apps) {
  server.Handle("/api/v1/apps", [&loop, &apps](const http::Request& request) {
    pb::ListAppsRequest query;
    query.set_app_name_prefix(QueryParam(request, "prefix"));
    return AsyncQueryJson<pb::ListAppsResponse>(
        loop, [&apps, query](auto reply) { apps.QueryApps(query, std::move(reply)); });
  });
  server.Handle("/api/v1/app", [&loop, &apps](const http::Request& request) {
    pb::DescribeAppRequest query;
    query.set_app_name(QueryParam(request, "name"));
    return AsyncQueryJson<pb::DescribeAppResponse>(
        loop, [&apps, query](auto reply) { apps.QueryApp(query, std::move(reply)); });
  });
  server.Handle("/api/v1/revision", [&loop, &apps](const http::Request& request) {
    pb::GetRevisionRequest query;
    query.set_revision(QueryParam(request, "id"));
    return AsyncQueryJson<pb::GetRevisionResponse>(
        loop, [&apps, query](auto reply) { apps.QueryRevision(query, std::move(reply)); });
  });
  server.Handle("/api/v1/interface", [&loop, &apps](const http::Request& request) {
    pb::DescribeInterfaceRequest query;
    query.mutable_key()->set_data_id(QueryParam(request, "data_id"));
    query.mutable_key()->set_group(QueryParam(request, "group"));
    query.mutable_key()->set_instance_id(QueryParam(request, "instance_id"));
    return AsyncQueryJson<pb::DescribeInterfaceResponse>(
        loop, [&apps, query](auto reply) { apps.QueryInterface(query, std::move(reply)); });
  });
}

}  // namespace

void InstallAdminRoutes(http::AdminHttpServer& server, EventLoop& loop, SessionServer& session,
                        RegistryMetrics& metrics, AppQueries* apps, std::string query_token) {
  QueryRoutes queries(server, std::move(query_token));
  if (apps != nullptr) InstallAppRoutes(queries, loop, *apps);
  server.Handle("GET", "/health", [&loop](const http::Request&) {
    return OnLoop(loop, [] { return Json(200, R"({"status":"SERVING"})"); });
  });
  server.Handle("GET", "/metrics", [&metrics](const http::Request&) {
    http::Response response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = metrics.Serialize();
    return response;
  });
  queries.Handle("/api/v1/datainfos", [&loop, &session](const http::Request& request) {
    pb::ListDataInfosRequest query;
    query.set_data_id_prefix(QueryParam(request, "prefix"));
    return AsyncQueryJson<pb::ListDataInfosResponse>(loop, [&session, query](auto reply) {
      session.ListDataInfosAsync(query,
                                 [reply](pb::ListDataInfosResponse r) { reply(std::move(r)); });
    });
  });
  queries.Handle("/api/v1/datainfo", [&loop, &session](const http::Request& request) {
    pb::DescribeRequest query;
    query.mutable_key()->set_data_id(QueryParam(request, "data_id"));
    query.mutable_key()->set_group(QueryParam(request, "group"));
    query.mutable_key()->set_instance_id(QueryParam(request, "instance_id"));
    return AsyncQueryJson<pb::DescribeResponse>(
        loop, [&session, query](auto reply) { session.DescribeAsync(query, std::move(reply)); });
  });
  queries.Handle("/api/v1/clients", [&loop, &session](const http::Request& request) {
    pb::QueryByClientRequest query;
    query.set_address(QueryParam(request, "address"));
    if (query.address().empty()) {
      return JsonError(400, "address is required (host or host:port)");
    }
    return OnLoop(loop, [&session, query] { return ProtoJson(session.QueryByClient(query)); });
  });
}

}  // namespace cairn
