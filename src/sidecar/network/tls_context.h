// TLS for the sidecar's own event loops: OpenSSL contexts built from files
// and rebuilt when the files change, and what a connection checks about its
// peer once a handshake finished.
//
// A TlsContextSource holds the current SSL_CTX of one listener (server role)
// or one cluster (client role). Connections take Current() when they start a
// handshake; each SSL object keeps its own reference to the context it was
// made from, so a reload never touches an existing connection: new pairs
// (certificate, key, CA) are used by new handshakes only.
//
// Thread-safety: Current() from any thread (workers, at connection start:
// not per request); ReloadIfChanged() from one thread (the control loop).
// The swap is under a mutex held only to copy a shared_ptr.
#pragma once

#include <sys/types.h>

#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/identity.h"

struct ssl_ctx_st;
struct ssl_st;

namespace cairn::sidecar {

struct TlsFileSet {
  std::string cert;  // PEM certificate chain; required for a server, optional for a client
  std::string key;   // PEM private key (with cert)
  std::string ca;    // PEM CA bundle that peers' chains must verify against
  // Server: a client without a verifiable certificate fails the handshake.
  // (With `ca` and without this, a certificate is asked for but optional.)
  bool require_client_cert = false;
};

enum class TlsRole { kServer, kClient };

class TlsContextSource {
 public:
  // Loads the files once (an error names the file and OpenSSL's reason).
  // `alpn`: protocols in preference order ("h2", "http/1.1"); a server picks
  // the first of these the client offers, a client offers them. Empty: no
  // ALPN.
  static absl::StatusOr<std::shared_ptr<TlsContextSource>> Create(TlsRole role, TlsFileSet files,
                                                                  std::vector<std::string> alpn);
  ~TlsContextSource();
  TlsContextSource(const TlsContextSource&) = delete;
  TlsContextSource& operator=(const TlsContextSource&) = delete;

  // The context for a new handshake (never null).
  std::shared_ptr<ssl_ctx_st> Current() const;
  // Rebuilds the context when a file's size, mtime or inode changed since the
  // last load (an mtime poll: cheap, and also sees a file replaced by
  // rename). Returns true when it reloaded; an error (a half-written file,
  // a key that does not match its certificate) keeps the previous context,
  // and the next call tries again.
  absl::StatusOr<bool> ReloadIfChanged();
  // Rebuilds unconditionally (SIGHUP).
  absl::Status Reload();

  TlsRole role() const { return role_; }
  const TlsFileSet& files() const { return files_; }
  uint64_t reloads() const { return reloads_; }

 private:
  struct FileStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    bool operator==(const FileStamp& o) const;
  };
  TlsContextSource(TlsRole role, TlsFileSet files, std::vector<std::string> alpn);
  absl::StatusOr<std::shared_ptr<ssl_ctx_st>> Build() const;
  std::vector<FileStamp> Stamps() const;

  const TlsRole role_;
  const TlsFileSet files_;
  const std::vector<std::string> alpn_;
  std::string alpn_wire_;  // length-prefixed, as OpenSSL takes it
  mutable std::mutex mu_;
  std::shared_ptr<ssl_ctx_st> current_;  // guarded by mu_
  std::vector<FileStamp> stamps_;        // control thread only
  uint64_t reloads_ = 0;                 // control thread only
};

// What a connection requires of the peer's certificate after the chain
// verified (client role: the upstream the registry named).
struct TlsPeerPolicy {
  std::string expected_app;       // non-empty: the certificate must name this app
  std::string expected_identity;  // non-empty: its SPIFFE id must be exactly this
};

// The identity a finished handshake's peer presented; authenticated only when
// it sent a certificate and the chain verified.
Identity PeerIdentityOf(ssl_st* ssl);

// Empty when `identity` satisfies `policy`, else why not (for logs and the
// 503 body).
std::string CheckPeerPolicy(const Identity& identity, const TlsPeerPolicy& policy);

// Whether an allow list ("spiffe://td/app/x" ids, or app names "x") admits
// the caller. An unauthenticated (or absent) identity is never admitted.
bool AllowListAdmits(const std::vector<std::string>& allow, const Identity* identity);

// The last OpenSSL error of this thread as text (and clears the queue).
std::string TakeOpenSslError();

}  // namespace cairn::sidecar
