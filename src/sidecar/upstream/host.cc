#include "sidecar/upstream/host.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cairn::sidecar::upstream {
namespace {

// Debian's abseil has its own string_view type; StrCat does not take ours.
absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit);
}

// Host names and IPv4 literals. Deliberately narrower than RFC 3986's
// reg-name: anything else in registry data is a publishing bug worth
// surfacing rather than an address to dial.
bool ValidHostName(std::string_view host) {
  return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return IsDigit(c) || IsAlpha(c) || c == '.' || c == '-' || c == '_';
  });
}

// Shape check only ("::1", "fe80::1", "::ffff:10.0.0.1"); the resolver does
// the real validation when connecting.
bool ValidIpv6Literal(std::string_view host) {
  return host.find(':') != std::string_view::npos &&
         std::all_of(host.begin(), host.end(),
                     [](char c) { return IsHexDigit(c) || c == ':' || c == '.'; });
}

absl::StatusOr<uint16_t> ParsePort(std::string_view port) {
  if (port.empty()) return absl::InvalidArgumentError("missing port");
  if (!AllDigits(port) || port.size() > 5) {
    return absl::InvalidArgumentError(absl::StrCat("bad port '", AsAbsl(port), "'"));
  }
  uint32_t value = 0;
  for (char c : port) value = value * 10 + static_cast<uint32_t>(c - '0');
  if (value == 0 || value > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port out of range: ", value));
  }
  return static_cast<uint16_t>(value);
}

bool ValidScheme(std::string_view scheme) {
  if (scheme.empty() || !IsAlpha(scheme.front())) return false;
  return std::all_of(scheme.begin(), scheme.end(), [](char c) {
    return IsAlpha(c) || IsDigit(c) || c == '+' || c == '-' || c == '.';
  });
}

// Parses the query's weight parameter into *weight (default when absent).
absl::Status ParseWeightParam(std::string_view query, uint32_t* weight) {
  bool seen = false;
  *weight = Host::kDefaultWeight;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (key != "weight") continue;
    if (seen) return absl::InvalidArgumentError("weight given more than once");
    seen = true;
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    // 10 digits covers uint32 range; longer is junk, not a big weight.
    if (!AllDigits(value) || value.size() > 10) {
      return absl::InvalidArgumentError(absl::StrCat("bad weight '", AsAbsl(value), "'"));
    }
    uint64_t parsed = 0;
    for (char c : value) parsed = parsed * 10 + static_cast<uint64_t>(c - '0');
    if (parsed == 0) return absl::InvalidArgumentError("weight 0 is not routable");
    *weight = static_cast<uint32_t>(std::min<uint64_t>(parsed, Host::kMaxWeight));
  }
  return absl::OkStatus();
}

uint32_t ClampWeight(uint32_t weight) {
  return std::clamp(weight, Host::kMinWeight, Host::kMaxWeight);
}

}  // namespace

std::string HostAddress::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<HostAddress> ParseHostAddress(std::string_view host_port) {
  if (host_port.empty()) return absl::InvalidArgumentError("empty address");
  std::string_view host;
  std::string_view port;
  if (host_port.front() == '[') {
    size_t close = host_port.find(']');
    if (close == std::string_view::npos) return absl::InvalidArgumentError("unterminated '['");
    host = host_port.substr(1, close - 1);
    if (!ValidIpv6Literal(host)) {
      return absl::InvalidArgumentError(absl::StrCat("bad IPv6 literal '", AsAbsl(host), "'"));
    }
    std::string_view rest = host_port.substr(close + 1);
    if (rest.empty()) return absl::InvalidArgumentError("missing port");
    if (rest.front() != ':') return absl::InvalidArgumentError("expected ':' after ']'");
    port = rest.substr(1);
  } else {
    size_t colon = host_port.rfind(':');
    if (colon == std::string_view::npos) return absl::InvalidArgumentError("missing port");
    host = host_port.substr(0, colon);
    port = host_port.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return absl::InvalidArgumentError("IPv6 literal must be in brackets: [addr]:port");
    }
    if (!ValidHostName(host)) {
      return absl::InvalidArgumentError(absl::StrCat("bad host '", AsAbsl(host), "'"));
    }
  }
  absl::StatusOr<uint16_t> parsed_port = ParsePort(port);
  if (!parsed_port.ok()) return parsed_port.status();
  return HostAddress{std::string(host), *parsed_port};
}

absl::StatusOr<HostAddress> ParseEndpointUrl(std::string_view url, uint32_t* weight) {
  auto fail = [url](const absl::Status& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad endpoint '", AsAbsl(url), "': ", why.message()));
  };
  std::string_view rest = url;
  size_t scheme_end = rest.find("://");
  if (scheme_end != std::string_view::npos) {
    if (!ValidScheme(rest.substr(0, scheme_end))) {
      return fail(absl::InvalidArgumentError("bad scheme"));
    }
    rest = rest.substr(scheme_end + 3);
  }
  size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view tail =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    return fail(absl::InvalidArgumentError("userinfo is not supported"));
  }
  absl::StatusOr<HostAddress> address = ParseHostAddress(authority);
  if (!address.ok()) return fail(address.status());

  if (weight != nullptr) {
    tail = tail.substr(0, tail.find('#'));
    size_t q = tail.find('?');
    std::string_view query = q == std::string_view::npos ? std::string_view() : tail.substr(q + 1);
    if (absl::Status status = ParseWeightParam(query, weight); !status.ok()) return fail(status);
  }
  return address;
}

Host::Host(HostAddress address, uint32_t weight, std::string zone, Metadata metadata)
    : address_(std::move(address)),
      address_string_(address_.ToString()),
      zone_(std::move(zone)),
      metadata_(std::move(metadata)),
      weight_(ClampWeight(weight)) {}

const std::string* Host::FindMetadata(std::string_view key) const {
  auto it = metadata_.find(AsAbsl(key));
  return it == metadata_.end() ? nullptr : &it->second;
}

void Host::set_weight(uint32_t weight) {
  weight_.store(ClampWeight(weight), std::memory_order_relaxed);
}

void Host::SetHealthFlag(HealthFlag flag) {
  health_flags_.fetch_or(static_cast<uint32_t>(flag), std::memory_order_relaxed);
}

void Host::ClearHealthFlag(HealthFlag flag) {
  health_flags_.fetch_and(~static_cast<uint32_t>(flag), std::memory_order_relaxed);
}

bool Host::HasHealthFlag(HealthFlag flag) const {
  return (health_flags_.load(std::memory_order_relaxed) & static_cast<uint32_t>(flag)) != 0;
}

ActiveRequestHandle::ActiveRequestHandle(HostPtr host) : host_(std::move(host)) {
  if (host_ != nullptr) host_->IncActiveRequests();
}

ActiveRequestHandle& ActiveRequestHandle::operator=(ActiveRequestHandle&& other) noexcept {
  if (this != &other) {
    if (host_ != nullptr) host_->DecActiveRequests();
    host_ = std::move(other.host_);
    other.host_ = nullptr;
  }
  return *this;
}

ActiveRequestHandle::~ActiveRequestHandle() {
  if (host_ != nullptr) host_->DecActiveRequests();
}

HostSet::HostSet(std::vector<HostPtr> hosts)
    : hosts_([&hosts] {
        std::erase(hosts, nullptr);
        return std::move(hosts);
      }()) {}

std::shared_ptr<const HostSet> HostSet::Create(std::vector<HostPtr> hosts) {
  return std::make_shared<const HostSet>(std::move(hosts));
}

size_t HostSet::CountAvailable() const {
  return static_cast<size_t>(
      std::count_if(hosts_.begin(), hosts_.end(), [](const HostPtr& h) { return h->Available(); }));
}

}  // namespace cairn::sidecar::upstream
