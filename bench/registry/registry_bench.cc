// cairn_registry_bench: Cairn's standalone registry next to a real etcd and a
// real ZooKeeper, all started by this program on 127.0.0.1 with their own data
// directories and free ports, driven with the same five workloads through one
// interface (driver.h, workloads.h) and printed as one table with Cairn's
// ratio to the best of the others.
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
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "anchor_servers.h"
#include "driver.h"
#include "workloads.h"

namespace cairn::bench {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const std::vector<std::string> kSystems = {"cairn", "etcd", "zookeeper"};
const std::vector<std::string> kWorkloads = {"register", "hold", "push", "fanout", "storm"};

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
      {"--register-window", "register and hold: registrations in flight per connection",
       [](Sizes& s, int64_t v) { s.register_window = static_cast<int>(v); }},
      {"--hold-instances", "hold: instances", [](Sizes& s, int64_t v) { s.hold_instances = v; }},
      {"--hold-per-service", "hold and register: instances per service",
       [](Sizes& s, int64_t v) { s.hold_per_service = static_cast<int>(v); }},
      {"--hold-connections", "hold: client connections",
       [](Sizes& s, int64_t v) { s.hold_connections = static_cast<int>(v); }},
      {"--hold-timeout-s", "hold: time allowed for registering",
       [](Sizes& s, int64_t v) { s.hold_timeout = seconds(v); }},
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

std::unique_ptr<System> NewSystem(const std::string& name, const SystemOptions& options) {
  if (name == "cairn") return NewCairnSystem(options);
  if (name == "etcd") return NewEtcdSystem(options);
  return NewZooKeeperSystem(options);
}

void RunWorkload(const std::string& workload, System& system, const Sizes& sizes,
                 Results& results) {
  if (workload == "register") RunRegister(system, sizes, results);
  if (workload == "hold") RunHold(system, sizes, results);
  if (workload == "push") RunPush(system, sizes, results);
  if (workload == "fanout") RunFanout(system, sizes, results);
  if (workload == "storm") RunStorm(system, sizes, results);
}

// Runs the selected workloads against one system: register, push, fanout and
// storm on one server; hold on a fresh one (its idle RSS must not carry the
// earlier workloads' allocator state).
void RunSystem(const std::string& name, const SystemOptions& options,
               const std::vector<std::string>& workloads, const Sizes& sizes, Results& results) {
  auto system = NewSystem(name, options);
  auto start = [&](const std::vector<std::string>& batch) {
    auto s = system->Start();
    if (s.ok()) return true;
    std::cerr << name << ": cannot start: " << s << "\n";
    for (const auto& w : batch) results.Add(w, name, "errors", 1, "count");
    return false;
  };
  std::vector<std::string> shared, hold;
  for (const auto& w : workloads) (w == "hold" ? hold : shared).push_back(w);
  for (const auto* batch : {&shared, &hold}) {
    if (batch->empty() || !start(*batch)) continue;
    std::cerr << name << ": serving at " << system->address() << "\n";
    for (const auto& w : *batch) {
      auto begin = Clock::now();
      std::cerr << "[" << name << "] " << w << " ..." << std::flush;
      RunWorkload(w, *system, sizes, results);
      std::cerr << " " << static_cast<int>(Ms(Clock::now() - begin)) << " ms\n";
      if (w != "hold" && !system->Running()) {
        std::cerr << name << ": the server died during " << w << "; log:\n"
                  << system->LogTail() << "\n";
        results.Add(w, name, "errors", 1, "count");
        break;
      }
    }
    system->Stop();
  }
}

bool HigherIsBetter(const std::string& metric) {
  return metric.size() > 6 && metric.compare(metric.size() - 6, 6, "_per_s") == 0;
}

// Whether a ratio between systems means anything for this metric: not for
// counts of work done, nor for a rate the bench itself fixes.
bool Compared(const Record& r) {
  static const std::set<std::string> kExcluded = {"changes_per_s", "settle_ms"};
  if (kExcluded.count(r.metric)) return false;
  return r.unit == "ms" || r.unit == "1/s" || r.metric == "rss_bytes_per_publisher" ||
         r.metric == "stale_subscribers";
}

std::string Format(double value, const std::string& unit) {
  if (!std::isfinite(value)) return "-";
  if (unit == "ms") return absl::StrFormat("%.3f", value);
  // Thousands separators: rates, bytes and counts are read by magnitude.
  std::string digits = absl::StrFormat("%.0f", std::fabs(value));
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

void PrintTable(const std::vector<Record>& records, const std::vector<std::string>& systems) {
  // Rows in first-seen order; grpc-direct is printed apart (it only anchors
  // the register workload).
  std::vector<std::pair<std::string, std::string>> rows;
  std::map<std::pair<std::string, std::string>, std::map<std::string, Record>> cells;
  for (const auto& r : records) {
    if (r.system == "grpc-direct") continue;
    auto key = std::make_pair(r.workload, r.metric);
    if (!cells.count(key)) rows.push_back(key);
    cells[key][r.system] = r;
  }
  // Workloads in their canonical order (hold runs last, on its own server).
  auto rank = [](const std::string& w) {
    return std::find(kWorkloads.begin(), kWorkloads.end(), w) - kWorkloads.begin();
  };
  std::stable_sort(rows.begin(), rows.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  std::printf("%-9s %-30s %-6s", "workload", "metric", "unit");
  for (const auto& s : systems) std::printf(" %14s", s.c_str());
  std::printf("  %s\n", "cairn vs best other");
  for (const auto& key : rows) {
    const auto& by_system = cells[key];
    const Record& any = by_system.begin()->second;
    std::printf("%-9s %-30s %-6s", key.first.c_str(), key.second.c_str(), any.unit.c_str());
    for (const auto& s : systems) {
      auto it = by_system.find(s);
      std::printf(" %14s",
                  it == by_system.end() ? "-" : Format(it->second.value, any.unit).c_str());
    }
    std::string ratio = "-";
    auto cairn = by_system.find("cairn");
    if (Compared(any) && cairn != by_system.end() && std::isfinite(cairn->second.value)) {
      bool higher = HigherIsBetter(key.second);
      double best = NAN;
      std::string best_name;
      for (const auto& [name, r] : by_system) {
        if (name == "cairn" || !std::isfinite(r.value)) continue;
        if (std::isnan(best) || (higher ? r.value > best : r.value < best)) {
          best = r.value;
          best_name = name;
        }
      }
      double c = cairn->second.value;
      if (!std::isnan(best) && best > 0) {
        bool better = higher ? c > best : c < best;
        bool same = std::fabs(c - best) <= 0.005 * best;
        ratio = absl::StrFormat("%.2fx vs %s (%s)", c / best, best_name,
                                same     ? "same"
                                : better ? "better"
                                         : "worse");
      } else if (!std::isnan(best)) {
        ratio = c == best ? absl::StrFormat("same as %s", best_name)
                          : absl::StrFormat("worse than %s", best_name);
      }
    }
    std::printf("  %s\n", ratio.c_str());
  }
  for (const auto& r : records) {
    if (r.system != "grpc-direct") continue;
    std::printf("grpc-direct (register anchor: unary gRPC call, same server): %s = %s %s\n",
                r.metric.c_str(), Format(r.value, r.unit).c_str(), r.unit.c_str());
  }
  std::fflush(stdout);
}

bool WriteJson(const std::vector<Record>& records, const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  out << "[\n";
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    // NaN is not JSON; a missing measurement becomes null.
    std::string value = std::isfinite(r.value) ? absl::StrFormat("%.10g", r.value) : "null";
    out << "  {\"workload\": \"" << r.workload << "\", \"system\": \"" << r.system
        << "\", \"metric\": \"" << r.metric << "\", \"value\": " << value << ", \"unit\": \""
        << r.unit << "\"}" << (i + 1 < records.size() ? "," : "") << "\n";
  }
  out << "]\n";
  return static_cast<bool>(out);
}

// The smoke test's assertions: every selected system answered every selected
// workload, with sane values. Never a speed threshold.
std::vector<std::string> Check(const std::vector<Record>& records,
                               const std::vector<std::string>& systems,
                               const std::vector<std::string>& workloads, const Sizes& sizes) {
  std::vector<std::string> problems;
  auto find = [&](const std::string& w, const std::string& s, const std::string& m) {
    const Record* found = nullptr;
    for (const auto& r : records) {
      if (r.workload == w && r.system == s && r.metric == m) found = &r;
    }
    return found;
  };
  auto expect = [&](const std::string& w, const std::string& s, const std::string& m,
                    const std::function<bool(double)>& ok, const std::string& what) {
    const Record* r = find(w, s, m);
    if (r == nullptr) {
      problems.push_back(absl::StrCat(w, "/", s, ": no ", m, " (the system did not answer)"));
    } else if (!std::isfinite(r->value) || !ok(r->value)) {
      problems.push_back(absl::StrCat(w, "/", s, ": ", m, " = ", r->value, ", expected ", what));
    }
  };
  auto positive = [](double v) { return v > 0; };
  auto zero = [](double v) { return v == 0; };
  for (const auto& w : workloads) {
    for (const auto& s : systems) {
      expect(w, s, "errors", zero, "0");
      if (w == "register") {
        expect(w, s, "registrations_per_s", positive, "> 0");
        expect(w, s, "register_latency_p99_ms", positive, "> 0");
        expect(
            w, s, "instances", [&](double v) { return v == sizes.register_instances; },
            absl::StrCat(sizes.register_instances));
        if (s == "cairn") expect(w, "grpc-direct", "unary_calls_per_s", positive, "> 0");
      } else if (w == "hold") {
        expect(w, s, "rss_bytes_per_publisher", positive, "> 0");
        expect(
            w, s, "instances_held", [&](double v) { return v == sizes.hold_instances; },
            absl::StrCat(sizes.hold_instances));
      } else if (w == "push") {
        for (const char* m :
             {"push_latency_p50_ms", "push_latency_p99_ms", "push_latency_p999_ms"}) {
          expect(w, s, m, positive, "> 0");
        }
      } else if (w == "fanout") {
        expect(w, s, "fanout_last_delivery_p99_ms", positive, "> 0");
      } else if (w == "storm") {
        expect(w, s, "storm_push_p99_ms", positive, "> 0");
        expect(w, s, "stale_subscribers", zero, "0");
        expect(w, s, "changes", positive, "> 0");
      }
    }
  }
  return problems;
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

}  // namespace
}  // namespace cairn::bench

int main(int argc, char** argv) {
  using namespace cairn::bench;
  bool quick = false;
  bool check = false;
  std::string json_file;
  std::string bin_dir;
  std::string systems_text = "cairn,etcd,zookeeper";
  std::string workloads_text = "register,hold,push,fanout,storm";
  std::string zk_heap = "2g";
  int64_t time_limit_s = 0;
  CLI::App app{
      "Cairn registry benchmark: starts cairn registry, etcd and ZooKeeper on 127.0.0.1 and "
      "drives the same workloads against each"};
  app.add_flag("--quick", quick, "small sizes: the whole run takes under a minute");
  app.add_flag("--check", check,
               "exit non-zero unless every system answered every workload with sane values");
  app.add_option("--json", json_file, "also write every figure as a JSON array of records");
  app.add_option("--bin-dir", bin_dir, "directory of the cairn binary (default: this binary's)");
  app.add_option("--systems", systems_text, "comma-separated: cairn,etcd,zookeeper");
  app.add_option("--workloads", workloads_text, "comma-separated: register,hold,push,fanout,storm");
  app.add_option("--zk-heap", zk_heap, "ZooKeeper's JVM -Xmx (default 2g)");
  std::string tls_dir;
  app.add_option("--tls-dir", tls_dir,
                 "cairn over mTLS: certificates from scripts/dev-certs DIR ... bench (needs "
                 "registry, cairnctl and bench)");
  app.add_option("--time-limit-s", time_limit_s,
                 "stop everything and fail after this long (default 7200, quick 150)");
  auto size_flags = SizeFlags();
  std::vector<int64_t> size_values(size_flags.size());
  std::vector<CLI::Option*> size_options;
  for (size_t i = 0; i < size_flags.size(); ++i) {
    size_options.push_back(app.add_option(size_flags[i].flag, size_values[i], size_flags[i].help));
  }
  CLI11_PARSE(app, argc, argv);

  // Before any other thread exists: the guard's signal mask must be inherited.
  StartGuard(seconds(time_limit_s > 0 ? time_limit_s : quick ? 150 : 7200));
  // A client that outlives a server must not be killed by a write to a closed socket.
  signal(SIGPIPE, SIG_IGN);

  auto systems = ParseList(systems_text, kSystems);
  auto workloads = ParseList(workloads_text, kWorkloads);
  if (!systems.ok() || !workloads.ok()) {
    std::cerr << (systems.ok() ? workloads.status() : systems.status()) << "\n";
    return 2;
  }
  Sizes sizes = quick ? QuickSizes() : Sizes();
  for (size_t i = 0; i < size_flags.size(); ++i) {
    if (size_options[i]->count() > 0) size_flags[i].set(sizes, size_values[i]);
  }
  SystemOptions options;
  options.bin_dir = bin_dir.empty()
                        ? std::filesystem::canonical("/proc/self/exe").parent_path().string()
                        : bin_dir;
  options.zk_heap = zk_heap;
  options.tls_dir = tls_dir;
  // Cairn caps registrations per stream: allow the largest any workload makes.
  options.max_registrations_per_connection =
      1000 + std::max({sizes.hold_instances / std::max(sizes.hold_connections, 1),
                       sizes.register_instances / std::max(sizes.register_connections, 1),
                       int64_t{sizes.storm_services}, int64_t{sizes.fanout_subscribers},
                       int64_t{sizes.fanout_publishers}});

  Results results;
  for (const auto& name : *systems) RunSystem(name, options, *workloads, sizes, results);

  auto records = results.records();
  std::printf("\n");
  PrintTable(records, *systems);
  if (!json_file.empty() && !WriteJson(records, json_file)) {
    std::cerr << "cannot write " << json_file << "\n";
    return 1;
  }
  if (check) {
    auto problems = Check(records, *systems, *workloads, sizes);
    for (const auto& p : problems) std::cerr << "check: " << p << "\n";
    std::cerr << "check: " << (problems.empty() ? "passed" : "FAILED") << "\n";
    if (!problems.empty()) return 1;
  }
  return 0;
}
