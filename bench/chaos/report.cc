#include "report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "percentile.h"
#include "process.h"

namespace cairn::chaos {

namespace {

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string Record(const std::string& workload, const std::string& metric, double value,
                   const std::string& unit, const std::string& extra = "") {
  return absl::StrFormat(
      "  {\"workload\": %s, \"system\": \"cairn\", \"metric\": %s, \"value\": %.3f, "
      "\"unit\": %s%s}",
      JsonString(workload), JsonString(metric), value, JsonString(unit), extra);
}

std::vector<double> Sorted(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return samples;
}

}  // namespace

FaultStats& Report::Fault(const std::string& name, std::chrono::milliseconds budget) {
  for (auto& fault : faults_) {
    if (fault.name == name) return fault;
  }
  faults_.push_back(FaultStats{});
  faults_.back().name = name;
  faults_.back().budget = budget;
  return faults_.back();
}

void Report::Skip(const std::string& name, const std::string& reason) {
  FaultStats& fault = Fault(name, std::chrono::milliseconds(0));
  fault.skipped = reason;
  std::printf("%-28s SKIPPED: %s\n", name.c_str(), reason.c_str());
  std::fflush(stdout);
}

void Report::AddRound(const std::string& name, int round, const RoundOutcome& outcome,
                      int64_t false_removals, int64_t duplicates,
                      const std::vector<FalseRemoval>& removals, bool fault_ok) {
  FaultStats& fault = Fault(name, std::chrono::milliseconds(0));
  ++fault.rounds;
  fault.convergence_ms.push_back(outcome.convergence_ms);
  bool failed = !fault_ok || !outcome.converged || outcome.stale_subscribers > 0;
  if (failed) ++fault.failed_rounds;
  fault.false_removals += false_removals;
  fault.duplicates += duplicates;
  fault.stale_subscribers += outcome.stale_subscribers;
  std::printf(
      "%-28s round %d: converged %s in %8.1f ms, false removals %3lld, stale %d, "
      "duplicates %lld%s%s\n",
      name.c_str(), round + 1, outcome.converged ? "yes" : "NO ", outcome.convergence_ms,
      static_cast<long long>(false_removals), outcome.stale_subscribers,
      static_cast<long long>(duplicates), fault_ok ? "" : ", FAULT FAILED",
      outcome.settled ? "" : ", cluster not settled");
  if (outcome.convergence_ms > 1000 && !outcome.last_wrong.empty()) {
    std::printf("    last wrong: %s\n", outcome.last_wrong.c_str());
  }
  if (!outcome.stale_detail.empty()) {
    std::printf("    stale: %s\n", outcome.stale_detail.c_str());
  }
  for (size_t i = 0; i < removals.size() && i < 4; ++i) {
    const FalseRemoval& r = removals[i];
    std::printf(
        "    FALSE REMOVAL %.2f s into the fault: %s v%llu shows %zu (had %zu), missing %zu live: "
        "%s\n",
        r.at_s, r.subscriber.c_str(), static_cast<unsigned long long>(r.version), r.in_push,
        r.shown_before, r.missing.size(),
        absl::StrJoin(r.missing.begin(), r.missing.begin() + std::min<size_t>(r.missing.size(), 4),
                      ",")
            .c_str());
    if (fault.first_removals.size() < 8) fault.first_removals.push_back(r);
  }
  if (removals.size() > 4) std::printf("    ... and %zu more\n", removals.size() - 4);
  std::fflush(stdout);
}

void Report::AddLate(const std::string& name, int64_t false_removals_total,
                     int64_t duplicates_total) {
  FaultStats& fault = Fault(name, std::chrono::milliseconds(0));
  int64_t late_removals = false_removals_total - fault.false_removals;
  int64_t late_duplicates = duplicates_total - fault.duplicates;
  if (late_removals <= 0 && late_duplicates <= 0) return;
  fault.false_removals = std::max(fault.false_removals, false_removals_total);
  fault.duplicates = std::max(fault.duplicates, duplicates_total);
  std::printf(
      "%-28s after its rounds (while settling): %lld more false removals, %lld more "
      "duplicates\n",
      name.c_str(), static_cast<long long>(late_removals), static_cast<long long>(late_duplicates));
  std::fflush(stdout);
}

void Report::PrintTable() const {
  std::printf("\n%-28s %6s %10s %10s %10s %8s %8s %8s %8s\n", "fault", "rounds", "p50 ms", "p99 ms",
              "budget ms", "false_rm", "stale", "dup", "failed");
  for (const auto& fault : faults_) {
    if (!fault.skipped.empty()) {
      std::printf("%-28s skipped: %s\n", fault.name.c_str(), fault.skipped.c_str());
      continue;
    }
    auto sorted = Sorted(fault.convergence_ms);
    std::printf("%-28s %6d %10.1f %10.1f %10lld %8lld %8lld %8lld %8d\n", fault.name.c_str(),
                fault.rounds, bench::NearestRank(sorted, 0.5), bench::NearestRank(sorted, 0.99),
                static_cast<long long>(fault.budget.count()),
                static_cast<long long>(fault.false_removals),
                static_cast<long long>(fault.stale_subscribers),
                static_cast<long long>(fault.duplicates), fault.failed_rounds);
  }
  std::fflush(stdout);
}

std::string Report::Json() const {
  std::vector<std::string> records;
  std::vector<std::string> info;
  for (const auto& [key, value] : run_info)
    info.push_back(JsonString(key) + ": " + JsonString(value));
  records.push_back(Record("_run", "info", 0, "", ", " + absl::StrJoin(info, ", ")));
  for (const auto& fault : faults_) {
    if (!fault.skipped.empty()) {
      records.push_back(
          Record(fault.name, "skipped", 1, "bool", ", \"reason\": " + JsonString(fault.skipped)));
      continue;
    }
    auto sorted = Sorted(fault.convergence_ms);
    records.push_back(
        Record(fault.name, "convergence_p50_ms", bench::NearestRank(sorted, 0.5), "ms"));
    records.push_back(
        Record(fault.name, "convergence_p99_ms", bench::NearestRank(sorted, 0.99), "ms"));
    records.push_back(
        Record(fault.name, "false_removals", static_cast<double>(fault.false_removals), "count"));
    records.push_back(Record(fault.name, "stale_subscribers",
                             static_cast<double>(fault.stale_subscribers), "count"));
    records.push_back(
        Record(fault.name, "duplicates", static_cast<double>(fault.duplicates), "count"));
    records.push_back(Record(fault.name, "failed_rounds", fault.failed_rounds, "count"));
    records.push_back(Record(fault.name, "rounds", fault.rounds, "count"));
    records.push_back(
        Record(fault.name, "budget_ms", static_cast<double>(fault.budget.count()), "ms"));
  }
  return "[\n" + absl::StrJoin(records, ",\n") + "\n]\n";
}

std::string Report::CheckFailures() const {
  std::vector<std::string> failures;
  for (const auto& fault : faults_) {
    if (!fault.skipped.empty()) continue;
    if (fault.false_removals > 0) {
      failures.push_back(absl::StrCat(fault.name, ": ", fault.false_removals, " false removals"));
    }
    if (fault.stale_subscribers > 0) {
      failures.push_back(
          absl::StrCat(fault.name, ": ", fault.stale_subscribers, " stale subscribers"));
    }
    if (fault.failed_rounds > 0) {
      failures.push_back(absl::StrCat(fault.name, ": ", fault.failed_rounds, " of ", fault.rounds,
                                      " rounds failed (budget ", fault.budget.count(), " ms)"));
    }
  }
  return absl::StrJoin(failures, "; ");
}

std::string MachineDescription() {
  std::string model;
  std::ifstream cpu("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  double mem_gib = 0;
  std::ifstream mem("/proc/meminfo");
  while (std::getline(mem, line)) {
    if (line.rfind("MemTotal:", 0) == 0) mem_gib = std::stod(line.substr(9)) / 1048576.0;
  }
  return absl::StrFormat("%u CPUs, %s, %.1f GiB RAM", std::thread::hardware_concurrency(), model,
                         mem_gib);
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string SourceCommit() {
  auto [code, head] = cairn::testing::RunCommand(
      {"/usr/bin/git", "-C", CAIRN_SOURCE_DIR, "rev-parse", "HEAD"}, std::chrono::seconds(10));
  if (code != 0) return "unknown";
  head = head.substr(0, head.find('\n'));
  auto [status_code, status] = cairn::testing::RunCommand(
      {"/usr/bin/git", "-C", CAIRN_SOURCE_DIR, "status", "--porcelain", "--untracked-files=no"},
      std::chrono::seconds(10));
  if (status_code == 0 && !status.empty()) head += "+dirty";
  return head;
}

}  // namespace cairn::chaos
