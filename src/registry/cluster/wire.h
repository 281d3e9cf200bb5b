// Conversions between the registry's in-memory records and cluster mode's
// wire messages (proto/cairn/cluster/v1/cluster.proto), and the digest that
// sessions and data leaders compare for anti-entropy.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cairn/cluster/v1/cluster.pb.h"
#include "registry/data/datum.h"
#include "registry/data/datum_id_pool.h"

namespace cairn::cluster {

namespace cpb = ::cairn::cluster::v1;

void ToWire(const PublisherRecord& record, cpb::PublisherWire* out);

// The record a wire publisher describes, sharing DatumIds through `ids` (may
// be null: then the record gets its own).
// Fails (INVALID_ARGUMENT) on a malformed dataInfoId.
absl::StatusOr<std::shared_ptr<const PublisherRecord>> FromWire(const cpb::PublisherWire& wire,
                                                                DatumIdPool* ids);

// What one publisher contributes to its slot's digest: stable across
// processes (FNV-1a over the registration id, version and owning stream), so
// that equal sets give equal digests on any server.
uint64_t DigestOf(const PublisherRecord& record);

// The gRPC status carried in an OpResult / DatumWire.
absl::Status StatusOf(int32_t code, const std::string& message);

}  // namespace cairn::cluster
