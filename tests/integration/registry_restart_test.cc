// A standalone registry killed (kill -9) and restarted on the same port and
// data dir while every client stays alive (issue 15): its memory is empty
// after the restart and the clients come back one by one, each replaying its
// registrations. A subscriber must never be pushed a view that lacks a
// publisher it was already shown (all publishers' clients are alive the whole
// time), every subscriber must end with the full view, and the versions it
// is sent must stay above the ones it had before the restart.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kDataIds = 4;
constexpr int kPublishersPerDataId = 6;
constexpr int kPublisherClients = 8;
constexpr int kSubscriberClients = 8;
constexpr int kSubscriptionsPerClient = 2;  // 16 subscriptions, 4 per dataId
constexpr int kRestarts = 3;

std::string DataId(int d) { return "svc.restart." + std::to_string(d); }

// Clients as an application would configure them, with a shorter backoff
// ceiling than the default 5 s so that the test stays short; they still
// come back spread over about a second.
std::unique_ptr<RegistryClient> RestartClient(const std::string& server, const std::string& id) {
  RegistryClientOptions options;
  options.servers = {server};
  options.client_id = id;
  options.app_name = "restart-test";
  options.keepalive_interval = milliseconds(1000);
  options.reconnect_backoff_initial = milliseconds(100);
  options.reconnect_backoff_max = milliseconds(1000);
  options.request_timeout = milliseconds(10000);
  auto client = RegistryClient::Create(options);
  return client.ok() ? std::move(*client) : nullptr;
}

// Every push one subscription received, as the set of publisher
// registration ids it showed. Thread-safe.
class ViewRecorder {
 public:
  explicit ViewRecorder(std::set<std::string> full) : full_(std::move(full)) {}

  PushCallback Callback() {
    return [this](const pb::Push& push) {
      std::set<std::string> ids;
      for (const auto& zone : push.zones()) {
        for (const auto& pub : zone.publishers()) ids.insert(pub.registration_id());
      }
      std::lock_guard lock(mu_);
      size_t missing = 0;
      for (const std::string& id : shown_) missing += ids.count(id) == 0 ? 1 : 0;
      if (missing > 0) {
        ++false_removals_;
        max_missing_ = std::max(max_missing_, missing);
      }
      shown_.insert(ids.begin(), ids.end());
      ++pushes_;
      last_ = std::move(ids);
    };
  }
  bool Complete() {
    std::lock_guard lock(mu_);
    return last_ == full_;
  }
  size_t PushCount() {
    std::lock_guard lock(mu_);
    return pushes_;
  }
  size_t false_removals() {
    std::lock_guard lock(mu_);
    return false_removals_;
  }
  size_t max_missing() {
    std::lock_guard lock(mu_);
    return max_missing_;
  }

 private:
  const std::set<std::string> full_;
  std::mutex mu_;
  std::set<std::string> shown_;
  std::set<std::string> last_;
  size_t pushes_ = 0;
  size_t false_removals_ = 0;
  size_t max_missing_ = 0;
};

// Extra registry flags from $CAIRN_RESTART_TEST_FLAGS (space-separated), to
// show what the test catches without the warm-up:
//   CAIRN_RESTART_TEST_FLAGS="--restart-warmup-ms 0" build/bin/registry_restart_test
std::vector<std::string> ExtraFlags() {
  std::vector<std::string> flags;
  const char* env = std::getenv("CAIRN_RESTART_TEST_FLAGS");
  std::istringstream words(env == nullptr ? "" : env);
  for (std::string word; words >> word;) flags.push_back(word);
  return flags;
}

TEST(RegistryRestart, KillNineAndRestartNeverPushesAFalseRemoval) {
  RegistryProcess server(ExtraFlags());
  ASSERT_TRUE(server.Start()) << server.Log();
  const std::string address = server.grpc_address();

  // Publishers: 6 per dataId, spread over 8 clients (no client holds all of
  // a dataId's publishers).
  std::vector<std::unique_ptr<RegistryClient>> publisher_clients;
  for (int c = 0; c < kPublisherClients; ++c) {
    publisher_clients.push_back(RestartClient(address, "pub-" + std::to_string(c)));
    ASSERT_NE(publisher_clients.back(), nullptr);
  }
  std::vector<std::shared_ptr<Publisher>> publishers;
  std::vector<std::set<std::string>> ids_of(kDataIds);
  for (int d = 0; d < kDataIds; ++d) {
    for (int p = 0; p < kPublishersPerDataId; ++p) {
      RegistryClient& client =
          *publisher_clients[(d * kPublishersPerDataId + p) % kPublisherClients];
      std::string data = "10.0." + std::to_string(d) + "." + std::to_string(p) + ":12200";
      auto handle = client.Publish({Key(DataId(d)), {data}, "", "", {}});
      ASSERT_TRUE(handle.ok()) << handle.status();
      ids_of[d].insert((*handle)->registration_id());
      publishers.push_back(std::move(*handle));
    }
  }

  // Subscribers on clients of their own: each subscribes to 2 dataIds.
  std::vector<std::unique_ptr<RegistryClient>> subscriber_clients;
  std::vector<std::unique_ptr<ViewRecorder>> recorders;
  std::vector<std::shared_ptr<Subscription>> subscriptions;
  for (int c = 0; c < kSubscriberClients; ++c) {
    subscriber_clients.push_back(RestartClient(address, "sub-" + std::to_string(c)));
    ASSERT_NE(subscriber_clients.back(), nullptr);
    for (int k = 0; k < kSubscriptionsPerClient; ++k) {
      int d = (c + k) % kDataIds;
      recorders.push_back(std::make_unique<ViewRecorder>(ids_of[d]));
      auto sub =
          subscriber_clients.back()->Subscribe({Key(DataId(d))}, recorders.back()->Callback());
      ASSERT_TRUE(sub.ok()) << sub.status();
      subscriptions.push_back(std::move(*sub));
    }
  }
  auto all_complete = [&] {
    for (auto& r : recorders) {
      if (!r->Complete()) return false;
    }
    return true;
  };
  ASSERT_TRUE(Eventually(all_complete, seconds(10))) << server.Log();
  // The registry records which clients are connected about once a second.
  std::this_thread::sleep_for(milliseconds(2500));

  size_t total_false_removals = 0;
  for (int round = 0; round < kRestarts; ++round) {
    std::vector<size_t> pushes_before;
    for (auto& r : recorders) pushes_before.push_back(r->PushCount());
    uint16_t port = server.grpc_port();
    ASSERT_TRUE(server.Stop(SIGKILL).has_value());
    auto restarted_at = std::chrono::steady_clock::now();
    ASSERT_TRUE(server.Start(port)) << server.Log();
    bool converged = Eventually(
        [&] {
          for (size_t i = 0; i < recorders.size(); ++i) {
            if (recorders[i]->PushCount() == pushes_before[i] || !recorders[i]->Complete()) {
              return false;
            }
          }
          return true;
        },
        seconds(30));
    auto took =
        std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - restarted_at);
    size_t round_false = 0;
    size_t worst_missing = 0;
    for (auto& r : recorders) {
      round_false += r->false_removals();
      worst_missing = std::max(worst_missing, r->max_missing());
    }
    round_false -= total_false_removals;
    total_false_removals += round_false;
    std::printf(
        "restart %d: converged=%d in %lld ms; false removals so far %zu (this restart %zu, "
        "worst push lacked %zu of %d publishers)\n",
        round + 1, converged, static_cast<long long>(took.count()), total_false_removals,
        round_false, worst_missing, kPublishersPerDataId);
    // What the registry says about its warm-up (start, and why it ended).
    std::istringstream log(server.Log());
    for (std::string line; std::getline(log, line);) {
      if (line.find("restart warm-up") != std::string::npos) std::printf("  %s\n", line.c_str());
    }
    ASSERT_TRUE(converged) << "not every subscriber got the full view again within 30 s\n"
                           << server.Log();
    // Let the restarted registry record its connected clients.
    std::this_thread::sleep_for(milliseconds(2500));
  }
  EXPECT_EQ(total_false_removals, 0u)
      << "subscribers were pushed views lacking live publishers they had been shown";
  // Versions only grow across restarts: the client drops (and counts) a push
  // whose version is not above the one it delivered last; none was dropped,
  // so every push after a restart was above what the subscriber had before.
  for (auto& client : subscriber_clients) EXPECT_EQ(client->stats().pushes_dropped, 0u);
  for (auto& client : publisher_clients) EXPECT_TRUE(client->IsConnected());

  subscriptions.clear();
  publishers.clear();
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.Log();
}

}  // namespace
}  // namespace cairn::testing
