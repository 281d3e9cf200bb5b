// list, describe, clients: one unary query each.
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"

namespace cairn::cli {
namespace {

using std::chrono::milliseconds;

milliseconds Millis(double seconds) { return milliseconds(static_cast<int64_t>(seconds * 1000.0)); }

std::string OwnerText(const pb::Owner& owner) {
  return absl::StrCat(owner.client_id(), "@", owner.address());
}

std::string ScopeText(pb::Scope scope) {
  switch (scope) {
    case pb::SCOPE_ZONE:
      return "zone";
    case pb::SCOPE_GLOBAL:
      return "global";
    default:
      return "datacenter";
  }
}

std::vector<std::string> PublisherRow(const pb::PublisherInfo& info) {
  const pb::PublisherData& p = info.publisher();
  return {p.registration_id(), absl::StrJoin(p.data(), ","), info.zone(),
          p.app_name(),        OwnerText(info.owner()),      absl::StrCat(p.version())};
}

std::vector<std::string> SubscriberRow(const pb::SubscriberInfo& info) {
  return {info.registration_id(),
          info.zone(),
          ScopeText(info.scope()),
          OwnerText(info.owner()),
          absl::StrCat(info.acked_version()),
          absl::StrCat(info.pushed_version())};
}

}  // namespace

int RunList(const GlobalFlags& global, const ListFlags& flags) {
  pb::ListDataInfosRequest request;
  request.set_data_id_prefix(flags.prefix);
  pb::ListDataInfosResponse response;
  absl::Status status = CallUnary(global, Millis(flags.timeout_seconds),
                                  [&](pb::Registry::Stub& stub, grpc::ClientContext& context) {
                                    return stub.ListDataInfos(&context, request, &response);
                                  });
  if (!status.ok()) return ReportError(status);
  if (global.json()) {
    PrintLine(ToJson(response));
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"DATAINFOID", "VERSION", "PUBLISHERS", "SUBSCRIBERS", "SLOT"}};
  for (const pb::DataInfoSummary& s : response.data_infos()) {
    rows.push_back({KeyText(s.key()), absl::StrCat(s.version()), absl::StrCat(s.publishers()),
                    absl::StrCat(s.subscribers()), absl::StrCat(s.slot())});
  }
  PrintTable(rows);
  return kExitOk;
}

int RunDescribe(const GlobalFlags& global, const DescribeFlags& flags) {
  pb::DescribeRequest request;
  *request.mutable_key() = MakeKey(flags.key.data_id, flags.key.group, flags.key.instance_id);
  pb::DescribeResponse response;
  absl::Status status = CallUnary(global, Millis(flags.timeout_seconds),
                                  [&](pb::Registry::Stub& stub, grpc::ClientContext& context) {
                                    return stub.Describe(&context, request, &response);
                                  });
  if (!status.ok()) return ReportError(status);
  if (global.json()) {
    PrintLine(ToJson(response));
    return kExitOk;
  }
  PrintLine(absl::StrCat("DATAINFOID ", KeyText(response.key()), "  VERSION ", response.version(),
                         "  SLOT ", response.slot()));
  PrintLine(absl::StrCat("PUBLISHERS (", response.publishers_size(), ")"));
  std::vector<std::vector<std::string>> pubs = {
      {"REGISTRATION", "DATA", "ZONE", "APP", "OWNER", "VERSION"}};
  for (const pb::PublisherInfo& p : response.publishers()) pubs.push_back(PublisherRow(p));
  PrintTable(pubs);
  PrintLine(absl::StrCat("SUBSCRIBERS (", response.subscribers_size(), ")"));
  std::vector<std::vector<std::string>> subs = {
      {"REGISTRATION", "ZONE", "SCOPE", "OWNER", "ACKED", "PUSHED"}};
  for (const pb::SubscriberInfo& s : response.subscribers()) subs.push_back(SubscriberRow(s));
  PrintTable(subs);
  return kExitOk;
}

int RunClients(const GlobalFlags& global, const ClientsFlags& flags) {
  pb::QueryByClientRequest request;
  request.set_address(flags.address);
  pb::QueryByClientResponse response;
  absl::Status status = CallUnary(global, Millis(flags.timeout_seconds),
                                  [&](pb::Registry::Stub& stub, grpc::ClientContext& context) {
                                    return stub.QueryByClient(&context, request, &response);
                                  });
  if (!status.ok()) return ReportError(status);
  if (global.json()) {
    PrintLine(ToJson(response));
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"OWNER", "KIND", "DATAINFOID", "REGISTRATION", "ZONE"}};
  for (const pb::ClientInfo& c : response.clients()) {
    for (const pb::PublisherInfo& p : c.publishers()) {
      rows.push_back({OwnerText(c.owner()), "publisher", KeyText(p.key()),
                      p.publisher().registration_id(), p.zone()});
    }
    for (const pb::SubscriberInfo& s : c.subscribers()) {
      rows.push_back(
          {OwnerText(c.owner()), "subscriber", KeyText(s.key()), s.registration_id(), s.zone()});
    }
  }
  PrintTable(rows);
  return kExitOk;
}

}  // namespace cairn::cli
