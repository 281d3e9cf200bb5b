// Push payloads built once per datum version and shared by every subscriber.
//
// A Push carries the whole datum (every visible publisher), which for a
// popular dataInfoId is kilobytes; building and serializing it per subscriber
// made one change to a datum with 10,000 subscribers cost 10,000 protobuf
// builds on the registry loop. Only three small fields of a Push differ
// between subscribers (registration_id, push_id, key: fields 1-3); the datum
// part (version, empty, zones: fields 4-6) depends only on the datum version
// and the subscriber's view (all zones, or one zone for SCOPE_ZONE).
//
// A protobuf message's encoding is the concatenation of its fields'
// encodings in field-number order, so a push is sent as
//   [ServerMessage.push tag][length][fields 1-3 of this subscriber][shared fields 4-6]
// which is byte for byte what serializing the whole ServerMessage gives:
// clients see the same wire format.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/data_info.h"
#include "registry/data/datum.h"

namespace cairn {

// One encoded ServerMessage holding a Push: `head` (small, per subscriber)
// followed by `body` (shared, immutable). The message's bytes are
// head + *body.
struct EncodedPush {
  std::string head;
  std::shared_ptr<const std::string> body;  // never null

  size_t size() const { return head.size() + body->size(); }
  // The whole message as one string (copies the body; for tests and fakes).
  std::string Flatten() const { return head + *body; }
};

// Fills the datum part of `push` (version, empty, zones) as a subscriber with
// this scope and zone sees `snapshot`: zones in name order, publishers in
// registration-id order, so the same data always gives the same message.
void FillPushDatum(const DatumSnapshot& snapshot, pb::Scope scope, const std::string& zone,
                   pb::Push* push);

// Encodes a whole ServerMessage{push} from the per-subscriber fields and a
// serialized datum part (as PushPayloadCache::Body returns).
EncodedPush EncodePush(const std::string& registration_id, uint64_t push_id,
                       const pb::DataInfoKey& key, std::shared_ptr<const std::string> body);

// Serialized datum parts by (dataInfoId, datum version, view).
//
// Correctness rests on the DataService contract that a datum's version
// identifies its content: two snapshots of one dataInfoId with the same
// version have the same publishers. A snapshot with another version replaces
// the cached entry. Callers Forget a dataInfoId when it changes or loses its
// last subscriber, so the cache holds at most one version of each datum that
// has subscribers. Bodies already handed out stay valid (shared ownership).
//
// Thread-safety: not thread-safe (the registry loop owns it). The returned
// bodies are immutable and may be read from any thread.
class PushPayloadCache {
 public:
  // The serialized fields 4-6 of the Push a subscriber with (scope, zone)
  // gets for `snapshot`; built on first use, then shared.
  std::shared_ptr<const std::string> Body(const DatumSnapshot& snapshot, pb::Scope scope,
                                          const std::string& zone);

  // Drops what is cached for the dataInfoId.
  void Forget(const std::string& data_info_id) { entries_.erase(data_info_id); }

  size_t datum_count() const { return entries_.size(); }
  // Bodies built since construction (a cache miss each); for tests and metrics.
  uint64_t builds() const { return builds_; }

 private:
  struct View {
    bool zone_only = false;
    std::string zone;  // set when zone_only
    std::shared_ptr<const std::string> body;
  };
  struct Entry {
    uint64_t version = 0;
    std::vector<View> views;  // few: one for all zones plus one per zone subscribed alone
  };

  std::unordered_map<std::string, Entry> entries_;
  uint64_t builds_ = 0;
};

}  // namespace cairn
