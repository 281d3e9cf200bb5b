#include "registry/cluster/wire.h"

#include "absl/strings/str_cat.h"
#include "common/data_info.h"

namespace cairn::cluster {

void ToWire(const PublisherRecord& record, cpb::PublisherWire* out) {
  out->set_data_info_id(record.data_info_id());
  out->set_registration_id(record.registration_id);
  for (const std::string& d : record.data) out->add_data(d);
  out->set_app_name(record.app_name);
  out->set_zone(record.zone);
  for (const auto& [k, v] : record.attributes) (*out->mutable_attributes())[k] = v;
  out->set_version(record.version);
  out->set_owner_session(record.owner->session);
  out->set_owner_connection(record.owner->connection_id);
  out->set_owner_client_id(record.owner->client_id);
  out->set_owner_address(record.owner->address);
  out->set_registered_at_ms(record.registered_at_ms);
  out->set_owner_stream_epoch(record.owner->stream_epoch);
}

absl::StatusOr<std::shared_ptr<const PublisherRecord>> FromWire(const cpb::PublisherWire& wire,
                                                                DatumIdPool* ids) {
  pb::DataInfoKey key;
  if (!ParseDataInfoId(wire.data_info_id(), &key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed dataInfoId '", wire.data_info_id(), "'"));
  }
  if (wire.registration_id().empty()) {
    return absl::InvalidArgumentError("publisher without a registration id");
  }
  auto record = std::make_shared<PublisherRecord>();
  record->datum = ids != nullptr ? ids->Get(key) : MakeDatumId(key);
  record->registration_id = wire.registration_id();
  record->data.assign(wire.data().begin(), wire.data().end());
  record->app_name = wire.app_name();
  record->zone = wire.zone();
  record->attributes.insert(wire.attributes().begin(), wire.attributes().end());
  record->version = wire.version();
  record->owner = std::make_shared<const OwnerRef>(
      OwnerRef{wire.owner_session(), wire.owner_connection(), wire.owner_client_id(),
               wire.owner_address(), wire.owner_stream_epoch()});
  record->registered_at_ms = wire.registered_at_ms();
  return std::shared_ptr<const PublisherRecord>(std::move(record));
}

namespace {
constexpr uint64_t kFnvOffset = 1469598103934665603ULL;
constexpr uint64_t kFnvPrime = 1099511628211ULL;

uint64_t Mix(uint64_t hash, const void* data, size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= kFnvPrime;
  }
  return hash;
}
}  // namespace

uint64_t DigestOf(const PublisherRecord& record) {
  uint64_t h = Mix(kFnvOffset, record.registration_id.data(), record.registration_id.size());
  uint64_t numbers[2] = {record.version, record.owner->connection_id};
  return Mix(h, numbers, sizeof(numbers));
}

absl::Status StatusOf(int32_t code, const std::string& message) {
  if (code == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(code), message);
}

}  // namespace cairn::cluster
