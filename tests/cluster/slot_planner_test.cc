// The slot table planner: examples, then properties over many random
// join/leave sequences.
#include "registry/cluster/slot_planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

namespace cairn::cluster {
namespace {

std::vector<std::string> Servers(int n, int first = 0) {
  std::vector<std::string> out;
  for (int i = first; i < first + n; ++i) out.push_back("d" + std::to_string(100 + i));
  return out;
}

SlotPlanOptions Options(uint32_t slots, uint32_t replicas, uint32_t max_moves) {
  SlotPlanOptions options;
  options.slot_count = slots;
  options.replicas = replicas;
  options.max_moves = max_moves;
  return options;
}

// Spread of leader and follower counts over the live servers.
std::pair<uint32_t, uint32_t> Spread(const SlotTable& table, const std::vector<std::string>& live) {
  uint32_t lmin = UINT32_MAX, lmax = 0, fmin = UINT32_MAX, fmax = 0;
  for (const auto& [id, load] : ComputeLoad(table, live)) {
    lmin = std::min(lmin, load.leaders);
    lmax = std::max(lmax, load.leaders);
    fmin = std::min(fmin, load.followers);
    fmax = std::max(fmax, load.followers);
  }
  if (live.empty()) return {0, 0};
  return {lmax - lmin, fmax - fmin};
}

// Checks one step against the table it started from; returns the new table.
SlotTable CheckedStep(const SlotTable& before, const std::vector<std::string>& live,
                      const SlotPlanOptions& options, SlotPlan* out = nullptr) {
  auto plan = PlanSlotTable(before, live, options);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return before;
  const SlotTable& after = plan->table;
  EXPECT_TRUE(ValidateSlotTable(after, live, options.replicas).ok())
      << ValidateSlotTable(after, live, options.replicas);
  if (options.max_moves > 0) {
    EXPECT_LE(plan->moves, options.max_moves);
  }
  EXPECT_EQ(after.slots.size(), options.slot_count);
  bool any_change = false;
  std::set<std::string> live_set(live.begin(), live.end());
  for (size_t i = 0; i < after.slots.size() && i < before.slots.size(); ++i) {
    const auto& a = before.slots[i];
    const auto& b = after.slots[i];
    bool changed = a.leader != b.leader || a.followers != b.followers;
    any_change |= changed;
    if (changed) {
      EXPECT_EQ(b.epoch, after.epoch) << "slot " << i;
      EXPECT_GT(b.epoch, a.epoch) << "slot " << i;
    } else {
      EXPECT_EQ(b.epoch, a.epoch) << "slot " << i;
    }
    // A leader that is gone is replaced by one of the slot's live followers
    // whenever there is one.
    bool has_live_follower = std::any_of(a.followers.begin(), a.followers.end(),
                                         [&](const auto& f) { return live_set.count(f) != 0; });
    if (!a.leader.empty() && live_set.count(a.leader) == 0 && has_live_follower) {
      EXPECT_NE(std::find(a.followers.begin(), a.followers.end(), b.leader), a.followers.end())
          << "slot " << i << " did not promote a follower";
    }
  }
  if (before.slots.empty()) any_change = true;
  EXPECT_EQ(after.epoch, before.epoch + (any_change ? 1 : 0));
  if (out != nullptr) *out = *plan;
  return after;
}

struct Converged {
  SlotTable table;
  int steps = 0;
  uint32_t direct_leader_moves = 0;
};

// Steps until the planner says stable (bounded).
Converged Converge(SlotTable table, const std::vector<std::string>& live,
                   const SlotPlanOptions& options) {
  Converged out;
  for (int step = 0; step < 5000; ++step) {
    SlotPlan plan;
    table = CheckedStep(table, live, options, &plan);
    out.direct_leader_moves += plan.direct_leader_moves;
    ++out.steps;
    if (plan.stable) break;
  }
  out.table = std::move(table);
  return out;
}

void ExpectBalanced(const SlotTable& table, const std::vector<std::string>& live,
                    const SlotPlanOptions& options, const std::string& context) {
  auto [leader_spread, follower_spread] = Spread(table, live);
  EXPECT_LE(leader_spread, 1u) << context;
  EXPECT_LE(follower_spread, 1u) << context;
  size_t want = live.empty() ? 0 : std::min<size_t>(options.replicas, live.size()) - 1;
  for (const auto& a : table.slots) {
    ASSERT_EQ(a.followers.size(), want) << context << " slot " << a.slot;
  }
}

TEST(SlotPlannerTest, NewClusterIsBalancedInOneUnlimitedStep) {
  auto live = Servers(3);
  auto options = Options(256, 2, 0);
  SlotPlan plan;
  SlotTable table = CheckedStep({}, live, options, &plan);
  EXPECT_TRUE(plan.stable);
  EXPECT_EQ(table.epoch, 1u);
  EXPECT_EQ(plan.repairs, 256u);  // every slot got its first leader
  for (const auto& a : table.slots) EXPECT_EQ(a.epoch, 1u);
  ExpectBalanced(table, live, options, "new");
  auto load = ComputeLoad(table, live);
  EXPECT_EQ(load["d100"].leaders + load["d101"].leaders + load["d102"].leaders, 256u);
  // A second step changes nothing.
  SlotTable again = CheckedStep(table, live, options, &plan);
  EXPECT_EQ(again.epoch, 1u);
  EXPECT_EQ(plan.moves + plan.repairs, 0u);
}

TEST(SlotPlannerTest, NoServersMeansNoLeadersAndTheFirstServerTakesAll) {
  auto options = Options(16, 3, 0);
  SlotTable empty = CheckedStep({}, {}, options);
  for (const auto& a : empty.slots) EXPECT_TRUE(a.leader.empty());
  SlotTable one = CheckedStep(empty, {"solo"}, options);
  for (const auto& a : one.slots) {
    EXPECT_EQ(a.leader, "solo");
    EXPECT_TRUE(a.followers.empty());  // replicas capped by the live count
  }
  SlotTable none = CheckedStep(one, {}, options);
  for (const auto& a : none.slots) EXPECT_TRUE(a.leader.empty());
  EXPECT_GT(none.epoch, one.epoch);
}

TEST(SlotPlannerTest, LeavingServerIsReplacedByPromotionAtOnce) {
  auto live = Servers(4);
  auto options = Options(256, 3, 4);
  SlotTable table = Converge(CheckedStep({}, live, Options(256, 3, 0)), live, options).table;
  std::vector<std::string> after_leave = {"d100", "d101", "d103"};
  uint32_t led_by_dead = ComputeLoad(table, live)["d102"].leaders;
  SlotPlan plan;
  SlotTable next = CheckedStep(table, after_leave, options, &plan);
  // Every slot keeps a leader in the very first step, whatever max_moves is,
  // and no leadership moved to a server that was not a follower.
  EXPECT_TRUE(ValidateSlotTable(next, after_leave, 3).ok());
  EXPECT_EQ(plan.direct_leader_moves, 0u);
  EXPECT_GE(plan.repairs, led_by_dead);
  EXPECT_LE(plan.moves, 4u);
  Converged done = Converge(next, after_leave, options);
  ExpectBalanced(done.table, after_leave, options, "after leave");
  int leader_changes = 0;
  for (size_t i = 0; i < table.slots.size(); ++i) {
    leader_changes += table.slots[i].leader != done.table.slots[i].leader;
  }
  // 4 -> 3 servers: 64 leaders to give away, a few more to even out.
  EXPECT_GE(leader_changes, static_cast<int>(led_by_dead));
  EXPECT_LE(leader_changes, static_cast<int>(led_by_dead) + 3);
}

TEST(SlotPlannerTest, JoiningServerGetsSlotsAFewAtATimeAndFollowsBeforeLeading) {
  auto live = Servers(3);
  auto options = Options(256, 2, 4);
  SlotTable table = CheckedStep({}, live, Options(256, 2, 0));
  auto joined = Servers(4);
  Converged done = Converge(table, joined, options);
  EXPECT_GT(done.steps, 10);  // 4 moves per step: it took many steps
  ExpectBalanced(done.table, joined, options, "after join");
  EXPECT_EQ(done.direct_leader_moves, 0u);
  auto load = ComputeLoad(done.table, joined);
  EXPECT_EQ(load["d103"].leaders, 64u);
  int leader_changes = 0;
  for (size_t i = 0; i < table.slots.size(); ++i) {
    leader_changes += table.slots[i].leader != done.table.slots[i].leader;
  }
  EXPECT_LE(leader_changes, 64 + 3);  // about a quarter, nothing gratuitous
}

TEST(SlotPlannerTest, RejectsResizeAndBadIds) {
  SlotTable table = CheckedStep({}, Servers(2), Options(16, 2, 0));
  EXPECT_EQ(PlanSlotTable(table, Servers(2), Options(32, 2, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanSlotTable(table, {"a", "a"}, Options(16, 2, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanSlotTable(table, {""}, Options(16, 2, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SlotPlannerTest, SerializationRoundTrips) {
  SlotTable table = CheckedStep({}, Servers(5), Options(64, 3, 0));
  std::string bytes = SerializeSlotTable(table, 3);
  EXPECT_LT(bytes.size(), 64u * 40);
  uint32_t replicas = 0;
  auto parsed = ParseSlotTable(bytes, &replicas);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(replicas, 3u);
  EXPECT_EQ(parsed->epoch, table.epoch);
  ASSERT_EQ(parsed->slots.size(), table.slots.size());
  for (size_t i = 0; i < table.slots.size(); ++i) {
    EXPECT_EQ(parsed->slots[i].leader, table.slots[i].leader);
    EXPECT_EQ(parsed->slots[i].followers, table.slots[i].followers);
    EXPECT_EQ(parsed->slots[i].epoch, table.slots[i].epoch);
  }
  EXPECT_EQ(ParseSlotTable("\xff\xff\xff garbage").status().code(), absl::StatusCode::kDataLoss);
  SlotTable shuffled = table;
  std::swap(shuffled.slots[0], shuffled.slots[1]);
  EXPECT_EQ(ParseSlotTable(SerializeSlotTable(shuffled, 3)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Random joins and leaves (one at a time, or a few at once), each followed by
// steps until stable, every step checked by CheckedStep; balance checked at
// every fixed point.
TEST(SlotPlannerPropertyTest, RandomJoinLeaveSequences) {
  std::mt19937 rng(20261126);
  // 256 slots are covered by the examples above; small tables hit the corner
  // cases (more servers than slots, uneven counts) more often, and keep this
  // test fast under the sanitizers.
  const std::vector<uint32_t> slot_counts = {8, 16, 64};
  const std::vector<uint32_t> replica_counts = {1, 2, 3};
  const std::vector<uint32_t> move_limits = {0, 2, 6};
  auto pool = Servers(12);
  uint64_t direct = 0, total_steps = 0;
  for (int sequence = 0; sequence < 150; ++sequence) {
    auto options =
        Options(slot_counts[rng() % 3], replica_counts[rng() % 3], move_limits[rng() % 3]);
    std::set<std::string> live_set;
    SlotTable table;
    for (int event = 0; event < 12; ++event) {
      int changes = 1 + static_cast<int>(rng() % 2);
      for (int c = 0; c < changes; ++c) {
        const std::string& s = pool[rng() % pool.size()];
        if (live_set.count(s) != 0 && live_set.size() > 1) {
          live_set.erase(s);
        } else {
          live_set.insert(s);
        }
      }
      std::vector<std::string> live(live_set.begin(), live_set.end());
      std::string context = "sequence " + std::to_string(sequence) + " event " +
                            std::to_string(event) + " slots " + std::to_string(options.slot_count) +
                            " replicas " + std::to_string(options.replicas) + " max_moves " +
                            std::to_string(options.max_moves);
      Converged done = Converge(table, live, options);
      ASSERT_LT(done.steps, 5000) << context;
      ExpectBalanced(done.table, live, options, context);
      if (::testing::Test::HasFailure()) return;
      if (options.replicas > 1 && live.size() > 1) direct += done.direct_leader_moves;
      total_steps += static_cast<uint64_t>(done.steps);
      table = done.table;
    }
  }
  std::printf("steps %llu, leadership moved to a non-follower (replicas > 1) %llu times\n",
              static_cast<unsigned long long>(total_steps),
              static_cast<unsigned long long>(direct));
}

TEST(SlotPlannerTest, LargeClusterPlansQuickly) {
  auto live = Servers(60);
  auto options = Options(256, 3, 0);
  auto start = std::chrono::steady_clock::now();
  Converged done = Converge({}, live, options);
  live.push_back("d999");
  done = Converge(done.table, live, Options(256, 3, 8));
  auto took = std::chrono::steady_clock::now() - start;
  ExpectBalanced(done.table, live, options, "60 servers");
  EXPECT_LT(took, std::chrono::seconds(5));
  std::printf(
      "60+1 servers, 256 slots x 3: %lld ms over %d steps\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
      done.steps);
}

}  // namespace
}  // namespace cairn::cluster
