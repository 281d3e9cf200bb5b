#include "sidecar/discovery/local_registry_api.h"

#include "absl/strings/str_cat.h"
#include "sidecar/cluster/cluster_manager.h"  // JsonEscape
#include "sidecar/discovery/local_json.h"

namespace cairn::sidecar::discovery {
namespace {

// The registry's limits (registry.proto), checked here so that the app gets a
// 400 naming the field instead of a publish that fails in the background.
constexpr size_t kMaxDataId = 512;
constexpr size_t kMaxParams = 64;
constexpr size_t kMaxParamKey = 128;
constexpr size_t kMaxParamValue = 1024;

http::Response Answer(int status, std::string body) {
  http::Response response;
  response.status = status;
  response.content_type = "application/json";
  response.body = std::move(body);
  return response;
}

http::Response Error(int status, const std::string& message) {
  return Answer(status, absl::StrCat("{\"error\":\"", JsonEscape(message), "\"}\n"));
}

}  // namespace

http::Response HandleLocalRegistration(AppRegistrar& registrar, const http::Request& request,
                                       bool publish, std::chrono::milliseconds wait) {
  auto body = ParseJsonObject(request.body);
  if (!body.ok()) return Error(400, std::string(body.status().message()));
  auto& scalars = body->scalars;
  for (const auto& [name, members] : body->objects) {
    if (name != "params") return Error(400, absl::StrCat("unknown object member '", name, "'"));
  }
  auto take = [&scalars](const char* name) {
    auto it = scalars.find(name);
    if (it == scalars.end()) return std::string();
    std::string value = std::move(it->second);
    scalars.erase(it);
    return value;
  };
  RegistryDataKey key;
  key.data_id = take("data_id");
  std::string interface = take("interface");
  key.group = take("group");
  key.instance_id = take("instance_id");
  std::string listener = take("listener");
  if (key.data_id.empty()) {
    if (interface.empty()) return Error(400, "data_id or interface is required");
    auto version = scalars.find("version");
    key.data_id = version == scalars.end() || version->second.empty()
                      ? interface
                      : absl::StrCat(interface, ":", version->second);
  } else if (!interface.empty()) {
    return Error(400, "give data_id or interface, not both");
  }
  if (key.data_id.size() > kMaxDataId) return Error(400, "data_id is too long");
  if (!publish) {
    auto done = registrar.Unpublish(key, wait);
    if (!done.ok()) return Error(404, std::string(done.status().message()));
    return Answer(*done ? 200 : 202, registrar.StateJson());
  }
  std::map<std::string, std::string> params = std::move(scalars);
  if (auto it = body->objects.find("params"); it != body->objects.end()) {
    for (auto& [k, v] : it->second) params[k] = std::move(v);
  }
  if (params.size() > kMaxParams) return Error(400, "too many params (at most 64)");
  for (const auto& [k, v] : params) {
    if (k.empty() || k.size() > kMaxParamKey || v.size() > kMaxParamValue) {
      return Error(400, absl::StrCat("param '", k.substr(0, 64), "': key 1..128 bytes, value ",
                                     "at most 1024 bytes"));
    }
  }
  auto done = registrar.Publish(listener, std::move(key), std::move(params), wait);
  if (!done.ok()) {
    int status = absl::IsNotFound(done.status()) ? 404 : 409;
    return Error(status, std::string(done.status().message()));
  }
  return Answer(*done ? 200 : 202, registrar.StateJson());
}

}  // namespace cairn::sidecar::discovery
