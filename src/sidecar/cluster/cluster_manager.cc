#include "sidecar/cluster/cluster_manager.h"

#include <spdlog/spdlog.h>
#include <asio/post.hpp>
#include <set>

#include "absl/strings/str_cat.h"

namespace cairn::sidecar {

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

ClusterManager::ClusterManager(const SidecarConfig& config, std::vector<Worker*> workers,
                               asio::io_context& control, LocalMetrics& metrics)
    : config_(config), workers_(std::move(workers)), control_(control), metrics_(metrics) {}

ClusterManager::~ClusterManager() { Shutdown(); }

void ClusterManager::Shutdown() {
  *alive_ = false;
  for (auto& timer : timers_) timer->cancel();
  timers_.clear();
  for (auto& [name, state] : clusters_) state.checker.reset();
}

absl::Status ClusterManager::Init() {
  for (const ClusterConfig& cluster : config_.clusters) {
    ClusterState& state = clusters_[cluster.name];
    state.config = &cluster;
    state.stats = std::make_unique<ClusterStats>(metrics_, cluster.name);
    for (size_t i = 0; i < workers_.size(); ++i) {
      state.worker_stats.push_back(std::make_unique<ClusterStats>(metrics_, cluster.name));
    }
    for (const std::string& url : cluster.endpoints) {
      uint32_t weight = 0;
      auto address = upstream::ParseEndpointUrl(url, &weight);
      if (!address.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("cluster ", cluster.name, ": endpoint '",
                                                       url, "': ", address.status().message()));
      }
      if (auto endpoint = ToEndpoint(*address); !endpoint.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("cluster ", cluster.name, ": ", endpoint.status().message()));
      }
    }
  }
  // Every worker gets its ClusterWorkers before any listener accepts.
  worker_clusters_.resize(workers_.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    worker_clusters_[i] = std::make_unique<WorkerClusters>();
    for (auto& [name, state] : clusters_) {
      std::string cluster_name = name;
      auto on_outlier = [this, cluster_name](const upstream::HostPtr& host) {
        ReportOutlier(cluster_name, host);
      };
      worker_clusters_[i]->Add(
          name, std::make_unique<ClusterWorker>(*workers_[i], *state.config, *state.worker_stats[i],
                                                on_outlier));
    }
  }
  for (auto& [name, state] : clusters_) {
    if (!state.config->health_check.type.empty()) {
      state.checker = std::make_unique<HealthChecker>(control_, state.config->health_check, name);
    }
    if (!state.config->endpoints.empty()) {
      SetEndpoints(name, state.config->endpoints);
    } else {
      Publish(state, {});
    }
    if (state.checker) state.checker->Start();
  }
  return absl::OkStatus();
}

namespace {

// The value of the `app` query parameter of an endpoint URL, or empty.
std::string EndpointApp(std::string_view url) {
  size_t query = url.find('?');
  if (query == std::string_view::npos) return "";
  std::string_view rest = url.substr(query + 1);
  rest = rest.substr(0, rest.find('#'));
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    if (pair.substr(0, 4) == "app=") return std::string(pair.substr(4));
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return "";
}

}  // namespace

void ClusterManager::SetEndpoints(const std::string& cluster,
                                  const std::vector<std::string>& urls) {
  auto it = clusters_.find(cluster);
  if (it == clusters_.end()) return;
  ClusterState& state = it->second;
  // Keep the Host objects of addresses that stay: their health and request
  // counts carry over.
  std::map<std::string, upstream::HostPtr> existing;
  if (state.hosts != nullptr) {
    for (const auto& host : state.hosts->hosts()) existing[host->address_string()] = host;
  }
  std::vector<upstream::HostPtr> hosts;
  std::set<std::string> seen;
  for (const std::string& url : urls) {
    uint32_t weight = 0;
    auto address = upstream::ParseEndpointUrl(url, &weight);
    if (!address.ok() || !ToEndpoint(*address).ok()) {
      spdlog::warn("cluster {}: skipping endpoint '{}': {}", cluster, url,
                   address.ok() ? "not an IP address" : std::string(address.status().message()));
      continue;
    }
    std::string key = address->ToString();
    if (!seen.insert(key).second) continue;
    // The app the registry says serves this endpoint (its URL's app=): what
    // an upstream's certificate must name under tls.verify_app.
    upstream::Host::Metadata metadata;
    if (std::string app = EndpointApp(url); !app.empty()) metadata["app"] = std::move(app);
    auto found = existing.find(key);
    const std::string* old_app =
        found != existing.end() ? found->second->FindMetadata("app") : nullptr;
    bool same_app = found != existing.end() &&
                    (old_app != nullptr ? metadata.contains("app") && metadata["app"] == *old_app
                                        : !metadata.contains("app"));
    if (same_app) {
      found->second->set_weight(weight);
      hosts.push_back(found->second);
    } else {
      hosts.push_back(std::make_shared<upstream::Host>(*address, weight, "", std::move(metadata)));
    }
  }
  Publish(state, std::move(hosts));
}

void ClusterManager::Publish(ClusterState& state, std::vector<upstream::HostPtr> hosts) {
  auto health =
      std::make_shared<std::unordered_map<const upstream::Host*, std::shared_ptr<HostHealth>>>();
  for (const auto& host : hosts) {
    std::shared_ptr<HostHealth> h;
    if (state.health != nullptr) {
      auto old = state.health->find(host.get());
      if (old != state.health->end()) h = old->second;
    }
    (*health)[host.get()] = h ? h : std::make_shared<HostHealth>();
  }
  state.hosts = upstream::HostSet::Create(std::move(hosts));
  state.health = health;
  if (state.checker) state.checker->SetHosts(state.hosts);
  std::string name = state.config->name;
  for (size_t i = 0; i < workers_.size(); ++i) {
    WorkerClusters* clusters = worker_clusters_[i].get();
    workers_[i]->Post([clusters, name, hosts = state.hosts, health] {
      if (ClusterWorker* cw = clusters->Find(name)) cw->UpdateHosts(hosts, health);
    });
  }
}

void ClusterManager::ReportOutlier(const std::string& cluster, upstream::HostPtr host) {
  asio::post(control_, [this, alive = alive_, cluster, host] {
    if (!*alive) return;
    auto it = clusters_.find(cluster);
    if (it != clusters_.end()) Eject(it->second, host);
  });
}

void ClusterManager::Eject(ClusterState& state, const upstream::HostPtr& host) {
  using upstream::HealthFlag;
  if (host->HasHealthFlag(HealthFlag::kEjectedByOutlierDetection)) return;
  if (state.hosts == nullptr) return;
  size_t ejected = 0;
  for (const auto& h : state.hosts->hosts()) {
    ejected += h->HasHealthFlag(HealthFlag::kEjectedByOutlierDetection) ? 1 : 0;
  }
  const OutlierConfig& outlier = state.config->outlier;
  if ((ejected + 1) * 100 > state.hosts->size() * outlier.max_ejection_percent) {
    // Every failure past the threshold asks again (a dead host of a one-host
    // cluster: thousands a second), so the answer is logged once a second.
    const auto now = std::chrono::steady_clock::now();
    if (now - state.last_declined_warning < std::chrono::seconds(1)) {
      ++state.unlogged_declines;
      return;
    }
    state.last_declined_warning = now;
    spdlog::warn("cluster {}: not ejecting {}: {} of {} hosts already ejected (max {}%){}",
                 state.config->name, host->address_string(), ejected, state.hosts->size(),
                 outlier.max_ejection_percent,
                 state.unlogged_declines == 0
                     ? std::string()
                     : absl::StrCat(" (", state.unlogged_declines,
                                    " more declined since the last warning)"));
    state.unlogged_declines = 0;
    return;
  }
  auto health_it = state.health->find(host.get());
  uint32_t times = 1;
  if (health_it != state.health->end()) {
    times = health_it->second->times_ejected.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  host->SetHealthFlag(HealthFlag::kEjectedByOutlierDetection);
  state.stats->ejections.Increment();
  auto duration =
      std::chrono::milliseconds(outlier.base_ejection_ms) * std::min<uint32_t>(times, 16);
  spdlog::warn("cluster {}: ejecting {} for {} ms after {} consecutive failures",
               state.config->name, host->address_string(), duration.count(),
               outlier.consecutive_failures);
  auto timer = std::make_unique<asio::steady_timer>(control_, duration);
  std::shared_ptr<HostHealth> health =
      health_it != state.health->end() ? health_it->second : nullptr;
  timer->async_wait([host, health, alive = alive_](const std::error_code& ec) {
    if (ec || !*alive) return;
    if (health) health->consecutive_failures.store(0, std::memory_order_relaxed);
    host->ClearHealthFlag(HealthFlag::kEjectedByOutlierDetection);
    spdlog::info("host {} back from ejection", host->address_string());
  });
  timers_.push_back(std::move(timer));
  // Forget fired timers now and then.
  if (timers_.size() > 256) {
    timers_.erase(timers_.begin(), timers_.begin() + 128);
  }
}

std::string ClusterManager::DescribeJson() const {
  using upstream::HealthFlag;
  std::string out = "{\"clusters\":[";
  bool first_cluster = true;
  for (const auto& [name, state] : clusters_) {
    if (!first_cluster) out += ",";
    first_cluster = false;
    absl::StrAppend(&out, "{\"name\":\"", JsonEscape(name), "\",\"lb\":\"", state.config->lb,
                    "\",\"protocol\":\"", state.config->protocol, "\",\"hosts\":[");
    bool first_host = true;
    if (state.hosts != nullptr) {
      for (const auto& host : state.hosts->hosts()) {
        if (!first_host) out += ",";
        first_host = false;
        absl::StrAppend(
            &out, "{\"address\":\"", JsonEscape(host->address_string()),
            "\",\"weight\":", host->weight(), ",\"healthy\":", host->Available() ? "true" : "false",
            ",\"failed_health_check\":",
            host->HasHealthFlag(HealthFlag::kFailedActiveHealthCheck) ? "true" : "false",
            ",\"ejected\":",
            host->HasHealthFlag(HealthFlag::kEjectedByOutlierDetection) ? "true" : "false",
            ",\"active_requests\":", host->active_requests(), "}");
      }
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

}  // namespace cairn::sidecar
