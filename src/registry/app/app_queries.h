// AppQueries: the read side of application-level discovery that the gRPC
// service and the admin API expose (GetRevision, ListApps, DescribeApp,
// DescribeInterface).
//
// Answers come through a callback because cluster mode must fetch the app
// and interface datums from the data servers first; standalone mode
// (AppDiscovery) answers inline.
//
// Thread-safety: called on the registry loop; the reply runs on it, inline
// or later. Every call replies exactly once.
#pragma once

#include <functional>

#include "absl/status/statusor.h"
#include "common/data_info.h"

namespace cairn {

class AppQueries {
 public:
  template <typename Response>
  using Reply = std::function<void(absl::StatusOr<Response>)>;

  virtual ~AppQueries() = default;
  // NOT_FOUND for an unknown revision, INVALID_ARGUMENT for a malformed id.
  virtual void QueryRevision(const pb::GetRevisionRequest& request,
                             Reply<pb::GetRevisionResponse> reply) = 0;
  virtual void QueryApps(const pb::ListAppsRequest& request, Reply<pb::ListAppsResponse> reply) = 0;
  // NOT_FOUND for an app with neither instances nor revisions.
  virtual void QueryApp(const pb::DescribeAppRequest& request,
                        Reply<pb::DescribeAppResponse> reply) = 0;
  virtual void QueryInterface(const pb::DescribeInterfaceRequest& request,
                              Reply<pb::DescribeInterfaceResponse> reply) = 0;
};

}  // namespace cairn
