#include "cluster_faults_fixture.h"

#include "common/data_info.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <random>

namespace cairn::cluster::faults {

using cairn::testing::Eventually;

pb::DataInfoKey Key(const std::string& data_id) {
  pb::DataInfoKey key;
  key.set_data_id(data_id);
  return key;
}

namespace {
#if defined(__SANITIZE_ADDRESS__)
constexpr double kBuildScale = 3;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr double kBuildScale = 3;
#else
constexpr double kBuildScale = 1;
#endif
#else
constexpr double kBuildScale = 1;
#endif

long Ms(Clock::duration d) { return std::chrono::duration_cast<milliseconds>(d).count(); }

std::string Join(const std::vector<std::string>& parts, const std::string& sep = ", ") {
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : sep) + part;
  return out;
}

// "pub-1[s1,s2] via s2 x3, ..." from one description per id.
std::string Grouped(const std::vector<std::string>& descriptions) {
  std::map<std::string, int> count;
  for (const auto& d : descriptions) ++count[d];
  std::vector<std::string> parts;
  for (const auto& [d, n] : count) parts.push_back(d + (n > 1 ? " x" + std::to_string(n) : ""));
  return Join(parts);
}
}  // namespace

double TimeScale() {
  if (const char* env = std::getenv("CAIRN_TEST_TIME_SCALE"); env != nullptr) {
    double scale = std::atof(env);
    if (scale > 0) return scale;
  }
  return kBuildScale;
}

milliseconds Scaled(milliseconds budget) {
  return milliseconds(static_cast<long>(static_cast<double>(budget.count()) * TimeScale()));
}

// ---------------------------------------------------------------- Ledger

void Ledger::Add(const std::string& registration_id, const std::string& owner,
                 const RegistryClient* client) {
  std::lock_guard lock(mu_);
  entries_[registration_id] = Entry{owner, client, false};
}

void Ledger::MarkLeaving(const std::string& registration_id) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(registration_id); it != entries_.end()) it->second.leaving = true;
}

bool Ledger::Wanted(const std::string& registration_id) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(registration_id);
  return it != entries_.end() && !it->second.leaving;
}

std::string Ledger::Describe(const std::string& registration_id) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(registration_id);
  if (it == entries_.end()) return "unknown id " + registration_id;
  std::string server = it->second.client ? it->second.client->ConnectedServer() : "";
  std::string via = "reconnecting";
  if (!server.empty()) {
    auto named = sessions_.find(server);
    via = "via " + (named == sessions_.end() ? server : named->second);
  }
  return it->second.owner + " " + via;
}

void Ledger::NameSession(const std::string& address, const std::string& id) {
  std::lock_guard lock(mu_);
  sessions_[address] = id;
}

// ---------------------------------------------------------------- Anomalies

void Anomalies::Mark(const std::string& phase) {
  std::lock_guard lock(mu_);
  phase_ = phase;
  since_ = Clock::now();
}

std::string Anomalies::Stamp() const {
  return "[" + phase_ + " +" + std::to_string(Ms(Clock::now() - since_)) + " ms] ";
}

void Anomalies::FalseRemoval(const std::string& what) {
  std::lock_guard lock(mu_);
  ++false_removals_;
  if (lines_.size() < 40) lines_.push_back(Stamp() + "FALSE REMOVAL " + what);
}

void Anomalies::Duplicate(const std::string& what) {
  std::lock_guard lock(mu_);
  ++duplicates_;
  if (lines_.size() < 40) lines_.push_back(Stamp() + "DUPLICATE " + what);
}

int Anomalies::false_removals() const {
  std::lock_guard lock(mu_);
  return false_removals_;
}

int Anomalies::duplicates() const {
  std::lock_guard lock(mu_);
  return duplicates_;
}

std::string Anomalies::Report() const {
  std::lock_guard lock(mu_);
  return std::to_string(false_removals_) + " pushes with false removals, " +
         std::to_string(duplicates_) + " pushes with duplicate ids\n" + Join(lines_, "\n") + "\n";
}

// ---------------------------------------------------------------- View

void View::OnPush(const pb::Push& push) {
  PublisherMap now;
  std::vector<std::string> twice;
  for (const auto& zone : push.zones()) {
    for (const auto& publisher : zone.publishers()) {
      bool fresh =
          now.emplace(publisher.registration_id(),
                      std::vector<std::string>(publisher.data().begin(), publisher.data().end()))
              .second;
      if (!fresh) twice.push_back(publisher.registration_id());
    }
  }
  std::vector<std::string> missing;
  {
    std::lock_guard lock(mu_);
    for (const auto& id : shown_) {
      if (!now.contains(id) && ledger_->Wanted(id)) missing.push_back(id);
    }
    for (const auto& [id, data] : now) shown_.insert(id);
    current_ = now;
  }
  std::string where = data_id_ + " v" + std::to_string(push.version()) + " to " + subscriber_ +
                      " (" + std::to_string(now.size()) + " publishers): ";
  if (!twice.empty()) {
    std::vector<std::string> owners;
    for (const auto& id : twice) owners.push_back(ledger_->Describe(id));
    anomalies_->Duplicate(where + std::to_string(twice.size()) + " ids twice: " + Grouped(owners));
  }
  if (!missing.empty()) {
    std::vector<std::string> owners;
    for (const auto& id : missing) owners.push_back(ledger_->Describe(id));
    anomalies_->FalseRemoval(where + "lacks " + std::to_string(missing.size()) +
                             " live publishers it had shown: " + Grouped(owners));
  }
}

PublisherMap View::publishers() const {
  std::lock_guard lock(mu_);
  return current_;
}

// ---------------------------------------------------------------- ChurnClient

absl::Status ChurnClient::Seed() {
  for (const auto& data_id : data_ids_) {
    int before = failures_;
    Publish(data_id);
    if (failures_ != before) return absl::UnavailableError(failure_log());
  }
  return absl::OkStatus();
}

void ChurnClient::Start(milliseconds gap, int publish_share) {
  Stop();
  stop_ = false;
  thread_ = std::thread([this, gap, publish_share] { Run(gap, publish_share); });
}

void ChurnClient::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ChurnClient::Run(milliseconds gap, int publish_share) {
  std::mt19937 rng(seed_++);
  // Enough live publishers per client that republish and unregister find
  // targets, few enough that pushes stay small.
  constexpr size_t kMaxLive = 24;
  while (!stop_) {
    std::string target;
    size_t live;
    {
      std::lock_guard lock(mu_);
      live = live_.size();
      if (live > 0) target = std::next(live_.begin(), rng() % live)->first;
    }
    int roll = static_cast<int>(rng() % 100);
    if (live < 2 || (roll < publish_share && live < kMaxLive)) {
      Publish(data_ids_[rng() % data_ids_.size()]);
    } else if (roll % 2 == 0) {
      Republish(target);
    } else {
      Unregister(target);
    }
    ++operations_;
    std::this_thread::sleep_for(gap);
  }
}

void ChurnClient::Publish(const std::string& data_id) {
  std::string data = name_ + "-" + std::to_string(++counter_);
  auto publisher = client_->Publish(PublishSpec{Key(data_id), {data}});
  if (!publisher.ok()) {
    // The client keeps no registration: the server must not show one.
    Failed("publish " + data_id, publisher.status());
    return;
  }
  const std::string& id = (*publisher)->registration_id();
  ledger_->Add(id, name_, client_.get());
  std::lock_guard lock(mu_);
  live_[id] = Live{data_id, {data}, *publisher};
  last_ack_ = Clock::now();
}

void ChurnClient::Republish(const std::string& id) {
  std::shared_ptr<Publisher> handle;
  {
    std::lock_guard lock(mu_);
    handle = live_.at(id).handle;
  }
  // Until one attempt is acknowledged the server may hold either data:
  // retry (bounded) so the expected state is known.
  auto deadline = Clock::now() + seconds(20);
  for (;;) {
    std::string data = name_ + "-" + std::to_string(++counter_);
    absl::Status status = handle->Republish({data});
    if (status.ok()) {
      std::lock_guard lock(mu_);
      live_.at(id).data = {data};
      uncertain_.erase(id);
      last_ack_ = Clock::now();
      return;
    }
    Failed("republish", status);
    if (Clock::now() > deadline) {
      std::lock_guard lock(mu_);
      uncertain_.insert(id);
      return;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
}

void ChurnClient::Unregister(const std::string& id) {
  std::shared_ptr<Publisher> handle;
  {
    std::lock_guard lock(mu_);
    handle = live_.at(id).handle;
  }
  ledger_->MarkLeaving(id);
  auto deadline = Clock::now() + seconds(20);
  for (;;) {
    absl::Status status = handle->Unregister();
    if (status.ok()) {
      std::lock_guard lock(mu_);
      live_.erase(id);
      uncertain_.erase(id);
      last_ack_ = Clock::now();
      return;
    }
    Failed("unregister", status);
    if (Clock::now() > deadline) {
      std::lock_guard lock(mu_);
      uncertain_.insert(id);
      return;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
}

void ChurnClient::Failed(const std::string& op, const absl::Status& status) {
  ++failures_;
  std::lock_guard lock(mu_);
  if (failure_log_.size() < 20) failure_log_.push_back(name_ + " " + op + ": " + status.ToString());
}

std::map<std::string, PublisherMap> ChurnClient::Acknowledged() const {
  std::lock_guard lock(mu_);
  std::map<std::string, PublisherMap> out;
  for (const auto& [id, live] : live_) out[live.data_id][id] = live.data;
  return out;
}

std::set<std::string> ChurnClient::Uncertain() const {
  std::lock_guard lock(mu_);
  return uncertain_;
}

std::string ChurnClient::failure_log() const {
  std::lock_guard lock(mu_);
  return Join(failure_log_, "\n");
}

Clock::time_point ChurnClient::last_ack() const {
  std::lock_guard lock(mu_);
  return last_ack_;
}

// ---------------------------------------------------------------- fixture

void ClusterFaultsTest::SetUp() {
  std::printf("time budgets scaled by %.1f\n", TimeScale());
  ASSERT_TRUE(cluster_.StartEtcd()) << cluster_.etcd().Log();
  auto client = cluster_.ConnectEtcd();
  ASSERT_TRUE(client.ok());
  etcd_ = std::move(*client);
  ASSERT_NE(cluster_.Start("meta", "m1"), nullptr) << cluster_.Logs();
  for (const char* id : {"d1", "d2", "d3"}) {
    ASSERT_NE(cluster_.Start("data", id), nullptr) << cluster_.Logs();
  }
  ASSERT_NE(cluster_.Start("session", "s1"), nullptr) << cluster_.Logs();
  ASSERT_NE(cluster_.Start("session", "s2"), nullptr) << cluster_.Logs();
  // No slot moves while a test runs, except those its fault causes.
  ASSERT_TRUE(Eventually(
      [&] {
        return Balanced({"d1", "d2", "d3"});
      },
      Scaled(seconds(30))))
      << cluster_.Logs();
  ChooseDataIds();
  ASSERT_FALSE(data_ids_.empty());
  ledger_->NameSession(Address("s1"), "s1");
  ledger_->NameSession(Address("s2"), "s2");

  // Subscribers first, so every view grows publisher by publisher (and a
  // removal during the setup would already show).
  for (int c = 0; c < kSubscriberClients; ++c) {
    AddSubscriberClient("sub-" + std::to_string(c), c % 2 == 0
                                                        ? std::vector<std::string>{"s1", "s2"}
                                                        : std::vector<std::string>{"s2", "s1"});
  }
  for (int c = 0; c < kCanaryClients; ++c) {
    AddCanaryClient("pub-" + std::to_string(c), c % 2 == 0 ? std::vector<std::string>{"s1", "s2"}
                                                           : std::vector<std::string>{"s2", "s1"});
  }
  for (int c = 0; c < kChurnClients; ++c) {
    std::string name = "churn-" + std::to_string(c);
    auto client = NewClient(name, c % 2 == 0 ? std::vector<std::string>{"s1", "s2"}
                                             : std::vector<std::string>{"s2", "s1"});
    ASSERT_NE(client, nullptr);
    churn_.push_back(
        std::make_unique<ChurnClient>(name, std::move(client), data_ids_, ledger_, 1000 + c));
    ASSERT_TRUE(churn_.back()->Seed().ok()) << churn_.back()->failure_log();
  }
  RebuildExpected();
  ASSERT_TRUE(Eventually([&] { return AllViewsMatch(); }, seconds(10)))
      << Mismatch() << cluster_.Logs();
  ExpectNoAnomalies("setup");
  anomalies_->Mark("steady");
}

void ClusterFaultsTest::TearDown() {
  for (auto& churn : churn_) churn->Stop();
  // The subscribers first: their callbacks read the other clients.
  for (auto& client : subscriber_clients_) client->Close();
  subscriptions_.clear();
  churn_.clear();
  for (auto& client : canary_clients_) client->Close();
  canaries_.clear();
  subscriber_clients_.clear();
  canary_clients_.clear();
}

absl::StatusOr<v1::SlotTable> ClusterFaultsTest::Table() {
  auto kv = etcd_->Get(keys_.SlotTable());
  if (!kv.ok()) return kv.status();
  v1::SlotTable table;
  if (!table.ParseFromString(kv->value)) return absl::DataLossError("bad table");
  return table;
}

int64_t ClusterFaultsTest::TableRevision() {
  auto kv = etcd_->Get(keys_.SlotTable());
  return kv.ok() ? kv->mod_revision : -1;
}

bool ClusterFaultsTest::Settled(const std::set<std::string>& live) {
  auto table = Table();
  if (!table.ok() || table->slots_size() != static_cast<int>(cluster_.slots())) return false;
  std::map<std::string, int> leads;
  for (const auto& slot : table->slots()) {
    if (!live.contains(slot.leader()) || slot.followers_size() != 1 ||
        !live.contains(slot.followers(0))) {
      return false;
    }
    ++leads[slot.leader()];
  }
  return leads.size() == live.size();
}

bool ClusterFaultsTest::Balanced(const std::set<std::string>& live) {
  if (!Settled(live)) return false;
  auto table = Table();
  if (!table.ok()) return false;
  std::map<std::string, int> leads, follows;
  for (const auto& id : live) leads[id] = follows[id] = 0;
  for (const auto& slot : table->slots()) {
    ++leads[slot.leader()];
    for (const auto& follower : slot.followers()) ++follows[follower];
  }
  auto spread = [](const std::map<std::string, int>& counts) {
    auto [low, high] =
        std::minmax_element(counts.begin(), counts.end(),
                            [](const auto& a, const auto& b) { return a.second < b.second; });
    return high->second - low->second;
  };
  return spread(leads) <= 1 && spread(follows) <= 1;
}

void ClusterFaultsTest::ChooseDataIds() {
  auto table = Table();
  if (!table.ok()) return;
  std::map<std::string, int> wanted = {
      {"d1", kIdsLedPerServer}, {"d2", kIdsLedPerServer}, {"d3", kIdsLedPerServer}};
  int only_on_d2_and_d3 = kIdsOnlyOnD2AndD3;
  std::set<uint32_t> used;
  for (int n = 0; n < 100000 && data_ids_.size() < 3 * kIdsLedPerServer + kIdsOnlyOnD2AndD3; ++n) {
    std::string data_id = "canary-" + std::to_string(n);
    uint32_t slot = SlotOf(DataInfoId(NormalizeKey(Key(data_id))), cluster_.slots());
    if (used.contains(slot) || static_cast<int>(slot) >= table->slots_size()) continue;
    const auto& assignment = table->slots(static_cast<int>(slot));
    std::set<std::string> holders(assignment.followers().begin(), assignment.followers().end());
    holders.insert(assignment.leader());
    bool pair = holders == std::set<std::string>{"d2", "d3"};
    if (pair && only_on_d2_and_d3 > 0) {
      --only_on_d2_and_d3;
    } else if (wanted[assignment.leader()] > 0 && !pair) {
      --wanted[assignment.leader()];
    } else {
      continue;
    }
    used.insert(slot);
    data_ids_.push_back(data_id);
  }
}

std::unique_ptr<RegistryClient> ClusterFaultsTest::NewClient(
    const std::string& name, const std::vector<std::string>& session_ids) {
  RegistryClientOptions options;
  for (const auto& id : session_ids) options.servers.push_back(Address(id));
  options.client_id = name + "[" + Join(session_ids, ",") + "]";
  options.app_name = "faults";
  options.reconnect_backoff_max = milliseconds(500);
  options.keepalive_interval = milliseconds(1000);
  auto client = RegistryClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return nullptr;
  EXPECT_TRUE((*client)->WaitConnected(seconds(10)).ok()) << name;
  return std::move(*client);
}

void ClusterFaultsTest::AddCanaryClient(const std::string& name,
                                        const std::vector<std::string>& session_ids) {
  auto client = NewClient(name, session_ids);
  ASSERT_NE(client, nullptr);
  std::string owner = name + "[" + Join(session_ids, ",") + "]";
  for (const auto& data_id : data_ids_) {
    for (int k = 0; k < kCanariesPerClientAndId; ++k) {
      std::string data = name + "-" + data_id + "-" + std::to_string(k);
      auto publisher = client->Publish(PublishSpec{Key(data_id), {data}});
      ASSERT_TRUE(publisher.ok()) << publisher.status();
      ledger_->Add((*publisher)->registration_id(), owner, client.get());
      canary_expected_[data_id][(*publisher)->registration_id()] = {data};
      canaries_.push_back(std::move(*publisher));
    }
  }
  canary_clients_.push_back(std::move(client));
  RebuildExpected();
}

void ClusterFaultsTest::AddSubscriberClient(const std::string& name,
                                            const std::vector<std::string>& session_ids) {
  auto client = NewClient(name, session_ids);
  ASSERT_NE(client, nullptr);
  std::string subscriber = name + "[" + Join(session_ids, ",") + "]";
  for (const auto& data_id : data_ids_) {
    auto view = std::make_shared<View>(data_id, subscriber, ledger_, anomalies_);
    auto sub = client->Subscribe(SubscribeSpec{Key(data_id)},
                                 [view](const pb::Push& push) { view->OnPush(push); });
    ASSERT_TRUE(sub.ok()) << sub.status();
    subscriptions_.push_back(std::move(*sub));
    views_.push_back(view);
  }
  subscriber_clients_.push_back(std::move(client));
}

void ClusterFaultsTest::RebuildExpected() {
  expected_ = canary_expected_;
  for (const auto& data_id : data_ids_) expected_[data_id];  // every dataId, even if empty
  uncertain_.clear();
  for (auto& churn : churn_) {
    for (const auto& [data_id, publishers] : churn->Acknowledged()) {
      expected_[data_id].insert(publishers.begin(), publishers.end());
    }
    auto uncertain = churn->Uncertain();
    uncertain_.insert(uncertain.begin(), uncertain.end());
  }
}

void ClusterFaultsTest::StartChurn(milliseconds gap, int publish_share) {
  for (auto& churn : churn_) churn->Start(gap, publish_share);
}

void ClusterFaultsTest::StopChurn() {
  for (auto& churn : churn_) churn->Stop();
  RebuildExpected();
}

Clock::time_point ClusterFaultsTest::DuringChurn(const std::function<void()>& fault,
                                                 milliseconds before, milliseconds after) {
  StartChurn();
  std::this_thread::sleep_for(before);
  anomalies_->Mark(::testing::UnitTest::GetInstance()->current_test_info()->name());
  Clock::time_point at = Clock::now();
  fault();
  std::this_thread::sleep_for(after);
  StopChurn();
  return at;
}

bool ClusterFaultsTest::AllViewsMatch() {
  for (const auto& view : views_) {
    PublisherMap have = view->publishers();
    const PublisherMap& want = expected_[view->data_id()];
    if (uncertain_.empty()) {
      if (have != want) return false;
      continue;
    }
    PublisherMap want_certain = want;
    for (const auto& id : uncertain_) {
      have.erase(id);
      want_certain.erase(id);
    }
    if (have != want_certain) return false;
  }
  return true;
}

std::string ClusterFaultsTest::Mismatch() {
  std::string out;
  int lines = 0;
  for (const auto& view : views_) {
    PublisherMap have = view->publishers();
    const PublisherMap& want = expected_[view->data_id()];
    std::vector<std::string> missing, ghosts, stale;
    for (const auto& [id, data] : want) {
      if (uncertain_.contains(id)) continue;
      auto it = have.find(id);
      if (it == have.end()) {
        missing.push_back(ledger_->Describe(id));
      } else if (it->second != data) {
        stale.push_back(ledger_->Describe(id));
      }
    }
    for (const auto& [id, data] : have) {
      if (!want.contains(id) && !uncertain_.contains(id)) ghosts.push_back(ledger_->Describe(id));
    }
    if (missing.empty() && ghosts.empty() && stale.empty()) continue;
    if (++lines > 12) {
      out += "...\n";
      break;
    }
    out += view->data_id() + " @ " + view->subscriber() + ": has " + std::to_string(have.size()) +
           ", wants " + std::to_string(want.size());
    if (!missing.empty()) out += "; missing " + Grouped(missing);
    if (!ghosts.empty()) out += "; ghosts " + Grouped(ghosts);
    if (!stale.empty()) out += "; old data " + Grouped(stale);
    out += "\n";
  }
  return out;
}

long ClusterFaultsTest::ExpectConvergedWithin(const std::string& fault, Clock::time_point since,
                                              milliseconds budget) {
  milliseconds scaled = Scaled(budget);
  auto left = std::chrono::duration_cast<milliseconds>(since + scaled - Clock::now());
  bool ok = Eventually([&] { return AllViewsMatch(); }, std::max(left, milliseconds(0)));
  long ms = Ms(Clock::now() - since);
  if (ok) {
    std::printf("[%s] converged %ld ms after the fault (budget %ld ms)\n", fault.c_str(), ms,
                static_cast<long>(scaled.count()));
    return ms;
  }
  std::string mismatch = Mismatch();
  bool late = Eventually([&] { return AllViewsMatch(); }, seconds(10));
  std::string outcome =
      late ? "converged only " + std::to_string(Ms(Clock::now() - since)) + " ms after the fault"
           : "still not converged " + std::to_string(Ms(Clock::now() - since)) +
                 " ms after the fault";
  std::printf("[%s] NOT converged within the budget of %ld ms; %s\n", fault.c_str(),
              static_cast<long>(scaled.count()), outcome.c_str());
  ADD_FAILURE() << fault << ": views not converged within " << scaled.count()
                << " ms of the fault (" << outcome << "). At the deadline:\n"
                << mismatch << (late ? "" : "\n" + cluster_.Logs());
  return -1;
}

void ClusterFaultsTest::ExpectNoAnomalies(const std::string& fault) {
  std::printf("[%s] %d pushes with false removals, %d with duplicate ids\n", fault.c_str(),
              anomalies_->false_removals(), anomalies_->duplicates());
  EXPECT_EQ(anomalies_->false_removals(), 0) << fault << ": " << anomalies_->Report();
  EXPECT_EQ(anomalies_->duplicates(), 0) << fault << ": " << anomalies_->Report();
}

void ClusterFaultsTest::ExpectNoChurnFailures() {
  int operations = 0;
  for (auto& churn : churn_) {
    operations += churn->operations();
    EXPECT_EQ(churn->failures(), 0) << churn->failure_log();
  }
  std::printf("churn: %d operations by %d clients, %zu ids with an unknown outcome\n", operations,
              static_cast<int>(churn_.size()), uncertain_.size());
  EXPECT_TRUE(uncertain_.empty());
}

}  // namespace cairn::cluster::faults
