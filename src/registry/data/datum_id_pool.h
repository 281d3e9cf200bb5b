// DatumIdPool: hands out one shared DatumId per dataInfoId, so that the
// publishers of a dataInfoId share one copy of its id and key instead of
// carrying their own (a few hundred bytes each with a protobuf key).
//
// The pool holds weak references: a DatumId lives as long as some record
// uses it. Expired entries are swept when the table has doubled since the
// last sweep, so the table stays within about twice the live dataInfoIds at
// an amortized O(1) cost per call.
//
// Thread-safety: not thread-safe (the registry loop owns it). The DatumIds
// handed out are immutable and may be shared across threads.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "registry/data/datum.h"

namespace cairn {

class DatumIdPool {
 public:
  // The shared DatumId of a normalized key.
  std::shared_ptr<const DatumId> Get(const pb::DataInfoKey& normalized_key);

  // Entries in the table, live or expired (for tests).
  size_t table_size() const { return ids_.size(); }

 private:
  void SweepExpired();

  std::unordered_map<std::string, std::weak_ptr<const DatumId>> ids_;
  size_t next_sweep_at_ = 1024;
};

}  // namespace cairn
