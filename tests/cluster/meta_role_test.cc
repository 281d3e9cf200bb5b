// `cairn registry --role meta` processes against a real etcd: election among
// meta servers, the slot table they keep for the data servers that register
// (test-side MemberRegistrations stand in for data servers until the data
// role exists), failover after kill -9, and cairnctl cluster / slots.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "cairn/cluster/v1/cluster.pb.h"
#include "coord/membership.h"
#include "etcd_process.h"
#include "registry/cluster/cluster_keys.h"
#include "registry/cluster/slot_planner.h"

namespace cairn::cluster {
namespace {

using cairn::testing::BinDir;
using cairn::testing::ChildProcess;
using cairn::testing::EtcdProcess;
using cairn::testing::Eventually;
using cairn::testing::RunCommand;
using cairn::testing::TempDir;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint32_t kSlots = 64;

class MetaRoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(etcd_.Start()) << etcd_.Log();
    coord::EtcdOptions options;
    options.endpoints = {etcd_.endpoint()};
    options.request_timeout = milliseconds(1000);
    auto client = coord::EtcdClient::Create(options);
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }

  std::unique_ptr<ChildProcess> StartMeta(const std::string& id) {
    std::string ready = dir_.File("ready-" + id);
    auto process = ChildProcess::Start({BinDir() + "/cairn",
                                        "registry",
                                        "--role",
                                        "meta",
                                        "--etcd",
                                        etcd_.endpoint(),
                                        "--node-id",
                                        id,
                                        "--listen",
                                        "127.0.0.1:0",
                                        "--lease-ttl-s",
                                        "2",
                                        "--slots",
                                        std::to_string(kSlots),
                                        "--replicas",
                                        "2",
                                        "--max-slot-moves",
                                        "4",
                                        "--ready-file",
                                        ready},
                                       dir_.File("log-" + id));
    EXPECT_TRUE(Eventually([&] { return std::filesystem::exists(ready); }, seconds(10)))
        << process->Output();
    return process;
  }

  std::unique_ptr<coord::MemberRegistration> AddDataServer(const std::string& id) {
    v1::MemberInfo info;
    info.set_id(id);
    info.set_role("data");
    info.set_address("127.0.0.1:1");
    auto registration = std::make_unique<coord::MemberRegistration>(
        *client_, keys_.Member("data", id), info.SerializeAsString(), seconds(2));
    EXPECT_TRUE(registration->Start().ok());
    return registration;
  }

  absl::StatusOr<SlotTable> Table() {
    auto kv = client_->Get(keys_.SlotTable());
    if (!kv.ok()) return kv.status();
    return ParseSlotTable(kv->value);
  }

  std::string Leader() {
    auto kv = client_->Get(keys_.MetaLeader());
    return kv.ok() ? kv->value : "";
  }

  // The table is valid for `live`, every slot has 2 copies, and leaders and
  // followers are balanced.
  bool Settled(const std::vector<std::string>& live) {
    auto table = Table();
    if (!table.ok() || !ValidateSlotTable(*table, live, 2).ok()) return false;
    uint32_t lmin = UINT32_MAX, lmax = 0, fmin = UINT32_MAX, fmax = 0;
    for (const auto& [id, load] : ComputeLoad(*table, live)) {
      lmin = std::min(lmin, load.leaders);
      lmax = std::max(lmax, load.leaders);
      fmin = std::min(fmin, load.followers);
      fmax = std::max(fmax, load.followers);
    }
    for (const auto& a : table->slots) {
      if (a.followers.size() != 1) return false;
    }
    return lmax - lmin <= 1 && fmax - fmin <= 1;
  }

  EtcdProcess etcd_;
  TempDir dir_;
  std::unique_ptr<coord::EtcdClient> client_;
  ClusterKeys keys_{"cairn"};
};

TEST_F(MetaRoleTest, LeaderKeepsTheSlotTableAndAStandbyTakesOver) {
  auto d1 = AddDataServer("d1");
  auto d2 = AddDataServer("d2");
  auto d3 = AddDataServer("d3");
  auto m1 = StartMeta("m1");
  auto m2 = StartMeta("m2");

  ASSERT_TRUE(Eventually(
      [&] {
        return Settled({"d1", "d2", "d3"});
      },
      seconds(10)))
      << m1->Output() << m2->Output();
  const std::string first_leader = Leader();
  ASSERT_TRUE(first_leader == "m1" || first_leader == "m2") << first_leader;
  uint64_t epoch = Table()->epoch;

  // cairnctl reads the same facts from etcd.
  auto [code, out] =
      RunCommand({BinDir() + "/cairnctl", "cluster", "--etcd", etcd_.endpoint()}, seconds(10));
  EXPECT_EQ(code, 0) << out;
  for (const char* id : {"m1", "m2", "d1", "d2", "d3"}) {
    EXPECT_NE(out.find(id), std::string::npos) << id << "\n" << out;
  }
  EXPECT_EQ(std::count(out.begin(), out.end(), '*'), 1) << out;
  auto [slots_code, slots_out] = RunCommand(
      {BinDir() + "/cairnctl", "slots", "--etcd", etcd_.endpoint(), "--all"}, seconds(10));
  EXPECT_EQ(slots_code, 0) << slots_out;
  EXPECT_NE(slots_out.find("epoch " + std::to_string(epoch) + ", 64 slots, 2 replicas"),
            std::string::npos)
      << slots_out;
  auto [json_code, json_out] =
      RunCommand({BinDir() + "/cairnctl", "slots", "--etcd", etcd_.endpoint(), "--output", "json"},
                 seconds(10));
  EXPECT_EQ(json_code, 0);
  EXPECT_NE(json_out.find("\"replicas\":2"), std::string::npos) << json_out;

  // kill -9 the leader: the standby takes over within the lease TTL (2 s).
  ChildProcess& leader = first_leader == "m1" ? *m1 : *m2;
  const std::string standby = first_leader == "m1" ? "m2" : "m1";
  leader.Signal(SIGKILL);
  leader.Wait(seconds(5));
  auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(Eventually([&] { return Leader() == standby; }, seconds(6)));
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, milliseconds(4000));

  // The new leader rebalances onto a joining data server, a few slots per
  // step (max 4 moves, 64 slots: several epochs).
  auto d4 = AddDataServer("d4");
  ASSERT_TRUE(Eventually([&] { return Settled({"d1", "d2", "d3", "d4"}); }, seconds(30)));
  EXPECT_GE(Table()->epoch, epoch + 4);
  epoch = Table()->epoch;

  // A data server leaves: every slot has a leader among the others at once.
  d1->Leave();
  ASSERT_TRUE(Eventually(
      [&] {
        auto table = Table();
        return table.ok() && ValidateSlotTable(*table, {"d2", "d3", "d4"}, 2).ok();
      },
      seconds(3)));
  ASSERT_TRUE(Eventually([&] { return Settled({"d2", "d3", "d4"}); }, seconds(30)));

  // SIGTERM: the last meta resigns; its leader key goes at once.
  ChildProcess& last = first_leader == "m1" ? *m2 : *m1;
  last.Signal(SIGTERM);
  EXPECT_EQ(last.Wait(seconds(10)), 0) << last.Output();
  EXPECT_EQ(Leader(), "");
}

TEST_F(MetaRoleTest, BadClusterFlagsAreRefusedClearly) {
  auto [code, out] = RunCommand({BinDir() + "/cairn", "registry", "--role", "data,ledger", "--etcd",
                                 etcd_.endpoint(), "--listen", "127.0.0.1:0"},
                                seconds(10));
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("'ledger' is not one of meta, data, session"), std::string::npos) << out;
  auto [code2, out2] = RunCommand({BinDir() + "/cairn", "registry", "--role", "meta"}, seconds(10));
  EXPECT_EQ(code2, 2);
  EXPECT_NE(out2.find("etcd"), std::string::npos) << out2;
  auto [code3, out3] = RunCommand({BinDir() + "/cairn", "registry", "--role", "data,session",
                                   "--etcd", etcd_.endpoint(), "--listen", "127.0.0.1:0"},
                                  seconds(10));
  EXPECT_EQ(code3, 2);
  EXPECT_NE(out3.find("need data_listen"), std::string::npos) << out3;
}

}  // namespace
}  // namespace cairn::cluster
