// The simulated fleet of the application-level discovery bench, and one run
// of it against a fresh registry in one discovery mode.
//
// Fleet: `apps` apps, each with `instances` instances serving the same
// `interfaces` interfaces. App c consumes the interfaces of the
// `consumed_apps` apps after it (c+1 .. c+consumed_apps, modulo apps), so
// every app is consumed by exactly `consumed_apps` apps.
//
//   interface mode (SOFARPC / SOFARegistry 5): every instance publishes one
//     record per interface, a bolt:// URL carrying the interface's and the
//     instance's parameters; a consuming app holds one subscriber per
//     consumed interface.
//   app mode (SOFARegistry 6): every instance registers its app's revision
//     (the interfaces with their parameters; the same for all instances of an
//     app) and publishes one `app:<APP>` record (its endpoint, its instance
//     parameters as attributes); a consuming app holds one app-level
//     subscriber per consumed app and fetches each revision it has not seen
//     (GetRevision, cached by the client).
//
// Change measured: a restart of instance 0 of app 0, which has a connection
// of its own: the connection closes (the registry withdraws its records),
// then a new connection publishes them again.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cairn/registry/v1/registry.pb.h"

namespace cairn::bench {

namespace pb = ::cairn::registry::v1;

enum class Mode { kInterface, kApp };
// "interface" or "app": the `system` of the JSON records.
const char* ModeName(Mode mode);

struct FleetSizes {
  int apps = 100;
  int instances = 20;     // per app
  int interfaces = 50;    // per app
  int consumed_apps = 5;  // per consuming app
  // Client connections (RegistryClient streams) the fleet is multiplexed on,
  // besides the restarted instance's own.
  int connections = 32;
  // Bound of every wait for convergence.
  std::chrono::seconds phase_timeout{300};
  // No push for this long = the pushes caused by a step are over.
  std::chrono::milliseconds quiet{1000};
  // Wait before reading RSS, after the registry went quiet.
  std::chrono::milliseconds rss_settle{2000};
};

// One figure; `workload` is "fleet" or "restart", `system` a ModeName.
struct Record {
  std::string workload;
  std::string system;
  std::string metric;
  double value = 0;
  std::string unit;
};

// ---- the fleet's names and data (pure functions)
std::string AppName(int app);
pb::DataInfoKey InterfaceKey(int app, int iface);
// "bolt://10.X.Y.Z:12200", distinct per instance.
std::string Endpoint(int app, int instance);
// Parameters of an interface, the same on every instance of the app.
std::map<std::string, std::string> InterfaceParams(int app, int iface);
// Parameters of one instance (start time, pid).
std::map<std::string, std::string> InstanceParams(int app, int instance);
// What the instance publishes in interface mode: Endpoint + '?' + every
// parameter of the interface and of the instance, key order.
std::string InterfaceUrl(int app, int instance, int iface);
std::vector<int> ConsumedApps(int consumer, const FleetSizes& sizes);

// Starts `<bin_dir>/cairn registry`, loads the fleet in `mode`, measures it
// and one instance restart, stops everything and appends the records. An
// error means the mode could not be measured (records so far are kept, plus
// `errors`).
absl::Status RunMode(Mode mode, const FleetSizes& sizes, const std::string& bin_dir,
                     std::vector<Record>& out);

}  // namespace cairn::bench
