#include "sidecar/server/sidecar_tls.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"

namespace cairn::sidecar {
namespace {

TlsFileSet FilesOf(const TlsConfig& tls) {
  return TlsFileSet{tls.cert, tls.key, tls.ca, tls.require_client_cert};
}

// ALPN: what the listener's protocol can serve, h2 first (an h2 client gets
// it; others fall back to http/1.1). Bolt and tcp: none.
std::vector<std::string> ListenerAlpn(const std::string& protocol) {
  if (protocol == "auto") return {"h2", "http/1.1"};
  if (protocol == "http2") return {"h2"};
  if (protocol == "http1") return {"http/1.1"};
  return {};
}

std::vector<std::string> ClusterAlpn(const std::string& protocol) {
  if (protocol == "http2") return {"h2"};
  if (protocol == "http1") return {"http/1.1"};
  return {};
}

}  // namespace

absl::StatusOr<SidecarTls> SidecarTls::Load(const SidecarConfig& config) {
  SidecarTls tls;
  for (const ListenerConfig& listener : config.listeners) {
    std::shared_ptr<TlsContextSource> source;
    if (listener.tls) {
      auto created = TlsContextSource::Create(TlsRole::kServer, FilesOf(*listener.tls),
                                              ListenerAlpn(listener.protocol));
      if (!created.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("listener ", listener.name, ": ", created.status().message()));
      }
      source = std::move(*created);
    }
    tls.listeners.push_back(std::move(source));
  }
  for (const ClusterConfig& cluster : config.clusters) {
    if (!cluster.tls) continue;
    auto created = TlsContextSource::Create(TlsRole::kClient, FilesOf(*cluster.tls),
                                            ClusterAlpn(cluster.protocol));
    if (!created.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cluster ", cluster.name, ": ", created.status().message()));
    }
    tls.clusters[cluster.name] = std::move(*created);
  }
  return tls;
}

bool SidecarTls::HasListener() const {
  for (const auto& source : listeners) {
    if (source != nullptr) return true;
  }
  return false;
}

void SidecarTls::ReloadChanged() {
  auto reload = [](const std::string& what, TlsContextSource& source) {
    auto reloaded = source.ReloadIfChanged();
    if (!reloaded.ok()) {
      spdlog::warn("{}: TLS files changed but cannot be loaded (keeping the previous ones): {}",
                   what, reloaded.status().ToString());
    } else if (*reloaded) {
      spdlog::info("{}: TLS certificate reloaded from {}", what, source.files().cert);
    }
  };
  for (size_t l = 0; l < listeners.size(); ++l) {
    if (listeners[l] != nullptr) reload(absl::StrCat("listener ", l), *listeners[l]);
  }
  for (auto& [name, source] : clusters) reload("cluster " + name, *source);
}

void SidecarTls::ReloadAll() {
  auto reload = [](const std::string& what, TlsContextSource& source) {
    if (auto status = source.Reload(); !status.ok()) {
      spdlog::warn("{}: cannot reload TLS files (keeping the previous ones): {}", what,
                   status.ToString());
    } else {
      spdlog::info("{}: TLS certificate reloaded from {}", what, source.files().cert);
    }
  };
  for (size_t l = 0; l < listeners.size(); ++l) {
    if (listeners[l] != nullptr) reload(absl::StrCat("listener ", l), *listeners[l]);
  }
  for (auto& [name, source] : clusters) reload("cluster " + name, *source);
}

}  // namespace cairn::sidecar
