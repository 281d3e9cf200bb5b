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

// Fills the datum part of a delta push (version, empty, zones, base_version,
// removed) that turns what a subscriber with this scope and zone saw of
// `base` into what it sees of `now`: the publishers added or changed (in
// zones, ordered as FillPushDatum orders them) and the ids of those no longer
// visible. `empty` describes `now`. REQUIRES: both snapshots of one datum,
// publishers ordered by registration id, base.version < now.version.
void FillPushDelta(const DatumSnapshot& base, const DatumSnapshot& now, pb::Scope scope,
                   const std::string& zone, pb::Push* push);

// Encodes a whole ServerMessage{push} from the per-subscriber fields and a
// serialized datum part (as PushPayloadCache::Body returns).
EncodedPush EncodePush(const std::string& registration_id, uint64_t push_id,
                       const pb::DataInfoKey& key, std::shared_ptr<const std::string> body);

// Serialized datum parts by (dataInfoId, datum version, view), whole and
// delta.
//
// Correctness rests on the DataService contract that a datum's version
// identifies its content: two snapshots of one dataInfoId with the same
// version have the same publishers. A snapshot with another version replaces
// the cached bodies. For deltas the cache keeps the newest snapshot it was
// shown of each datum and the one before (shared with the data role, so
// mostly pointers): a subscriber that acknowledged the one before gets a
// delta. Callers Forget a dataInfoId when it loses its last subscriber.
// Bodies already handed out stay valid (shared ownership).
//
// Thread-safety: not thread-safe (the registry loop owns it). The returned
// bodies are immutable and may be read from any thread.
class PushPayloadCache {
 public:
  // The serialized fields 4-6 of the Push a subscriber with (scope, zone)
  // gets for `snapshot`; built on first use, then shared.
  std::shared_ptr<const std::string> Body(const DatumSnapshot& snapshot, pb::Scope scope,
                                          const std::string& zone);

  // Records `snapshot` as the newest version of its datum (an older one than
  // the newest recorded is ignored: fetches may complete out of order).
  void Observe(const std::shared_ptr<const DatumSnapshot>& snapshot);

  // The serialized fields 4-8 of the delta push that brings a subscriber
  // with (scope, zone) from `base_version` to `snapshot`, built on first use
  // and shared. Null when the cache has no snapshot of base_version (only
  // the newest observed version and the one before are kept) or `snapshot`
  // is not the newest observed, or when the delta would not be smaller than
  // the whole body.
  std::shared_ptr<const std::string> DeltaBody(const DatumSnapshot& snapshot, uint64_t base_version,
                                               pb::Scope scope, const std::string& zone);

  // Drops what is cached for the dataInfoId.
  void Forget(const std::string& data_info_id) { entries_.erase(data_info_id); }

  size_t datum_count() const { return entries_.size(); }
  // Bodies built since construction (a cache miss each); for tests and metrics.
  uint64_t builds() const { return builds_; }
  // Delta bodies built (each also a cache miss).
  uint64_t delta_builds() const { return delta_builds_; }

 private:
  struct View {
    bool zone_only = false;
    std::string zone;  // set when zone_only
    std::shared_ptr<const std::string> body;
  };
  struct Entry {
    uint64_t version = 0;
    std::vector<View> views;  // few: one for all zones plus one per zone subscribed alone
    // Deltas: the newest observed snapshot, the one before, and the delta
    // bodies from `previous` to `newest` by view (a null body: not smaller).
    std::shared_ptr<const DatumSnapshot> newest;
    std::shared_ptr<const DatumSnapshot> previous;
    std::vector<View> delta_views;
  };
  static const View* FindView(const std::vector<View>& views, bool zone_only,
                              const std::string& zone);

  std::unordered_map<std::string, Entry> entries_;
  uint64_t builds_ = 0;
  uint64_t delta_builds_ = 0;
};

}  // namespace cairn
