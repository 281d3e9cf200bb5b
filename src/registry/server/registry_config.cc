#include "registry/server/registry_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace cairn {

std::string RegistryConfig::DefaultDataDir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg != '\0') {
    return absl::StrCat(xdg, "/cairn/registry");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return absl::StrCat(home, "/.local/share/cairn/registry");
  }
  return "./cairn-data/registry";
}

namespace {

// Reads a `tls:`-style mapping into `files`; unknown keys are errors.
// `server`: client_cert is allowed (a client always sends its pair if given).
// Throws YAML::Exception on a value of the wrong type (caught by the caller).
absl::Status LoadTlsFiles(const YAML::Node& node, const std::string& where, bool server,
                          TlsFiles* files) {
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected a mapping"));
  for (const auto& entry : node) {
    std::string key = entry.first.as<std::string>("");
    if (key == "cert") {
      files->cert_file = entry.second.as<std::string>();
    } else if (key == "key") {
      files->key_file = entry.second.as<std::string>();
    } else if (key == "ca") {
      files->ca_file = entry.second.as<std::string>();
    } else if (key == "refresh_interval_s") {
      files->refresh_interval_s = entry.second.as<uint32_t>();
    } else if (key == "client_cert" && server) {
      auto mode = ParseClientCertMode(entry.second.as<std::string>());
      if (!mode.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".client_cert: ", mode.status().message()));
      }
      files->require_client_cert = *mode;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(where, ": unknown key '", key, "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

RegistryConnectionLimits ConnectionLimits(const RegistryConfig& config) {
  return RegistryConnectionLimits{config.handshake_timeout_ms, config.max_connection_idle_ms,
                                  config.max_streams_per_connection};
}

absl::StatusOr<xds::XdsPartOptions> XdsPartOptionsFrom(const RegistryConfig& config) {
  xds::XdsPartOptions options;
  options.enabled = config.xds_enabled;
  options.service.max_streams = config.xds_max_streams;
  options.server.max_resources_per_stream = config.xds_max_resources_per_stream;
  for (absl::string_view name :
       absl::StrSplit(config.xds_ring_hash_services, ',', absl::SkipWhitespace())) {
    options.server.resources.ring_hash_services.emplace(absl::StripAsciiWhitespace(name));
  }
  options.server.resources.endpoint_schemes.clear();
  static const std::set<std::string> kKnown = {"grpc",  "grpcs", "h2c",  "h2",    "http",
                                               "https", "tcp",   "bolt", "dubbo", "bare"};
  for (absl::string_view part :
       absl::StrSplit(config.xds_endpoint_schemes, ',', absl::SkipWhitespace())) {
    std::string scheme(absl::StripAsciiWhitespace(part));
    if (kKnown.count(scheme) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("xds_endpoint_schemes: unknown scheme '", scheme,
                       "' (known: grpc, grpcs, h2c, h2, http, https, tcp, bolt, dubbo, bare)"));
    }
    options.server.resources.endpoint_schemes.push_back(scheme == "bare" ? "" : scheme);
  }
  if (options.server.resources.endpoint_schemes.empty()) {
    return absl::InvalidArgumentError("xds_endpoint_schemes must name at least one scheme");
  }
  return options;
}

TlsFiles ServerTlsFiles(const RegistryConfig& config) {
  TlsFiles files = config.tls;
  if (files.ca_file.empty()) files.require_client_cert = false;
  return files;
}

std::string TlsModeText(const TlsFiles& f) {
  if (!f.enabled()) return "plaintext";
  if (f.ca_file.empty()) return "TLS";
  return f.require_client_cert ? "mTLS (client certificates required)"
                               : "TLS (client certificates optional)";
}

absl::StatusOr<bool> ParseClientCertMode(const std::string& mode) {
  if (mode == "required") return true;
  if (mode == "optional") return false;
  return absl::InvalidArgumentError(absl::StrCat("'", mode, "' is not one of required, optional"));
}

absl::StatusOr<RegistryConfig> LoadRegistryConfig(const std::string& path, RegistryConfig base) {
  // yaml-cpp reports errors by exception; configuration loading is the one
  // place we accept that, and it stays inside this function.
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config ", path, ": ", e.what()));
  }
  if (root.IsNull()) return base;
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat("config ", path, ": expected a mapping"));
  }
  using Setter = std::function<void(const YAML::Node&)>;
  auto str = [](std::string* field) -> Setter {
    return [field](const YAML::Node& n) { *field = n.as<std::string>(); };
  };
  auto u32 = [](uint32_t* field) -> Setter {
    return [field](const YAML::Node& n) { *field = n.as<uint32_t>(); };
  };
  RegistryConfig c = base;
  const std::map<std::string, Setter> setters = {
      {"listen", str(&c.listen)},
      {"admin", str(&c.admin)},
      {"data_dir", str(&c.data_dir)},
      {"slots", u32(&c.slots)},
      {"keepalive_timeout_ms", u32(&c.keepalive_timeout_ms)},
      {"min_keepalive_timeout_ms", u32(&c.min_keepalive_timeout_ms)},
      {"max_keepalive_timeout_ms", u32(&c.max_keepalive_timeout_ms)},
      {"max_registrations_per_client", u32(&c.max_registrations_per_client)},
      {"push_ack_timeout_ms", u32(&c.push_ack_timeout_ms)},
      {"push_max_backoff_ms", u32(&c.push_max_backoff_ms)},
      {"push_max_attempts", u32(&c.push_max_attempts)},
      {"stream_read_window", u32(&c.stream_read_window)},
      {"stream_max_outbound", u32(&c.stream_max_outbound)},
      {"handshake_timeout_ms", u32(&c.handshake_timeout_ms)},
      {"max_connection_idle_ms", u32(&c.max_connection_idle_ms)},
      {"max_streams_per_connection", u32(&c.max_streams_per_connection)},
      {"revision_gc_after_ms", u32(&c.revision_gc_after_ms)},
      {"restart_warmup_ms", u32(&c.restart_warmup_ms)},
      {"ready_file", str(&c.ready_file)},
      {"log_level", str(&c.log_level)},
      {"roles", str(&c.roles)},
      {"etcd", str(&c.etcd)},
      {"cluster", str(&c.cluster)},
      {"node_id", str(&c.node_id)},
      {"cluster_peer_id", str(&c.cluster_peer_id)},
      {"replicas", u32(&c.replicas)},
      {"lease_ttl_s", u32(&c.lease_ttl_s)},
      {"max_slot_moves", u32(&c.max_slot_moves)},
      {"data_listen", str(&c.data_listen)},
      {"session_lease_ms", u32(&c.session_lease_ms)},
      {"rebuild_timeout_ms", u32(&c.rebuild_timeout_ms)},
      {"drain_timeout_ms", u32(&c.drain_timeout_ms)},
      {"anti_entropy_interval_ms", u32(&c.anti_entropy_interval_ms)},
      {"datum_cache_idle_ms", u32(&c.datum_cache_idle_ms)},
      {"xds_enabled", [&c](const YAML::Node& n) { c.xds_enabled = n.as<bool>(); }},
      {"xds_max_streams", u32(&c.xds_max_streams)},
      {"xds_max_resources_per_stream", u32(&c.xds_max_resources_per_stream)},
      {"xds_ring_hash_services", str(&c.xds_ring_hash_services)},
      {"xds_endpoint_schemes", str(&c.xds_endpoint_schemes)},
      {"policy", str(&c.policy_file)},
      {"admin_token_file", str(&c.admin_token_file)},
  };
  for (const auto& entry : root) {
    std::string key = entry.first.as<std::string>("");
    if (key == "tls" || key == "etcd_tls") {
      absl::Status s;
      try {
        s = LoadTlsFiles(entry.second, absl::StrCat("config ", path, ": ", key), key == "tls",
                         key == "tls" ? &c.tls : &c.etcd_tls);
      } catch (const YAML::Exception& e) {
        s = absl::InvalidArgumentError(
            absl::StrCat("config ", path, ": bad value in '", key, "': ", e.what()));
      }
      if (!s.ok()) return s;
      continue;
    }
    auto it = setters.find(key);
    if (it == setters.end()) {
      return absl::InvalidArgumentError(absl::StrCat("config ", path, ": unknown key '", key, "'"));
    }
    try {
      it->second(entry.second);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("config ", path, ": bad value for '", key, "': ", e.what()));
    }
  }
  return c;
}

absl::Status ValidateRegistryConfig(const RegistryConfig& c) {
  if (c.listen.empty()) return absl::InvalidArgumentError("listen must not be empty");
  if (!c.policy_file.empty() && c.tls.ca_file.empty()) {
    // Without verified client certificates every caller is anonymous: a
    // policy could only allow or deny everyone, which is never what its
    // author meant. Refuse to start rather than enforce it wrongly.
    return absl::InvalidArgumentError(
        "policy needs client certificates: set tls (cert, key and ca) or drop the policy");
  }
  if (c.xds_max_streams == 0 || c.xds_max_resources_per_stream == 0) {
    return absl::InvalidArgumentError(
        "xds_max_streams and xds_max_resources_per_stream must be positive");
  }
  if (auto s = XdsPartOptionsFrom(c); !s.ok()) return s.status();
  if (c.slots == 0 || c.slots > 65536) {
    return absl::InvalidArgumentError("slots must be in [1, 65536]");
  }
  if (c.min_keepalive_timeout_ms == 0 || c.min_keepalive_timeout_ms > c.max_keepalive_timeout_ms) {
    return absl::InvalidArgumentError(
        "min_keepalive_timeout_ms must be positive and at most max_keepalive_timeout_ms");
  }
  if (c.keepalive_timeout_ms < c.min_keepalive_timeout_ms ||
      c.keepalive_timeout_ms > c.max_keepalive_timeout_ms) {
    return absl::InvalidArgumentError(
        "keepalive_timeout_ms must lie within [min_keepalive_timeout_ms, "
        "max_keepalive_timeout_ms]");
  }
  if (c.max_registrations_per_client == 0) {
    return absl::InvalidArgumentError("max_registrations_per_client must be positive");
  }
  if (c.push_ack_timeout_ms == 0 || c.push_max_attempts == 0) {
    return absl::InvalidArgumentError("push_ack_timeout_ms and push_max_attempts must be positive");
  }
  if (c.stream_read_window == 0 || c.stream_max_outbound == 0) {
    return absl::InvalidArgumentError(
        "stream_read_window and stream_max_outbound must be positive");
  }
  if (c.revision_gc_after_ms == 0) {
    return absl::InvalidArgumentError("revision_gc_after_ms must be positive");
  }
  if (c.roles != "standalone") {
    for (absl::string_view role : absl::StrSplit(c.roles, ',')) {
      if (role != "meta" && role != "data" && role != "session") {
        return absl::InvalidArgumentError(absl::StrCat(
            "roles: '", role, "' is not one of meta, data, session (or standalone alone)"));
      }
    }
    if (c.etcd.empty()) return absl::InvalidArgumentError("cluster roles need etcd endpoints");
    bool data = absl::StrContains(c.roles, "data");
    if (data && absl::StrContains(c.roles, "session") && c.data_listen.empty()) {
      return absl::InvalidArgumentError(
          "roles data and session in one process need data_listen (the data role's own address)");
    }
    if (c.session_lease_ms == 0 || c.rebuild_timeout_ms == 0 || c.anti_entropy_interval_ms == 0) {
      return absl::InvalidArgumentError(
          "session_lease_ms, rebuild_timeout_ms and anti_entropy_interval_ms must be positive");
    }
    if (c.datum_cache_idle_ms < 2) {
      return absl::InvalidArgumentError("datum_cache_idle_ms must be at least 2");
    }
  }
  if (c.cluster.empty() || c.cluster.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("cluster must be a non-empty name without '/'");
  }
  if (c.node_id.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("node_id must not contain '/'");
  }
  if (c.replicas == 0 || c.lease_ttl_s < 2) {
    return absl::InvalidArgumentError("replicas must be positive and lease_ttl_s at least 2");
  }
  if (c.tls.enabled()) {
    if (auto s = ValidateTlsFiles(ServerTlsFiles(c), /*server=*/true); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("tls: ", s.message()));
    }
  }
  if (c.etcd_tls.enabled()) {
    if (auto s = ValidateTlsFiles(c.etcd_tls, /*server=*/false); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("etcd_tls: ", s.message()));
    }
  }
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error"};
  bool level_ok = false;
  for (const char* level : kLevels) level_ok |= c.log_level == level;
  if (!level_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log_level '", c.log_level, "' is not one of trace, debug, info, warn, error"));
  }
  return absl::OkStatus();
}

}  // namespace cairn
