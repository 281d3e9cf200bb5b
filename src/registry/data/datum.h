// The data role's records: one publisher, and an immutable snapshot of one
// datum (every publisher of a dataInfoId at one version).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/data_info.h"

namespace cairn {

// Which client stream a registration belongs to.
struct OwnerRef {
  std::string session;  // session server that holds the stream ("local" standalone)
  uint64_t connection_id = 0;
  std::string client_id;
  std::string address;  // peer address as gRPC reports it
  // The client's Hello.stream_epoch on this stream (0: not given). Between
  // two streams of one client, the higher epoch is the newer.
  uint64_t stream_epoch = 0;

  bool SameStream(const OwnerRef& other) const {
    return session == other.session && connection_id == other.connection_id;
  }
};

// The identity of one dataInfoId. Immutable; shared by every publisher of
// the dataInfoId (see DatumIdPool), so a publisher does not carry its own
// copies of the id and key.
struct DatumId {
  std::string data_info_id;
  pb::DataInfoKey key;  // normalized
};

// A DatumId of its own (not shared); for tests and one-off records.
inline std::shared_ptr<const DatumId> MakeDatumId(const pb::DataInfoKey& normalized_key) {
  return std::make_shared<const DatumId>(DatumId{DataInfoId(normalized_key), normalized_key});
}

// One publisher as accepted. Immutable once published (shared by the session
// and data roles and by snapshots); kept small because a registry holds
// millions: the dataInfoId and the owning stream are shared references.
struct PublisherRecord {
  std::shared_ptr<const DatumId> datum;  // never null once published
  std::string registration_id;
  std::vector<std::string> data;
  std::string app_name;
  std::string zone;
  std::map<std::string, std::string> attributes;
  uint64_t version = 0;                   // the publisher's own version
  std::shared_ptr<const OwnerRef> owner;  // shared by the stream's registrations; never null
  int64_t registered_at_ms = 0;

  const std::string& data_info_id() const { return datum->data_info_id; }
  const pb::DataInfoKey& key() const { return datum->key; }

  // Same content (ignoring owner and timestamps): a replay that changes nothing.
  bool SameContent(const PublisherRecord& o) const {
    return data == o.data && app_name == o.app_name && zone == o.zone &&
           attributes == o.attributes && version == o.version;
  }
};

// Immutable once built; shared by every push of the same version.
struct DatumSnapshot {
  std::string data_info_id;
  pb::DataInfoKey key;
  uint64_t version = 0;  // 0: the datum has never existed on this server
  uint32_t slot = 0;
  std::vector<std::shared_ptr<const PublisherRecord>> publishers;  // by registration id
};

struct DatumSummary {
  std::string data_info_id;
  pb::DataInfoKey key;
  uint64_t version = 0;
  uint32_t publishers = 0;
  uint32_t slot = 0;
};

}  // namespace cairn
