#include "report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cairn::bench {

const std::vector<std::string>& AllSystems() {
  static const std::vector<std::string> kAll = {"cairn", "etcd", "zookeeper", "etcd-tmpfs",
                                                "zookeeper-nosync"};
  return kAll;
}

const std::vector<std::string>& DefaultDurabilityAnchors() {
  static const std::vector<std::string> kDefault = {"etcd", "zookeeper"};
  return kDefault;
}

const std::vector<std::string>& InMemoryAnchors() {
  static const std::vector<std::string> kInMemory = {"etcd-tmpfs", "zookeeper-nosync"};
  return kInMemory;
}

const std::vector<std::string>& AllWorkloads() {
  static const std::vector<std::string> kAll = {"register", "hold", "push", "fanout", "storm"};
  return kAll;
}

namespace {

double Median(std::vector<double> values) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
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

// A cell: the median and, over several rounds, how far the rounds spread.
std::string Cell(const Record& r) {
  std::string text = Format(r.value, r.unit);
  // Counts are the same in every round unless something failed (errors say).
  if (r.rounds > 1 && std::isfinite(r.spread_pct) && r.unit != "count") {
    text += absl::StrFormat(" (%.0f%%)", r.spread_pct);
  }
  return text;
}

// Cairn against the best of `anchors` that has this figure, e.g. "0.52x vs
// etcd (worse)"; "-" if none has it.
std::string Ratio(const std::map<std::string, Record>& by_system,
                  const std::vector<std::string>& anchors, const std::string& metric) {
  auto cairn = by_system.find("cairn");
  if (cairn == by_system.end() || !std::isfinite(cairn->second.value)) return "-";
  bool higher = HigherIsBetter(metric);
  double best = NAN;
  std::string best_name;
  for (const auto& name : anchors) {
    auto it = by_system.find(name);
    if (it == by_system.end() || !std::isfinite(it->second.value)) continue;
    double v = it->second.value;
    if (std::isnan(best) || (higher ? v > best : v < best)) {
      best = v;
      best_name = name;
    }
  }
  if (std::isnan(best)) return "-";
  double c = cairn->second.value;
  if (best <= 0) {
    return c == best ? absl::StrFormat("same as %s", best_name)
                     : absl::StrFormat("worse than %s", best_name);
  }
  bool better = higher ? c > best : c < best;
  bool same = std::fabs(c - best) <= 0.005 * best;
  return absl::StrFormat("%.2fx vs %s (%s)", c / best, best_name,
                         same     ? "same"
                         : better ? "better"
                                  : "worse");
}

std::string JsonNumber(double v, const char* format = "%.10g") {
  // NaN is not JSON; a missing measurement becomes null.
  return std::isfinite(v) ? absl::StrFormat(format, v) : "null";
}

}  // namespace

std::vector<Record> Medians(const std::vector<Record>& records) {
  using Key = std::tuple<std::string, std::string, std::string>;
  std::vector<Key> order;
  std::map<Key, std::vector<const Record*>> groups;
  for (const auto& r : records) {
    if (r.round < 0) continue;
    Key key{r.workload, r.system, r.metric};
    if (!groups.count(key)) order.push_back(key);
    groups[key].push_back(&r);
  }
  std::vector<Record> out;
  for (const auto& key : order) {
    const auto& group = groups[key];
    std::vector<double> values;
    for (const auto* r : group) {
      if (std::isfinite(r->value)) values.push_back(r->value);
    }
    Record m = *group.front();
    m.round = -1;
    m.rounds = static_cast<int>(group.size());
    m.value = Median(values);
    m.spread_pct = NAN;
    if (!values.empty()) {
      auto [lo, hi] = std::minmax_element(values.begin(), values.end());
      if (*hi == *lo) {
        m.spread_pct = 0;
      } else if (m.value != 0) {
        m.spread_pct = std::round((*hi - *lo) / std::fabs(m.value) * 1000) / 10;
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

void PrintTable(const std::vector<Record>& medians, const std::vector<std::string>& systems) {
  // Rows in first-seen order; grpc-direct is printed apart (it only anchors
  // the register workload).
  std::vector<std::pair<std::string, std::string>> rows;
  std::map<std::pair<std::string, std::string>, std::map<std::string, Record>> cells;
  for (const auto& r : medians) {
    if (r.system == "grpc-direct") continue;
    auto key = std::make_pair(r.workload, r.metric);
    if (!cells.count(key)) rows.push_back(key);
    cells[key][r.system] = r;
  }
  const auto& workloads = AllWorkloads();
  auto rank = [&](const std::string& w) {
    return std::find(workloads.begin(), workloads.end(), w) - workloads.begin();
  };
  std::stable_sort(rows.begin(), rows.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  auto selected = [&](const std::vector<std::string>& names) {
    std::vector<std::string> out;
    for (const auto& n : names) {
      if (std::find(systems.begin(), systems.end(), n) != systems.end()) out.push_back(n);
    }
    return out;
  };
  const auto default_anchors = selected(DefaultDurabilityAnchors());
  const auto memory_anchors = selected(InMemoryAnchors());
  std::printf("%-9s %-30s %-6s", "workload", "metric", "unit");
  for (const auto& s : systems) std::printf(" %18s", s.c_str());
  if (!default_anchors.empty()) std::printf("  %-32s", "cairn vs best fsync anchor");
  if (!memory_anchors.empty()) std::printf("  %s", "cairn vs best in-memory anchor");
  std::printf("\n");
  for (const auto& key : rows) {
    const auto& by_system = cells[key];
    const Record& any = by_system.begin()->second;
    std::printf("%-9s %-30s %-6s", key.first.c_str(), key.second.c_str(), any.unit.c_str());
    for (const auto& s : systems) {
      auto it = by_system.find(s);
      std::printf(" %18s", it == by_system.end() ? "-" : Cell(it->second).c_str());
    }
    if (!default_anchors.empty()) {
      std::string ratio = Compared(any) ? Ratio(by_system, default_anchors, key.second) : "-";
      std::printf("  %-32s", ratio.c_str());
    }
    if (!memory_anchors.empty()) {
      std::string ratio = Compared(any) ? Ratio(by_system, memory_anchors, key.second) : "-";
      std::printf("  %s", ratio.c_str());
    }
    std::printf("\n");
  }
  for (const auto& r : medians) {
    if (r.system != "grpc-direct") continue;
    std::printf("grpc-direct (register anchor: unary gRPC call, same server): %s = %s %s\n",
                r.metric.c_str(), Cell(r).c_str(), r.unit.c_str());
  }
  std::set<std::string> notes;
  for (const auto& r : medians) {
    if (!r.note.empty() && notes.insert(r.note).second) std::printf("note: %s\n", r.note.c_str());
  }
  std::printf("(cells: the median of the rounds; (n%%) = their spread, (max - min) / median)\n");
  std::fflush(stdout);
}

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

bool WriteJson(const std::vector<Record>& records, const std::string& meta,
               const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  out << "[\n  {\"workload\": \"run\", \"system\": \"registry\", \"metric\": \"meta\", "
         "\"value\": 1, \"unit\": \"info\", \"meta\": "
      << meta << "}" << (records.empty() ? "" : ",") << "\n";
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    out << "  {\"workload\": " << JsonString(r.workload) << ", \"system\": " << JsonString(r.system)
        << ", \"metric\": " << JsonString(r.metric) << ", \"value\": " << JsonNumber(r.value)
        << ", \"unit\": " << JsonString(r.unit);
    if (r.round >= 0) out << ", \"round\": " << r.round;
    if (r.rounds > 0) {
      out << ", \"spread_pct\": " << JsonNumber(r.spread_pct, "%.1f")
          << ", \"rounds\": " << r.rounds;
    }
    if (!r.note.empty()) out << ", \"note\": " << JsonString(r.note);
    out << "}" << (i + 1 < records.size() ? "," : "") << "\n";
  }
  out << "]\n";
  return static_cast<bool>(out);
}

std::vector<std::string> Check(const std::vector<Record>& records,
                               const std::vector<std::string>& systems,
                               const std::vector<std::string>& workloads, const Sizes& sizes,
                               int rounds, int hold_rounds) {
  std::vector<std::string> problems;
  for (int round = 0; round < rounds; ++round) {
    auto find = [&](const std::string& w, const std::string& s, const std::string& m) {
      const Record* found = nullptr;
      for (const auto& r : records) {
        if (r.round == round && r.workload == w && r.system == s && r.metric == m) found = &r;
      }
      return found;
    };
    auto expect = [&](const std::string& w, const std::string& s, const std::string& m,
                      const std::function<bool(double)>& ok, const std::string& what) {
      const Record* r = find(w, s, m);
      std::string where = absl::StrCat(w, "/", s, " round ", round, ": ");
      if (r == nullptr) {
        problems.push_back(absl::StrCat(where, "no ", m, " (the system did not answer)"));
      } else if (!std::isfinite(r->value) || !ok(r->value)) {
        problems.push_back(absl::StrCat(where, m, " = ", r->value, ", expected ", what));
      }
    };
    auto positive = [](double v) { return v > 0; };
    auto zero = [](double v) { return v == 0; };
    for (const auto& w : workloads) {
      if (w == "hold" && round >= hold_rounds) continue;
      if (w == "hold-10m" && round > 0) continue;
      for (const auto& s : systems) {
        if (w == "hold-10m" && s != "cairn") continue;  // Cairn only
        // Any refused batch (a Txn over etcd's limits, a multi over
        // ZooKeeper's) fails its registrations: counted here.
        expect(w, s, "errors", zero, "0");
        if (w == "register") {
          expect(w, s, "registrations_per_s", positive, "> 0");
          expect(w, s, "register_latency_p99_ms", positive, "> 0");
          expect(
              w, s, "instances", [&](double v) { return v == sizes.register_instances; },
              absl::StrCat(sizes.register_instances));
          if (s == "cairn") expect(w, "grpc-direct", "unary_calls_per_s", positive, "> 0");
        } else if (w == "hold" || w == "hold-10m") {
          const int64_t instances = w == "hold" ? sizes.hold_instances : sizes.hold10m_instances;
          expect(w, s, "rss_bytes_per_publisher", positive, "> 0");
          expect(
              w, s, "instances_held", [&](double v) { return v == instances; },
              absl::StrCat(instances));
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
  }
  return problems;
}

}  // namespace cairn::bench
