// apps, app, revision, interface: the application-level discovery queries,
// one unary RPC each, printed as a table or (--output json) as the response
// message in JSON.
#include <chrono>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"

namespace cairn::cli {
namespace {

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

// Runs one query; prints JSON when asked. Returns nullopt when the caller
// prints the table, else the exit code.
template <typename Request, typename Response, typename Call>
std::optional<int> Query(const GlobalFlags& global, const AppQueryFlags& flags,
                         const Request& request, Response* response, Call call) {
  absl::Status status = CallUnary(global, Millis(flags.timeout_seconds),
                                  [&](pb::Registry::Stub& stub, grpc::ClientContext& context) {
                                    return call(stub, context, request, response);
                                  });
  if (!status.ok()) return ReportError(status);
  if (global.json()) {
    PrintLine(ToJson(*response));
    return kExitOk;
  }
  return std::nullopt;
}

}  // namespace

int RunApps(const GlobalFlags& global, const AppQueryFlags& flags) {
  pb::ListAppsRequest request;
  request.set_app_name_prefix(flags.name);
  pb::ListAppsResponse response;
  if (auto done = Query(global, flags, request, &response,
                        [](pb::Registry::Stub& stub, grpc::ClientContext& context, const auto& req,
                           auto* resp) { return stub.ListApps(&context, req, resp); })) {
    return *done;
  }
  std::vector<std::vector<std::string>> rows = {{"APP", "INSTANCES", "REVISIONS", "VERSION"}};
  for (const pb::AppSummary& a : response.apps()) {
    rows.push_back({a.app_name(), absl::StrCat(a.instances()), absl::StrJoin(a.revisions(), ","),
                    absl::StrCat(a.version())});
  }
  PrintTable(rows);
  return kExitOk;
}

int RunApp(const GlobalFlags& global, const AppQueryFlags& flags) {
  pb::DescribeAppRequest request;
  request.set_app_name(flags.name);
  pb::DescribeAppResponse response;
  if (auto done = Query(global, flags, request, &response,
                        [](pb::Registry::Stub& stub, grpc::ClientContext& context, const auto& req,
                           auto* resp) { return stub.DescribeApp(&context, req, resp); })) {
    return *done;
  }
  PrintLine(absl::StrCat("APP ", response.app_name(), "  VERSION ", response.version()));
  std::vector<std::vector<std::string>> rows = {
      {"REVISION", "REGISTRATION", "ENDPOINTS", "ZONE", "OWNER"}};
  for (const pb::AppRevisionInstances& group : response.revisions()) {
    for (const pb::PublisherInfo& p : group.instances()) {
      rows.push_back({group.revision(), p.publisher().registration_id(),
                      absl::StrJoin(p.publisher().data(), ","), p.zone(),
                      absl::StrCat(p.owner().client_id(), "@", p.owner().address())});
    }
  }
  PrintTable(rows);
  return kExitOk;
}

int RunRevision(const GlobalFlags& global, const AppQueryFlags& flags) {
  pb::GetRevisionRequest request;
  request.set_revision(flags.name);
  pb::GetRevisionResponse response;
  if (auto done = Query(global, flags, request, &response,
                        [](pb::Registry::Stub& stub, grpc::ClientContext& context, const auto& req,
                           auto* resp) { return stub.GetRevision(&context, req, resp); })) {
    return *done;
  }
  const pb::RevisionInfo& info = response.revision();
  PrintLine(absl::StrCat("REVISION ", info.meta().revision(), "  APP ", info.meta().app_name(),
                         "  INSTANCES ", info.instances()));
  std::vector<std::vector<std::string>> rows = {{"INTERFACE", "PARAMS"}};
  for (const pb::InterfaceMeta& iface : info.meta().interfaces()) {
    std::map<std::string, std::string> params(iface.params().begin(), iface.params().end());
    rows.push_back({KeyText(iface.key()), absl::StrJoin(params, ",", absl::PairFormatter("="))});
  }
  PrintTable(rows);
  return kExitOk;
}

int RunInterface(const GlobalFlags& global, const AppQueryFlags& flags) {
  pb::DescribeInterfaceRequest request;
  *request.mutable_key() = MakeKey(flags.name, flags.group, flags.instance_id);
  pb::DescribeInterfaceResponse response;
  if (auto done = Query(global, flags, request, &response,
                        [](pb::Registry::Stub& stub, grpc::ClientContext& context, const auto& req,
                           auto* resp) { return stub.DescribeInterface(&context, req, resp); })) {
    return *done;
  }
  PrintLine(absl::StrCat("INTERFACE ", KeyText(response.key()), "  VERSION ", response.version(),
                         "  INTERFACE-LEVEL PUBLISHERS ", response.interface_publishers()));
  std::vector<std::vector<std::string>> rows = {{"APP", "INSTANCES", "REVISIONS"}};
  for (const pb::InterfaceApp& a : response.apps()) {
    rows.push_back({a.app_name(), absl::StrCat(a.instances()), absl::StrJoin(a.revisions(), ",")});
  }
  PrintTable(rows);
  return kExitOk;
}

}  // namespace cairn::cli
