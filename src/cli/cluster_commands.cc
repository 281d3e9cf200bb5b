// cairnctl cluster / slots: cluster mode's state, read straight from etcd
// (no registry server needed; see src/registry/cluster/cluster_keys.h).
#include <cstdio>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cairn/cluster/v1/cluster.pb.h"
#include "cli/commands.h"
#include "coord/etcd_client.h"
#include "registry/cluster/cluster_keys.h"
#include "registry/cluster/slot_planner.h"

namespace cairn::cli {
namespace {

// --cacert/--cert/--key (GlobalFlags::tls) name etcd's TLS here.
absl::StatusOr<std::unique_ptr<coord::EtcdClient>> Connect(const GlobalFlags& global,
                                                           const ClusterFlags& flags) {
  coord::EtcdOptions options;
  if (global.tls.enabled()) {
    auto credentials = MakeChannelCredentials(global.tls);
    if (!credentials.ok()) return credentials.status();
    options.credentials = std::move(*credentials);
  }
  options.endpoints = absl::StrSplit(flags.etcd, ',', absl::SkipEmpty());
  options.request_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(flags.timeout_seconds * 1000));
  return coord::EtcdClient::Create(options);
}

}  // namespace

int RunClusterMembers(const GlobalFlags& global, const ClusterFlags& flags) {
  auto client = Connect(global, flags);
  if (!client.ok()) return ReportError(client.status());
  cluster::ClusterKeys keys(flags.cluster);
  auto members = (*client)->GetPrefix(keys.Members());
  if (!members.ok()) return ReportError(members.status());
  std::string leader;
  auto leader_kv = (*client)->Get(keys.MetaLeader());
  if (leader_kv.ok()) {
    leader = leader_kv->value;
  } else if (leader_kv.status().code() != absl::StatusCode::kNotFound) {
    return ReportError(leader_kv.status());
  }
  std::vector<std::vector<std::string>> rows = {{"ROLE", "ID", "ADDRESS", "META LEADER"}};
  std::vector<std::string> json_members;
  for (const auto& kv : members->kvs) {
    cluster::v1::MemberInfo info;
    if (!info.ParseFromString(kv.value)) {
      // A member key we cannot read: show its name, not garbage.
      std::vector<std::string> parts = absl::StrSplit(kv.key.substr(keys.Members().size()), '/');
      info.set_role(parts.empty() ? "" : parts[0]);
      info.set_id(parts.size() > 1 ? parts[1] : "");
      info.set_address("(unreadable)");
    }
    bool is_leader = info.role() == "meta" && info.id() == leader;
    rows.push_back({info.role(), info.id(), info.address(), is_leader ? "*" : ""});
    json_members.push_back(ToJson(info));
  }
  if (global.json()) {
    PrintLine("{\"cluster\":\"" + flags.cluster + "\",\"meta_leader\":\"" + leader +
              "\",\"members\":[" + absl::StrJoin(json_members, ",") + "]}");
  } else {
    PrintTable(rows);
    if (leader.empty()) PrintLine("(no meta leader)");
  }
  return kExitOk;
}

int RunSlots(const GlobalFlags& global, const ClusterFlags& flags) {
  auto client = Connect(global, flags);
  if (!client.ok()) return ReportError(client.status());
  cluster::ClusterKeys keys(flags.cluster);
  auto stored = (*client)->Get(keys.SlotTable());
  if (!stored.ok()) return ReportError(stored.status());
  cluster::v1::SlotTable proto;
  if (!proto.ParseFromString(stored->value)) {
    return ReportError(absl::DataLossError("the stored slot table is unreadable"));
  }
  if (global.json()) {
    PrintLine(ToJson(proto));
    return kExitOk;
  }
  auto table = cluster::ParseSlotTable(stored->value);
  if (!table.ok()) return ReportError(table.status());
  PrintLine("epoch " + std::to_string(table->epoch) + ", " + std::to_string(table->slots.size()) +
            " slots, " + std::to_string(proto.replicas()) + " replicas");
  std::vector<std::vector<std::string>> balance = {{"DATA SERVER", "LEADS", "FOLLOWS"}};
  for (const auto& [id, load] : cluster::ComputeLoad(*table, {})) {
    balance.push_back(
        {id.empty() ? "(none)" : id, std::to_string(load.leaders), std::to_string(load.followers)});
  }
  if (balance.size() == 1) {
    PrintLine("(no data server: every slot is unassigned)");
  } else {
    PrintTable(balance);
  }
  if (flags.all_slots) {
    std::vector<std::vector<std::string>> rows = {{"SLOT", "EPOCH", "LEADER", "FOLLOWERS"}};
    for (const auto& a : table->slots) {
      rows.push_back({std::to_string(a.slot), std::to_string(a.epoch), a.leader,
                      absl::StrJoin(a.followers, ",")});
    }
    PrintTable(rows);
  }
  return kExitOk;
}

}  // namespace cairn::cli
