// AppRegistrar: publishes the local app to the registry the way the per-app
// rollout switch (`app.discovery`, see sidecar_config.h) says:
//   interface: one publication per interface (listener x interface), as a
//              sidecar always did;
//   app:       RegisterRevision for the set of interfaces served, then ONE
//              app-level publication (`app:<APP>`, attribute cairn.revision)
//              carrying the endpoints;
//   both:      both of the above.
// The interfaces come from the config (publish.data_id, publish.interfaces)
// and from the local API (Publish/Unpublish, for apps that register at run
// time, e.g. SOFARPC apps through @cairn/sofa-registry in mesh mode). A
// listener whose local app is unhealthy contributes nothing.
//
// When the set changes, the new revision is registered and a new app-level
// record published BEFORE the old one is withdrawn, so consumers never see the
// instance missing (for a moment they see it twice, with the same endpoint,
// which the registry and consumers deduplicate by endpoint).
//
// Threading: one internal thread makes every (blocking) registry call, one
// pass at a time; a pass that fails (registry unreachable) is retried a
// second later. Every public method may be called from any thread; none
// blocks on the registry except Withdraw() and the bounded waits of
// Publish/Unpublish.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "sidecar/config/sidecar_config.h"
#include "sidecar/registry/registry_link.h"

namespace cairn::sidecar::discovery {

enum class DiscoveryMode { kInterface, kBoth, kApp };
// "interface" | "both" | "app" (validated by the config already).
DiscoveryMode ParseDiscoveryMode(const std::string& name);
const char* DiscoveryModeName(DiscoveryMode mode);

struct RegistrarListener {
  std::string name;
  std::string address;   // HOST:PORT it listens on
  std::string protocol;  // the listener's: auto | http1 | http2 | tcp | bolt | dubbo
  // The RPC protocols it serves: its protocol, or on auto those it has
  // routes for ("bolt", "dubbo").
  std::vector<std::string> rpc_protocols;
  std::optional<PublishConfig> publish;  // none: the listener publishes nothing
};

struct RegistrarOptions {
  DiscoveryMode mode = DiscoveryMode::kInterface;
  std::string app_name;  // required unless mode is interface
  std::string zone;      // of the app-level record
  std::chrono::milliseconds retry_after{1000};
};

class AppRegistrar {
 public:
  // REQUIRES: `link` outlives this object. Starts the internal thread;
  // nothing is published before SetHealthy() says a listener is healthy.
  AppRegistrar(RegistryLink& link, RegistrarOptions options,
               std::vector<RegistrarListener> listeners);
  // Stops the thread; publications are left to the link (closing it drops
  // them). Call Withdraw() first for an orderly withdrawal.
  ~AppRegistrar();
  AppRegistrar(const AppRegistrar&) = delete;
  AppRegistrar& operator=(const AppRegistrar&) = delete;

  // The listener's local app became (un)healthy. Cheap; no-op if unchanged.
  void SetHealthy(size_t listener_index, bool healthy);

  // Local API: adds (or replaces the params of) an interface the app serves,
  // on `listener` (empty: the first publishing listener that speaks the
  // interface's protocol, else the first publishing listener). Waits up to
  // `wait` for the registry to reflect it. Returns whether it did, or
  // NOT_FOUND (unknown listener) / FAILED_PRECONDITION (no publishing
  // listener). `params` as in PublishedInterface.
  absl::StatusOr<bool> Publish(const std::string& listener, RegistryDataKey key,
                               std::map<std::string, std::string> params,
                               std::chrono::milliseconds wait);
  // Removes an interface added by Publish; NOT_FOUND if there is none.
  absl::StatusOr<bool> Unpublish(const RegistryDataKey& key, std::chrono::milliseconds wait);

  // {"app":..,"discovery":..,"revision":..,"app_published":..,
  //  "interfaces":[{"data_id":..,"listener":..,"source":"config|api","params":{..}}],
  //  "interface_publications":[..data_info_ids..],"pending":bool}
  std::string StateJson();

  // Stops publishing and withdraws everything, waiting for the registry.
  // Idempotent; afterwards nothing is published again.
  void Withdraw();

 private:
  struct Served {
    RegistryDataKey key;
    size_t listener = 0;
    std::map<std::string, std::string> params;  // effective (protocol filled in)
    bool plain_url = false;  // interface-level data is the bare endpoint (publish.data_id)
    bool from_api = false;
  };
  struct Desired {
    std::map<std::string, Served> interfaces;  // by dataInfoId
    std::vector<char> healthy;
    uint64_t generation = 0;
  };
  struct InterfacePublication {
    std::shared_ptr<RegistryPublication> handle;
    std::vector<std::string> data;
  };

  void Run();
  // One reconciliation against `want`; false if a registry call failed.
  bool Pass(const Desired& want);
  bool PassInterfaces(const Desired& want);
  bool PassApp(const Desired& want);
  std::string EndpointOf(const Served& served) const;
  Served MakeServed(size_t listener, RegistryDataKey key, std::map<std::string, std::string> params,
                    bool plain_url, bool from_api) const;
  absl::StatusOr<bool> WaitApplied(std::unique_lock<std::mutex>& lock, uint64_t generation,
                                   std::chrono::milliseconds wait);

  RegistryLink& link_;
  const RegistrarOptions options_;
  const std::vector<RegistrarListener> listeners_;

  std::mutex mu_;
  std::condition_variable changed_;  // desired state changed or stopping
  std::condition_variable applied_;  // a pass succeeded
  Desired desired_;                  // guarded by mu_
  uint64_t applied_generation_ = 0;  // guarded by mu_
  bool stopping_ = false;            // guarded by mu_
  // What the registry holds, as last reported by the thread (guarded by mu_).
  std::string published_revision_;
  bool app_published_ = false;
  std::vector<std::string> published_interfaces_;

  // Owned by the thread (and by Withdraw after the thread ended).
  std::map<std::string, InterfacePublication> interface_pubs_;
  std::shared_ptr<RegistryPublication> app_pub_;
  std::string app_revision_;
  std::string revision_signature_;  // what app_revision_ was registered for
  std::vector<std::string> app_endpoints_;

  std::thread thread_;
  bool withdrawn_ = false;  // guarded by mu_
};

}  // namespace cairn::sidecar::discovery
