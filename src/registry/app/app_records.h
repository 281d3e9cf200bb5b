// Helpers over publisher records that both application-level discovery
// implementations use: standalone (AppDiscovery, next to the data role) and
// cluster mode (cluster::ClusterAppDiscovery, in the session role).
//
// Thread-safety: pure functions.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "registry/data/datum.h"

namespace cairn::app {

// The app of an app datum's dataInfoId ("app:APP#@#DEFAULT_INSTANCE_ID#@#
// DEFAULT_GROUP" -> "APP"); nullopt for any other dataInfoId.
std::optional<std::string> AppOfDataInfoId(const std::string& data_info_id);

// The revision an app instance names (kRevisionAttribute), or "".
std::string RevisionOf(const PublisherRecord& record);

// Sorts by registration id: derived snapshots list entries in a stable order.
void SortByRegistration(std::vector<std::shared_ptr<const PublisherRecord>>& records);

// What an app instance (a publish under `app:<APP>`) names.
struct AppInstanceRef {
  std::string app_name;
  std::string revision;
};
// Checks a publish under the reserved `app:` prefix: default group and
// instance id, a valid app name, a revision attribute, at least one
// endpoint. Whether the revision is registered is the caller's check.
// REQUIRES: record's data id starts with kAppDataIdPrefix.
absl::StatusOr<AppInstanceRef> CheckAppInstance(const PublisherRecord& record);

// A record as the query API shows it.
pb::PublisherInfo InfoOf(const PublisherRecord& record);

}  // namespace cairn::app
