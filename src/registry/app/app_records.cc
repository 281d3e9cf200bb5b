#include "registry/app/app_records.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "registry/app/app_model.h"

namespace cairn::app {

std::optional<std::string> AppOfDataInfoId(const std::string& data_info_id) {
  if (!absl::StartsWith(data_info_id, std::string(kAppDataIdPrefix))) return std::nullopt;
  pb::DataInfoKey key;
  if (!ParseDataInfoId(data_info_id, &key)) return std::nullopt;
  return AppOfKey(NormalizeKey(key));
}

std::string RevisionOf(const PublisherRecord& record) {
  auto it = record.attributes.find(std::string(kRevisionAttribute));
  return it == record.attributes.end() ? std::string() : it->second;
}

void SortByRegistration(std::vector<std::shared_ptr<const PublisherRecord>>& records) {
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a->registration_id < b->registration_id; });
}

absl::StatusOr<AppInstanceRef> CheckAppInstance(const PublisherRecord& record) {
  std::optional<std::string> app_name = AppOfKey(record.key());
  if (!app_name.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data ids starting with '", std::string(kAppDataIdPrefix),
        "' are reserved for app instances and take the default group and instance id"));
  }
  if (auto s = ValidateAppName(*app_name); !s.ok()) return s;
  std::string revision = RevisionOf(record);
  if (revision.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("an app instance needs the attribute ", std::string(kRevisionAttribute)));
  }
  if (record.data.empty()) {
    return absl::InvalidArgumentError("an app instance publishes at least one endpoint");
  }
  return AppInstanceRef{std::move(*app_name), std::move(revision)};
}

pb::PublisherInfo InfoOf(const PublisherRecord& record) {
  pb::PublisherInfo info;
  pb::PublisherData* data = info.mutable_publisher();
  data->set_registration_id(record.registration_id);
  data->mutable_data()->Add(record.data.begin(), record.data.end());
  data->set_app_name(record.app_name);
  data->mutable_attributes()->insert(record.attributes.begin(), record.attributes.end());
  data->set_version(record.version);
  info.set_zone(record.zone);
  info.mutable_owner()->set_client_id(record.owner->client_id);
  info.mutable_owner()->set_address(record.owner->address);
  info.mutable_owner()->set_connection_id(record.owner->connection_id);
  info.set_registered_at_ms(record.registered_at_ms);
  *info.mutable_key() = record.key();
  return info;
}

}  // namespace cairn::app
