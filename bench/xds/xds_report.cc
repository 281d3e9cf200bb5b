#include "xds_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace cairn::bench::xds {

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return NAN;
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

const std::vector<Goal>& Goals() {
  static const auto* goals = new std::vector<Goal>{
      {"change", "last_delivery_p99_ms", 100, "<= 100 ms"},
      {"memory", "bytes_per_stream", 20480, "<= 20 KB"},
  };
  return *goals;
}

namespace {

std::optional<double> Find(const std::vector<Record>& records, const std::string& workload,
                           const std::string& system, const std::string& metric) {
  for (const auto& r : records) {
    if (r.round < 0 && r.workload == workload && r.system == system && r.metric == metric) {
      return r.value;
    }
  }
  return std::nullopt;
}

std::string Format(std::optional<double> value, const std::string& unit) {
  if (!value) return "";
  if (!std::isfinite(*value)) return "-";
  if (unit == "ms") return absl::StrFormat("%.1f", *value);
  std::string digits = absl::StrFormat("%.0f", std::fabs(*value));
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return *value < 0 ? "-" + out : out;
}

}  // namespace

void PrintTable(const std::vector<Record>& records, const std::vector<std::string>& systems) {
  std::vector<std::pair<std::string, std::string>> rows;  // (workload, metric), first seen
  std::map<std::pair<std::string, std::string>, std::string> units;
  for (const auto& r : records) {
    if (r.round >= 0 || r.metric == "failed") continue;
    auto key = std::make_pair(r.workload, r.metric);
    if (!units.count(key)) {
      rows.push_back(key);
      units[key] = r.unit;
    }
  }
  // Grouped by workload, workloads and metrics in first-seen order.
  std::vector<std::string> workloads;
  for (const auto& row : rows) {
    if (std::find(workloads.begin(), workloads.end(), row.first) == workloads.end()) {
      workloads.push_back(row.first);
    }
  }
  std::stable_sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
    return std::find(workloads.begin(), workloads.end(), a.first) <
           std::find(workloads.begin(), workloads.end(), b.first);
  });
  std::string ratio_head = systems.size() >= 2 ? "ratio" : "";
  std::printf("%-8s %-29s %-5s", "workload", "metric", "unit");
  for (const auto& s : systems) std::printf(" %14s", s.c_str());
  std::printf(" %7s  %s\n", ratio_head.c_str(), "goal");
  for (const auto& [workload, metric] : rows) {
    const std::string& unit = units[{workload, metric}];
    std::printf("%-8s %-29s %-5s", workload.c_str(), metric.c_str(), unit.c_str());
    std::vector<std::optional<double>> values;
    for (const auto& s : systems) {
      values.push_back(Find(records, workload, s, metric));
      std::printf(" %14s", Format(values.back(), unit).c_str());
    }
    std::string ratio;
    if (values.size() >= 2 && values[0] && values[1] && std::isfinite(*values[0]) &&
        std::isfinite(*values[1]) && *values[1] != 0) {
      ratio = absl::StrFormat("%.2fx", *values[0] / *values[1]);
    }
    std::string goal;
    for (const auto& g : Goals()) {
      if (g.workload != workload || g.metric != metric || values.empty()) continue;
      // The goal is on the first system (cairn-xds); without its figure, none.
      if (!values[0] || !std::isfinite(*values[0])) {
        goal = absl::StrCat(g.text, ": no figure");
      } else {
        goal = absl::StrCat(g.text, ": ", *values[0] <= g.max_value ? "met" : "NOT met");
      }
    }
    std::printf(" %7s  %s\n", ratio.c_str(), goal.c_str());
  }
  std::fflush(stdout);
}

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
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

bool WriteJson(const std::vector<Record>& records, const std::string& meta,
               const std::string& path) {
  std::ostringstream out;
  out << "[\n  {\"workload\": \"run\", \"system\": \"xds\", \"metric\": \"meta\", \"value\": 1, "
         "\"unit\": \"info\", \"meta\": "
      << meta << "}";
  for (const auto& r : records) {
    std::string value = std::isfinite(r.value) ? absl::StrFormat("%.10g", r.value) : "null";
    out << ",\n  {\"workload\": " << JsonString(r.workload)
        << ", \"system\": " << JsonString(r.system) << ", \"metric\": " << JsonString(r.metric)
        << ", \"value\": " << value << ", \"unit\": " << JsonString(r.unit);
    if (r.round >= 0) out << ", \"round\": " << r.round;
    if (r.rounds > 0) out << ", \"rounds\": " << r.rounds;
    if (!r.note.empty()) out << ", \"note\": " << JsonString(r.note);
    out << "}";
  }
  out << "\n]\n";
  std::ofstream file(path, std::ios::trunc);
  file << out.str();
  return static_cast<bool>(file);
}

}  // namespace cairn::bench::xds
