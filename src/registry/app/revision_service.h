// RevisionService: what the session role needs to register app revisions.
// Implemented by AppDiscovery.
//
// Thread-safety: called on the registry loop; callbacks run on it.
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "common/data_info.h"

namespace cairn {

class RevisionService {
 public:
  virtual ~RevisionService() = default;
  // Stores the revision durably (idempotent for identical content). Errors:
  // INVALID_ARGUMENT (limits), ALREADY_EXISTS (same id, other content),
  // RESOURCE_EXHAUSTED (too many revisions), the store's error.
  virtual void RegisterRevision(const pb::RevisionMeta& meta,
                                std::function<void(absl::Status)> done) = 0;
};

}  // namespace cairn
