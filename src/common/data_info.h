// DataInfoId helpers: the canonical text form of a key, its slot, and the
// input limits documented in proto/cairn/registry/v1/registry.proto.
//
// All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "cairn/registry/v1/registry.pb.h"

namespace cairn {

namespace pb = ::cairn::registry::v1;

inline constexpr std::string_view kDefaultGroup = "DEFAULT_GROUP";
inline constexpr std::string_view kDefaultInstanceId = "DEFAULT_INSTANCE_ID";
inline constexpr std::string_view kDefaultZone = "DEFAULT_ZONE";

// Input limits. Changing one is an API change: keep registry.proto in step.
struct Limits {
  static constexpr size_t kMaxDataId = 256;
  static constexpr size_t kMaxName = 128;  // group, instance id, app, zone, ids
  static constexpr size_t kMaxDataEntries = 256;
  static constexpr size_t kMaxDataEntryBytes = 8192;
  static constexpr size_t kMaxDataTotalBytes = 256 * 1024;
  static constexpr size_t kMaxAttributes = 64;
  static constexpr size_t kMaxAttributeValue = 1024;
};

// Fills empty group / instance id with their defaults.
pb::DataInfoKey NormalizeKey(const pb::DataInfoKey& key);

// "data_id#@#instance_id#@#group" of a normalized key: the map key used
// everywhere inside the registry.
std::string DataInfoId(const pb::DataInfoKey& normalized_key);

// Parses the text form back. Returns false when it has not three parts.
bool ParseDataInfoId(std::string_view text, pb::DataInfoKey* key);

// slot = hash(dataInfoId) mod slot_count. The hash is FNV-1a 64: stable
// across processes, versions and machines, which slot tables require.
uint32_t SlotOf(std::string_view data_info_id, uint32_t slot_count);

absl::Status ValidateKey(const pb::DataInfoKey& key);
absl::Status ValidatePublish(const pb::Publish& publish);
absl::Status ValidateSubscribe(const pb::Subscribe& subscribe);
absl::Status ValidateHello(const pb::Hello& hello);

// Refuses messages that carry fields this server does not know, anywhere in
// the message tree.
absl::Status RejectUnknownFields(const google::protobuf::Message& message);

}  // namespace cairn
