#include "registry/cluster/slot_planner.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "cairn/cluster/v1/cluster.pb.h"

namespace cairn::cluster {
namespace {

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// One planning step over a copy of the table. Counts cover live servers only.
class Step {
 public:
  // `fresh`: a new table; every slot counts as changed (epoch 1).
  Step(SlotTable table, bool fresh, const std::vector<std::string>& live,
       const SlotPlanOptions& options)
      : fresh_(fresh),
        live_(live),
        live_set_(live.begin(), live.end()),
        unlimited_(options.max_moves == 0),
        budget_(options.max_moves),
        want_followers_(
            live.empty()
                ? 0
                : std::min<uint32_t>(options.replicas, static_cast<uint32_t>(live.size())) - 1) {
    plan_.table = std::move(table);
    changed_.assign(plan_.table.slots.size(), fresh);
    original_ = plan_.table.slots;
    for (const auto& s : live_) {
      leaders_[s] = 0;
      followers_[s] = 0;
    }
  }

  SlotPlan Run(uint64_t previous_epoch) {
    Repair();
    Fill();
    // One move at a time, the cheapest kind first, until none helps or the
    // budget is spent: a leader swap can unbalance followers again.
    bool moved = true;
    bool waiting = false;
    while (moved && HasBudget()) {
      moved = MoveOneFollower();
      if (moved) continue;
      Swap swap = SwapOneLeader();
      moved = swap == Swap::kDone;
      waiting = swap == Swap::kWaiting;
      if (!moved && !waiting) moved = MoveOneLeader();
    }
    plan_.stable = !moved && !waiting;
    // A slot may change and change back within a step: compare with where
    // it started.
    for (size_t i = 0; i < changed_.size(); ++i) {
      const auto& now = plan_.table.slots[i];
      changed_[i] =
          fresh_ || now.leader != original_[i].leader || now.followers != original_[i].followers;
    }
    bool any = std::find(changed_.begin(), changed_.end(), true) != changed_.end();
    plan_.table.epoch = any ? previous_epoch + 1 : previous_epoch;
    for (size_t i = 0; i < changed_.size(); ++i) {
      if (changed_[i]) plan_.table.slots[i].epoch = plan_.table.epoch;
    }
    return std::move(plan_);
  }

 private:
  bool Live(const std::string& s) const { return live_set_.count(s) != 0; }
  static bool Member(const SlotAssignment& a, const std::string& s) {
    return a.leader == s || Contains(a.followers, s);
  }
  bool HasBudget() const { return unlimited_ || budget_ > 0; }
  void Spend(size_t slot) {
    if (!unlimited_) --budget_;
    ++plan_.moves;
    changed_[slot] = true;
  }
  // The server minimizing (primary count, secondary count, id) among those
  // accepted by `ok`; empty if none.
  template <typename Ok>
  std::string Least(const std::map<std::string, uint32_t>& primary,
                    const std::map<std::string, uint32_t>& secondary, Ok ok) const {
    std::string best;
    std::tuple<uint32_t, uint32_t> best_key{};
    for (const auto& s : live_) {
      if (!ok(s)) continue;
      auto key = std::make_tuple(primary.at(s), secondary.at(s));
      if (best.empty() || key < best_key) {
        best = s;
        best_key = key;
      }
    }
    return best;
  }

  void Repair() {
    // Drop members that are gone (and malformed entries) first, so the
    // counts used to pick new leaders are right.
    for (size_t i = 0; i < plan_.table.slots.size(); ++i) {
      auto& a = plan_.table.slots[i];
      std::vector<std::string> kept;
      for (const auto& f : a.followers) {
        if (Live(f) && f != a.leader && !Contains(kept, f)) kept.push_back(f);
      }
      if (kept.size() != a.followers.size()) {
        a.followers = std::move(kept);
        changed_[i] = true;
      }
      if (Live(a.leader)) ++leaders_[a.leader];
      for (const auto& f : a.followers) ++followers_[f];
    }
    for (size_t i = 0; i < plan_.table.slots.size(); ++i) {
      auto& a = plan_.table.slots[i];
      if (Live(a.leader) || (live_.empty() && a.leader.empty())) {
        if (changed_[i]) ++plan_.repairs;
        continue;
      }
      const bool had_leader = !a.leader.empty();
      if (!a.followers.empty()) {
        auto it = std::min_element(a.followers.begin(), a.followers.end(),
                                   [&](const auto& x, const auto& y) {
                                     return std::make_tuple(leaders_[x], followers_[x], x) <
                                            std::make_tuple(leaders_[y], followers_[y], y);
                                   });
        a.leader = *it;
        a.followers.erase(it);
        --followers_[a.leader];
        ++leaders_[a.leader];
      } else if (!live_.empty()) {
        a.leader = Least(leaders_, followers_, [](const std::string&) { return true; });
        ++leaders_[a.leader];
        if (had_leader) ++plan_.direct_leader_moves;
      } else {
        a.leader.clear();
      }
      changed_[i] = true;
      ++plan_.repairs;
    }
  }

  void Fill() {
    for (size_t i = 0; i < plan_.table.slots.size(); ++i) {
      auto& a = plan_.table.slots[i];
      while (a.followers.size() > want_followers_) {
        auto it = std::max_element(
            a.followers.begin(), a.followers.end(), [&](const auto& x, const auto& y) {
              return std::make_tuple(followers_[x], x) < std::make_tuple(followers_[y], y);
            });
        --followers_[*it];
        a.followers.erase(it);
        changed_[i] = true;
      }
    }
    // How often each server follows each leader. Among equally loaded
    // candidates, the one that follows this leader least: then the slots of
    // any one server have varied followers, and when it dies its slots are
    // promoted onto many servers, not onto the same few.
    std::map<std::pair<std::string, std::string>, uint32_t> pairs;
    for (const auto& a : plan_.table.slots) {
      for (const auto& f : a.followers) ++pairs[{a.leader, f}];
    }
    for (size_t i = 0; i < plan_.table.slots.size(); ++i) {
      auto& a = plan_.table.slots[i];
      while (a.followers.size() < want_followers_ && HasBudget()) {
        std::string best;
        std::tuple<uint32_t, uint32_t, uint32_t> best_key{};
        for (const auto& c : live_) {
          if (Member(a, c)) continue;
          auto it = pairs.find({a.leader, c});
          auto key =
              std::make_tuple(followers_[c], it == pairs.end() ? 0u : it->second, leaders_[c]);
          if (best.empty() || key < best_key) {
            best = c;
            best_key = key;
          }
        }
        if (best.empty()) break;
        a.followers.push_back(best);
        ++followers_[best];
        ++pairs[{a.leader, best}];
        Spend(i);
      }
    }
  }

  // Servers by count, descending (ties: id ascending) or ascending.
  std::vector<std::string> Sorted(const std::map<std::string, uint32_t>& count,
                                  bool descending) const {
    std::vector<std::string> out = live_;
    std::stable_sort(out.begin(), out.end(), [&](const auto& x, const auto& y) {
      return descending ? count.at(x) > count.at(y) : count.at(x) < count.at(y);
    });
    return out;
  }

  // Rule 3: one follower from a server with the most followers to one with
  // at least two fewer.
  bool MoveOneFollower() {
    auto most = Sorted(followers_, true);
    auto least = Sorted(followers_, false);
    for (const auto& x : most) {
      for (const auto& y : least) {
        if (followers_[x] < followers_[y] + 2) break;
        // Among slots where x follows and y is absent, the one whose leader
        // leads most: y there can later take the leadership over.
        int best = -1;
        for (size_t i = 0; i < plan_.table.slots.size(); ++i) {
          const auto& a = plan_.table.slots[i];
          if (!Contains(a.followers, x) || Member(a, y)) continue;
          if (best < 0 || leaders_[a.leader] > leaders_[plan_.table.slots[best].leader]) {
            best = static_cast<int>(i);
          }
        }
        if (best < 0) continue;
        auto& a = plan_.table.slots[best];
        *std::find(a.followers.begin(), a.followers.end(), x) = y;
        --followers_[x];
        ++followers_[y];
        Spend(static_cast<size_t>(best));
        return true;
      }
    }
    return false;
  }

  enum class Swap { kDone, kWaiting, kNone };

  // Rule 4: a follower takes the leadership over; no data moves. Only a
  // follower of the table this step started from has the slot's data: one
  // added in this step must first catch up, so the swap waits for the next
  // step (kWaiting) rather than falling back to a direct move.
  Swap SwapOneLeader() {
    auto most = Sorted(leaders_, true);
    auto least = Sorted(leaders_, false);
    bool waiting = false;
    for (const auto& x : most) {
      for (const auto& y : least) {
        if (leaders_[x] < leaders_[y] + 2) break;
        for (size_t i = 0; i < plan_.table.slots.size(); ++i) {
          auto& a = plan_.table.slots[i];
          if (a.leader != x || !Contains(a.followers, y)) continue;
          if (!Contains(original_[i].followers, y)) {
            waiting = true;
            continue;
          }
          *std::find(a.followers.begin(), a.followers.end(), y) = x;
          a.leader = y;
          --leaders_[x];
          ++leaders_[y];
          ++followers_[x];
          --followers_[y];
          Spend(i);
          return Swap::kDone;
        }
      }
    }
    return waiting ? Swap::kWaiting : Swap::kNone;
  }

  // Rule 4's fallback: no slot of an overloaded leader has an underloaded
  // follower. The leadership moves; the old leader stays as a follower in
  // place of the busiest follower.
  bool MoveOneLeader() {
    auto most = Sorted(leaders_, true);
    auto least = Sorted(leaders_, false);
    for (const auto& x : most) {
      for (const auto& y : least) {
        if (leaders_[x] < leaders_[y] + 2) break;
        for (size_t i = 0; i < plan_.table.slots.size(); ++i) {
          auto& a = plan_.table.slots[i];
          // A slot whose leader already changed in this step keeps it.
          if (a.leader != x || Member(a, y) || a.leader != original_[i].leader) continue;
          if (want_followers_ > 0) {
            if (a.followers.size() >= want_followers_) {
              auto it = std::max_element(
                  a.followers.begin(), a.followers.end(), [&](const auto& p, const auto& q) {
                    return std::make_tuple(followers_[p], p) < std::make_tuple(followers_[q], q);
                  });
              --followers_[*it];
              a.followers.erase(it);
            }
            a.followers.push_back(x);
            ++followers_[x];
          }
          a.leader = y;
          --leaders_[x];
          ++leaders_[y];
          ++plan_.direct_leader_moves;
          Spend(i);
          return true;
        }
      }
    }
    return false;
  }

  const bool fresh_;
  const std::vector<std::string>& live_;
  const std::set<std::string> live_set_;
  const bool unlimited_;
  uint32_t budget_;
  const uint32_t want_followers_;
  std::map<std::string, uint32_t> leaders_;
  std::map<std::string, uint32_t> followers_;
  std::vector<bool> changed_;
  // The slots as this step found them.
  std::vector<SlotAssignment> original_;
  SlotPlan plan_;
};

}  // namespace

absl::StatusOr<SlotPlan> PlanSlotTable(const SlotTable& previous,
                                       const std::vector<std::string>& live_servers,
                                       const SlotPlanOptions& options) {
  if (options.slot_count == 0) return absl::InvalidArgumentError("slot_count must be positive");
  if (options.replicas == 0) return absl::InvalidArgumentError("replicas must be positive");
  std::vector<std::string> live = live_servers;
  std::sort(live.begin(), live.end());
  for (size_t i = 0; i < live.size(); ++i) {
    if (live[i].empty()) return absl::InvalidArgumentError("empty data server id");
    if (i > 0 && live[i] == live[i - 1]) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate data server id ", live[i]));
    }
  }
  SlotTable table = previous;
  const bool fresh = table.slots.empty();
  if (fresh) {
    table.slots.resize(options.slot_count);
    for (uint32_t i = 0; i < options.slot_count; ++i) table.slots[i].slot = i;
  } else if (table.slots.size() != options.slot_count) {
    return absl::InvalidArgumentError(absl::StrCat("the table has ", table.slots.size(),
                                                   " slots, configured ", options.slot_count,
                                                   ": slots cannot be resized"));
  }
  return Step(std::move(table), fresh, live, options).Run(previous.epoch);
}

absl::Status ValidateSlotTable(const SlotTable& table, const std::vector<std::string>& live,
                               uint32_t replicas) {
  std::set<std::string> live_set(live.begin(), live.end());
  for (size_t i = 0; i < table.slots.size(); ++i) {
    const auto& a = table.slots[i];
    auto bad = [&](const std::string& why) {
      return absl::FailedPreconditionError(absl::StrCat("slot ", i, ": ", why));
    };
    if (a.slot != i) return bad("slot number does not match its index");
    if (a.epoch > table.epoch) return bad("slot epoch above the table epoch");
    if (live.empty()) continue;
    if (live_set.count(a.leader) == 0) return bad("leader '" + a.leader + "' is not live");
    if (a.followers.size() + 1 > replicas) return bad("too many followers");
    std::set<std::string> seen = {a.leader};
    for (const auto& f : a.followers) {
      if (live_set.count(f) == 0) return bad("follower '" + f + "' is not live");
      if (!seen.insert(f).second) return bad("'" + f + "' appears twice");
    }
  }
  return absl::OkStatus();
}

std::map<std::string, ServerLoad> ComputeLoad(const SlotTable& table,
                                              const std::vector<std::string>& live) {
  std::map<std::string, ServerLoad> load;
  for (const auto& s : live) load[s];
  for (const auto& a : table.slots) {
    if (!a.leader.empty()) ++load[a.leader].leaders;
    for (const auto& f : a.followers) ++load[f].followers;
  }
  return load;
}

std::string SerializeSlotTable(const SlotTable& table, uint32_t replicas) {
  cairn::cluster::v1::SlotTable out;
  out.set_epoch(table.epoch);
  out.set_replicas(replicas);
  for (const auto& a : table.slots) {
    auto* slot = out.add_slots();
    slot->set_slot(a.slot);
    slot->set_leader(a.leader);
    for (const auto& f : a.followers) slot->add_followers(f);
    slot->set_epoch(a.epoch);
  }
  return out.SerializeAsString();
}

absl::StatusOr<SlotTable> ParseSlotTable(const std::string& bytes, uint32_t* replicas) {
  cairn::cluster::v1::SlotTable in;
  if (!in.ParseFromString(bytes)) return absl::DataLossError("not a cairn.cluster.v1.SlotTable");
  SlotTable table;
  table.epoch = in.epoch();
  table.slots.reserve(static_cast<size_t>(in.slots_size()));
  for (int i = 0; i < in.slots_size(); ++i) {
    const auto& slot = in.slots(i);
    if (slot.slot() != static_cast<uint32_t>(i)) {
      return absl::InvalidArgumentError(
          absl::StrCat("slot table entry ", i, " says slot ", slot.slot()));
    }
    table.slots.push_back(SlotAssignment{slot.slot(),
                                         slot.leader(),
                                         {slot.followers().begin(), slot.followers().end()},
                                         slot.epoch()});
  }
  if (replicas != nullptr) *replicas = in.replicas();
  return table;
}

}  // namespace cairn::cluster
