// Records of the xDS bench and what is made of them: the percentiles, the
// table, the JSON file (bench/report's format: an array of {workload,
// system, metric, value, unit} after a run record) and the run's
// description.
#pragma once

#include <string>
#include <vector>

#include "../common/run_info.h"

namespace cairn::bench::xds {

struct Record {
  std::string workload;
  std::string system;
  std::string metric;
  double value = 0;  // not finite: written as null (missing data)
  std::string unit;
  int round = -1;  // >= 1: one round's figure (bench/report never uses it)
  int rounds = 0;  // > 0: the figure is over this many rounds
  std::string note;
};

// Nearest-rank percentile of sorted values (NaN if empty), as the registry
// bench computes them.
double Percentile(const std::vector<double>& sorted, double p);

// One goal of the bench (also in bench/goals.json, area "xds").
struct Goal {
  std::string workload;
  std::string metric;
  double max_value;
  std::string text;
};
const std::vector<Goal>& Goals();

// The table: one row per (workload, metric), one column per system, the
// ratio of the first system to the second and the goal.
void PrintTable(const std::vector<Record>& records, const std::vector<std::string>& systems);

// A JSON string literal of `text`.
std::string JsonString(const std::string& text);

// Writes the run record (`meta`, a JSON object already encoded), then every
// record, as one JSON array. False if the file cannot be written.
bool WriteJson(const std::vector<Record>& records, const std::string& meta,
               const std::string& path);

// The run's machine, load and time: bench/common/run_info.h.
using cairn::bench::CommandOutput;
using cairn::bench::LoadAverage;
using cairn::bench::MachineLine;
using cairn::bench::UtcNow;

}  // namespace cairn::bench::xds
