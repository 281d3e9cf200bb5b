#include "sidecar/discovery/app_cluster_feed.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "sidecar/cluster/cluster_manager.h"  // JsonEscape
#include "sidecar/discovery/interface_url.h"

namespace cairn::sidecar::discovery {

AppClusterFeeds::AppClusterFeeds(RegistryLink& link, std::chrono::milliseconds mapping_refresh,
                                 SetEndpoints set_endpoints)
    : link_(link), refresh_(mapping_refresh), set_endpoints_(std::move(set_endpoints)) {}

AppClusterFeeds::~AppClusterFeeds() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Destroying a subscription waits for its callback, which may be queueing
  // an event: mu_ must not be held here.
  clusters_.clear();
  apps_.clear();
}

void AppClusterFeeds::AddCluster(const std::string& cluster, const RegistryDataKey& key) {
  auto state = std::make_unique<ClusterState>();
  state->name = cluster;
  state->key = key;
  state->id = link_.DataInfoIdOf(key);
  clusters_.push_back(std::move(state));
}

void AppClusterFeeds::Start() {
  thread_ = std::thread([this] { Run(); });
}

void AppClusterFeeds::Post(Event event) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    events_.push_back(std::move(event));
  }
  wake_.notify_all();
}

void AppClusterFeeds::Run() {
  auto next_refresh = std::chrono::steady_clock::now();
  while (true) {
    std::deque<Event> events;
    {
      std::unique_lock lock(mu_);
      wake_.wait_until(lock, next_refresh, [this] { return stopping_ || !events_.empty(); });
      if (stopping_) return;
      events.swap(events_);
    }
    for (auto& event : events) event();
    if (std::chrono::steady_clock::now() >= next_refresh) {
      for (auto& cluster : clusters_) Refresh(*cluster);
      // Apps no cluster needs any more.
      for (auto it = apps_.begin(); it != apps_.end();) {
        bool used = false;
        for (auto& cluster : clusters_) used |= cluster->apps.count(it->first) > 0;
        it = used ? std::next(it) : apps_.erase(it);
      }
      next_refresh = std::chrono::steady_clock::now() + refresh_;
    }
    std::string json = "{\"clusters\":[";
    for (size_t i = 0; i < clusters_.size(); ++i) {
      const ClusterState& c = *clusters_[i];
      absl::StrAppend(&json, i ? "," : "", "{\"name\":\"", JsonEscape(c.name),
                      "\",\"interface\":\"", JsonEscape(c.id), "\",\"source\":\"", c.source,
                      "\",\"apps\":[");
      bool first = true;
      for (const auto& app : c.apps) {
        absl::StrAppend(&json, first ? "" : ",", "\"", JsonEscape(app), "\"");
        first = false;
      }
      absl::StrAppend(&json, "],\"endpoints\":", c.sent.size(), "}");
    }
    absl::StrAppend(&json, "],\"apps\":[");
    bool first = true;
    for (const auto& [name, app] : apps_) {
      absl::StrAppend(&json, first ? "" : ",", "{\"name\":\"", JsonEscape(name),
                      "\",\"version\":", app.last.version, ",\"entries\":", app.last.entries.size(),
                      "}");
      first = false;
    }
    absl::StrAppend(&json, "],\"revisions_cached\":", revisions_.size(), "}\n");
    std::lock_guard lock(mu_);
    state_json_ = std::move(json);
  }
}

std::string AppClusterFeeds::StateJson() {
  std::lock_guard lock(mu_);
  return state_json_.empty() ? "{\"clusters\":[],\"apps\":[]}\n" : state_json_;
}

void AppClusterFeeds::Refresh(ClusterState& cluster) {
  auto mapping = link_.AppsServing(cluster.key);
  if (!mapping.ok()) {
    // Registry unreachable or busy: keep the current sources; when nothing
    // was ever delivered, the interface subscription (replayed by the link
    // when the registry comes back) is the simplest way to get started.
    spdlog::warn("cluster {}: cannot read the apps serving {}: {}", cluster.name, cluster.id,
                 mapping.status().ToString());
    if (!cluster.sent_once) cluster.want_fallback = true;
  } else {
    std::set<std::string> apps(mapping->apps.begin(), mapping->apps.end());
    if (apps != cluster.apps) {
      spdlog::info("cluster {}: {} served by {} app(s), {} interface-level publisher(s)",
                   cluster.name, cluster.id, apps.size(), mapping->interface_publishers);
    }
    cluster.apps = std::move(apps);
    bool subscribed = true;
    for (const auto& app : cluster.apps) subscribed &= EnsureApp(app);
    cluster.want_fallback = cluster.apps.empty() || mapping->unattributed > 0 || !subscribed;
  }
  if (cluster.want_fallback && cluster.fallback == nullptr) {
    std::string name = cluster.name;
    auto sub = link_.Subscribe(cluster.key, [this, name](RegistryEndpoints endpoints) {
      Post([this, name, endpoints = std::move(endpoints)]() mutable {
        for (auto& c : clusters_) {
          if (c->name != name || c->fallback == nullptr) continue;
          c->fallback_pushed = true;
          c->fallback_data = std::move(endpoints.data);
          Update(*c);
        }
      });
    });
    if (sub.ok()) {
      cluster.fallback = *sub;
    } else {
      spdlog::warn("cluster {}: cannot subscribe to {}: {}", cluster.name, cluster.id,
                   sub.status().ToString());
    }
  }
  Update(cluster);
}

bool AppClusterFeeds::EnsureApp(const std::string& app) {
  AppState& state = apps_[app];
  if (state.subscription != nullptr) return true;
  auto sub = link_.SubscribeApp(app, [this, app](RegistryAppPush push) {
    Post([this, app, push = std::move(push)]() mutable { OnAppPush(app, std::move(push)); });
  });
  if (!sub.ok()) {
    spdlog::warn("cannot subscribe to app {}: {}", app, sub.status().ToString());
    apps_.erase(app);
    return false;
  }
  state.subscription = *sub;
  return true;
}

void AppClusterFeeds::OnAppPush(const std::string& app, RegistryAppPush push) {
  auto it = apps_.find(app);
  if (it == apps_.end()) return;
  it->second.pushed = true;
  it->second.last = std::move(push);
  for (auto& cluster : clusters_) {
    if (cluster->apps.count(app) > 0) Update(*cluster);
  }
}

const RegistryRevision* AppClusterFeeds::Revision(const std::string& id) {
  auto it = revisions_.find(id);
  if (it != revisions_.end()) return &it->second;
  auto fetched = link_.GetRevision(id);
  if (!fetched.ok()) {
    spdlog::warn("cannot read revision {}: {}", id, fetched.status().ToString());
    return nullptr;
  }
  return &revisions_.emplace(id, std::move(*fetched)).first->second;
}

namespace {

// The URL with `app=<app>` as its first query parameter: the app whose
// app-level record listed the endpoint, which an upstream's certificate must
// name under tls.verify_app (the cluster reads the first app= it finds, so a
// publisher's own app= parameter cannot override the registry's word).
std::string WithApp(std::string_view url, const std::string& app) {
  size_t query = url.find('?');
  if (query == std::string_view::npos) {
    size_t fragment = url.find('#');
    std::string_view base = url.substr(0, fragment);
    std::string out = std::string(base) + "?app=" + app;
    if (fragment != std::string_view::npos) out += url.substr(fragment);
    return out;
  }
  return std::string(url.substr(0, query + 1)) + "app=" + app + "&" +
         std::string(url.substr(query + 1));
}

}  // namespace

bool AppClusterFeeds::FromApps(const ClusterState& cluster, std::vector<std::string>* urls,
                               uint32_t* interface_level) {
  std::map<std::string, std::string, std::less<>> by_endpoint;  // endpoint key -> URL
  std::vector<std::string> rendered;
  *interface_level = 0;
  for (const auto& app : cluster.apps) {
    auto it = apps_.find(app);
    if (it == apps_.end() || !it->second.pushed) return false;
    for (const auto& entry : it->second.last.entries) {
      if (!entry.revision.empty()) {
        const RegistryRevision* revision = Revision(entry.revision);
        if (revision == nullptr) return false;  // retried at the next refresh
        for (const auto& interface : revision->interfaces) {
          if (interface.id != cluster.id) continue;
          for (auto& url : RenderInterfaceUrls(entry.data, interface.params)) {
            rendered.push_back(WithApp(url, app));
          }
        }
      } else if (entry.interface_id == cluster.id) {
        // Interface-level URLs first: they win over a rendered one with the
        // same endpoint, as in the registry's derived interface data.
        for (const auto& url : entry.data) {
          by_endpoint.emplace(std::string(EndpointKey(url)), WithApp(url, app));
          ++*interface_level;
        }
      }
    }
  }
  for (auto& url : rendered) by_endpoint.emplace(std::string(EndpointKey(url)), std::move(url));
  urls->clear();
  for (auto& [endpoint, url] : by_endpoint) urls->push_back(std::move(url));
  return true;
}

void AppClusterFeeds::Update(ClusterState& cluster) {
  std::vector<std::string> urls;
  uint32_t interface_level = 0;
  bool apps_ready = !cluster.apps.empty() && FromApps(cluster, &urls, &interface_level);
  std::string source;
  if (cluster.want_fallback || !apps_ready) {
    // The interface's own data when it has arrived; else whatever the app
    // datums give so far (never an empty list from a source not yet heard).
    if (cluster.fallback != nullptr && cluster.fallback_pushed) {
      urls = cluster.fallback_data;
      std::sort(urls.begin(), urls.end());
      source = "interface";
    } else if (apps_ready) {
      source = "app";
    } else {
      return;
    }
  } else {
    source = "app";
    // The app datums now cover every provider: the interface subscription
    // goes, after the app-derived list replaced its data (below).
  }
  if (!cluster.sent_once || urls != cluster.sent) {
    spdlog::info("cluster {}: {} endpoints from {} level ({} interface-level)", cluster.name,
                 urls.size(), source, source == "app" ? interface_level : 0);
    cluster.sent = urls;
    cluster.sent_once = true;
    set_endpoints_(cluster.name, std::move(urls));
  }
  cluster.source = source;
  if (source == "app" && !cluster.want_fallback && cluster.fallback != nullptr) {
    cluster.fallback.reset();  // waits for its callback, which only queues
    cluster.fallback_pushed = false;
    cluster.fallback_data.clear();
  }
}

}  // namespace cairn::sidecar::discovery
