#include "session_load.h"

#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace cairn::bench::xds {

uint32_t PortOfUrl(const std::string& url) {
  auto colon = url.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(url.substr(colon + 1), &port)) return 0;
  return port;
}

SessionLoad::SessionLoad(SessionLoadOptions options, DeliveryTracker* tracker)
    : options_(std::move(options)), tracker_(tracker) {}

SessionLoad::~SessionLoad() { Stop(); }

absl::Status SessionLoad::Start() {
  const int n = std::max(1, options_.clients);
  for (int c = 0; c < n; ++c) {
    RegistryClientOptions o;
    o.servers = {options_.target};
    o.client_id = absl::StrCat("xds-bench-session-", c);
    o.app_name = "xds-bench";
    o.request_timeout = options_.timeout;
    auto client = RegistryClient::Create(o);
    if (!client.ok()) return client.status();
    clients_.push_back(std::move(*client));
  }
  for (auto& client : clients_) {
    if (auto s = client->WaitConnected(options_.timeout); !s.ok()) return s;
  }
  // One thread per client subscribes that client's share.
  std::vector<absl::Status> status(clients_.size());
  std::vector<std::vector<std::shared_ptr<Subscription>>> subs(clients_.size());
  std::vector<std::thread> threads;
  for (int c = 0; c < n; ++c) {
    threads.emplace_back([&, c] {
      for (int i = c; i < options_.subscribers; i += n) {
        DeliveryTracker* tracker = tracker_;
        auto sub = clients_[c]->Subscribe({options_.key}, [tracker, i](const pb::Push& push) {
          auto now = Clock::now();
          for (const auto& zone : push.zones()) {
            for (const auto& publisher : zone.publishers()) {
              for (const auto& url : publisher.data()) tracker->Observe(i, PortOfUrl(url), now);
            }
          }
        });
        if (!sub.ok()) {
          status[c] = sub.status();
          return;
        }
        subs[c].push_back(std::move(*sub));
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& s : subs) subscriptions_.insert(subscriptions_.end(), s.begin(), s.end());
  for (const auto& s : status) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

void SessionLoad::Stop() {
  // Closing a client first makes destroying its handles a no-op.
  for (auto& client : clients_) client->Close();
  subscriptions_.clear();
  clients_.clear();
}

}  // namespace cairn::bench::xds
