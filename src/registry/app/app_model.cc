#include "registry/app/app_model.h"

#include <openssl/sha.h>

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cairn::app {
namespace {

bool RevisionChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

// Percent-encodes what would break the k=v&k=v syntax.
void AppendEncoded(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '&' || c == '=' || c == '%' || c == '?' || c == '#' || u <= 0x20 || u >= 0x7f) {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
}

// Appends a length-prefixed field: canonical bytes cannot be ambiguous.
void AppendField(std::string& out, std::string_view field) {
  absl::StrAppend(&out, field.size(), ":");
  out.append(field.data(), field.size());
}

}  // namespace

pb::DataInfoKey AppKey(std::string_view app_name) {
  pb::DataInfoKey key;
  key.set_data_id(absl::StrCat(std::string(kAppDataIdPrefix), std::string(app_name)));
  return NormalizeKey(key);
}

std::optional<std::string> AppOfKey(const pb::DataInfoKey& key) {
  if (!absl::StartsWith(key.data_id(), std::string(kAppDataIdPrefix))) return std::nullopt;
  if (key.group() != kDefaultGroup || key.instance_id() != kDefaultInstanceId) return std::nullopt;
  return key.data_id().substr(kAppDataIdPrefix.size());
}

absl::Status ValidateAppName(std::string_view app_name) {
  if (app_name.empty() || app_name.size() > Limits::kMaxName) {
    return absl::InvalidArgumentError(
        absl::StrCat("app name must be 1..", Limits::kMaxName, " bytes; got ", app_name.size()));
  }
  for (char c : app_name) {
    if (c == '#' || static_cast<unsigned char>(c) <= 0x20) {
      return absl::InvalidArgumentError(
          absl::StrCat("app name '", std::string(app_name), "' contains '#' or whitespace"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRevisionId(std::string_view revision) {
  if (revision.empty() || revision.size() > kMaxRevisionId) {
    return absl::InvalidArgumentError(
        absl::StrCat("revision id must be 1..", kMaxRevisionId, " bytes; got ", revision.size()));
  }
  if (!std::all_of(revision.begin(), revision.end(), RevisionChar)) {
    return absl::InvalidArgumentError(
        "revision id may only contain letters, digits and '.', '_', ':', '-'");
  }
  return absl::OkStatus();
}

absl::Status ValidateRevision(const pb::RevisionMeta& meta) {
  if (auto s = ValidateRevisionId(meta.revision()); !s.ok()) return s;
  if (auto s = ValidateAppName(meta.app_name()); !s.ok()) return s;
  if (meta.interfaces_size() == 0 || static_cast<size_t>(meta.interfaces_size()) > kMaxInterfaces) {
    return absl::InvalidArgumentError(absl::StrCat("a revision serves 1..", kMaxInterfaces,
                                                   " interfaces; got ", meta.interfaces_size()));
  }
  std::set<std::string> seen;
  for (const pb::InterfaceMeta& iface : meta.interfaces()) {
    if (auto s = ValidateKey(iface.key()); !s.ok()) return s;
    pb::DataInfoKey key = NormalizeKey(iface.key());
    if (AppOfKey(key).has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("interface ", key.data_id(),
                                                     " uses the reserved prefix ",
                                                     std::string(kAppDataIdPrefix)));
    }
    if (!seen.insert(DataInfoId(key)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("interface ", DataInfoId(key), " appears twice in the revision"));
    }
    if (static_cast<size_t>(iface.params_size()) > Limits::kMaxAttributes) {
      return absl::InvalidArgumentError(absl::StrCat("interface ", key.data_id(), " has ",
                                                     iface.params_size(), " params; the limit is ",
                                                     Limits::kMaxAttributes));
    }
    for (const auto& [k, v] : iface.params()) {
      if (k.empty() || k.size() > Limits::kMaxName || v.size() > Limits::kMaxAttributeValue) {
        return absl::InvalidArgumentError(
            absl::StrCat("interface ", key.data_id(), ": param keys are 1..", Limits::kMaxName,
                         " bytes and values 0..", Limits::kMaxAttributeValue, " bytes"));
      }
    }
  }
  return absl::OkStatus();
}

pb::RevisionMeta CanonicalRevision(const pb::RevisionMeta& meta) {
  pb::RevisionMeta out = meta;
  for (pb::InterfaceMeta& iface : *out.mutable_interfaces()) {
    *iface.mutable_key() = NormalizeKey(iface.key());
  }
  std::sort(out.mutable_interfaces()->begin(), out.mutable_interfaces()->end(),
            [](const pb::InterfaceMeta& a, const pb::InterfaceMeta& b) {
              return DataInfoId(a.key()) < DataInfoId(b.key());
            });
  return out;
}

namespace {
std::string CanonicalBytes(const pb::RevisionMeta& canonical) {
  std::string out;
  AppendField(out, canonical.app_name());
  for (const pb::InterfaceMeta& iface : canonical.interfaces()) {
    AppendField(out, DataInfoId(iface.key()));
    std::map<std::string, std::string> params(iface.params().begin(), iface.params().end());
    absl::StrAppend(&out, params.size(), ";");
    for (const auto& [k, v] : params) {
      AppendField(out, k);
      AppendField(out, v);
    }
  }
  return out;
}
}  // namespace

bool SameRevisionContent(const pb::RevisionMeta& a, const pb::RevisionMeta& b) {
  return CanonicalBytes(CanonicalRevision(a)) == CanonicalBytes(CanonicalRevision(b));
}

std::string ContentRevisionId(const pb::RevisionMeta& meta) {
  std::string bytes = CanonicalBytes(CanonicalRevision(meta));
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::string_view EndpointKey(std::string_view url) {
  size_t q = url.find('?');
  return q == std::string_view::npos ? url : url.substr(0, q);
}

std::vector<std::string> RenderInterfaceUrls(const std::vector<std::string>& endpoints,
                                             const std::map<std::string, std::string>& params) {
  std::vector<std::pair<std::string_view, std::string_view>> views(params.begin(), params.end());
  return RenderInterfaceUrlsFromViews(endpoints, views);
}

std::vector<std::string> RenderInterfaceUrlsFromViews(
    const std::vector<std::string>& endpoints,
    const std::vector<std::pair<std::string_view, std::string_view>>& params) {
  std::vector<const std::string*> chosen;
  auto protocol = std::find_if(params.begin(), params.end(),
                               [](const auto& param) { return param.first == "protocol"; });
  if (protocol != params.end()) {
    std::string scheme =
        absl::StrCat(absl::string_view(protocol->second.data(), protocol->second.size()), "://");
    for (const std::string& e : endpoints) {
      if (absl::StartsWith(e, scheme)) chosen.push_back(&e);
    }
  }
  if (chosen.empty()) {
    for (const std::string& e : endpoints) chosen.push_back(&e);
  }
  std::vector<std::string> out;
  out.reserve(chosen.size());
  for (const std::string* e : chosen) {
    std::string url = *e;
    char sep = url.find('?') == std::string::npos ? '?' : '&';
    for (const auto& [k, v] : params) {
      url.push_back(sep);
      sep = '&';
      AppendEncoded(url, k);
      url.push_back('=');
      AppendEncoded(url, v);
    }
    out.push_back(std::move(url));
  }
  return out;
}

}  // namespace cairn::app
