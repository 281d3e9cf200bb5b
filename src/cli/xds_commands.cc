// cairnctl xds: the registry's xDS clients (XdsAdmin.ListClients).
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cairn/registry/v1/xds_admin.grpc.pb.h"
#include "cli/commands.h"

namespace cairn::cli {
namespace {

// "type.googleapis.com/envoy.config.cluster.v3.Cluster" -> "Cluster".
std::string ShortType(const std::string& type_url) {
  size_t dot = type_url.rfind('.');
  return dot == std::string::npos ? type_url : type_url.substr(dot + 1);
}

// What the node acknowledged: "name@version ..." (at most a few, then "+N").
std::string AckedText(const pb::XdsTypeState& state) {
  constexpr int kShown = 3;
  std::vector<std::string> parts;
  for (int i = 0; i < state.acked_size() && i < kShown; ++i) {
    parts.push_back(absl::StrCat(state.acked(i).name(), "@", state.acked(i).version()));
  }
  if (state.acked_size() > kShown) parts.push_back(absl::StrCat("+", state.acked_size() - kShown));
  return parts.empty() ? "-" : absl::StrJoin(parts, " ");
}

}  // namespace

int RunXds(const GlobalFlags& global, const XdsFlags& flags) {
  pb::ListXdsClientsRequest request;
  request.set_node_id_prefix(flags.node_prefix);
  pb::ListXdsClientsResponse response;
  auto timeout = std::chrono::milliseconds(static_cast<int64_t>(flags.timeout_seconds * 1000.0));
  absl::Status status = CallUnaryOnChannel(
      global, timeout,
      [&](const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext& context) {
        return pb::XdsAdmin::NewStub(channel)->ListClients(&context, request, &response);
      });
  if (!status.ok()) return ReportError(status);
  if (global.json()) {
    PrintLine(ToJson(response));
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"STREAM", "NODE", "PEER", "TYPE", "NAMES", "SENT", "ACKED", "ACKED RESOURCES", "NACKS"}};
  for (const pb::XdsClient& client : response.clients()) {
    if (client.types_size() == 0) {
      rows.push_back({absl::StrCat(client.stream_id()), client.node_id(), client.peer(), "-", "-",
                      "-", "-", "-", "0"});
    }
    for (const pb::XdsTypeState& type : client.types()) {
      std::string names = type.wildcard() ? "*" : absl::StrJoin(type.resource_names(), ",");
      std::string sent = type.sent_version().empty() ? "-" : type.sent_version();
      if (type.awaiting_ack()) absl::StrAppend(&sent, " (waiting)");
      std::string nacks = absl::StrCat(type.nacks());
      if (type.nacks() > 0) absl::StrAppend(&nacks, ": ", type.last_nack());
      rows.push_back({absl::StrCat(client.stream_id()), client.node_id(), client.peer(),
                      ShortType(type.type_url()) + (client.delta() ? " (delta)" : ""),
                      names.empty() ? "-" : names, sent,
                      type.acked_version().empty() ? "-" : type.acked_version(), AckedText(type),
                      nacks});
    }
  }
  PrintTable(rows);
  return kExitOk;
}

}  // namespace cairn::cli
