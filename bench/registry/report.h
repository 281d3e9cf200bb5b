// What cairn_registry_bench makes of its records: the median over rounds,
// the table, the JSON file and the smoke test's sanity checks.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "workloads.h"

namespace cairn::bench {

// Every system the bench knows, in table order: Cairn, the anchors with
// their default durability (fsync to disk), then the durability-equal ones
// (nothing waits for a disk, as Cairn keeps registrations in memory).
const std::vector<std::string>& AllSystems();
const std::vector<std::string>& DefaultDurabilityAnchors();
const std::vector<std::string>& InMemoryAnchors();
const std::vector<std::string>& AllWorkloads();

// One median record per (workload, system, metric) of the per-round
// `records` (round >= 0), in first-seen order: value = median of the
// rounds' finite values, spread_pct = (max - min) / median * 100 rounded to
// one decimal, rounds = how many rounds had it, note carried over.
std::vector<Record> Medians(const std::vector<Record>& records);

// The table of the median records, with Cairn's ratio to the best anchor
// of each durability class.
void PrintTable(const std::vector<Record>& medians, const std::vector<std::string>& systems);

// A JSON string literal of `text`.
std::string JsonString(const std::string& text);

// Writes `meta` (a JSON object, already encoded) as the run record, then
// every record, as one JSON array.
bool WriteJson(const std::vector<Record>& records, const std::string& meta,
               const std::string& path);

// The smoke test's assertions over the per-round records: every selected
// system answered every selected workload in every round that ran it, with
// sane values. Never a speed threshold. `hold_rounds`: how many rounds ran
// hold (it may run once).
std::vector<std::string> Check(const std::vector<Record>& records,
                               const std::vector<std::string>& systems,
                               const std::vector<std::string>& workloads, const Sizes& sizes,
                               int rounds, int hold_rounds);

}  // namespace cairn::bench
