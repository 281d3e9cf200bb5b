#include "canary.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cairn::chaos {

using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

pb::DataInfoKey Key(const std::string& data_id) {
  pb::DataInfoKey key;
  key.set_data_id(data_id);
  return key;
}

double MsSince(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

// One subscription's record. Guarded by Canaries::mu_.
struct Canaries::Subscriber {
  std::string name;  // "<client>/<dataId>"
  std::string data_id;
  std::set<std::string> view;   // registration ids of the last push
  std::set<std::string> shown;  // every id any push has shown it
  uint64_t version = 0;
};

// One canary client. Only the driver thread touches it.
struct Canaries::Client {
  std::string name;  // "pub0", "sub-s1"
  std::vector<std::string> servers;
  bool publishes = false;
  int generation = 0;
  std::vector<std::pair<int, int>> slots;  // (dataId index, publisher index) it publishes
  std::unique_ptr<RegistryClient> client;
  std::vector<std::shared_ptr<Publisher>> publishers;
  std::vector<std::shared_ptr<Subscription>> subscriptions;
  std::vector<std::shared_ptr<Subscriber>> subscribers;
};

Canaries::Canaries(CanaryOptions options) : options_(std::move(options)) {
  const int publishing = static_cast<int>(options_.publisher_servers.size());
  for (int c = 0; c < publishing; ++c) {
    auto client = std::make_unique<Client>();
    client->name = "pub" + std::to_string(c);
    client->servers = options_.publisher_servers[c];
    client->publishes = true;
    clients_.push_back(std::move(client));
  }
  // Publisher p of dataId d lives on client (d * P + p) mod C: every dataId
  // has publishers on every client, and so on every server.
  for (int d = 0; d < options_.data_ids; ++d) {
    for (int p = 0; p < options_.publishers_per_data_id; ++p) {
      clients_[(d * options_.publishers_per_data_id + p) % publishing]->slots.emplace_back(d, p);
    }
  }
  for (const auto& [label, server] : options_.pinned_subscribers) {
    auto client = std::make_unique<Client>();
    client->name = "sub-" + label;
    client->servers = {server};
    clients_.push_back(std::move(client));
  }
}

Canaries::~Canaries() {
  JoinChurn();
  for (auto& client : clients_) {
    if (client->client) client->client->Close();
  }
  clients_.clear();
}

absl::Status Canaries::StartClient(Client& client) {
  RegistryClientOptions options;
  options.servers = client.servers;
  options.client_id = client.name + ".g" + std::to_string(client.generation);
  options.app_name = "chaos";
  options.keepalive_interval = options_.keepalive;
  options.reconnect_backoff_max = options_.backoff_max;
  auto created = RegistryClient::Create(options);
  if (!created.ok()) return created.status();
  client.client = std::move(*created);
  if (auto connected = client.client->WaitConnected(seconds(15)); !connected.ok()) {
    return absl::UnavailableError(
        absl::StrCat(client.name, " cannot connect: ", connected.ToString()));
  }
  for (auto [d, p] : client.slots) {
    std::string data_id = options_.data_id_prefix + "-" + std::to_string(d);
    std::string data = absl::StrCat(data_id, "/", p, "/g", client.generation);
    auto publisher = client.client->Publish(PublishSpec{Key(data_id), {data}});
    if (!publisher.ok()) {
      return absl::UnavailableError(
          absl::StrCat(client.name, " publish ", data, ": ", publisher.status().ToString()));
    }
    std::lock_guard lock(mu_);
    expected_[data_id].insert((*publisher)->registration_id());
    client.publishers.push_back(std::move(*publisher));
  }
  for (int d = 0; d < options_.data_ids; ++d) {
    auto subscriber = std::make_shared<Subscriber>();
    subscriber->data_id = options_.data_id_prefix + "-" + std::to_string(d);
    subscriber->name = client.name + "/" + subscriber->data_id;
    {
      std::lock_guard lock(mu_);
      expected_[subscriber->data_id];  // a dataId without publishers is expected empty
      subscribers_.push_back(subscriber);
    }
    client.subscribers.push_back(subscriber);
    auto subscription = client.client->Subscribe(
        SubscribeSpec{Key(subscriber->data_id)},
        [this, subscriber](const pb::Push& push) { Record(*subscriber, push); });
    if (!subscription.ok()) {
      return absl::UnavailableError(absl::StrCat(client.name, " subscribe ", subscriber->data_id,
                                                 ": ", subscription.status().ToString()));
    }
    client.subscriptions.push_back(std::move(*subscription));
  }
  return absl::OkStatus();
}

absl::Status Canaries::Start(milliseconds timeout) {
  for (auto& client : clients_) {
    if (auto started = StartClient(*client); !started.ok()) return started;
  }
  Clock::time_point deadline = Clock::now() + timeout;
  while (!AllViewsMatch()) {
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError("initial views incomplete: " + Mismatches());
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return absl::OkStatus();
}

void Canaries::Record(Subscriber& subscriber, const pb::Push& push) {
  std::vector<std::string> ids;
  for (const auto& zone : push.zones()) {
    for (const auto& publisher : zone.publishers()) ids.push_back(publisher.registration_id());
  }
  std::set<std::string> now(ids.begin(), ids.end());
  std::lock_guard lock(mu_);
  ++pushes_;
  if (now.size() != ids.size()) ++duplicates_[phase_];
  std::vector<std::string> missing;
  const std::set<std::string>& live = expected_[subscriber.data_id];
  for (const std::string& id : subscriber.shown) {
    if (live.contains(id) && !now.contains(id)) missing.push_back(id);
  }
  if (!missing.empty()) {
    ++false_removals_[phase_];
    FalseRemoval removal{phase_,
                         subscriber.name,
                         push.version(),
                         subscriber.view.size(),
                         now.size(),
                         missing,
                         std::chrono::duration<double>(Clock::now() - phase_started_).count()};
    if (removals_.size() < 10000) removals_.push_back(std::move(removal));
  }
  subscriber.shown.insert(now.begin(), now.end());
  subscriber.view = std::move(now);
  subscriber.version = push.version();
}

void Canaries::SetPhase(const std::string& fault) {
  std::lock_guard lock(mu_);
  phase_ = fault;
  phase_started_ = Clock::now();
}

int Canaries::MismatchCount() {
  std::lock_guard lock(mu_);
  int wrong = 0;
  for (const auto& subscriber : subscribers_) {
    if (subscriber->view != expected_[subscriber->data_id]) ++wrong;
  }
  return wrong;
}

std::string Canaries::Mismatches(size_t limit) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  size_t total = 0;
  for (const auto& subscriber : subscribers_) {
    const std::set<std::string>& want = expected_[subscriber->data_id];
    if (subscriber->view == want) continue;
    ++total;
    if (out.size() >= limit) continue;
    size_t missing = 0, extra = 0;
    for (const auto& id : want) missing += subscriber->view.contains(id) ? 0 : 1;
    for (const auto& id : subscriber->view) extra += want.contains(id) ? 0 : 1;
    out.push_back(absl::StrCat(subscriber->name, " has ", subscriber->view.size(), " of ",
                               want.size(), " (", missing, " missing, ", extra, " extra, v",
                               subscriber->version, ")"));
  }
  if (total > out.size()) out.push_back(absl::StrCat("and ", total - out.size(), " more"));
  return absl::StrJoin(out, "; ");
}

RoundOutcome Canaries::Observe(Clock::time_point fault_end, milliseconds budget,
                               const std::function<bool()>& settled, milliseconds quiet,
                               milliseconds watch, milliseconds grace) {
  RoundOutcome outcome;
  const Clock::time_point budget_end = fault_end + budget;
  const Clock::time_point hard_end = budget_end + grace;
  std::optional<Clock::time_point> last_wrong;
  bool budget_checked = false;
  bool is_settled = false;
  Clock::time_point next_settled_check = Clock::now();
  while (true) {
    Clock::time_point now = Clock::now();
    int wrong = MismatchCount();
    bool right = wrong == 0;
    if (!right) {
      last_wrong = now;
      outcome.last_wrong = Mismatches(3);
    }
    if (!budget_checked && now >= budget_end) {
      budget_checked = true;
      outcome.stale_subscribers = wrong;
      if (!right) outcome.stale_detail = Mismatches();
    }
    if (right && now >= next_settled_check) {
      is_settled = settled();
      next_settled_check = Clock::now() + milliseconds(250);
    }
    bool quiet_long_enough = !last_wrong || now - *last_wrong >= quiet;
    if (right && quiet_long_enough && now - fault_end >= std::max(quiet, watch) && is_settled &&
        !churning_)
      break;
    if (now >= hard_end) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  outcome.convergence_ms = last_wrong ? std::max(0.0, MsSince(fault_end, *last_wrong)) : 0;
  outcome.converged = AllViewsMatch() && outcome.convergence_ms <= budget.count();
  outcome.settled = is_settled;
  if (!outcome.converged && outcome.stale_subscribers == 0) {
    // Wrong only after the budget: count the views wrong now.
    outcome.stale_subscribers = MismatchCount();
    outcome.stale_detail = Mismatches();
  }
  return outcome;
}

void Canaries::StartChurn() {
  JoinChurn();
  const size_t publishing = options_.publisher_servers.size();
  if (publishing == 0) return;
  const size_t next = static_cast<size_t>(probes_) % publishing;
  const std::string data_id =
      options_.data_id_prefix + "-" + std::to_string(probes_ % options_.data_ids);
  const std::string data = "probe-" + std::to_string(probes_);
  ++probes_;
  churning_ = true;
  RegistryClient* client = clients_[next]->client.get();
  churn_ = std::thread([this, client, next, data_id, data] {
    if (probe_ != nullptr) {
      {
        std::lock_guard lock(mu_);
        for (auto& [id, ids] : expected_) ids.erase(probe_->registration_id());
      }
      if (auto done = probe_->Unregister(); !done.ok()) {
        std::fprintf(stderr, "churn: unregister %s: %s\n", probe_->registration_id().c_str(),
                     done.ToString().c_str());
      }
      probe_.reset();
    }
    auto publisher = client->Publish(PublishSpec{Key(data_id), {data}});
    if (publisher.ok()) {
      std::lock_guard lock(mu_);
      expected_[data_id].insert((*publisher)->registration_id());
      probe_ = std::move(*publisher);
      probe_client_ = next;
    } else {
      std::fprintf(stderr, "churn: publish %s: %s\n", data.c_str(),
                   publisher.status().ToString().c_str());
    }
    churning_ = false;
  });
}

void Canaries::JoinChurn() {
  if (churn_.joinable()) churn_.join();
}

int Canaries::Rebalance(milliseconds timeout) {
  JoinChurn();
  int replaced = 0;
  for (size_t c = 0; c < clients_.size(); ++c) {
    auto& client = clients_[c];
    if (!client->publishes || !client->client) continue;
    if (client->client->ConnectedServer() == client->servers.front()) continue;
    // Retire on purpose: its publishers' removal is expected from here on.
    {
      std::lock_guard lock(mu_);
      if (probe_ != nullptr && probe_client_ == c) {
        for (auto& [data_id, ids] : expected_) ids.erase(probe_->registration_id());
        probe_.reset();
      }
      for (const auto& publisher : client->publishers) {
        for (auto& [data_id, ids] : expected_) ids.erase(publisher->registration_id());
      }
      for (const auto& subscriber : client->subscribers) {
        subscribers_.erase(std::remove(subscribers_.begin(), subscribers_.end(), subscriber),
                           subscribers_.end());
      }
    }
    client->client->Close();
    client->publishers.clear();
    client->subscriptions.clear();
    client->subscribers.clear();
    client->client.reset();
    ++client->generation;
    if (auto started = StartClient(*client); !started.ok()) {
      std::fprintf(stderr, "rebalance: %s\n", started.ToString().c_str());
    }
    ++replaced;
  }
  if (replaced > 0) {
    Clock::time_point deadline = Clock::now() + timeout;
    while (!AllViewsMatch() && Clock::now() < deadline)
      std::this_thread::sleep_for(milliseconds(20));
  }
  return replaced;
}

std::string Canaries::Spread(const std::map<std::string, std::string>& names) {
  std::map<std::string, int> on;
  for (const auto& client : clients_) {
    if (!client->publishes || !client->client) continue;
    std::string server = client->client->ConnectedServer();
    auto named = names.find(server);
    ++on[server.empty() ? "none" : named != names.end() ? named->second : server];
  }
  std::vector<std::string> out;
  for (const auto& [name, count] : on) out.push_back(absl::StrCat(name, ":", count));
  return absl::StrJoin(out, " ");
}

int64_t Canaries::false_removals(const std::string& fault) {
  std::lock_guard lock(mu_);
  auto it = false_removals_.find(fault);
  return it == false_removals_.end() ? 0 : it->second;
}

int64_t Canaries::duplicates(const std::string& fault) {
  std::lock_guard lock(mu_);
  auto it = duplicates_.find(fault);
  return it == duplicates_.end() ? 0 : it->second;
}

int64_t Canaries::pushes() {
  std::lock_guard lock(mu_);
  return pushes_;
}

std::vector<FalseRemoval> Canaries::removals() {
  std::lock_guard lock(mu_);
  return removals_;
}

int Canaries::subscriber_count() {
  std::lock_guard lock(mu_);
  return static_cast<int>(subscribers_.size());
}

int Canaries::publisher_count() {
  std::lock_guard lock(mu_);
  size_t total = 0;
  for (const auto& [data_id, ids] : expected_) total += ids.size();
  return static_cast<int>(total);
}

}  // namespace cairn::chaos
