#include "common/data_info.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/reflection.h"
#include "google/protobuf/unknown_field_set.h"

namespace cairn {
namespace {

// Debian's abseil has its own string_view (not std::string_view): use it
// wherever absl functions take the text.
constexpr absl::string_view kSeparator = "#@#";

absl::Status CheckLength(absl::string_view field, absl::string_view value, size_t min, size_t max) {
  if (value.size() < min) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must not be empty"));
  }
  if (value.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value.size(), " bytes; the limit is ", max));
  }
  return absl::OkStatus();
}

absl::Status CheckNoSeparator(absl::string_view field, absl::string_view value) {
  if (value.find(kSeparator) != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must not contain \"#@#\""));
  }
  return absl::OkStatus();
}

}  // namespace

pb::DataInfoKey NormalizeKey(const pb::DataInfoKey& key) {
  pb::DataInfoKey out = key;
  if (out.group().empty()) out.set_group(std::string(kDefaultGroup));
  if (out.instance_id().empty()) out.set_instance_id(std::string(kDefaultInstanceId));
  return out;
}

std::string DataInfoId(const pb::DataInfoKey& key) {
  return absl::StrCat(key.data_id(), kSeparator, key.instance_id(), kSeparator, key.group());
}

bool ParseDataInfoId(std::string_view text, pb::DataInfoKey* key) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::string_view(text.data(), text.size()), kSeparator);
  if (parts.size() != 3 || parts[0].empty()) return false;
  key->set_data_id(std::string(parts[0]));
  key->set_instance_id(std::string(parts[1]));
  key->set_group(std::string(parts[2]));
  return true;
}

uint32_t SlotOf(std::string_view data_info_id, uint32_t slot_count) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : data_info_id) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return static_cast<uint32_t>(hash % slot_count);
}

absl::Status ValidateKey(const pb::DataInfoKey& key) {
  if (auto s = CheckLength("data_id", key.data_id(), 1, Limits::kMaxDataId); !s.ok()) return s;
  if (auto s = CheckLength("group", key.group(), 0, Limits::kMaxName); !s.ok()) return s;
  if (auto s = CheckLength("instance_id", key.instance_id(), 0, Limits::kMaxName); !s.ok()) {
    return s;
  }
  for (const auto& [name, value] :
       {std::pair{"data_id", &key.data_id()}, std::pair{"group", &key.group()},
        std::pair{"instance_id", &key.instance_id()}}) {
    if (auto s = CheckNoSeparator(name, *value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ValidatePublish(const pb::Publish& p) {
  if (auto s = CheckLength("registration_id", p.registration_id(), 1, Limits::kMaxName); !s.ok()) {
    return s;
  }
  if (!p.has_key()) return absl::InvalidArgumentError("publish.key is required");
  if (auto s = ValidateKey(p.key()); !s.ok()) return s;
  if (auto s = CheckLength("app_name", p.app_name(), 0, Limits::kMaxName); !s.ok()) return s;
  if (auto s = CheckLength("zone", p.zone(), 0, Limits::kMaxName); !s.ok()) return s;
  if (static_cast<size_t>(p.data_size()) > Limits::kMaxDataEntries) {
    return absl::InvalidArgumentError(absl::StrCat(
        "publish has ", p.data_size(), " data entries; the limit is ", Limits::kMaxDataEntries));
  }
  size_t total = 0;
  for (int i = 0; i < p.data_size(); ++i) {
    const std::string& entry = p.data(i);
    if (entry.size() > Limits::kMaxDataEntryBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data[", i, "] is ", entry.size(), " bytes; the limit is ", Limits::kMaxDataEntryBytes));
    }
    total += entry.size();
  }
  if (total > Limits::kMaxDataTotalBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "publish data totals ", total, " bytes; the limit is ", Limits::kMaxDataTotalBytes));
  }
  if (static_cast<size_t>(p.attributes_size()) > Limits::kMaxAttributes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "publish has ", p.attributes_size(), " attributes; the limit is ", Limits::kMaxAttributes));
  }
  for (const auto& [k, v] : p.attributes()) {
    if (auto s = CheckLength("attribute key", k, 1, Limits::kMaxName); !s.ok()) return s;
    if (auto s = CheckLength("attribute value", v, 0, Limits::kMaxAttributeValue); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSubscribe(const pb::Subscribe& s) {
  if (auto st = CheckLength("registration_id", s.registration_id(), 1, Limits::kMaxName);
      !st.ok()) {
    return st;
  }
  if (!s.has_key()) return absl::InvalidArgumentError("subscribe.key is required");
  if (auto st = ValidateKey(s.key()); !st.ok()) return st;
  if (!pb::Scope_IsValid(s.scope())) {
    return absl::InvalidArgumentError(absl::StrCat("unknown scope ", s.scope()));
  }
  return CheckLength("zone", s.zone(), 0, Limits::kMaxName);
}

absl::Status ValidateHello(const pb::Hello& h) {
  if (auto s = CheckLength("client_id", h.client_id(), 0, Limits::kMaxName); !s.ok()) return s;
  if (auto s = CheckLength("app_name", h.app_name(), 0, Limits::kMaxName); !s.ok()) return s;
  return CheckLength("zone", h.zone(), 0, Limits::kMaxName);
}

absl::Status RejectUnknownFields(const google::protobuf::Message& message) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  const google::protobuf::UnknownFieldSet& unknown = reflection->GetUnknownFields(message);
  if (!unknown.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown field number ", unknown.field(0).number(), " in ", message.GetTypeName()));
  }
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const auto* field : fields) {
    if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (field->is_map()) continue;  // map entries of strings cannot carry unknowns we care about
    if (field->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        if (auto s = RejectUnknownFields(reflection->GetRepeatedMessage(message, field, i));
            !s.ok()) {
          return s;
        }
      }
    } else if (auto s = RejectUnknownFields(reflection->GetMessage(message, field)); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace cairn
