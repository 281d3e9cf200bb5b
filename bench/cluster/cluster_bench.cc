// Cluster-mode convergence benchmark (bench/cluster/run).
//
// Starts etcd and a registry cluster on 127.0.0.1 (2 meta, 3 data, 2 session
// processes; tests/support/cluster_harness.h, with its short test timings:
// etcd lease 2 s, session lease 4 s), two clients that each start on a
// different session, `services` x `publishers` background publishers and a
// subscriber of every service and of a probe service on each client. Then,
// for each fault, `repeats` times: cause it, publish one probe publisher at
// once, and time until every subscriber sees the probe and every background
// publisher (convergence); then heal it (restart the process) and wait until
// the slot table has settled again (not timed).
//
// Faults: kill -9 of a data server, of a session, of the meta leader; a data
// server joining (slots rebalance onto it) and leaving with SIGTERM (its
// slots move away). Baseline, in the same run: the same probe with no fault
// (the push latency of the healthy cluster), the anchor the faults are
// compared with.
//
// One more healthy-cluster workload: app_instance_to_interface, an app-level
// instance (application-level discovery) until every interface-level
// subscriber of an interface its revision serves sees it.
//
// Also `load` (registrations/s and memory per publisher, cluster against
// standalone) and `catalog` (catalog_bench.h: revision registrations with a
// small and a large catalog).
//
// Prints p50/p99/max per fault; --json writes records {workload, system,
// metric, value, unit} with system "cairn-cluster".
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "cairn/cluster/v1/cluster.pb.h"
#include "catalog_bench.h"
#include "client/registry_client.h"
#include "cluster_harness.h"
#include "coord/etcd_client.h"
#include "percentile.h"
#include "process.h"
#include "registrar.h"
#include "registry/cluster/cluster_keys.h"

namespace cairn {
namespace {

using cairn::testing::ClusterHarness;
using cairn::testing::Eventually;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Record {
  std::string workload, metric, unit;
  double value;
  std::string system = "cairn-cluster";
};

// The harness shortens the sessions' datum cache period for the tests; the
// benchmark runs the default.
const std::vector<std::string> kCacheDefault = {"--datum-cache-idle-ms", "600000"};

pb::DataInfoKey Key(const std::string& id) {
  pb::DataInfoKey key;
  key.set_data_id(id);
  return key;
}

// Every slot has a live leader and one live follower, every live data server
// leads some slot, and leaders per data server differ by at most one.
bool TableSettled(coord::EtcdClient& etcd, const std::set<std::string>& live) {
  auto kv = etcd.Get(cluster::ClusterKeys("cairn").SlotTable());
  cluster::v1::SlotTable table;
  if (!kv.ok() || !table.ParseFromString(kv->value)) return false;
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

int64_t RssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

// One subscriber's latest view: the data strings of the publishers.
struct View {
  std::mutex mu;
  std::set<std::string> data;
};

class Bench {
 public:
  Bench(int services, int publishers) : services_(services), publishers_per_service_(publishers) {}

  bool Setup() {
    if (!cluster_.StartEtcd()) return Fail("etcd did not start");
    auto client = cluster_.ConnectEtcd();
    if (!client.ok()) return Fail("etcd client");
    etcd_ = std::move(*client);
    for (const char* id : {"m1", "m2"}) {
      if (!cluster_.Start("meta", id, kCacheDefault)) return Fail(std::string("start ") + id);
    }
    for (const char* id : {"d1", "d2", "d3"}) {
      if (!cluster_.Start("data", id, kCacheDefault)) return Fail(std::string("start ") + id);
    }
    for (const char* id : {"s1", "s2"}) {
      if (!cluster_.Start("session", id, kCacheDefault)) return Fail(std::string("start ") + id);
    }
    if (!WaitSettled({"d1", "d2", "d3"})) return Fail("slot table did not settle");
    std::string s1 = cluster_.Find("s1")->grpc_address, s2 = cluster_.Find("s2")->grpc_address;
    for (int c = 0; c < 2; ++c) {
      RegistryClientOptions options;
      options.servers =
          c == 0 ? std::vector<std::string>{s1, s2} : std::vector<std::string>{s2, s1};
      options.client_id = "bench-" + std::to_string(c);
      options.reconnect_backoff_max = milliseconds(500);
      options.keepalive_interval = milliseconds(1000);
      auto created = RegistryClient::Create(options);
      if (!created.ok() || !(*created)->WaitConnected(seconds(10)).ok()) return Fail("client");
      clients_.push_back(std::move(*created));
    }
    for (int s = 0; s < services_; ++s) {
      std::string id = "svc-" + std::to_string(s);
      for (int p = 0; p < publishers_per_service_; ++p) {
        std::string data = id + "/" + std::to_string(p);
        auto publisher = clients_[p % 2]->Publish(PublishSpec{Key(id), {data}});
        if (!publisher.ok()) return Fail("publish: " + publisher.status().ToString());
        held_.push_back(std::move(*publisher));
        expected_[id].insert(data);
      }
      Subscribe(id);
    }
    Subscribe("probe");
    if (!Eventually([&] { return Converged(); }, seconds(30))) return Fail("initial views");
    return true;
  }

  // Publishes a probe right after `fault` and returns the ms until every
  // view is complete again, or -1 after 20 s.
  double Measure(const std::function<void()>& fault) {
    fault();
    Clock::time_point start = Clock::now();
    std::string data = "probe-" + std::to_string(probes_++);
    auto publisher = clients_[probes_ % 2]->Publish(PublishSpec{Key("probe"), {data}});
    if (!publisher.ok()) {
      std::fprintf(stderr, "probe publish failed: %s\n", publisher.status().ToString().c_str());
      return -1;
    }
    held_.push_back(std::move(*publisher));
    {
      std::lock_guard lock(mu_);
      expected_["probe"].insert(data);
    }
    if (!Eventually([&] { return Converged(); }, seconds(20))) {
      std::fprintf(stderr, "views not complete after 20 s: %s\n", Incomplete().c_str());
      return -1;
    }
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  }

  // Runs `repeats` rounds of one fault and records p50/p99/max. With
  // `while_moving`, a round keeps publishing probes (each timed) until the
  // slot table has settled, and counts its slowest one: slots move a few at a
  // time after a join, so the disruption is spread over seconds.
  void Run(const std::string& workload, int repeats, const std::function<void(int)>& fault,
           const std::function<void(int)>& heal, bool while_moving = false) {
    std::vector<double> samples;
    int failures = 0;
    for (int r = 0; r < repeats; ++r) {
      double ms = Measure([&] { fault(r); });
      Clock::time_point deadline = Clock::now() + seconds(60);
      while (while_moving && ms >= 0 && !Settled(LiveData()) && Clock::now() < deadline) {
        double next = Measure([] {});
        ms = next < 0 ? next : std::max(ms, next);
        std::this_thread::sleep_for(milliseconds(100));
      }
      if (ms < 0) {
        ++failures;
      } else {
        samples.push_back(ms);
      }
      heal(r);
      if (!WaitSettled(LiveData()))
        std::fprintf(stderr, "%s: table did not settle\n", workload.c_str());
    }
    Report(workload, samples, failures);
  }

  void Report(const std::string& workload, std::vector<double> samples, int failures) {
    std::sort(samples.begin(), samples.end());
    auto pct = [&](double p) { return bench::NearestRank(samples, p); };
    std::printf("%-24s repeats %2d  p50 %8.1f ms  p99 %8.1f ms  max %8.1f ms  failed %d\n",
                workload.c_str(), static_cast<int>(samples.size()) + failures, pct(0.5), pct(0.99),
                samples.empty() ? -1 : samples.back(), failures);
    std::fflush(stdout);
    records_.push_back({workload, "convergence_p50_ms", "ms", pct(0.5)});
    records_.push_back({workload, "convergence_p99_ms", "ms", pct(0.99)});
    records_.push_back({workload, "failed_rounds", "count", static_cast<double>(failures)});
  }

  // Application-level discovery across sessions: an app instance published
  // on one session (revision registered once, through session 1) until every
  // interface-level subscriber of an interface it serves, on both sessions,
  // sees it rendered. Compare with no_fault (an interface-level publish).
  void RunAppInstances(int repeats) {
    RevisionSpec spec{"bench-app", {{Key("app-iface"), {{"weight", "100"}}}}, ""};
    auto revision = clients_[0]->RegisterRevision(spec);
    if (!revision.ok()) {
      std::fprintf(stderr, "register revision: %s\n", revision.status().ToString().c_str());
      return;
    }
    Subscribe("app-iface");
    if (!Eventually([&] { return Converged(); }, seconds(10))) return;
    std::vector<double> samples;
    int failures = 0;
    for (int r = 0; r < repeats; ++r) {
      std::string endpoint = "bolt://127.0.0.1:" + std::to_string(30000 + r);
      Clock::time_point start = Clock::now();
      auto instance = clients_[r % 2]->PublishApp({"bench-app", *revision, {endpoint}, "", {}});
      if (!instance.ok()) {
        std::fprintf(stderr, "app instance %d: publish failed: %s\n", r,
                     instance.status().ToString().c_str());
        ++failures;
        continue;
      }
      held_.push_back(std::move(*instance));
      {
        std::lock_guard lock(mu_);
        expected_["app-iface"].insert(endpoint + "?weight=100");
      }
      if (!Eventually([&] { return Converged(); }, seconds(20))) {
        std::fprintf(stderr, "app instance %d: views not complete after 20 s: %s\n", r,
                     Incomplete().c_str());
        ++failures;
        continue;
      }
      samples.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    Report("app_instance_to_interface", samples, failures);
  }

  ClusterHarness& cluster() { return cluster_; }
  const std::vector<Record>& records() const { return records_; }

  std::string MetaLeader() {
    auto kv = etcd_->Get(keys_.MetaLeader());
    return kv.ok() ? kv->value : "";
  }
  bool WaitMetaLeader() {
    return Eventually([&] { return !MetaLeader().empty(); }, seconds(15));
  }
  void Restart(const std::string& role, const std::string& id) {
    cluster_.Stop(id, SIGKILL, seconds(5));
    if (!cluster_.Start(role, id, kCacheDefault))
      std::fprintf(stderr, "cannot restart %s\n", id.c_str());
  }
  std::set<std::string> LiveData() {
    std::set<std::string> live;
    for (const char* id : {"d1", "d2", "d3", "d4"}) {
      auto* m = cluster_.Find(id);
      if (m && m->process->Running()) live.insert(id);
    }
    return live;
  }

 private:
  bool Fail(const std::string& what) {
    std::fprintf(stderr, "cluster bench: %s\n%s\n", what.c_str(), cluster_.Logs().c_str());
    return false;
  }

  void Subscribe(const std::string& id) {
    for (auto& client : clients_) {
      auto view = std::make_shared<View>();
      auto sub = client->Subscribe(SubscribeSpec{Key(id)}, [view](const pb::Push& push) {
        std::set<std::string> data;
        for (const auto& zone : push.zones()) {
          for (const auto& p : zone.publishers()) data.insert(p.data().begin(), p.data().end());
        }
        std::lock_guard lock(view->mu);
        view->data = std::move(data);
      });
      if (sub.ok()) subscriptions_.push_back(std::move(*sub));
      std::lock_guard lock(mu_);
      views_[id].push_back(view);
    }
  }

  // The views that differ from what they should hold, for failure messages.
  std::string Incomplete() {
    std::lock_guard lock(mu_);
    std::string out;
    for (auto& [id, views] : views_) {
      for (size_t i = 0; i < views.size(); ++i) {
        std::lock_guard view_lock(views[i]->mu);
        if (views[i]->data == expected_[id]) continue;
        out += id + " (client " + std::to_string(i) + ": " + std::to_string(views[i]->data.size()) +
               " of " + std::to_string(expected_[id].size()) + ") ";
      }
    }
    return out;
  }

  bool Converged() {
    std::lock_guard lock(mu_);
    for (auto& [id, views] : views_) {
      for (auto& view : views) {
        std::lock_guard view_lock(view->mu);
        if (view->data != expected_[id]) return false;
      }
    }
    return true;
  }

  // Every slot has a live leader and follower and every live data server
  // leads some slot.
  bool WaitSettled(const std::set<std::string>& live) {
    return Eventually([&] { return TableSettled(*etcd_, live); }, seconds(60));
  }

 public:
  bool Settled(const std::set<std::string>& live) { return TableSettled(*etcd_, live); }

 private:
  const int services_;
  const int publishers_per_service_;
  ClusterHarness cluster_{256, 2};
  std::unique_ptr<coord::EtcdClient> etcd_;
  cluster::ClusterKeys keys_{"cairn"};
  std::vector<std::unique_ptr<RegistryClient>> clients_;
  std::vector<std::shared_ptr<Publisher>> held_;
  std::vector<std::shared_ptr<Subscription>> subscriptions_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::shared_ptr<View>>> views_;
  std::map<std::string, std::set<std::string>> expected_;
  int probes_ = 0;
  std::vector<Record> records_;
};

std::string ToJson(const std::vector<Record>& records) {
  std::string out = "[\n";
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    char value[64];
    std::snprintf(value, sizeof(value), "%.3f", r.value);
    out += "  {\"workload\": \"" + r.workload + "\", \"system\": \"" + r.system +
           "\", \"metric\": \"" + r.metric + "\", \"value\": " + value + ", \"unit\": \"" + r.unit +
           "\"}";
    out += i + 1 < records.size() ? ",\n" : "\n";
  }
  return out + "]\n";
}

struct LoadSizes {
  int64_t register_instances = 100000;
  int64_t hold_instances = 1000000;
  int connections = 100;
  int window = 16;
  int per_service = 100;
};

// Registration rate and memory: the same Registrar against a standalone
// registry and against a 1-meta, 3-data, 2-session cluster (2 replicas).
bool RunLoad(const LoadSizes& sizes, std::vector<Record>& records) {
  struct Target {
    std::string system;
    std::vector<std::string> servers;
    std::vector<std::pair<std::string, pid_t>> processes;  // id, pid
  };
  auto measure = [&](Target& target) {
    auto rss = [&] {
      int64_t total = 0;
      for (auto& [id, pid] : target.processes) total += RssBytes(pid);
      return total;
    };
    int64_t idle = rss();
    bench::Registrar registrar(target.servers, sizes.connections, sizes.window);
    auto reg = registrar.Run(
        sizes.register_instances,
        static_cast<int>(std::max<int64_t>(1, sizes.register_instances / sizes.per_service)), "reg",
        seconds(600));
    std::printf("%-14s register %lld: %.0f/s (p50 %.1f ms, p99 %.1f ms), %lld failed\n",
                target.system.c_str(), static_cast<long long>(sizes.register_instances),
                reg.per_second, reg.p50_ms, reg.p99_ms, static_cast<long long>(reg.failed));
    std::fflush(stdout);
    records.push_back({"register", "registrations_per_s", "1/s", reg.per_second, target.system});
    records.push_back({"register", "latency_p99_ms", "ms", reg.p99_ms, target.system});
    registrar.Close();
    std::this_thread::sleep_for(seconds(3));  // the closed streams' publishers go
    bench::Registrar holder(target.servers, sizes.connections, 64);
    auto held =
        holder.Run(sizes.hold_instances,
                   static_cast<int>(std::max<int64_t>(1, sizes.hold_instances / sizes.per_service)),
                   "hold", seconds(1200));
    std::this_thread::sleep_for(seconds(3));  // replication and allocator settle
    int64_t loaded = rss();
    double per =
        static_cast<double>(loaded) / static_cast<double>(std::max<int64_t>(held.accepted, 1));
    std::printf("%-14s hold %lld: RSS %.1f MB (idle %.1f MB) = %.0f bytes per publisher",
                target.system.c_str(), static_cast<long long>(held.accepted), loaded / 1e6,
                idle / 1e6, per);
    for (auto& [id, pid] : target.processes)
      std::printf(" | %s %.1f MB", id.c_str(), RssBytes(pid) / 1e6);
    std::printf("\n");
    std::fflush(stdout);
    records.push_back({"hold", "rss_bytes", "bytes", static_cast<double>(loaded), target.system});
    records.push_back({"hold", "rss_bytes_per_publisher", "bytes", per, target.system});
    records.push_back(
        {"hold", "publishers", "count", static_cast<double>(held.accepted), target.system});
    holder.Close();
    return reg.failed == 0 && held.failed == 0;
  };

  bool ok = true;
  {
    cairn::testing::RegistryProcess standalone(
        {"--max-registrations-per-client", "1000000", "--log-level", "warn"});
    if (!standalone.Start()) {
      std::fprintf(stderr, "standalone registry did not start\n");
      return false;
    }
    Target t{"cairn", {standalone.grpc_address()}, {{"standalone", standalone.process()->pid()}}};
    ok &= measure(t);
  }
  {
    ClusterHarness cluster(256, 2);
    if (!cluster.StartEtcd()) return false;
    coord::EtcdOptions options;
    options.endpoints = {cluster.etcd().endpoint()};
    auto etcd = coord::EtcdClient::Create(options);
    if (!etcd.ok()) return false;
    std::vector<std::string> extra = {"--max-registrations-per-client",
                                      "1000000",
                                      "--log-level",
                                      "warn",
                                      kCacheDefault[0],
                                      kCacheDefault[1]};
    Target t{"cairn-cluster", {}, {}};
    for (auto [role, id] : std::vector<std::pair<std::string, std::string>>{{"meta", "m1"},
                                                                            {"data", "d1"},
                                                                            {"data", "d2"},
                                                                            {"data", "d3"},
                                                                            {"session", "s1"},
                                                                            {"session", "s2"}}) {
      auto* member = cluster.Start(role, id, extra);
      if (member == nullptr) {
        std::fprintf(stderr, "cluster: %s did not start\n%s\n", id.c_str(), cluster.Logs().c_str());
        return false;
      }
      t.processes.emplace_back(id, member->process->pid());
      if (role == "session") t.servers.push_back(member->grpc_address);
    }
    if (!Eventually([&] { return TableSettled(**etcd, {"d1", "d2", "d3"}); }, seconds(90))) {
      std::fprintf(stderr, "cluster: slot table did not settle\n");
      return false;
    }
    ok &= measure(t);
  }
  return ok;
}

int Main(int argc, char** argv) {
  CLI::App cli{
      "Cairn cluster mode: registrations/s and memory against standalone, and "
      "convergence after faults (loopback clusters of real processes)"};
  bool quick = false;
  int repeats = 0, services = 0, publishers = 0;
  std::string json, workloads = "load,catalog,convergence";
  LoadSizes load;
  bench::CatalogSizes catalog;
  cli.add_flag("--quick", quick, "small sizes, 2 repeats per fault");
  cli.add_option("--workloads", workloads,
                 "comma-separated: load,catalog,convergence (default all three)");
  cli.add_option("--repeats", repeats, "convergence: rounds per fault (default 10, quick 2)");
  cli.add_option("--services", services, "convergence: services (default 200, quick 20)");
  cli.add_option("--publishers", publishers,
                 "convergence: publishers per service (default 10, quick 3)");
  cli.add_option("--register-instances", load.register_instances,
                 "load: publishers registered for the rate (default 100000)");
  cli.add_option("--hold-instances", load.hold_instances,
                 "load: publishers held for memory (default 1000000)");
  cli.add_option("--connections", load.connections, "load: client streams (default 100)");
  cli.add_option("--catalog-preload", catalog.preload,
                 "catalog: revisions written to etcd before the second phase (default 20000)");
  cli.add_option("--json", json, "also write every figure as a JSON array of records");
  CLI11_PARSE(cli, argc, argv);
  if (repeats <= 0) repeats = quick ? 2 : 10;
  if (services <= 0) services = quick ? 20 : 200;
  if (publishers <= 0) publishers = quick ? 3 : 10;
  if (quick) {
    load.register_instances = std::min<int64_t>(load.register_instances, 10000);
    load.hold_instances = std::min<int64_t>(load.hold_instances, 20000);
    load.connections = std::min(load.connections, 20);
    catalog.preload = std::min(catalog.preload, 2000);
    catalog.registrations = std::min(catalog.registrations, 50);
  }
  std::vector<Record> records;
  bool ok = true;
  if (workloads.find("load") != std::string::npos) ok &= RunLoad(load, records);
  if (workloads.find("catalog") != std::string::npos) {
    ok &= bench::RunCatalog(catalog,
                            [&](const std::string& workload, const std::string& system,
                                const std::string& metric, const std::string& unit, double value) {
                              records.push_back({workload, metric, unit, value, system});
                            });
  }
  if (workloads.find("convergence") == std::string::npos) {
    if (!json.empty()) std::ofstream(json, std::ios::trunc) << ToJson(records);
    return ok ? 0 : 1;
  }

  Bench bench(services, publishers);
  if (!bench.Setup()) return 1;
  std::printf("cluster up: %d services x %d publishers, 4 subscribers of each through 2 sessions\n",
              services, publishers);
  auto& cluster = bench.cluster();
  bench.Run(
      "no_fault", repeats, [](int) {}, [](int) {});
  bench.RunAppInstances(repeats);
  const std::vector<std::string> data = {"d1", "d2", "d3"};
  bench.Run(
      "data_kill9", repeats, [&](int r) { cluster.Find(data[r % 3])->process->Signal(SIGKILL); },
      [&](int r) { bench.Restart("data", data[r % 3]); });
  const std::vector<std::string> sessions = {"s1", "s2"};
  bench.Run(
      "session_kill9", repeats,
      [&](int r) { cluster.Find(sessions[r % 2])->process->Signal(SIGKILL); },
      [&](int r) { bench.Restart("session", sessions[r % 2]); });
  bench.Run(
      "meta_leader_kill9", repeats,
      [&](int r) {
        (void)r;
        bench.WaitMetaLeader();
        std::string leader = bench.MetaLeader();
        if (auto* m = cluster.Find(leader)) m->process->Signal(SIGKILL);
      },
      [&](int r) {
        (void)r;
        for (const char* id : {"m1", "m2"}) {
          if (!cluster.Find(id)->process->Running()) bench.Restart("meta", id);
        }
      });
  bench.Run(
      "data_join", repeats, [&](int) { bench.Restart("data", "d4"); },
      [&](int) { cluster.Stop("d4", SIGTERM, seconds(30)); }, /*while_moving=*/true);
  records.insert(records.end(), bench.records().begin(), bench.records().end());
  if (!json.empty()) std::ofstream(json, std::ios::trunc) << ToJson(records);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace cairn

int main(int argc, char** argv) { return cairn::Main(argc, argv); }
