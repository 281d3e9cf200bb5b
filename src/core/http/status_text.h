// Reason phrases of HTTP status codes (RFC 9110), shared by the admin server
// and the sidecar's HTTP/1 codec. Pure and thread-safe.
#pragma once

#include <string_view>

namespace cairn::http {

// "OK" for 200, ...; empty for codes without a registered phrase (the phrase
// is optional on the wire, RFC 9112 section 4).
std::string_view ReasonPhrase(int status);

}  // namespace cairn::http
