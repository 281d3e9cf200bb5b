// cairn_registry_bench: Cairn's standalone registry next to a real etcd and a
// real ZooKeeper, all started by this program on 127.0.0.1 with their own data
// directories and free ports, driven with the same five workloads through one
// interface (driver.h, workloads.h) and printed as one table with Cairn's
// ratio to the best of the others (report.h).
//
// On equal terms: every system gets the same warm-up on the server its
// measured workloads then use, registrations go in batches of up to
// --batch-max per request for every system (Pump in workload_util.h), the
// rounds rotate the order of the systems, and the anchors also run
// without waiting for a disk (etcd-tmpfs, zookeeper-nosync), as Cairn does.
//
// Every loop is bounded in count and time; a guard thread stops every server
// and removes every scratch directory on SIGINT/SIGTERM/SIGHUP or when the
// run's time limit passes, and the servers die with the bench in any case
// (PR_SET_PDEATHSIG).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../common/run_info.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "anchor_servers.h"
#include "driver.h"
#include "report.h"
#include "workloads.h"

namespace cairn::bench {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A hold above this many instances runs in the first round only: it takes
// minutes per system and its figure is memory, which moves little.
constexpr int64_t kHoldRepeatMax = 100000;

// Workloads that run on a fresh server each (their idle RSS must not carry
// earlier workloads' allocations) and, past kHoldRepeatMax, once.
bool IsHold(const std::string& workload) { return workload == "hold" || workload == "hold-10m"; }

// Every workload a flag may name: the default set, then those only asked for
// by name (hold-10m takes about 4 minutes and 6 GB for Cairn alone).
std::vector<std::string> NamedWorkloads() {
  std::vector<std::string> all = AllWorkloads();
  all.push_back("hold-10m");
  return all;
}

// hold-10m runs against Cairn only: etcd's default 2 GiB backend quota and
// ZooKeeper's heap stop well short of 10,000,000 keys, and sizing them up
// would measure a configuration nobody runs.
bool RunsOn(const std::string& workload, const std::string& system) {
  return workload != "hold-10m" || system == "cairn";
}

// Small enough that the whole run (three systems, five workloads, six server
// starts) stays under a minute, also in the sanitizer build.
Sizes QuickSizes() {
  Sizes s;
  s.register_instances = 2000;
  s.register_connections = 10;
  s.floor_duration = milliseconds(500);
  s.hold_instances = 10000;
  s.hold_connections = 10;
  s.hold_timeout = seconds(60);
  s.push_repeats = 200;
  s.hold10m_instances = 100000;  // a smoke test of the workload, not its figure
  s.hold10m_timeout = seconds(120);
  s.fanout_publishers = 10;
  s.fanout_subscribers = 1000;
  s.fanout_connections = 10;
  s.fanout_repeats = 5;
  s.storm_services = 1000;
  s.storm_connections = 10;
  s.storm_publisher_connections = 2;
  s.storm_changes_per_min = 12000;
  s.storm_duration = seconds(3);
  s.storm_settle = seconds(5);
  s.phase_timeout = seconds(60);
  s.rss_settle = milliseconds(300);
  return s;
}

// A size that a flag may set; `set` writes it into Sizes.
struct SizeFlag {
  std::string flag;
  std::string help;
  std::function<void(Sizes&, int64_t)> set;
};

std::vector<SizeFlag> SizeFlags() {
  return {
      {"--register-instances", "register: instances (N)",
       [](Sizes& s, int64_t v) { s.register_instances = v; }},
      {"--register-connections", "register: client connections (C)",
       [](Sizes& s, int64_t v) { s.register_connections = static_cast<int>(v); }},
      {"--register-window",
       "register and hold: registrations in flight per connection (W), whatever the batching: "
       "W = 16 is one batch of 16, or several smaller ones as answers free the window",
       [](Sizes& s, int64_t v) { s.register_window = static_cast<int>(v); }},
      {"--batch-max",
       "register and hold: most registrations per request, for every system (etcd: puts per "
       "Txn, at most its --max-txn-ops 128; ZooKeeper: creates per multi; Cairn: its client "
       "batches only what waits behind its write in flight, at most W, so the cap holds for "
       "it while W <= this) (default 128)",
       [](Sizes& s, int64_t v) { s.batch_max = static_cast<int>(v); }},
      {"--hold-instances", "hold: instances", [](Sizes& s, int64_t v) { s.hold_instances = v; }},
      {"--hold-per-service", "hold and register: instances per service",
       [](Sizes& s, int64_t v) { s.hold_per_service = static_cast<int>(v); }},
      {"--hold-connections", "hold: client connections",
       [](Sizes& s, int64_t v) { s.hold_connections = static_cast<int>(v); }},
      {"--hold-timeout-s", "hold: time allowed for registering",
       [](Sizes& s, int64_t v) { s.hold_timeout = seconds(v); }},
      {"--hold10m-instances", "hold-10m: instances (default 10,000,000)",
       [](Sizes& s, int64_t v) { s.hold10m_instances = v; }},
      {"--hold10m-timeout-s", "hold-10m: time allowed for registering (default 1800)",
       [](Sizes& s, int64_t v) { s.hold10m_timeout = seconds(v); }},
      {"--push-repeats", "push: changes measured (R)",
       [](Sizes& s, int64_t v) { s.push_repeats = static_cast<int>(v); }},
      {"--fanout-publishers", "fanout: publishers of the service",
       [](Sizes& s, int64_t v) { s.fanout_publishers = static_cast<int>(v); }},
      {"--fanout-subscribers", "fanout: subscribers",
       [](Sizes& s, int64_t v) { s.fanout_subscribers = static_cast<int>(v); }},
      {"--fanout-connections", "fanout: subscriber connections",
       [](Sizes& s, int64_t v) { s.fanout_connections = static_cast<int>(v); }},
      {"--fanout-repeats", "fanout: changes measured",
       [](Sizes& s, int64_t v) { s.fanout_repeats = static_cast<int>(v); }},
      {"--storm-services", "storm: services (one publisher, one subscriber each)",
       [](Sizes& s, int64_t v) { s.storm_services = static_cast<int>(v); }},
      {"--storm-connections", "storm: subscriber connections",
       [](Sizes& s, int64_t v) { s.storm_connections = static_cast<int>(v); }},
      {"--storm-changes-per-min", "storm: change rate",
       [](Sizes& s, int64_t v) { s.storm_changes_per_min = v; }},
      {"--storm-duration-s", "storm: seconds of changes",
       [](Sizes& s, int64_t v) { s.storm_duration = seconds(v); }},
      {"--storm-settle-s", "storm: seconds allowed to settle before counting stale",
       [](Sizes& s, int64_t v) { s.storm_settle = seconds(v); }},
  };
}

std::unique_ptr<System> NewSystem(const std::string& name, SystemOptions options) {
  options.in_memory = name == "etcd-tmpfs" || name == "zookeeper-nosync";
  if (name == "cairn") return NewCairnSystem(options);
  if (name.rfind("etcd", 0) == 0) return NewEtcdSystem(options);
  return NewZooKeeperSystem(options);
}

// What every system runs on the server of its measured workloads before
// them, discarded: a small register (connections, window and batching as
// measured) and a short push, so that no system is measured cold (JIT,
// allocator, page cache, connection pools). Its names differ from the
// measured ones.
struct Warmup {
  int64_t registrations = 5000;
  int changes = 50;
};

void RunWarmup(System& system, const Sizes& sizes, const Warmup& warmup) {
  Sizes w = sizes;
  w.register_instances = warmup.registrations;
  w.with_floor = false;
  w.push_repeats = warmup.changes;
  w.name_prefix = "warm-";
  Results discarded;
  RunRegister(system, w, discarded);
  RunPush(system, w, discarded);
  for (const auto& r : discarded.records()) {
    if (r.metric == "errors" && r.value > 0) {
      std::cerr << system.name() << ": warm-up " << r.workload << " had " << r.value
                << " error(s)\n";
    }
  }
}

void RunWorkload(const std::string& workload, System& system, const Sizes& sizes,
                 Results& results) {
  if (workload == "register") RunRegister(system, sizes, results);
  if (workload == "hold") RunHold(system, sizes, results);
  if (workload == "hold-10m") {
    Sizes big = sizes;
    big.hold_instances = sizes.hold10m_instances;
    big.hold_timeout = sizes.hold10m_timeout;
    RunHold(system, big, results, workload);
  }
  if (workload == "push") RunPush(system, sizes, results);
  if (workload == "fanout") RunFanout(system, sizes, results);
  if (workload == "storm") RunStorm(system, sizes, results);
}

// Runs the selected workloads against one system: register, push, fanout and
// storm on one server; hold on a fresh one (its idle RSS must not carry the
// earlier workloads' allocator state).
void RunSystem(const std::string& name, const SystemOptions& options,
               const std::vector<std::string>& workloads, const Sizes& sizes, const Warmup& warmup,
               Results& results) {
  auto system = NewSystem(name, options);
  auto start = [&](const std::vector<std::string>& batch) {
    auto s = system->Start();
    if (s.ok()) return true;
    std::cerr << name << ": cannot start: " << s << "\n";
    for (const auto& w : batch) results.Add(w, name, "errors", 1, "count");
    return false;
  };
  // The shared server first, then a fresh one per hold workload.
  std::vector<std::vector<std::string>> batches(1);
  for (const auto& w : workloads) {
    if (!RunsOn(w, name)) continue;
    if (IsHold(w)) {
      batches.push_back({w});
    } else {
      batches[0].push_back(w);
    }
  }
  for (const auto& batch_list : batches) {
    const auto* batch = &batch_list;
    const bool shared = batch == &batches[0];
    if (batch->empty() || !start(*batch)) continue;
    std::cerr << name << ": serving at " << system->address() << "\n";
    // Not before hold: its idle RSS must not carry a warm-up's allocations.
    if (shared && warmup.registrations > 0) {
      auto begin = Clock::now();
      std::cerr << "[" << name << "] warm-up ..." << std::flush;
      RunWarmup(*system, sizes, warmup);
      std::cerr << " " << static_cast<int>(Ms(Clock::now() - begin)) << " ms\n";
    }
    for (const auto& w : *batch) {
      auto begin = Clock::now();
      std::cerr << "[" << name << "] " << w << " ..." << std::flush;
      RunWorkload(w, *system, sizes, results);
      std::cerr << " " << static_cast<int>(Ms(Clock::now() - begin)) << " ms\n";
      if (!IsHold(w) && !system->Running()) {
        std::cerr << name << ": the server died during " << w << "; log:\n"
                  << system->LogTail() << "\n";
        results.Add(w, name, "errors", 1, "count");
        break;
      }
    }
    system->Stop();
  }
}

absl::StatusOr<std::vector<std::string>> ParseList(const std::string& text,
                                                   const std::vector<std::string>& allowed) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::string item(part);
    if (std::find(allowed.begin(), allowed.end(), item) == allowed.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown name '", item, "'"));
    }
    if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
  }
  // Keep the canonical order whatever order was asked for.
  std::vector<std::string> ordered;
  for (const auto& a : allowed) {
    if (std::find(out.begin(), out.end(), a) != out.end()) ordered.push_back(a);
  }
  return ordered;
}

// `systems` rotated so that round r starts at system r mod n: every system
// runs early and late alike over the rounds.
std::vector<std::string> RoundOrder(const std::vector<std::string>& systems, int round) {
  std::vector<std::string> order = systems;
  if (!order.empty()) {
    std::rotate(order.begin(), order.begin() + round % static_cast<int>(order.size()), order.end());
  }
  return order;
}

}  // namespace
}  // namespace cairn::bench

int main(int argc, char** argv) {
  using namespace cairn::bench;
  bool quick = false;
  bool check = false;
  std::string json_file;
  std::string bin_dir;
  std::string systems_text = absl::StrJoin(AllSystems(), ",");
  std::string workloads_text = absl::StrJoin(AllWorkloads(), ",");
  std::string zk_heap = "2g";
  int64_t time_limit_s = 0;
  int rounds = 0;
  Warmup warmup;
  int64_t warmup_registrations = -1;
  bool cairn_whole_pushes = false;
  bool cairn_no_server_batches = false;
  CLI::App app{
      "Cairn registry benchmark: starts cairn registry, etcd and ZooKeeper on 127.0.0.1 (the "
      "anchors also on tmpfs without fsync) and drives the same workloads against each"};
  app.add_flag("--quick", quick,
               "small sizes, 1 round, every system: the whole run takes under a minute");
  app.add_flag("--check", check,
               "exit non-zero unless every system answered every workload in every round with "
               "sane values (no errors, e.g. no refused batch)");
  app.add_option("--json", json_file,
                 "also write every figure as a JSON array of records: a run record with the "
                 "machine and settings, per-round records (\"round\") and median records "
                 "(\"spread_pct\", \"rounds\")");
  app.add_flag("--cairn-whole-pushes", cairn_whole_pushes,
               "Cairn's sessions do not accept delta pushes: every push carries every instance "
               "(the behaviour before deltas, for comparison)");
  app.add_flag("--cairn-no-server-batches", cairn_no_server_batches,
               "Cairn's sessions do not read server batches: one gRPC message per push and per "
               "ack (the behaviour before batches, for comparison)");
  app.add_option("--bin-dir", bin_dir, "directory of the cairn binary (default: this binary's)");
  app.add_option("--systems", systems_text,
                 "comma-separated: cairn,etcd,zookeeper (fsync to disk, their default), "
                 "etcd-tmpfs (data dir on /dev/shm), zookeeper-nosync (/dev/shm, forceSync=no); "
                 "default all five");
  app.add_option("--workloads", workloads_text,
                 "comma-separated: register,hold,push,fanout,storm (the default set), and "
                 "hold-10m (Cairn only; --hold10m-instances, default 10,000,000)");
  app.add_option("--rounds", rounds,
                 "rounds of every workload and system, the systems' order rotated per round; "
                 "figure = median (default 3, quick 1). hold over 100,000 instances runs in the "
                 "first round only");
  app.add_option(
      "--warmup-registrations", warmup_registrations,
      "warm-up before each system's measured workloads (not hold): a register of "
      "this many instances and a push of 50 changes (quick 20), discarded; 0 = none (default "
      "5000, quick 500)");
  app.add_option("--zk-heap", zk_heap, "ZooKeeper's JVM -Xmx (default 2g)");
  std::string tls_dir;
  app.add_option("--tls-dir", tls_dir,
                 "cairn over mTLS: certificates from scripts/dev-certs DIR ... bench (needs "
                 "registry, cairnctl and bench)");
  app.add_option("--time-limit-s", time_limit_s,
                 "stop everything and fail after this long (default 3 h per round, quick 150)");
  auto size_flags = SizeFlags();
  std::vector<int64_t> size_values(size_flags.size());
  std::vector<CLI::Option*> size_options;
  for (size_t i = 0; i < size_flags.size(); ++i) {
    size_options.push_back(app.add_option(size_flags[i].flag, size_values[i], size_flags[i].help));
  }
  CLI11_PARSE(app, argc, argv);
  if (rounds <= 0) rounds = quick ? 1 : 3;
  warmup.registrations = warmup_registrations >= 0 ? warmup_registrations
                         : quick                   ? 500
                                                   : warmup.registrations;
  if (quick) warmup.changes = 20;

  // Before any other thread exists: the guard's signal mask must be inherited.
  StartGuard(seconds(time_limit_s > 0 ? time_limit_s : quick ? 150 : 3 * 3600 * rounds));
  // A client that outlives a server must not be killed by a write to a closed socket.
  signal(SIGPIPE, SIG_IGN);

  auto systems = ParseList(systems_text, AllSystems());
  auto workloads = ParseList(workloads_text, NamedWorkloads());
  if (!systems.ok() || !workloads.ok()) {
    std::cerr << (systems.ok() ? workloads.status() : systems.status()) << "\n";
    return 2;
  }
  Sizes sizes = quick ? QuickSizes() : Sizes();
  for (size_t i = 0; i < size_flags.size(); ++i) {
    if (size_options[i]->count() > 0) size_flags[i].set(sizes, size_values[i]);
  }
  std::string batch_note;
  if (sizes.register_window > sizes.batch_max) {
    batch_note = absl::StrCat("--register-window ", sizes.register_window, " > --batch-max ",
                              sizes.batch_max,
                              ": Cairn's client may coalesce up to min(window, 500) "
                              "registrations per Batch, the anchors at most --batch-max");
    std::cerr << "warning: " << batch_note << "\n";
  }
  SystemOptions options;
  options.bin_dir = bin_dir.empty()
                        ? std::filesystem::canonical("/proc/self/exe").parent_path().string()
                        : bin_dir;
  options.zk_heap = zk_heap;
  options.tls_dir = tls_dir;
  options.cairn_delta_pushes = !cairn_whole_pushes;
  options.cairn_server_batches = !cairn_no_server_batches;
  // Cairn caps registrations per stream: allow the largest any workload makes.
  const bool hold10m =
      std::find(workloads->begin(), workloads->end(), "hold-10m") != workloads->end();
  options.max_registrations_per_connection =
      1000 + std::max({std::max(hold10m ? sizes.hold10m_instances : 0, sizes.hold_instances) /
                           std::max(sizes.hold_connections, 1),
                       sizes.register_instances / std::max(sizes.register_connections, 1),
                       int64_t{sizes.storm_services}, int64_t{sizes.fanout_subscribers},
                       int64_t{sizes.fanout_publishers}});

  const std::string loadavg_start = LoadAverage();
  const std::string started_at = UtcNow();
  const int hold_rounds = sizes.hold_instances > kHoldRepeatMax ? 1 : rounds;
  const std::string hold_note =
      hold_rounds < rounds
          ? absl::StrCat("hold of ", sizes.hold_instances,
                         " instances runs once per system (round 0): too slow to repeat")
          : "";
  std::vector<Record> per_round;
  for (int round = 0; round < rounds; ++round) {
    auto order = RoundOrder(*systems, round);
    std::cerr << "== round " << round + 1 << " of " << rounds << ": " << absl::StrJoin(order, ", ")
              << "\n";
    std::vector<std::string> round_workloads;
    for (const auto& w : *workloads) {
      if (w == "hold-10m" && round > 0) continue;  // minutes and gigabytes: once
      if (w != "hold" || round < hold_rounds) round_workloads.push_back(w);
    }
    for (const auto& name : order) {
      Results results;
      RunSystem(name, options, round_workloads, sizes, warmup, results);
      for (auto r : results.records()) {
        r.round = round;
        if (r.workload == "hold") r.note = hold_note;
        if (r.workload == "hold-10m") {
          r.note = absl::StrCat("Cairn only, round 0 only: ", sizes.hold10m_instances,
                                " instances, ", sizes.hold_per_service, " per service, over ",
                                sizes.hold_connections, " connections");
        }
        if (r.workload == "register" || IsHold(r.workload)) {
          if (!batch_note.empty())
            r.note = r.note.empty() ? batch_note : r.note + "; " + batch_note;
        }
        per_round.push_back(std::move(r));
      }
    }
  }

  auto medians = Medians(per_round);
  std::printf("\n");
  PrintTable(medians, *systems);
  if (!json_file.empty()) {
    std::vector<std::pair<std::string, std::string>> settings = {
        {"quick", quick ? "true" : "false"},
        {"rounds", absl::StrCat(rounds)},
        {"hold_rounds", absl::StrCat(hold_rounds)},
        {"systems", JsonString(absl::StrJoin(*systems, ","))},
        {"workloads", JsonString(absl::StrJoin(*workloads, ","))},
        {"warmup_registrations", absl::StrCat(warmup.registrations)},
        {"warmup_push_changes", absl::StrCat(warmup.changes)},
        {"warmup_before_hold", "false"},
        {"register_instances", absl::StrCat(sizes.register_instances)},
        {"register_connections", absl::StrCat(sizes.register_connections)},
        {"register_window", absl::StrCat(sizes.register_window)},
        {"batch_max", absl::StrCat(sizes.batch_max)},
        {"cairn_client_batch_limit", "500"},
        {"floor_duration_ms", absl::StrCat(sizes.floor_duration.count())},
        {"hold_instances", absl::StrCat(sizes.hold_instances)},
        {"hold_per_service", absl::StrCat(sizes.hold_per_service)},
        {"hold_connections", absl::StrCat(sizes.hold_connections)},
        {"hold_timeout_s", absl::StrCat(sizes.hold_timeout.count())},
        {"hold10m_instances", absl::StrCat(sizes.hold10m_instances)},
        {"push_repeats", absl::StrCat(sizes.push_repeats)},
        {"fanout_publishers", absl::StrCat(sizes.fanout_publishers)},
        {"fanout_subscribers", absl::StrCat(sizes.fanout_subscribers)},
        {"fanout_connections", absl::StrCat(sizes.fanout_connections)},
        {"fanout_repeats", absl::StrCat(sizes.fanout_repeats)},
        {"storm_services", absl::StrCat(sizes.storm_services)},
        {"storm_connections", absl::StrCat(sizes.storm_connections)},
        {"storm_publisher_connections", absl::StrCat(sizes.storm_publisher_connections)},
        {"storm_changes_per_min", absl::StrCat(sizes.storm_changes_per_min)},
        {"storm_duration_s", absl::StrCat(sizes.storm_duration.count())},
        {"storm_settle_s", absl::StrCat(sizes.storm_settle.count())},
        {"phase_timeout_s", absl::StrCat(sizes.phase_timeout.count())},
        {"rss_settle_ms", absl::StrCat(sizes.rss_settle.count())},
        {"zk_heap", JsonString(zk_heap)},
        {"cairn_tls", tls_dir.empty() ? "false" : "true"},
        {"cairn_delta_pushes", cairn_whole_pushes ? "false" : "true"},
        {"cairn_server_batches", cairn_no_server_batches ? "false" : "true"},
        {"etcd_lease", JsonString("TTL 60 s, renewed at TTL/3 on one LeaseKeepAlive stream per "
                                  "connection, resent and reopened after 500 ms")},
        {"etcd_durability", JsonString("etcd: data dir on disk, fsync; etcd-tmpfs: data dir on "
                                       "/dev/shm (etcd 3.4 has no --unsafe-no-fsync)")},
        {"zookeeper_durability",
         JsonString("zookeeper: dataDir on disk, forceSync=yes; zookeeper-nosync: dataDir and "
                    "dataLogDir on /dev/shm, forceSync=no")},
        {"time_limit_s", absl::StrCat(time_limit_s)},
    };
    std::vector<std::string> fields;
    for (const auto& [k, v] : settings) fields.push_back(absl::StrCat(JsonString(k), ": ", v));
    std::string commit = CommandOutput("git rev-parse --short HEAD 2>/dev/null");
    std::string meta = absl::StrCat(
        "{\"machine\": ", JsonString(MachineLine()),
        ", \"commit\": ", JsonString(commit.empty() ? "unknown" : commit),
        ", \"date\": ", JsonString(started_at), ", \"loadavg_start\": ", JsonString(loadavg_start),
        ", \"loadavg_end\": ", JsonString(LoadAverage()), ", \"settings\": {",
        absl::StrJoin(fields, ", "), "}}");
    // Per-round records first, medians last: a reader that keeps the last
    // record of each metric gets the median.
    std::vector<Record> all = per_round;
    all.insert(all.end(), medians.begin(), medians.end());
    if (!WriteJson(all, meta, json_file)) {
      std::cerr << "cannot write " << json_file << "\n";
      return 1;
    }
  }
  if (check) {
    auto problems = Check(per_round, *systems, *workloads, sizes, rounds, hold_rounds);
    for (const auto& p : problems) std::cerr << "check: " << p << "\n";
    std::cerr << "check: " << (problems.empty() ? "passed" : "FAILED") << "\n";
    if (!problems.empty()) return 1;
  }
  return 0;
}
