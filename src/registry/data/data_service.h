// DataService: what a session server needs from the data role.
//
// Standalone mode implements it in-process (LocalDataServer); cluster mode
// will implement it over gRPC to the slot's leader. The interface is
// callback-based for that reason, even though the local implementation
// answers inline.
//
// Thread-safety: not thread-safe. Every method is called on the registry loop
// that owns the implementation, and callbacks run on that loop.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "registry/data/datum.h"

namespace cairn {

// Told after every change of a datum. Called on the registry loop.
class DataChangeListener {
 public:
  virtual ~DataChangeListener() = default;
  virtual void OnDatumChanged(const std::string& data_info_id, uint64_t version) = 0;
  // Changes of the datums for which `affected` is true may have gone untold
  // (cluster mode: a data server's change feed was down and this session
  // keeps no copy of those datums). A listener should treat every such datum
  // it cares about as changed. The default suits listeners of a service that
  // never loses its feed (the standalone data role).
  virtual void OnDatumsMaybeChanged(const std::function<bool(const std::string&)>& affected) {
    (void)affected;
  }
};

class DataService {
 public:
  // The datum version after the operation (unchanged if nothing changed).
  using VersionCallback = std::function<void(absl::StatusOr<uint64_t>)>;
  using SnapshotCallback = std::function<void(std::shared_ptr<const DatumSnapshot>)>;

  virtual ~DataService() = default;

  // Adds or replaces record->registration_id under record->data_info_id and
  // gives it to record->owner. Refuses (FAILED_PRECONDITION) a record whose
  // version is lower than the stored one.
  virtual void Publish(std::shared_ptr<const PublisherRecord> record, VersionCallback done) = 0;

  // Removes the publisher if `owner` still owns it; a publisher that moved to
  // another stream is left alone (OK, version unchanged).
  virtual void Unpublish(const std::string& data_info_id, const std::string& registration_id,
                         const OwnerRef& owner, VersionCallback done) = 0;

  // The current snapshot (version 0 and no publishers if unknown).
  virtual void Fetch(const std::string& data_info_id, SnapshotCallback done) = 0;

  // Every datum with at least one publisher or a version, optionally filtered.
  virtual std::vector<DatumSummary> List(const std::string& data_id_prefix) const = 0;

  // REQUIRES: listener outlives this service or is removed first.
  virtual void AddListener(DataChangeListener* listener) = 0;
  virtual void RemoveListener(DataChangeListener* listener) = 0;
};

}  // namespace cairn
