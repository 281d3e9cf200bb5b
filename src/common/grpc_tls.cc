#include "common/grpc_tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace cairn {
namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

absl::StatusOr<File> OpenPem(const std::string& path, const char* what) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the TLS ", what, " file '", path, "'"));
  }
  return File(f);
}

absl::Status CheckPair(const std::string& cert_file, const std::string& key_file) {
  auto cert_in = OpenPem(cert_file, "certificate");
  if (!cert_in.ok()) return cert_in.status();
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_X509(cert_in->get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS certificate file '", cert_file, "' holds no PEM certificate"));
  }
  auto key_in = OpenPem(key_file, "key");
  if (!key_in.ok()) return key_in.status();
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_PrivateKey(key_in->get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key file '", key_file, "' holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key '", key_file, "' does not match the certificate '", cert_file, "'"));
  }
  return absl::OkStatus();
}

absl::Status CheckCa(const std::string& ca_file) {
  auto in = OpenPem(ca_file, "CA");
  if (!in.ok()) return in.status();
  std::unique_ptr<X509, decltype(&X509_free)> ca(
      PEM_read_X509(in->get(), nullptr, nullptr, nullptr), X509_free);
  if (!ca) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS CA file '", ca_file, "' holds no PEM certificate"));
  }
  return absl::OkStatus();
}

// See RequirePeer.
class PeerOnly final : public grpc::AuthMetadataProcessor {
 public:
  explicit PeerOnly(std::string peer) : peer_(std::move(peer)) {}
  bool IsBlocking() const override { return false; }  // no I/O: run inline
  grpc::Status Process(const InputMetadata&, grpc::AuthContext* context, OutputMetadata*,
                       OutputMetadata*) override {
    const Identity who = PeerIdentity(*context);
    if (who.authenticated && who.Name() == peer_) return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("only ", peer_, " may call this port; the caller is ",
                                     who.authenticated ? who.Name() : "unauthenticated"));
  }

 private:
  const std::string peer_;
};

std::shared_ptr<grpc::experimental::CertificateProviderInterface> Provider(const TlsFiles& files) {
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key_file, files.cert_file, files.ca_file, files.refresh_interval_s);
}

}  // namespace

absl::Status ValidateTlsFiles(const TlsFiles& files, bool server) {
  const bool has_pair = !files.cert_file.empty() || !files.key_file.empty();
  if (has_pair && (files.cert_file.empty() || files.key_file.empty())) {
    return absl::InvalidArgumentError("TLS needs both a certificate and its key");
  }
  if (server && !has_pair) {
    return absl::InvalidArgumentError("a TLS server needs a certificate and key");
  }
  const bool needs_ca = !server || files.require_client_cert;
  if (needs_ca && files.ca_file.empty()) {
    return absl::InvalidArgumentError(
        server ? "a TLS server that requires client certificates needs a CA file"
               : "a TLS client needs the CA file that signed the server's certificate");
  }
  if (files.refresh_interval_s == 0) {
    return absl::InvalidArgumentError("TLS refresh interval must be at least 1 s");
  }
  if (has_pair) {
    if (auto s = CheckPair(files.cert_file, files.key_file); !s.ok()) return s;
  }
  if (!files.ca_file.empty()) {
    if (auto s = CheckCa(files.ca_file); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureServerCredentials();
  if (auto s = ValidateTlsFiles(files, /*server=*/true); !s.ok()) return s;
  grpc::experimental::TlsServerCredentialsOptions options(Provider(files));
  options.watch_identity_key_cert_pairs();
  if (!files.ca_file.empty()) options.watch_root_certs();
  // Not required but a CA given: a client may still prove who it is, and a
  // certificate it sends must chain to the CA.
  options.set_cert_request_type(
      files.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
      : files.ca_file.empty()   ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureChannelCredentials();
  if (auto s = ValidateTlsFiles(files, /*server=*/false); !s.ok()) return s;
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(files));
  options.watch_root_certs();
  if (!files.cert_file.empty()) options.watch_identity_key_cert_pairs();
  auto credentials = grpc::experimental::TlsCredentials(options);
  if (!credentials) return absl::InternalError("gRPC refused the TLS channel options");
  return credentials;
}

Identity PeerIdentity(const grpc::AuthContext& context) {
  std::vector<std::string> uris;
  for (const auto& value : context.FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME)) {
    uris.emplace_back(value.data(), value.size());
  }
  std::string cn;
  for (const auto& value : context.FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
    cn.assign(value.data(), value.size());
    break;
  }
  // Properties exist only for a verified peer certificate (the server
  // requires and verifies client certificates when TLS is on).
  const bool authenticated = context.IsPeerAuthenticated();
  return IdentityFromCertificateNames(uris, cn, authenticated);
}

absl::StatusOr<Identity> CertificateFileIdentity(const std::string& cert_file) {
  auto in = OpenPem(cert_file, "certificate");
  if (!in.ok()) return in.status();
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_X509(in->get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS certificate file '", cert_file, "' holds no PEM certificate"));
  }
  std::vector<std::string> uris;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                      static_cast<size_t>(ASN1_STRING_length(uri)));
  }
  GENERAL_NAMES_free(names);
  char cn[256];
  int cn_length =
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof(cn));
  return IdentityFromCertificateNames(
      uris, cn_length > 0 ? std::string_view(cn, static_cast<size_t>(cn_length)) : "", true);
}

void RequirePeer(grpc::ServerCredentials& credentials, std::string peer) {
  credentials.SetAuthMetadataProcessor(std::make_shared<PeerOnly>(std::move(peer)));
}

}  // namespace cairn
