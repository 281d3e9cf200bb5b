#include "cluster_chaos.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cairn/cluster/v1/cluster.pb.h"
#include "process.h"
#include "registry/cluster/cluster_keys.h"

namespace cairn::chaos {

using cairn::testing::Eventually;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

const std::vector<std::string> kMeta = {"m1", "m2"};
const std::vector<std::string> kData = {"d1", "d2", "d3"};
const std::vector<std::string> kSessions = {"s1", "s2"};
// The harness's timings (cluster_harness.cc): the faults are sized by them.
constexpr milliseconds kLease{2000};
constexpr milliseconds kSessionLease{4000};
// Production's datum cache period (the harness shortens it for the tests).
const std::vector<std::string> kCacheDefault = {"--datum-cache-idle-ms", "600000"};

std::string RoleOf(const std::string& id) {
  switch (id[0]) {
    case 'm':
      return "meta";
    case 'd':
      return "data";
    default:
      return "session";
  }
}

}  // namespace

const std::vector<std::string>& ClusterChaos::Names() {
  static const std::vector<std::string> names = {
      "data_kill9_restart",     "data_sigstop",          "two_data_kill9_restart",
      "data_rolling_sigterm",   "session_kill9_restart", "session_sigstop",
      "meta_leader_kill9",      "meta_leader_sigstop",   "etcd_sigstop",
      "etcd_down_then_rolling", "data_cut_from_etcd",    "session_cut_from_data",
      "data_to_session_oneway"};
  return names;
}

bool ClusterChaos::NeedsPartitions(const std::string& name) {
  return name == "data_cut_from_etcd" || name == "session_cut_from_data" ||
         name == "data_to_session_oneway";
}

ClusterChaos::ClusterChaos(ChaosSettings settings, Report& report, NetnsLab* lab)
    : settings_(settings), report_(report), lab_(lab), harness_(settings.slots, 2) {}

ClusterChaos::~ClusterChaos() {
  if (lab_ != nullptr) (void)lab_->HealAll();
  canaries_.reset();
}

absl::Status ClusterChaos::StartMember(const std::string& role, const std::string& id) {
  if (harness_.Start(role, id, kCacheDefault) == nullptr) {
    return absl::UnavailableError(absl::StrCat(id, " did not start"));
  }
  return absl::OkStatus();
}

absl::Status ClusterChaos::Setup() {
  if (lab_ != nullptr) {
    harness_.etcd().Place(lab_->ExecPrefix("etcd"), lab_->Address("etcd"));
    for (const auto& ids : {kMeta, kData, kSessions}) {
      for (const auto& id : ids) harness_.Place(id, {lab_->ExecPrefix(id), lab_->Address(id)});
    }
  }
  if (!harness_.StartEtcd()) return absl::UnavailableError("etcd did not start");
  auto etcd = harness_.ConnectEtcd();
  if (!etcd.ok()) return etcd.status();
  etcd_ = std::move(*etcd);
  for (const auto& ids : {kMeta, kData, kSessions}) {
    for (const auto& id : ids) {
      if (auto started = StartMember(RoleOf(id), id); !started.ok()) return started;
    }
  }
  if (!Eventually([&] { return Settled(); }, seconds(60))) {
    return absl::DeadlineExceededError("the slot table did not settle in 60 s");
  }
  std::string s1 = harness_.Find("s1")->grpc_address, s2 = harness_.Find("s2")->grpc_address;
  session_names_ = {{s1, "s1"}, {s2, "s2"}};
  CanaryOptions options;
  for (int c = 0; c < settings_.publishing_clients; ++c) {
    options.publisher_servers.push_back(c % 2 == 0 ? std::vector<std::string>{s1, s2}
                                                   : std::vector<std::string>{s2, s1});
  }
  options.pinned_subscribers = {{"s1", s1}, {"s2", s2}};
  options.data_ids = settings_.data_ids;
  options.publishers_per_data_id = settings_.publishers_per_data_id;
  options.data_id_prefix = "chaos-cluster";
  canaries_ = std::make_unique<Canaries>(options);
  if (auto started = canaries_->Start(seconds(30)); !started.ok()) return started;
  std::printf(
      "cluster up%s: etcd, m1 m2, d1 d2 d3, s1 s2 (%u slots, 2 replicas; harness timings: "
      "etcd lease 2 s, session lease 4 s, rebuild timeout 2 s); %d publishers on %d "
      "dataIds over %d clients (%s), %d subscribers\n",
      lab_ != nullptr ? " in network namespaces" : " on 127.0.0.1", settings_.slots,
      canaries_->publisher_count(), settings_.data_ids, settings_.publishing_clients,
      canaries_->Spread(session_names_).c_str(), canaries_->subscriber_count());
  std::fflush(stdout);
  return absl::OkStatus();
}

bool ClusterChaos::Settled() {
  std::set<std::string> live;
  for (const auto& id : kData) {
    auto* member = harness_.Find(id);
    if (member != nullptr && member->process->Running()) live.insert(id);
  }
  auto kv = etcd_->Get(cluster::ClusterKeys("cairn").SlotTable());
  cluster::v1::SlotTable table;
  if (!kv.ok() || !table.ParseFromString(kv->value) ||
      table.slots_size() != static_cast<int>(settings_.slots)) {
    return false;
  }
  std::map<std::string, int> leads;
  for (const auto& slot : table.slots()) {
    if (!live.contains(slot.leader()) || slot.followers_size() != 1 ||
        !live.contains(slot.followers(0))) {
      return false;
    }
    ++leads[slot.leader()];
  }
  if (leads.size() != live.size()) return false;
  auto [lo, hi] = std::minmax_element(
      leads.begin(), leads.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  return hi->second - lo->second <= 1;
}

std::string ClusterChaos::Leadership() {
  auto kv = etcd_->Get(cluster::ClusterKeys("cairn").SlotTable());
  cluster::v1::SlotTable table;
  if (!kv.ok() || !table.ParseFromString(kv->value)) return "(no slot table)";
  std::map<std::string, int> leads;
  for (const auto& slot : table.slots()) ++leads[slot.leader()];
  std::string out;
  for (const auto& [id, count] : leads)
    absl::StrAppend(&out, out.empty() ? "" : " ", id, ":", count);
  return out;
}

std::string ClusterChaos::MetaLeader() {
  auto kv = etcd_->Get(cluster::ClusterKeys("cairn").MetaLeader());
  return kv.ok() ? kv->value : "";
}

void ClusterChaos::Recover(const std::string& after) {
  for (const auto& ids : {kMeta, kData, kSessions}) {
    for (const auto& id : ids) {
      auto* member = harness_.Find(id);
      if (member != nullptr && member->process->Running()) continue;
      std::printf("    %s had exited after %s (code %d); restarting it\n", id.c_str(),
                  after.c_str(), member ? member->process->Wait(milliseconds(0)).value_or(-1) : -1);
      if (auto started = StartMember(RoleOf(id), id); !started.ok()) {
        std::printf("    %s\n", started.ToString().c_str());
      }
    }
  }
  if (!Eventually([&] { return Settled() && canaries_->AllViewsMatch(); }, seconds(60))) {
    std::printf("    after %s: not settled in 60 s: %s\n", after.c_str(),
                canaries_->Mismatches().c_str());
  }
  if (int replaced = canaries_->Rebalance(seconds(30)); replaced > 0) {
    std::printf("    %d client(s) had failed over: replaced on their first session (now %s)\n",
                replaced, canaries_->Spread(session_names_).c_str());
  }
  std::fflush(stdout);
}

void ClusterChaos::Run(const std::string& name, int round) {
  RunRound(
      *canaries_, report_, settings_, name, round, [&] { return Fault(name, round); },
      [&] { return Settled(); });
  Recover(name);
}

absl::StatusOr<Clock::time_point> ClusterChaos::KillRestart(const std::vector<std::string>& ids,
                                                            const std::string& role) {
  for (const auto& id : ids) harness_.Find(id)->process->Signal(SIGKILL);
  for (const auto& id : ids) harness_.Find(id)->process->Wait(seconds(10));
  canaries_->StartChurn();
  for (const auto& id : ids) {
    if (auto started = StartMember(role, id); !started.ok()) return started;
  }
  return Clock::now();
}

absl::StatusOr<Clock::time_point> ClusterChaos::RollingRestart() {
  for (size_t i = 0; i < kData.size(); ++i) {
    Clock::time_point stopping = Clock::now();
    std::optional<int> code = harness_.Stop(kData[i], SIGTERM, seconds(40));
    if (i == 0) canaries_->StartChurn();
    std::printf("    %s stopped by SIGTERM in %.1f s (exit %d)\n", kData[i].c_str(),
                std::chrono::duration<double>(Clock::now() - stopping).count(), code.value_or(-1));
    if (auto started = StartMember("data", kData[i]); !started.ok()) return started;
    if (i + 1 < kData.size()) Hold(seconds(2));
  }
  return Clock::now();
}

absl::StatusOr<Clock::time_point> ClusterChaos::Freeze(const std::string& id, milliseconds hold) {
  auto* member = harness_.Find(id);
  if (member == nullptr || !member->process->Running()) {
    return absl::FailedPreconditionError(id + " is not running");
  }
  std::string before = Leadership();
  member->process->Signal(SIGSTOP);
  canaries_->StartChurn();
  Hold(hold);
  std::printf("    %s stopped for %.1f s; slots led before: %s; at SIGCONT: %s\n", id.c_str(),
              std::chrono::duration<double>(hold).count(), before.c_str(), Leadership().c_str());
  member->process->Signal(SIGCONT);
  return Clock::now();
}

absl::StatusOr<Clock::time_point> ClusterChaos::Partition(
    const std::vector<std::pair<std::string, std::string>>& cuts, milliseconds hold) {
  if (lab_ == nullptr) return absl::FailedPreconditionError("no network namespaces");
  std::string before = Leadership();
  std::string cut_list;
  for (const auto& [from, to] : cuts) {
    if (auto cut = lab_->Cut(from, to); !cut.ok()) {
      (void)lab_->HealAll();
      return cut;
    }
    absl::StrAppend(&cut_list, cut_list.empty() ? "" : ", ", from, "->", to);
  }
  canaries_->StartChurn();
  Hold(hold);
  std::printf("    cut %s for %.1f s; slots led before: %s; at heal: %s\n", cut_list.c_str(),
              std::chrono::duration<double>(hold).count(), before.c_str(), Leadership().c_str());
  if (auto healed = lab_->HealAll(); !healed.ok()) return healed;
  return Clock::now();
}

absl::StatusOr<Clock::time_point> ClusterChaos::Fault(const std::string& name, int round) {
  const std::string& data = kData[round % 3];
  const std::string& other_data = kData[(round + 1) % 3];
  const std::string& session = kSessions[round % 2];
  if (name == "data_kill9_restart") return KillRestart({data}, "data");
  if (name == "data_sigstop") return Freeze(other_data, 3 * kLease);
  if (name == "session_sigstop") return Freeze(kSessions[(round + 1) % 2], kSessionLease * 3 / 2);
  if (name == "meta_leader_sigstop" || name == "meta_leader_kill9") {
    std::string leader;
    Eventually([&] { return !(leader = MetaLeader()).empty(); }, seconds(15));
    if (harness_.Find(leader) == nullptr) {
      return absl::NotFoundError("no meta leader in etcd (\"" + leader + "\")");
    }
    std::printf("    meta leader: %s\n", leader.c_str());
    if (name == "meta_leader_sigstop") return Freeze(leader, 3 * kLease);
    // Restarted only after the standby took over (one and a half leases).
    harness_.Find(leader)->process->Signal(SIGKILL);
    harness_.Find(leader)->process->Wait(seconds(10));
    canaries_->StartChurn();
    Hold(kLease * 3 / 2);
    std::printf("    meta leader %.1f s after the kill: %s\n",
                std::chrono::duration<double>(kLease * 3 / 2).count(), MetaLeader().c_str());
    if (auto started = StartMember("meta", leader); !started.ok()) return started;
    return Clock::now();
  }
  if (name == "etcd_sigstop") {
    harness_.etcd().Pause();
    canaries_->StartChurn();
    Hold(seconds(5));
    harness_.etcd().Resume();
    return Clock::now();
  }
  if (name == "two_data_kill9_restart") return KillRestart({data, other_data}, "data");
  if (name == "data_rolling_sigterm") return RollingRestart();
  if (name == "session_kill9_restart") return KillRestart({session}, "session");
  if (name == "etcd_down_then_rolling") {
    harness_.etcd().Stop(SIGKILL);
    canaries_->StartChurn();
    Hold(seconds(5));
    if (!harness_.etcd().Restart()) return absl::UnavailableError("etcd did not restart");
    Clock::time_point back = Clock::now();
    bool settled = Eventually([&] { return Settled(); }, seconds(30));
    std::printf("    etcd back; slot table %s %.1f s later; rolling restart\n",
                settled ? "settled" : "NOT settled",
                std::chrono::duration<double>(Clock::now() - back).count());
    return RollingRestart();
  }
  if (name == "data_cut_from_etcd") {
    return Partition({{data, "etcd"}, {"etcd", data}}, 3 * kLease);
  }
  if (name == "session_cut_from_data") {
    return Partition({{session, other_data}, {other_data, session}}, kSessionLease * 3 / 2);
  }
  if (name == "data_to_session_oneway") {
    return Partition({{kData[(round + 2) % 3], kSessions[(round + 1) % 2]}}, kSessionLease * 3 / 2);
  }
  return absl::InvalidArgumentError("unknown fault " + name);
}

}  // namespace cairn::chaos
