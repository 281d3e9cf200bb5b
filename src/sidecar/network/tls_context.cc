#include "sidecar/network/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"

namespace cairn::sidecar {
namespace {

// Server ALPN: the first protocol of ours (in our order) that the client
// offered. None in common: go on without ALPN (the listener still sniffs).
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* arg) {
  const std::string& ours = *static_cast<const std::string*>(arg);
  for (size_t i = 0; i < ours.size(); i += 1 + static_cast<unsigned char>(ours[i])) {
    unsigned char len = static_cast<unsigned char>(ours[i]);
    for (unsigned int j = 0; j < inlen; j += 1u + in[j]) {
      if (in[j] == len && j + 1 + len <= inlen &&
          std::string_view(reinterpret_cast<const char*>(in + j + 1), len) ==
              std::string_view(ours.data() + i + 1, len)) {
        *out = in + j + 1;
        *outlen = len;
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

std::string TakeOpenSslError() {
  unsigned long code = ERR_get_error();  // the first (root) error
  ERR_clear_error();
  if (code == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

bool TlsContextSource::FileStamp::operator==(const FileStamp& o) const {
  return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
         mtime.tv_nsec == o.mtime.tv_nsec;
}

TlsContextSource::TlsContextSource(TlsRole role, TlsFileSet files, std::vector<std::string> alpn)
    : role_(role), files_(std::move(files)), alpn_(std::move(alpn)) {
  for (const std::string& p : alpn_) {
    alpn_wire_.push_back(static_cast<char>(p.size()));
    alpn_wire_.append(p);
  }
}

TlsContextSource::~TlsContextSource() = default;

absl::StatusOr<std::shared_ptr<TlsContextSource>> TlsContextSource::Create(
    TlsRole role, TlsFileSet files, std::vector<std::string> alpn) {
  for (const std::string& p : alpn) {
    if (p.empty() || p.size() > 255) return absl::InvalidArgumentError("bad ALPN protocol name");
  }
  std::shared_ptr<TlsContextSource> source(
      new TlsContextSource(role, std::move(files), std::move(alpn)));
  source->stamps_ = source->Stamps();
  auto ctx = source->Build();
  if (!ctx.ok()) return ctx.status();
  source->current_ = std::move(*ctx);
  return source;
}

std::shared_ptr<ssl_ctx_st> TlsContextSource::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

std::vector<TlsContextSource::FileStamp> TlsContextSource::Stamps() const {
  std::vector<FileStamp> stamps;
  for (const std::string* path : {&files_.cert, &files_.key, &files_.ca}) {
    FileStamp stamp;
    struct stat st {};
    if (!path->empty() && ::stat(path->c_str(), &st) == 0) {
      stamp = {st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    }
    stamps.push_back(stamp);
  }
  return stamps;
}

absl::StatusOr<bool> TlsContextSource::ReloadIfChanged() {
  std::vector<FileStamp> now = Stamps();
  if (now == stamps_) return false;
  auto ctx = Build();
  if (!ctx.ok()) return ctx.status();  // stamps_ unchanged: retried next time
  stamps_ = std::move(now);
  {
    std::lock_guard lock(mu_);
    current_ = std::move(*ctx);
  }
  ++reloads_;
  return true;
}

absl::Status TlsContextSource::Reload() {
  std::vector<FileStamp> now = Stamps();
  auto ctx = Build();
  if (!ctx.ok()) return ctx.status();
  stamps_ = std::move(now);
  {
    std::lock_guard lock(mu_);
    current_ = std::move(*ctx);
  }
  ++reloads_;
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ssl_ctx_st>> TlsContextSource::Build() const {
  ERR_clear_error();
  std::shared_ptr<SSL_CTX> ctx(
      SSL_CTX_new(role_ == TlsRole::kServer ? TLS_server_method() : TLS_client_method()),
      SSL_CTX_free);
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new: " + TakeOpenSslError());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // The event loop retries a write with the same bytes at another address
  // (its queue may grow between tries), and takes partial writes.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
  // A peer that closes without close_notify is an ordinary EOF (HTTP frames
  // its own messages; a truncation shows there).
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  // No session resumption: sidecars keep their connections warm, and a
  // server-side session cache keeps every session (with its peer
  // certificate) in memory long after its connection closed.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  if (role_ == TlsRole::kServer) SSL_CTX_set_num_tickets(ctx.get(), 0);
  if (!files_.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), files_.cert.c_str()) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("tls cert '", files_.cert, "': ", TakeOpenSslError()));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), files_.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("tls key '", files_.key, "': ", TakeOpenSslError()));
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("tls key '", files_.key,
                                                     "' does not match cert '", files_.cert,
                                                     "': ", TakeOpenSslError()));
    }
  } else if (role_ == TlsRole::kServer) {
    return absl::InvalidArgumentError("tls: a listener needs cert and key");
  }
  if (!files_.ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), files_.ca.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("tls ca '", files_.ca, "': ", TakeOpenSslError()));
    }
    int mode = SSL_VERIFY_PEER;
    if (role_ == TlsRole::kServer && files_.require_client_cert) {
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(ctx.get(), mode, nullptr);
  } else if (role_ == TlsRole::kClient) {
    return absl::InvalidArgumentError("tls: a cluster needs ca (upstreams are always verified)");
  } else if (files_.require_client_cert) {
    return absl::InvalidArgumentError("tls: require_client_cert needs ca");
  }
  if (!alpn_wire_.empty()) {
    if (role_ == TlsRole::kServer) {
      // The callback reads alpn_wire_, which lives as long as this source;
      // a context outlives its source only inside existing connections,
      // whose handshakes are done.
      SSL_CTX_set_alpn_select_cb(ctx.get(), SelectAlpn, const_cast<std::string*>(&alpn_wire_));
    } else if (SSL_CTX_set_alpn_protos(ctx.get(),
                                       reinterpret_cast<const unsigned char*>(alpn_wire_.data()),
                                       static_cast<unsigned int>(alpn_wire_.size())) != 0) {
      return absl::InternalError("SSL_CTX_set_alpn_protos failed");
    }
  }
  return ctx;
}

Identity PeerIdentityOf(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return Identity{};
  std::vector<std::string> uris;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
      if (name->type != GEN_URI) continue;
      const ASN1_STRING* s = name->d.uniformResourceIdentifier;
      uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                        static_cast<size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(names);
  }
  std::string cn;
  X509_NAME* subject = X509_get_subject_name(cert);
  int index = subject != nullptr ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
  if (index >= 0) {
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    cn.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
              static_cast<size_t>(ASN1_STRING_length(s)));
  }
  bool verified = SSL_get_verify_result(ssl) == X509_V_OK;
  X509_free(cert);
  return IdentityFromCertificateNames(uris, cn, verified);
}

std::string CheckPeerPolicy(const Identity& identity, const TlsPeerPolicy& policy) {
  if (policy.expected_app.empty() && policy.expected_identity.empty()) return "";
  if (!identity.authenticated) return "the peer presented no verified certificate";
  if (!policy.expected_identity.empty() && identity.spiffe_id != policy.expected_identity) {
    return absl::StrCat("peer certificate names ", identity.Name(), ", expected ",
                        policy.expected_identity);
  }
  if (!policy.expected_app.empty() && identity.app != policy.expected_app) {
    return absl::StrCat("peer certificate names ", identity.Name(), " (app '", identity.app,
                        "'), expected app '", policy.expected_app, "'");
  }
  return "";
}

bool AllowListAdmits(const std::vector<std::string>& allow, const Identity* identity) {
  if (identity == nullptr || !identity->authenticated) return false;
  for (const std::string& entry : allow) {
    if (entry.rfind("spiffe://", 0) == 0) {
      if (!identity->spiffe_id.empty() && entry == identity->spiffe_id) return true;
    } else if (!identity->app.empty() && entry == identity->app) {
      return true;
    }
  }
  return false;
}

}  // namespace cairn::sidecar
