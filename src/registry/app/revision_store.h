// RevisionStore: durable storage of application revisions.
//
// Revisions are immutable and keyed by id. Standalone mode backs the store
// with the embedded KvStore (keys "revision/<id>", values the serialized
// RevisionMeta); cluster mode will back it with etcd behind the same
// interface. Reference counting and garbage collection policy live above it,
// in AppDiscovery: the store only persists.
//
// Thread-safety: implementations are safe to call from any thread; the
// registry calls them on its loop (a Put is one fsync, once per revision).
#pragma once

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data_info.h"
#include "store/kv_store.h"

namespace cairn {

struct StoredRevision {
  pb::RevisionMeta meta;
  int64_t registered_at_ms = 0;
};

class RevisionStore {
 public:
  virtual ~RevisionStore() = default;
  // Stores a new revision. Durable when it returns OK. Overwrites silently:
  // the caller has checked immutability.
  virtual absl::Status Put(const StoredRevision& revision) = 0;
  // NotFound when absent.
  virtual absl::StatusOr<StoredRevision> Get(const std::string& revision_id) = 0;
  // Every stored revision (startup).
  virtual absl::StatusOr<std::vector<StoredRevision>> List() = 0;
  // Deleting an absent revision is OK.
  virtual absl::Status Delete(const std::string& revision_id) = 0;
};

// The KvStore key prefix of NewKvRevisionStore: revision R is stored under
// kRevisionKeyPrefix + R (cluster mode watches this prefix in etcd).
inline constexpr char kRevisionKeyPrefix[] = "revision/";

// REQUIRES: store outlives the returned object.
std::unique_ptr<RevisionStore> NewKvRevisionStore(KvStore& store);

}  // namespace cairn
