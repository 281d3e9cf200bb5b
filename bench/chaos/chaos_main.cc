// The chaos suite (issue 15; bench/chaos/run): does the registry ever show a
// subscriber a false removal, and how long until every view is right again,
// under faults of every role, of etcd, of the network, and of a standalone
// registry?
//
// Canaries (canary.h): publishers of several dataIds spread over several
// clients and so over every session, subscribers on every session, every
// push checked against the publishers already shown. Scenarios: the cluster
// (cluster_chaos.h) and a standalone registry (standalone_chaos.h). Each
// fault is a workload; a full run takes every fault `--rounds` times (round
// after round), --quick takes one round of a subset.
//
// Partition faults need Linux network namespaces (netns.h) and root: the
// driver then creates them, re-executes itself inside the hub namespace
// (`--in-hub PREFIX`, internal), waits, and deletes them. Without root or
// namespaces those faults are reported as skipped, with the reason.
//
// Prints a line per round and a table per fault; --json writes records
// {workload, system: "cairn", metric, value, unit} (report.h). With --check
// the exit code is 1 if any false removal or stale subscriber was seen or a
// round exceeded its budget (2 if the suite could not run at all).
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cluster_chaos.h"
#include "netns.h"
#include "report.h"
#include "standalone_chaos.h"

namespace cairn::chaos {
namespace {

// The quick set (CI): every fault class that showed false removals in issue
// 15, a gray failure and one partition; about a minute on 2 cores.
const std::vector<std::string> kQuickFaults = {
    "data_kill9_restart",     "data_sigstop",
    "two_data_kill9_restart", "data_rolling_sigterm",
    "session_kill9_restart",  "etcd_down_then_rolling",
    "data_cut_from_etcd",     "standalone_kill9_restart"};
// Every namespace the cluster scenario needs (cluster_chaos.cc's member ids).
const std::vector<std::string> kMembers = {"etcd", "m1", "m2", "d1", "d2", "d3", "s1", "s2"};

volatile sig_atomic_t hub_child = 0;

void ForwardToChild(int signal) {
  if (hub_child > 0) ::kill(hub_child, signal);
}

// Runs this program again inside the hub namespace with the same arguments
// plus --in-hub, its output going to ours, and returns its exit code.
int RunInHub(const NetnsLab& lab, const std::string& prefix, int argc, char** argv) {
  std::vector<std::string> command = lab.ExecInHub();
  command.push_back(std::filesystem::read_symlink("/proc/self/exe").string());
  for (int i = 1; i < argc; ++i) command.push_back(argv[i]);
  command.insert(command.end(), {"--in-hub", prefix});
  std::vector<char*> args;
  for (auto& a : command) args.push_back(a.data());
  args.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t parent = ::getpid();
  pid_t child = ::fork();
  if (child < 0) return 2;
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  hub_child = child;
  ::signal(SIGINT, ForwardToChild);
  ::signal(SIGTERM, ForwardToChild);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  hub_child = 0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int Main(int argc, char** argv) {
  CLI::App cli{"Cairn chaos suite: false removals and convergence under faults (issue 15)"};
  bool quick = false, check = false, no_netns = false;
  int rounds = 0;
  std::string json, faults_flag, in_hub;
  ChaosSettings settings;
  int64_t budget_ms = settings.budget.count();
  int64_t slots = 0;
  cli.add_flag("--quick", quick, "one round of a subset of the faults (CI)");
  cli.add_flag("--check", check,
               "exit 1 on any false removal, stale subscriber or round over its budget");
  cli.add_option("--json", json, "also write the figures as JSON records");
  cli.add_option("--rounds", rounds, "rounds of every fault (default 3, quick 1)");
  cli.add_option("--faults", faults_flag,
                 "comma-separated fault names (default: all, or the "
                 "quick subset)");
  cli.add_option("--budget-ms", budget_ms, "a fault's convergence budget (default 10000)");
  cli.add_option("--slots", slots, "cluster slots (default 256, quick 64)");
  cli.add_flag("--no-netns", no_netns, "never use network namespaces (partitions skipped)");
  cli.add_option("--in-hub", in_hub, "internal: running inside the hub namespace PREFIX-hub");
  CLI11_PARSE(cli, argc, argv);

  std::vector<std::string> all = ClusterChaos::Names();
  for (const auto& name : StandaloneChaos::Names()) all.push_back(name);
  std::vector<std::string> selected = quick ? kQuickFaults : all;
  if (!faults_flag.empty()) selected = absl::StrSplit(faults_flag, ',', absl::SkipEmpty());
  for (const auto& name : selected) {
    if (std::find(all.begin(), all.end(), name) == all.end()) {
      std::fprintf(stderr, "unknown fault %s; known: %s\n", name.c_str(),
                   absl::StrJoin(all, ",").c_str());
      return 2;
    }
  }
  if (rounds <= 0) rounds = quick ? 1 : 3;
  settings.budget = std::chrono::milliseconds(budget_ms);
  settings.slots = static_cast<uint32_t>(slots > 0 ? slots : quick ? 64 : 256);
  const bool wants_partitions = std::any_of(selected.begin(), selected.end(), [](const auto& n) {
    return ClusterChaos::NeedsPartitions(n);
  });

  // Partitions: set up the namespaces and continue inside the hub.
  std::string no_partitions;  // why not, if not
  std::optional<NetnsLab> lab;
  if (!in_hub.empty()) {
    lab = NetnsLab::Attach(in_hub, kMembers);
  } else if (no_netns) {
    no_partitions = "--no-netns";
  } else if (wants_partitions) {
    if (::geteuid() != 0) {
      no_partitions = "needs root for network namespaces";
    } else {
      NetnsLab::DeleteLeftovers();
      const std::string prefix = NetnsLab::PrefixFor(::getpid());
      auto created = NetnsLab::Create(prefix, kMembers);
      if (created.ok()) {
        int code = RunInHub(*created, prefix, argc, argv);
        created->Destroy();
        return code;
      }
      no_partitions = "network namespaces unavailable: " + created.status().ToString();
    }
  }

  Report report;
  report.run_info = {
      {"machine", MachineDescription()},
      {"commit", SourceCommit()},
      {"load_average_before", LoadAverage()},
      {"rounds", std::to_string(rounds)},
      {"mode", quick ? "quick" : "full"},
      {"settings",
       absl::StrCat("cluster: etcd + 2 meta + 3 data + 2 session, ", settings.slots,
                    " slots, 2 replicas, harness timings (etcd lease 2 s, session lease 4 s, "
                    "rebuild timeout 2 s), datum cache 600 s; canaries: ",
                    settings.data_ids, " dataIds x ", settings.publishers_per_data_id,
                    " publishers over ", settings.publishing_clients,
                    " clients, client keepalive 1 s, reconnect backoff max 500 ms; budget ",
                    settings.budget.count(), " ms")},
      {"network", lab ? "network namespaces (" + lab->hub() + ")"
                      : "127.0.0.1" + (no_partitions.empty() ? "" : "; " + no_partitions)}};
  std::printf("chaos: %s; commit %s; load average %s\n%s\nnetwork: %s\nfaults: %s; %d round(s)\n",
              report.run_info["machine"].c_str(), report.run_info["commit"].c_str(),
              report.run_info["load_average_before"].c_str(), report.run_info["settings"].c_str(),
              report.run_info["network"].c_str(), absl::StrJoin(selected, ",").c_str(), rounds);
  std::fflush(stdout);
  Clock::time_point started = Clock::now();

  std::vector<std::string> cluster_faults, standalone_faults;
  for (const auto& name : ClusterChaos::Names()) {
    if (std::find(selected.begin(), selected.end(), name) == selected.end()) continue;
    if (ClusterChaos::NeedsPartitions(name) && !lab) {
      report.Skip(name, no_partitions.empty() ? "no network namespaces" : no_partitions);
      continue;
    }
    cluster_faults.push_back(name);
  }
  for (const auto& name : StandaloneChaos::Names()) {
    if (std::find(selected.begin(), selected.end(), name) != selected.end()) {
      standalone_faults.push_back(name);
    }
  }

  bool setup_failed = false;
  int64_t pushes = 0;
  if (!cluster_faults.empty()) {
    ClusterChaos chaos(settings, report, lab ? &*lab : nullptr);
    if (auto up = chaos.Setup(); !up.ok()) {
      std::printf("cluster setup failed: %s\n", up.ToString().c_str());
      setup_failed = true;
    } else {
      for (int r = 0; r < rounds; ++r) {
        for (const auto& name : cluster_faults) chaos.Run(name, r);
      }
      chaos.CountLate(cluster_faults);
    }
    pushes += chaos.pushes();
  }
  if (!standalone_faults.empty()) {
    StandaloneChaos chaos(settings, report);
    if (auto up = chaos.Setup(); !up.ok()) {
      std::printf("standalone setup failed: %s\n", up.ToString().c_str());
      setup_failed = true;
    } else {
      for (int r = 0; r < rounds; ++r) {
        for (const auto& name : standalone_faults) chaos.Run(name, r);
      }
      chaos.CountLate(standalone_faults);
    }
    pushes += chaos.pushes();
  }

  double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  report.run_info["duration_s"] = absl::StrCat(static_cast<int64_t>(elapsed));
  report.run_info["load_average_after"] = LoadAverage();
  report.run_info["pushes_checked"] = std::to_string(pushes);
  report.PrintTable();
  std::printf("%lld pushes checked in %.0f s; load average after: %s\n",
              static_cast<long long>(pushes), elapsed, LoadAverage().c_str());
  if (!json.empty()) std::ofstream(json, std::ios::trunc) << report.Json();
  if (setup_failed) return 2;
  std::string failures = report.CheckFailures();
  if (!failures.empty()) std::printf("CHECK FAILED: %s\n", failures.c_str());
  return check && !failures.empty() ? 1 : 0;
}

}  // namespace
}  // namespace cairn::chaos

int main(int argc, char** argv) { return cairn::chaos::Main(argc, argv); }
