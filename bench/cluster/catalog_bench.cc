#include "catalog_bench.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "client/registry_client.h"
#include "cluster_harness.h"
#include "coord/etcd_kv_store.h"
#include "percentile.h"
#include "process.h"
#include "registry/app/revision_store.h"
#include "registry/cluster/cluster_keys.h"

namespace cairn::bench {
namespace {

using Clock = std::chrono::steady_clock;
using cairn::testing::ClusterHarness;
using cairn::testing::Eventually;
using std::chrono::seconds;

// utime + stime of a process, in milliseconds.
double CpuMs(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);
  }
  return ticks * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

pb::RevisionMeta Meta(const std::string& tag, int i) {
  pb::RevisionMeta meta;
  meta.set_app_name("catalog-" + tag + "-" + std::to_string(i));
  meta.set_revision("rev-" + tag + "-" + std::to_string(i));
  auto* iface = meta.add_interfaces();
  iface->mutable_key()->set_data_id("com.catalog." + tag + ".Service" + std::to_string(i) + ":1.0");
  (*iface->mutable_params())["protocol"] = "bolt";
  (*iface->mutable_params())["weight"] = "100";
  return meta;
}

}  // namespace

bool RunCatalog(const CatalogSizes& sizes, const RecordFn& record) {
  ClusterHarness cluster(64, 1);
  if (!cluster.StartEtcd()) {
    std::fprintf(stderr, "catalog: etcd did not start\n");
    return false;
  }
  const std::vector<std::pair<std::string, std::string>> members = {
      {"meta", "m1"}, {"data", "d1"}, {"session", "s1"}, {"session", "s2"}};
  for (const auto& [role, id] : members) {
    // The default datum cache period (the harness shortens it for tests).
    if (cluster.Start(role, id, {"--log-level", "warn", "--datum-cache-idle-ms", "600000"}) ==
        nullptr) {
      std::fprintf(stderr, "catalog: %s did not start\n%s", id.c_str(), cluster.Logs().c_str());
      return false;
    }
  }
  auto etcd = cluster.ConnectEtcd();
  if (!etcd.ok()) return false;
  auto kv = coord::OpenEtcdKvStore(**etcd, cluster::ClusterKeys("cairn").Kv());
  if (!kv.ok()) return false;
  auto store = NewKvRevisionStore(**kv);
  RegistryClientOptions options;
  options.servers = {cluster.Find("s1")->grpc_address};
  options.client_id = "catalog-bench";
  options.keepalive_interval = std::chrono::milliseconds(1000);
  auto client = RegistryClient::Create(options);
  if (!client.ok() || !(*client)->WaitConnected(seconds(10)).ok()) return false;
  pid_t sessions[] = {cluster.Find("s1")->process->pid(), cluster.Find("s2")->process->pid()};
  auto session_cpu = [&] { return CpuMs(sessions[0]) + CpuMs(sessions[1]); };

  // The anchor: the same record put straight into etcd.
  std::vector<double> puts;
  for (int i = 0; i < sizes.registrations; ++i) {
    StoredRevision stored{Meta("anchor", i), 1};
    Clock::time_point start = Clock::now();
    if (!store->Put(stored).ok()) return false;
    puts.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(puts.begin(), puts.end());
  std::printf("etcd put (anchor)           %d puts: p50 %.2f ms, p99 %.2f ms\n",
              sizes.registrations, NearestRank(puts, 0.5), NearestRank(puts, 0.99));
  record("revision_put", "etcd", "latency_p50_ms", "ms", NearestRank(puts, 0.5));
  record("revision_put", "etcd", "latency_p99_ms", "ms", NearestRank(puts, 0.99));

  auto phase = [&](const std::string& tag, int catalog) {
    std::this_thread::sleep_for(seconds(2));  // the sessions settle
    std::vector<double> latency;
    double cpu_before = session_cpu();
    Clock::time_point begin = Clock::now();
    for (int i = 0; i < sizes.registrations; ++i) {
      pb::RevisionMeta meta = Meta(tag, i);
      RevisionSpec spec{meta.app_name(), {{meta.interfaces(0).key(), {}}}, meta.revision()};
      for (const auto& [k, v] : meta.interfaces(0).params()) spec.interfaces[0].params[k] = v;
      Clock::time_point start = Clock::now();
      auto id = (*client)->RegisterRevision(spec);
      if (!id.ok()) {
        std::fprintf(stderr, "catalog: registration failed: %s\n", id.status().ToString().c_str());
        return false;
      }
      latency.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    double wall = std::chrono::duration<double>(Clock::now() - begin).count();
    std::sort(latency.begin(), latency.end());
    // Both sessions also apply the catalog change the watch delivers after
    // the answer: wait for it before reading their CPU time.
    std::this_thread::sleep_for(seconds(2));
    double cpu_per = (session_cpu() - cpu_before) / sizes.registrations;
    std::string workload = "revision_register_" + tag + "_catalog";
    std::printf(
        "%-27s %d registrations (catalog %d): p50 %.2f ms, p99 %.2f ms, %.0f/s, sessions' "
        "CPU %.2f ms per registration\n",
        workload.c_str(), sizes.registrations, catalog, NearestRank(latency, 0.5),
        NearestRank(latency, 0.99), sizes.registrations / wall, cpu_per);
    std::fflush(stdout);
    record(workload, "cairn-cluster", "latency_p50_ms", "ms", NearestRank(latency, 0.5));
    record(workload, "cairn-cluster", "latency_p99_ms", "ms", NearestRank(latency, 0.99));
    record(workload, "cairn-cluster", "registrations_per_s", "1/s", sizes.registrations / wall);
    record(workload, "cairn-cluster", "sessions_cpu_ms_per_registration", "ms", cpu_per);
    record(workload, "cairn-cluster", "catalog_revisions_at_start", "count", catalog);
    return true;
  };
  if (!phase("small", sizes.registrations)) return false;  // the anchor's puts

  // Other sessions' revisions, straight into etcd from 4 threads.
  std::atomic<int> next{0}, failed{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&] {
      for (int i = next++; i < sizes.preload; i = next++) {
        if (!store->Put({Meta("preload", i), 1}).ok()) ++failed;
      }
    });
  }
  for (auto& w : writers) w.join();
  if (failed > 0) return false;
  // Both sessions know the last one before the second phase.
  std::string last = "rev-preload-" + std::to_string(sizes.preload - 1);
  for (const char* id : {"s1", "s2"}) {
    auto stub = pb::Registry::NewStub(
        grpc::CreateChannel(cluster.Find(id)->grpc_address, grpc::InsecureChannelCredentials()));
    bool known = Eventually(
        [&] {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + seconds(5));
          pb::GetRevisionRequest request;
          request.set_revision(last);
          pb::GetRevisionResponse response;
          return stub->GetRevision(&context, request, &response).ok();
        },
        seconds(120));
    if (!known) {
      std::fprintf(stderr, "catalog: %s never learned the preloaded revisions\n", id);
      return false;
    }
  }
  return phase("large", sizes.preload + 2 * sizes.registrations);
}

}  // namespace cairn::bench
