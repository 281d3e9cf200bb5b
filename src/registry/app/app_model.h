// The application-level discovery model shared by the registry and its
// clients: reserved keys, revision validation and ids, and how an app
// instance is rendered for an interface-level subscriber.
//
// An app instance is an ordinary publisher of the reserved dataInfoId
// `app:<APP>` (default group and instance id) whose data are its endpoints
// and whose attribute kRevisionAttribute names its revision. See
// docs/ARCHITECTURE.md, "Application-level discovery".
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/data_info.h"

namespace cairn::app {

inline constexpr std::string_view kAppDataIdPrefix = "app:";
inline constexpr std::string_view kRevisionAttribute = "cairn.revision";
// Set on entries of an app datum that come from interface-level publishers
// (during a migration): the dataInfoId the URL serves.
inline constexpr std::string_view kInterfaceAttribute = "cairn.interface";

inline constexpr size_t kMaxRevisionId = 128;
inline constexpr size_t kMaxInterfaces = 512;

// The normalized key of an app's datum.
pb::DataInfoKey AppKey(std::string_view app_name);
// "app:APP" -> "APP" for a normalized app key; nullopt for any other key.
std::optional<std::string> AppOfKey(const pb::DataInfoKey& key);

absl::Status ValidateAppName(std::string_view app_name);
absl::Status ValidateRevisionId(std::string_view revision);
// Checks every limit of RevisionMeta (see registry.proto).
absl::Status ValidateRevision(const pb::RevisionMeta& meta);

// The revision with keys normalized and interfaces sorted by dataInfoId: two
// revisions are the same content iff their canonical forms are equal.
pb::RevisionMeta CanonicalRevision(const pb::RevisionMeta& meta);
bool SameRevisionContent(const pb::RevisionMeta& a, const pb::RevisionMeta& b);

// Hex SHA-256 of the canonical content (app and interfaces; `revision`
// ignored): the id clients give a revision by default.
std::string ContentRevisionId(const pb::RevisionMeta& meta);

// The part of a provider URL that identifies the endpoint: everything before
// the first '?'. Two entries with the same endpoint key are one provider.
std::string_view EndpointKey(std::string_view url);

// The URLs an interface-level subscriber sees for an app instance with
// `endpoints` serving an interface with `params`:
//   endpoint + '?' + k1=v1&k2=v2... (params in key order, percent-encoded)
// If params has "protocol" and some endpoints have that scheme, only those
// are rendered (an instance serving bolt and h2 endpoints exposes to a bolt
// interface only its bolt endpoint).
std::vector<std::string> RenderInterfaceUrls(const std::vector<std::string>& endpoints,
                                             const std::map<std::string, std::string>& params);
// The same with params as views. REQUIRES: params in key order, keys unique.
std::vector<std::string> RenderInterfaceUrlsFromViews(
    const std::vector<std::string>& endpoints,
    const std::vector<std::pair<std::string_view, std::string_view>>& params);

}  // namespace cairn::app
