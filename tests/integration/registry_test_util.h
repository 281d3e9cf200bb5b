// Helpers shared by the registry integration tests: clients with short
// keepalives and a thread-safe collector of pushes.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include "client/registry_client.h"
#include "process.h"

namespace cairn::testing {

// How many times `needle` occurs in `text` (overlapping occurrences count).
inline int CountOf(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

inline pb::DataInfoKey Key(const std::string& data_id) {
  pb::DataInfoKey key;
  key.set_data_id(data_id);
  return key;
}

inline std::unique_ptr<RegistryClient> MakeClient(const std::vector<std::string>& servers,
                                                  const std::string& id) {
  RegistryClientOptions options;
  options.servers = servers;
  options.client_id = id;
  options.app_name = "test-app";
  options.keepalive_interval = std::chrono::milliseconds(300);
  options.reconnect_backoff_initial = std::chrono::milliseconds(50);
  options.reconnect_backoff_max = std::chrono::milliseconds(500);
  options.request_timeout = std::chrono::milliseconds(10000);
  auto client = RegistryClient::Create(options);
  return client.ok() ? std::move(*client) : nullptr;
}

// Every data string of a push, flattened across zones and publishers, sorted.
inline std::vector<std::string> AllData(const pb::Push& push) {
  std::vector<std::string> out;
  for (const auto& zone : push.zones()) {
    for (const auto& pub : zone.publishers())
      out.insert(out.end(), pub.data().begin(), pub.data().end());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class PushCollector {
 public:
  PushCallback Callback() {
    return [this](const pb::Push& push) {
      std::lock_guard lock(mu_);
      pushes_.push_back(push);
      cv_.notify_all();
    };
  }
  // Waits for a push whose data equals `want` (sorted); returns it.
  std::optional<pb::Push> WaitForData(std::vector<std::string> want,
                                      std::chrono::milliseconds timeout) {
    std::sort(want.begin(), want.end());
    std::unique_lock lock(mu_);
    std::optional<pb::Push> found;
    cv_.wait_for(lock, timeout, [&] {
      if (!pushes_.empty() && AllData(pushes_.back()) == want) found = pushes_.back();
      return found.has_value();
    });
    return found;
  }
  std::vector<pb::Push> All() {
    std::lock_guard lock(mu_);
    return pushes_;
  }
  size_t Count() {
    std::lock_guard lock(mu_);
    return pushes_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<pb::Push> pushes_;
};

}  // namespace cairn::testing
