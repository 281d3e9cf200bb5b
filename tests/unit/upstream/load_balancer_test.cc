#include "sidecar/upstream/load_balancer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sidecar/upstream/host.h"

namespace cairn::sidecar::upstream {
namespace {

using ::testing::HasSubstr;

constexpr HealthFlag kEjected = HealthFlag::kEjectedByOutlierDetection;
constexpr HealthFlag kFailedCheck = HealthFlag::kFailedActiveHealthCheck;

HostPtr MakeHost(int i, uint32_t weight = 1) {
  return std::make_shared<Host>(HostAddress{absl::StrCat("10.0.0.", i), 8080}, weight);
}

std::vector<HostPtr> MakeHosts(int n, uint32_t weight = 1) {
  std::vector<HostPtr> hosts;
  for (int i = 0; i < n; ++i) hosts.push_back(MakeHost(i, weight));
  return hosts;
}

std::vector<HostPtr> MakeWeightedHosts(const std::vector<uint32_t>& weights) {
  std::vector<HostPtr> hosts;
  for (size_t i = 0; i < weights.size(); ++i)
    hosts.push_back(MakeHost(static_cast<int>(i), weights[i]));
  return hosts;
}

std::unique_ptr<LoadBalancer> MakeLb(std::string_view policy, const std::vector<HostPtr>& hosts,
                                     uint64_t seed = 42) {
  absl::StatusOr<std::unique_ptr<LoadBalancer>> lb = CreateLoadBalancer(policy, seed);
  EXPECT_TRUE(lb.ok()) << lb.status();
  (*lb)->UpdateHosts(HostSet::Create(hosts));
  return std::move(*lb);
}

// Picks `picks` hosts; ring hash gets a different key per pick so that it
// spreads like the others.
std::map<const Host*, int> Count(LoadBalancer& lb, int picks, const Host* avoid = nullptr) {
  std::map<const Host*, int> counts;
  for (int i = 0; i < picks; ++i) {
    LbContext ctx{.hash_key = HashKey(absl::StrCat("k", i)), .avoid = avoid};
    HostPtr host = lb.ChooseHost(ctx);
    EXPECT_NE(host, nullptr);
    if (host == nullptr) return counts;
    ++counts[host.get()];
  }
  return counts;
}

// Pearson's chi-square statistic of observed counts against expected shares.
double ChiSquare(const std::vector<HostPtr>& hosts, const std::map<const Host*, int>& counts,
                 const std::vector<double>& expected) {
  double chi2 = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    auto it = counts.find(hosts[i].get());
    double observed = it == counts.end() ? 0 : it->second;
    chi2 += (observed - expected[i]) * (observed - expected[i]) / expected[i];
  }
  return chi2;
}

// Longest run of consecutive picks of each host.
std::map<const Host*, int> LongestRuns(const std::vector<const Host*>& sequence) {
  std::map<const Host*, int> longest;
  int run = 0;
  for (size_t i = 0; i < sequence.size(); ++i) {
    run = (i > 0 && sequence[i] == sequence[i - 1]) ? run + 1 : 1;
    longest[sequence[i]] = std::max(longest[sequence[i]], run);
  }
  return longest;
}

std::vector<const Host*> Sequence(LoadBalancer& lb, int picks) {
  std::vector<const Host*> sequence;
  for (int i = 0; i < picks; ++i) sequence.push_back(lb.ChooseHost({}).get());
  return sequence;
}

// ------------------------------------------------------------ parsing

TEST(ParseEndpointUrlTest, AcceptsPlainAndUrlForms) {
  uint32_t weight = 0;
  absl::StatusOr<HostAddress> address = ParseEndpointUrl("10.0.0.1:12200", &weight);
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, (HostAddress{"10.0.0.1", 12200}));
  EXPECT_EQ(weight, Host::kDefaultWeight);

  address = ParseEndpointUrl("bolt://10.0.0.1:12200?weight=100", &weight);
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, (HostAddress{"10.0.0.1", 12200}));
  EXPECT_EQ(weight, 100u);

  address = ParseEndpointUrl("bolt://svc-a.local:80/com.x.Svc?app=a&weight=7&zone=z#frag", &weight);
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, (HostAddress{"svc-a.local", 80}));
  EXPECT_EQ(weight, 7u);

  // A fragment is not part of the query.
  address = ParseEndpointUrl("h:1?x=1#weight=9", &weight);
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(weight, Host::kDefaultWeight);
}

TEST(ParseEndpointUrlTest, Ipv6Literal) {
  uint32_t weight = 0;
  absl::StatusOr<HostAddress> address = ParseEndpointUrl("http://[::1]:8080?weight=3", &weight);
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->host, "::1");
  EXPECT_EQ(address->port, 8080);
  EXPECT_EQ(address->ToString(), "[::1]:8080");
  EXPECT_EQ(weight, 3u);

  address = ParseHostAddress("[fe80::1:2]:443");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, (HostAddress{"fe80::1:2", 443}));
  EXPECT_EQ(HostAddress({"10.0.0.1", 80}).ToString(), "10.0.0.1:80");
}

TEST(ParseEndpointUrlTest, WeightAboveMaximumIsClamped) {
  uint32_t weight = 0;
  ASSERT_TRUE(ParseEndpointUrl("h:1?weight=500", &weight).ok());
  EXPECT_EQ(weight, Host::kMaxWeight);
}

TEST(ParseEndpointUrlTest, NullWeightIgnoresQuery) {
  absl::StatusOr<HostAddress> address = ParseEndpointUrl("h:1?weight=junk", nullptr);
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, (HostAddress{"h", 1}));
}

TEST(ParseEndpointUrlTest, RejectsInvalid) {
  const char* kBad[] = {
      "",
      "10.0.0.1",                // missing port
      "bolt://10.0.0.1",         // missing port
      "bolt://10.0.0.1/svc",     // missing port before the path
      "10.0.0.1:",               // empty port
      "[::1]",                   // missing port
      "[::1]80",                 // no ':' after ']'
      "[::1:80",                 // unterminated
      "[zz::1]:80",              // not an IPv6 literal
      "::1:80",                  // IPv6 must be bracketed
      ":80",                     // empty host
      "10.0.0.1:0",              // port 0
      "10.0.0.1:65536",          // port range
      "10.0.0.1:8a",             // non-numeric port
      "10.0.0.1:-80",            // sign
      "ho st:80",                // bad host character
      "1bolt://h:80",            // bad scheme
      "bolt://user@h:80",        // userinfo
      "h:80?weight=0",           // drained, not routable
      "h:80?weight=abc",         // non-numeric
      "h:80?weight=",            // empty
      "h:80?weight",             // no value
      "h:80?weight=-1",          // sign
      "h:80?weight=1&weight=2",  // ambiguous
  };
  for (const char* url : kBad) {
    uint32_t weight = 0;
    absl::StatusOr<HostAddress> address = ParseEndpointUrl(url, &weight);
    EXPECT_FALSE(address.ok()) << "accepted '" << url << "' as " << address->ToString();
    if (!address.ok()) {
      EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument) << url;
      EXPECT_THAT(std::string(address.status().message()), HasSubstr(url));
    }
  }
}

// ------------------------------------------------------------ hosts

TEST(HostTest, WeightIsClamped) {
  EXPECT_EQ(Host(HostAddress{"h", 1}, 0).weight(), Host::kMinWeight);
  EXPECT_EQ(Host(HostAddress{"h", 1}, 1000).weight(), Host::kMaxWeight);
  Host host(HostAddress{"h", 1}, 5);
  EXPECT_EQ(host.weight(), 5u);
  host.set_weight(999);
  EXPECT_EQ(host.weight(), Host::kMaxWeight);
}

TEST(HostTest, AvailableOnlyWithoutHealthFlags) {
  Host host(HostAddress{"h", 1}, 1, "zone-a", {{"version", "2"}});
  EXPECT_EQ(host.zone(), "zone-a");
  ASSERT_NE(host.FindMetadata("version"), nullptr);
  EXPECT_EQ(*host.FindMetadata("version"), "2");
  EXPECT_EQ(host.FindMetadata("absent"), nullptr);

  EXPECT_TRUE(host.Available());
  host.SetHealthFlag(kFailedCheck);
  host.SetHealthFlag(kEjected);
  EXPECT_FALSE(host.Available());
  host.ClearHealthFlag(kFailedCheck);
  EXPECT_FALSE(host.HasHealthFlag(kFailedCheck));
  EXPECT_TRUE(host.HasHealthFlag(kEjected));
  EXPECT_FALSE(host.Available());  // still ejected
  host.ClearHealthFlag(kEjected);
  EXPECT_TRUE(host.Available());
}

TEST(HostTest, ActiveRequestHandleKeepsCountPaired) {
  HostPtr host = MakeHost(1);
  {
    ActiveRequestHandle a(host);
    ActiveRequestHandle b(host);
    EXPECT_EQ(host->active_requests(), 2u);
    ActiveRequestHandle moved(std::move(a));
    EXPECT_EQ(host->active_requests(), 2u);
    b = std::move(moved);  // b's own request ends
    EXPECT_EQ(host->active_requests(), 1u);
  }
  EXPECT_EQ(host->active_requests(), 0u);
}

TEST(HostSetTest, DropsNullsAndCountsAvailable) {
  std::vector<HostPtr> hosts = MakeHosts(3);
  hosts.insert(hosts.begin() + 1, nullptr);
  hosts[0]->SetHealthFlag(kEjected);
  auto set = HostSet::Create(hosts);
  EXPECT_EQ(set->size(), 3u);
  EXPECT_EQ(set->CountAvailable(), 2u);
}

// ------------------------------------------------------------ factory, hash

TEST(CreateLoadBalancerTest, KnownAndUnknownPolicies) {
  for (const char* policy :
       {"round_robin", "weighted_round_robin", "random", "least_request", "ring_hash"}) {
    EXPECT_TRUE(CreateLoadBalancer(policy, 1).ok()) << policy;
  }
  absl::StatusOr<std::unique_ptr<LoadBalancer>> lb = CreateLoadBalancer("fastest", 1);
  ASSERT_FALSE(lb.ok());
  EXPECT_EQ(lb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(lb.status().message()), HasSubstr("fastest"));
}

// Pinned values (computed independently): a change here reshuffles every
// ring in a mixed-version fleet.
TEST(StableHashTest, PinnedValues) {
  EXPECT_EQ(StableHash64(""), 0xefd01f60ba992926ULL);
  EXPECT_EQ(StableHash64("a"), 0x25ad9d1b70de62d1ULL);
  EXPECT_EQ(StableHash64("10.0.0.1:80_0"), 0xc6468033b9d8a9f2ULL);
  EXPECT_EQ(StableHash64("a", 7), 0x8b602543406b34ffULL);
  EXPECT_EQ(HashKey("user-42"), 0xa802798abd527902ULL);
}

// ------------------------------------------------------------ all policies

class AllPoliciesTest : public ::testing::TestWithParam<const char*> {};

INSTANTIATE_TEST_SUITE_P(Policies, AllPoliciesTest,
                         ::testing::Values("round_robin", "weighted_round_robin", "random",
                                           "least_request", "ring_hash"));

TEST_P(AllPoliciesTest, EmptyOrMissingSetGivesNull) {
  absl::StatusOr<std::unique_ptr<LoadBalancer>> lb = CreateLoadBalancer(GetParam(), 1);
  ASSERT_TRUE(lb.ok());
  EXPECT_EQ((*lb)->ChooseHost({}), nullptr);  // before any UpdateHosts
  (*lb)->UpdateHosts(HostSet::Create({}));
  EXPECT_EQ((*lb)->ChooseHost({}), nullptr);
  (*lb)->UpdateHosts(HostSet::Create(MakeHosts(2)));
  EXPECT_NE((*lb)->ChooseHost({}), nullptr);
  (*lb)->UpdateHosts(nullptr);
  EXPECT_EQ((*lb)->ChooseHost({}), nullptr);
}

TEST_P(AllPoliciesTest, UnavailableHostsAreSkipped) {
  std::vector<HostPtr> hosts = MakeHosts(5);
  auto lb = MakeLb(GetParam(), hosts);
  // Live health: no new snapshot needed.
  hosts[0]->SetHealthFlag(kEjected);
  hosts[2]->SetHealthFlag(kFailedCheck);
  std::map<const Host*, int> counts = Count(*lb, 3000);
  EXPECT_EQ(counts.count(hosts[0].get()), 0u);
  EXPECT_EQ(counts.count(hosts[2].get()), 0u);
  for (int i : {1, 3, 4}) EXPECT_GT(counts[hosts[i].get()], 300) << i;

  hosts[0]->ClearHealthFlag(kEjected);  // recovers
  counts = Count(*lb, 3000);
  EXPECT_GT(counts[hosts[0].get()], 300);
}

TEST_P(AllPoliciesTest, PanicModeSpreadsOverAllHosts) {
  std::vector<HostPtr> hosts = MakeHosts(4);
  for (const HostPtr& host : hosts) host->SetHealthFlag(kEjected);
  auto lb = MakeLb(GetParam(), hosts);
  std::map<const Host*, int> counts = Count(*lb, 2000);
  ASSERT_EQ(counts.size(), 4u);
  for (const HostPtr& host : hosts) EXPECT_GT(counts[host.get()], 200);
}

TEST_P(AllPoliciesTest, AvoidIsHonouredWhenAnotherHostIsAvailable) {
  std::vector<HostPtr> hosts = MakeHosts(3);
  auto lb = MakeLb(GetParam(), hosts);
  std::map<const Host*, int> counts = Count(*lb, 1000, hosts[1].get());
  EXPECT_EQ(counts.count(hosts[1].get()), 0u);
  EXPECT_GT(counts[hosts[0].get()], 100);
  EXPECT_GT(counts[hosts[2].get()], 100);

  // The avoided host is the only available one: better than panic.
  hosts[0]->SetHealthFlag(kEjected);
  hosts[2]->SetHealthFlag(kEjected);
  counts = Count(*lb, 100, hosts[1].get());
  EXPECT_EQ(counts[hosts[1].get()], 100);

  // Panic still avoids it when it is unavailable too.
  hosts[1]->SetHealthFlag(kEjected);
  counts = Count(*lb, 200, hosts[1].get());
  EXPECT_EQ(counts.count(hosts[1].get()), 0u);
  EXPECT_EQ(counts[hosts[0].get()] + counts[hosts[2].get()], 200);

  // A one-host set returns its host even when asked to avoid it.
  lb->UpdateHosts(HostSet::Create({hosts[1]}));
  EXPECT_EQ(lb->ChooseHost({.avoid = hosts[1].get()}), hosts[1]);
}

TEST_P(AllPoliciesTest, UpdateHostsReplacesTheSet) {
  std::vector<HostPtr> old_hosts = MakeHosts(3);
  auto lb = MakeLb(GetParam(), old_hosts);
  std::vector<HostPtr> new_hosts;
  for (int i = 10; i < 13; ++i) new_hosts.push_back(MakeHost(i));
  lb->UpdateHosts(HostSet::Create(new_hosts));
  std::map<const Host*, int> counts = Count(*lb, 600);
  for (const HostPtr& host : old_hosts) EXPECT_EQ(counts.count(host.get()), 0u);
  for (const HostPtr& host : new_hosts) EXPECT_GT(counts[host.get()], 60);
}

// ------------------------------------------------------------ round robin

TEST(RoundRobinTest, CyclesEvenly) {
  std::vector<HostPtr> hosts = MakeHosts(4);
  auto lb = MakeLb("round_robin", hosts);
  std::vector<const Host*> sequence = Sequence(*lb, 400);
  // Every window of 4 consecutive picks holds each host once.
  for (size_t i = 0; i + 4 <= sequence.size(); ++i) {
    std::vector<const Host*> window(sequence.begin() + i, sequence.begin() + i + 4);
    std::sort(window.begin(), window.end());
    EXPECT_EQ(std::unique(window.begin(), window.end()), window.end()) << "window at " << i;
  }
  hosts[1]->SetHealthFlag(kEjected);
  std::map<const Host*, int> counts = Count(*lb, 300);
  EXPECT_EQ(counts[hosts[0].get()], 100);
  EXPECT_EQ(counts[hosts[2].get()], 100);
  EXPECT_EQ(counts[hosts[3].get()], 100);
}

TEST(RoundRobinTest, SeedChoosesStartingHost) {
  std::vector<HostPtr> hosts = MakeHosts(16);
  std::map<const Host*, int> first_picks;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    ++first_picks[MakeLb("round_robin", hosts, seed)->ChooseHost({}).get()];
  }
  EXPECT_GT(first_picks.size(), 5u);  // workers do not all start on one host
}

// ------------------------------------------------------------ weighted round robin

TEST(WeightedRoundRobinTest, DistributionMatchesWeights) {
  std::vector<HostPtr> hosts = MakeWeightedHosts({1, 2, 3, 4});
  auto lb = MakeLb("weighted_round_robin", hosts);
  std::map<const Host*, int> counts = Count(*lb, 10000);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(counts[hosts[i].get()], 1000 * (i + 1), 10) << i;  // EDF is exact up to phase
  }
}

TEST(WeightedRoundRobinTest, Interleaves) {
  // A heavy host between light ones: runs of it stay short, for any seed.
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::vector<HostPtr> hosts = MakeWeightedHosts({5, 1, 1});
    auto lb = MakeLb("weighted_round_robin", hosts, seed);
    std::map<const Host*, int> runs = LongestRuns(Sequence(*lb, 7000));
    EXPECT_LE(runs[hosts[0].get()], 4) << "seed " << seed;  // ceil(5 / 2) + 1
    EXPECT_EQ(runs[hosts[1].get()], 1) << "seed " << seed;
  }
  std::vector<HostPtr> hosts = MakeWeightedHosts({3, 3, 1});
  auto lb = MakeLb("weighted_round_robin", hosts);
  for (const auto& [host, run] : LongestRuns(Sequence(*lb, 7000))) {
    EXPECT_EQ(run, 1) << host->address_string();
  }
}

TEST(WeightedRoundRobinTest, SkipsUnavailable) {
  std::vector<HostPtr> hosts = MakeWeightedHosts({1, 2, 3, 4});
  auto lb = MakeLb("weighted_round_robin", hosts);
  hosts[3]->SetHealthFlag(kEjected);
  std::map<const Host*, int> counts = Count(*lb, 6000);
  EXPECT_EQ(counts.count(hosts[3].get()), 0u);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(counts[hosts[i].get()], 1000 * (i + 1), 10) << i;
}

TEST(WeightedRoundRobinTest, DoesNotBurstOnReturn) {
  // The heavy host is due more often than picks happen while it is away, so
  // a scheduler that kept its deadlines would bank thousands of turns.
  std::vector<HostPtr> hosts = MakeWeightedHosts({1, 1, 8});
  auto lb = MakeLb("weighted_round_robin", hosts);
  hosts[2]->SetHealthFlag(kEjected);
  Sequence(*lb, 2000);
  hosts[2]->ClearHealthFlag(kEjected);
  std::vector<const Host*> sequence = Sequence(*lb, 1000);
  EXPECT_LE(LongestRuns(sequence)[hosts[2].get()], 5);  // ceil(8 / 2) + 1
  EXPECT_NEAR(std::count(sequence.begin(), sequence.end(), hosts[2].get()), 800, 10);
}

// ------------------------------------------------------------ random

TEST(RandomTest, RoughlyUniform) {
  std::vector<HostPtr> hosts = MakeHosts(10);
  auto lb = MakeLb("random", hosts, 7);
  std::map<const Host*, int> counts = Count(*lb, 10000);
  // 27.88 is the 99.9th percentile of chi-square with 9 degrees of freedom.
  EXPECT_LT(ChiSquare(hosts, counts, std::vector<double>(10, 1000.0)), 27.88);
}

TEST(RandomTest, ProportionalToWeight) {
  std::vector<HostPtr> hosts = MakeWeightedHosts({1, 2, 3, 4});
  auto lb = MakeLb("random", hosts, 7);
  std::map<const Host*, int> counts = Count(*lb, 100000);
  // 16.27: 99.9th percentile, 3 degrees of freedom.
  EXPECT_LT(ChiSquare(hosts, counts, {10000, 20000, 30000, 40000}), 16.27);
}

TEST(RandomTest, UniformAmongFewAvailable) {
  // Most draws are rejected: exercises the exact fallback.
  std::vector<HostPtr> hosts = MakeWeightedHosts({1, 1, 1, 1, 1, 1, 1, 1, 1, 3});
  for (int i = 0; i < 7; ++i) hosts[i]->SetHealthFlag(kEjected);
  auto lb = MakeLb("random", hosts, 7);
  std::map<const Host*, int> counts = Count(*lb, 10000);
  EXPECT_EQ(counts.size(), 3u);
  // Weights 1, 1, 3 among the available ones.
  std::vector<HostPtr> available(hosts.begin() + 7, hosts.end());
  EXPECT_LT(ChiSquare(available, counts, {2000, 2000, 6000}), 13.82);  // 2 dof
}

TEST(RandomTest, SeedMatters) {
  std::vector<HostPtr> hosts = MakeHosts(10);
  auto a = MakeLb("random", hosts, 1);
  auto b = MakeLb("random", hosts, 2);
  auto c = MakeLb("random", hosts, 1);
  std::vector<const Host*> seq_a = Sequence(*a, 50);
  EXPECT_NE(seq_a, Sequence(*b, 50));
  EXPECT_EQ(seq_a, Sequence(*c, 50));
}

// ------------------------------------------------------------ least request

TEST(LeastRequestTest, PrefersLessLoadedHost) {
  std::vector<HostPtr> hosts = MakeHosts(2);
  for (int i = 0; i < 10; ++i) hosts[0]->IncActiveRequests();
  auto lb = MakeLb("least_request", hosts);
  std::map<const Host*, int> counts = Count(*lb, 1000);
  EXPECT_EQ(counts[hosts[1].get()], 1000);
}

TEST(LeastRequestTest, IdleHostWinsWheneverItIsACandidate) {
  std::vector<HostPtr> hosts = MakeHosts(10);
  for (int i = 0; i < 10; ++i) {
    if (i != 3) {
      for (int r = 0; r < 5; ++r) hosts[i]->IncActiveRequests();
    }
  }
  auto lb = MakeLb("least_request", hosts);
  std::map<const Host*, int> counts = Count(*lb, 10000);
  // Two distinct candidates out of 10: host 3 is one of them 20% of the time
  // (a uniform pick would give it 10%).
  EXPECT_NEAR(counts[hosts[3].get()], 2000, 200);
}

TEST(LeastRequestTest, LoadIsNormalisedByWeight) {
  std::vector<HostPtr> hosts = MakeWeightedHosts({1, 3});
  auto lb = MakeLb("least_request", hosts);
  // Idle: 1/1 vs 1/3, the heavier host wins.
  EXPECT_EQ(Count(*lb, 100)[hosts[1].get()], 100);
  // (2 + 1) / 1 = 3 vs (6 + 1) / 3 = 2.33: still the heavier one, though it
  // carries three times the requests.
  for (int i = 0; i < 2; ++i) hosts[0]->IncActiveRequests();
  for (int i = 0; i < 6; ++i) hosts[1]->IncActiveRequests();
  EXPECT_EQ(Count(*lb, 100)[hosts[1].get()], 100);
  // (9 + 1) / 3 = 3.33 > 3: now the light one.
  for (int i = 0; i < 3; ++i) hosts[1]->IncActiveRequests();
  EXPECT_EQ(Count(*lb, 100)[hosts[0].get()], 100);
}

TEST(LeastRequestTest, EvenWhenIdle) {
  std::vector<HostPtr> hosts = MakeHosts(10);
  auto lb = MakeLb("least_request", hosts, 3);
  std::map<const Host*, int> counts = Count(*lb, 10000);
  EXPECT_LT(ChiSquare(hosts, counts, std::vector<double>(10, 1000.0)), 27.88);
}

// ------------------------------------------------------------ ring hash

// Host chosen for each of `keys` keys.
std::vector<const Host*> MapKeys(LoadBalancer& lb, int keys) {
  std::vector<const Host*> owners;
  for (int i = 0; i < keys; ++i) {
    owners.push_back(lb.ChooseHost({.hash_key = HashKey(absl::StrCat("user-", i))}).get());
  }
  return owners;
}

TEST(RingHashTest, SameKeySameHostOnEveryWorkerAndSetOrder) {
  std::vector<HostPtr> hosts = MakeHosts(10);
  auto lb = MakeLb("ring_hash", hosts, 1);
  std::vector<const Host*> first = MapKeys(*lb, 1000);
  EXPECT_EQ(first, MapKeys(*lb, 1000));
  // Another worker (other seed), hosts listed in another order.
  std::vector<HostPtr> reversed(hosts.rbegin(), hosts.rend());
  EXPECT_EQ(first, MapKeys(*MakeLb("ring_hash", reversed, 2), 1000));
  // Not a constant function.
  EXPECT_GT(std::set<const Host*>(first.begin(), first.end()).size(), 5u);
}

TEST(RingHashTest, KeysSpreadEvenly) {
  std::vector<HostPtr> hosts = MakeHosts(10);
  auto lb = MakeLb("ring_hash", hosts);
  std::map<const Host*, int> counts;
  for (const Host* host : MapKeys(*lb, 10000)) ++counts[host];
  for (const HostPtr& host : hosts) {
    EXPECT_GT(counts[host.get()], 700) << host->address_string();
    EXPECT_LT(counts[host.get()], 1300) << host->address_string();
  }
  // Raw small integers as keys spread too (the balancer mixes them).
  counts.clear();
  for (uint64_t key = 0; key < 10000; ++key) ++counts[lb->ChooseHost({.hash_key = key}).get()];
  for (const HostPtr& host : hosts) {
    EXPECT_GT(counts[host.get()], 700) << host->address_string();
    EXPECT_LT(counts[host.get()], 1300) << host->address_string();
  }
}

TEST(RingHashTest, WeightScalesShare) {
  std::vector<HostPtr> hosts = MakeWeightedHosts({2, 1, 1, 1, 1});
  auto lb = MakeLb("ring_hash", hosts);
  std::vector<const Host*> owners = MapKeys(*lb, 10000);
  // Expected 2/6 of the keys.
  EXPECT_NEAR(std::count(owners.begin(), owners.end(), hosts[0].get()), 3333, 600);
}

TEST(RingHashTest, AddingAHostMovesOnlyItsShare) {
  std::vector<HostPtr> hosts = MakeHosts(10);
  auto lb = MakeLb("ring_hash", hosts);
  std::vector<const Host*> before = MapKeys(*lb, 10000);
  hosts.push_back(MakeHost(10));
  lb->UpdateHosts(HostSet::Create(hosts));
  std::vector<const Host*> after = MapKeys(*lb, 10000);
  int moved = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i] == after[i]) continue;
    ++moved;
    EXPECT_EQ(after[i], hosts[10].get()) << "key " << i << " moved between old hosts";
  }
  EXPECT_NEAR(moved, 10000 / 11, 300);  // ~909
}

TEST(RingHashTest, RemovingAHostMovesOnlyItsKeys) {
  std::vector<HostPtr> hosts = MakeHosts(10);
  auto lb = MakeLb("ring_hash", hosts);
  std::vector<const Host*> before = MapKeys(*lb, 10000);
  const Host* removed = hosts[4].get();
  std::vector<HostPtr> fewer = hosts;
  fewer.erase(fewer.begin() + 4);
  lb->UpdateHosts(HostSet::Create(fewer));
  std::vector<const Host*> after = MapKeys(*lb, 10000);
  int moved = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i] == removed) {
      ++moved;
      EXPECT_NE(after[i], removed);
    } else {
      EXPECT_EQ(after[i], before[i]) << "key " << i;
    }
  }
  EXPECT_GT(moved, 500);
}

TEST(RingHashTest, EjectedHostKeysGoWhereRemovalWouldSendThem) {
  std::vector<HostPtr> hosts = MakeHosts(10);
  std::vector<HostPtr> without = hosts;
  without.erase(without.begin() + 4);
  std::vector<const Host*> expected = MapKeys(*MakeLb("ring_hash", without), 10000);

  auto lb = MakeLb("ring_hash", hosts);
  hosts[4]->SetHealthFlag(kEjected);
  EXPECT_EQ(MapKeys(*lb, 10000), expected);
}

TEST(RingHashTest, NoKeyPicksAtRandom) {
  std::vector<HostPtr> hosts = MakeHosts(5);
  auto lb = MakeLb("ring_hash", hosts);
  std::set<const Host*> seen;
  for (int i = 0; i < 200; ++i) seen.insert(lb->ChooseHost({}).get());
  EXPECT_EQ(seen.size(), 5u);
}

TEST(RingHashTest, RingSizeCapStillCoversAllHosts) {
  std::vector<HostPtr> hosts = MakeHosts(10);
  auto lb = NewRingHashLoadBalancer(1, {.replicas_per_host = 1000, .max_ring_size = 50});
  lb->UpdateHosts(HostSet::Create(hosts));
  std::set<const Host*> seen;
  for (const Host* host : MapKeys(*lb, 2000)) seen.insert(host);
  EXPECT_EQ(seen.size(), 10u);
}

}  // namespace
}  // namespace cairn::sidecar::upstream
