#include "sidecar/discovery/interface_url.h"

namespace cairn::sidecar::discovery {
namespace {

void AppendEscaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    bool reserved = c == '&' || c == '=' || c == '%' || c == '?' || c == '#';
    if (reserved || byte <= 0x20 || byte >= 0x7f) {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
}

}  // namespace

std::string_view EndpointKey(std::string_view url) { return url.substr(0, url.find('?')); }

std::vector<std::string> RenderInterfaceUrls(const std::vector<std::string>& endpoints,
                                             const std::map<std::string, std::string>& params) {
  std::vector<std::string> selected;
  if (auto protocol = params.find("protocol"); protocol != params.end()) {
    std::string scheme = protocol->second + "://";
    for (const auto& endpoint : endpoints) {
      if (endpoint.compare(0, scheme.size(), scheme) == 0) selected.push_back(endpoint);
    }
  }
  if (selected.empty()) selected = endpoints;
  for (auto& url : selected) {
    bool first = url.find('?') == std::string::npos;
    for (const auto& [key, value] : params) {
      url += first ? '?' : '&';
      first = false;
      AppendEscaped(url, key);
      url += '=';
      AppendEscaped(url, value);
    }
  }
  return selected;
}

}  // namespace cairn::sidecar::discovery
