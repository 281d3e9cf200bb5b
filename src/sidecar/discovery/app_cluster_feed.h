// AppClusterFeeds: the outbound side of application-level discovery. Each
// registry-fed cluster names an interface (its RegistrySource); instead of
// subscribing to that interface, the feed:
//   1. asks the registry which apps serve it (the interface -> apps index,
//      RegistryLink::AppsServing), again every `mapping_refresh`;
//   2. subscribes to each such app (`app:<APP>`), ONE subscription per app
//      shared by every cluster that needs it: a consumer of 50 interfaces of
//      one app holds one subscription, not 50;
//   3. resolves each instance's revision (GetRevision, cached: revisions are
//      immutable) and keeps the instances whose revision serves the
//      interface, rendered with that interface's params (weight...);
//   4. adds the app's interface-level publishers of the interface: while an
//      app migrates, the registry puts them in the app's datum (attribute
//      cairn.interface) and already drops those an app-level instance on the
//      same endpoint covers, so the union needs no sidecar-side merging
//      beyond a dedup by endpoint (interface-level URL wins, as in the
//      registry's own derived interface data).
// Fallback: interface-level publishers of apps the index does not list (or
// with no app name) are not in any app datum. When the index lists no app, or
// the interface has more interface-level publishers than the app datums can
// account for, the feed subscribes to the interface itself, whose data the
// registry derives as the full union, and uses that until a later refresh
// shows the app datums cover everything. Either way the cluster never goes
// empty while providers exist: a source is dropped only after the one
// replacing it has delivered.
//
// Endpoints go to `set_endpoints` (the ClusterManager, which keeps hosts that
// stay and lets requests in flight on removed hosts finish).
//
// Threading: one internal thread does every registry call and owns all state;
// push callbacks only queue. Public methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sidecar/registry/registry_link.h"

namespace cairn::sidecar::discovery {

class AppClusterFeeds {
 public:
  using SetEndpoints = std::function<void(const std::string& cluster, std::vector<std::string>)>;

  // REQUIRES: `link` outlives this object. `set_endpoints` runs on the
  // internal thread and must not block for long (post to the control loop).
  AppClusterFeeds(RegistryLink& link, std::chrono::milliseconds mapping_refresh,
                  SetEndpoints set_endpoints);
  // Stops the thread and drops every subscription.
  ~AppClusterFeeds();
  AppClusterFeeds(const AppClusterFeeds&) = delete;
  AppClusterFeeds& operator=(const AppClusterFeeds&) = delete;

  // Feeds `cluster` from the apps serving `key`. Before Start().
  void AddCluster(const std::string& cluster, const RegistryDataKey& key);
  void Start();

  // {"clusters":[{"name":..,"interface":..,"source":"app|interface|none",
  //   "apps":[..],"endpoints":N}],"apps":[{"name":..,"version":..,"entries":N}],
  //  "revisions_cached":N}
  std::string StateJson();

 private:
  struct AppState {
    std::shared_ptr<RegistrySubscription> subscription;
    bool pushed = false;
    RegistryAppPush last;
  };
  struct ClusterState {
    std::string name;
    RegistryDataKey key;
    std::string id;  // the interface's dataInfoId
    std::set<std::string> apps;
    // The fallback: the interface's own (registry-derived) data.
    std::shared_ptr<RegistrySubscription> fallback;
    bool fallback_pushed = false;
    std::vector<std::string> fallback_data;
    bool want_fallback = true;
    std::string source = "none";
    std::vector<std::string> sent;
    bool sent_once = false;
  };
  using Event = std::function<void()>;

  void Run();
  void Post(Event event);
  void Refresh(ClusterState& cluster);
  // Subscribes to the app unless already done; false if that failed.
  bool EnsureApp(const std::string& app);
  void OnAppPush(const std::string& app, RegistryAppPush push);
  // Recomputes and sends the cluster's endpoints if they changed.
  void Update(ClusterState& cluster);
  // From the app datums; false when some app has not pushed yet.
  bool FromApps(const ClusterState& cluster, std::vector<std::string>* urls,
                uint32_t* interface_level);
  const RegistryRevision* Revision(const std::string& id);

  RegistryLink& link_;
  const std::chrono::milliseconds refresh_;
  SetEndpoints set_endpoints_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Event> events_;  // guarded by mu_
  bool stopping_ = false;     // guarded by mu_
  std::string state_json_;    // guarded by mu_: refreshed by the thread

  // Owned by the thread.
  std::vector<std::unique_ptr<ClusterState>> clusters_;
  std::map<std::string, AppState> apps_;
  std::map<std::string, RegistryRevision> revisions_;
  std::thread thread_;
};

}  // namespace cairn::sidecar::discovery
