// How an app instance looks to an interface-level consumer: the rule of the
// registry's app::RenderInterfaceUrls (src/registry/app/app_model.h), here
// without protobuf so the sidecar binary can apply it (it links no gRPC or
// protobuf; see sidecar/registry/registry_link.h). A unit test checks both
// give the same URLs.
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::sidecar::discovery {

// Everything before the first '?': two URLs with the same key are one provider.
std::string_view EndpointKey(std::string_view url);

// endpoint + '?' + k1=v1&k2=v2... (params in key order; '&', '=', '%', '?',
// '#', spaces, controls and non-ASCII percent-encoded). When params has
// "protocol" and some endpoints have that scheme, only those are rendered.
std::vector<std::string> RenderInterfaceUrls(const std::vector<std::string>& endpoints,
                                             const std::map<std::string, std::string>& params);

}  // namespace cairn::sidecar::discovery
