#include "sidecar/codec/http1/http1_common.h"

#include <cstring>

namespace cairn::sidecar::http1 {
namespace {

constexpr std::array<uint8_t, 256> BuildCharClass() {
  std::array<uint8_t, 256> table{};
  for (int c = 0; c < 256; ++c) {
    uint8_t bits = 0;
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    bool tchar = alnum;
    for (char t : std::string_view("!#$%&'*+-.^_`|~")) tchar |= (c == t);
    if (tchar) bits |= kTokenChar;
    // obs-text (0x80-0xFF) is allowed in values and targets: real clients send
    // raw UTF-8, and it cannot change framing.
    if (c == '\t' || (c >= 0x20 && c != 0x7f)) bits |= kFieldValueChar;
    if (c > 0x20 && c != 0x7f) bits |= kTargetChar;
    bool authority = alnum;
    for (char t : std::string_view("-._~!$&'()*+,;=:[]%")) authority |= (c == t);
    if (authority) bits |= kAuthorityChar;
    table[c] = bits;
  }
  return table;
}

}  // namespace

const std::array<uint8_t, 256> kCharClass = BuildCharClass();

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!HasClass(c, kTokenChar)) return false;
  }
  return true;
}

bool IsFieldValue(std::string_view s) {
  // Eight bytes at a time while no byte is a CTL (< 0x20) or DEL: the
  // common case, since values are long (cookies, user agents) and tabs rare.
  // "Has a byte < n" is exact for n <= 128; bytes >= 0x80 (obs-text) are
  // masked out by ~word. On a hit the per-byte loop decides (HTAB is legal).
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    const uint64_t ctl = (word - 0x20 * kOnes) & ~word & kHigh;
    const uint64_t del_xor = word ^ (0x7f * kOnes);
    const uint64_t del = (del_xor - kOnes) & ~del_xor & kHigh;
    if ((ctl | del) != 0) break;
    p += 8;
    n -= 8;
  }
  for (; n != 0; ++p, --n) {
    if (!HasClass(*p, kFieldValueChar)) return false;
  }
  return true;
}

bool IsValidAuthority(std::string_view s) {
  for (char c : s) {
    if (!HasClass(c, kAuthorityChar)) return false;
  }
  return true;
}

bool EqualsIgnoreCase(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (ToLowerAscii(s[i]) != lower[i]) return false;
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ParseDecimal(std::string_view s, uint64_t* value) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *value = v;
  return true;
}

bool ParseContentLength(std::string_view value, uint64_t* length) {
  // Fast path: a single number, which is what every sane peer sends.
  if (ParseDecimal(value, length)) return true;
  bool ok = true;
  bool seen = false;
  uint64_t first = 0;
  ForEachListElement(value, [&](std::string_view element) {
    uint64_t v = 0;
    if (!ParseDecimal(element, &v) || (seen && v != first)) ok = false;
    first = v;
    seen = true;
  });
  if (!ok || !seen) return false;
  *length = first;
  return true;
}

template <bool kNameIsLower>
FieldKind Classify(std::string_view name) {
  // An exact compare (memcmp) when the parser already lower-cased the name.
  auto is = [name](std::string_view lower) {
    return kNameIsLower ? name == lower : EqualsIgnoreCase(name, lower);
  };
  // Dispatch on length first: most ordinary names fail after one compare.
  switch (name.size()) {
    case 2:
      if (is("te")) return FieldKind::kTe;
      break;
    case 4:
      if (is("host")) return FieldKind::kHost;
      break;
    case 6:
      if (is("expect")) return FieldKind::kExpect;
      break;
    case 7:
      if (is("upgrade")) return FieldKind::kUpgrade;
      break;
    case 10:
      if (is("connection")) return FieldKind::kConnection;
      if (is("keep-alive")) return FieldKind::kKeepAlive;
      break;
    case 14:
      if (is("content-length")) return FieldKind::kContentLength;
      break;
    case 16:
      if (is("proxy-connection")) return FieldKind::kProxyConnection;
      break;
    case 17:
      if (is("transfer-encoding")) return FieldKind::kTransferEncoding;
      break;
    default:
      break;
  }
  return FieldKind::kOrdinary;
}

FieldKind ClassifyField(std::string_view name) { return Classify<false>(name); }
FieldKind ClassifyLowerField(std::string_view name) { return Classify<true>(name); }

bool TeAllowsTrailers(std::string_view value) {
  bool found = false;
  ForEachListElement(value, [&](std::string_view element) {
    if (EqualsIgnoreCase(TrimOws(element.substr(0, element.find(';'))), "trailers")) found = true;
  });
  return found;
}

void AppendDecimal(uint64_t value, std::string& out) {
  char buf[20];
  size_t pos = sizeof(buf);
  do {
    buf[--pos] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  out.append(buf + pos, sizeof(buf) - pos);
}

void AppendStatusLine(int status, std::string& out) {
  if (status < 100 || status > 599) status = 500;
  const char digits[3] = {static_cast<char>('0' + status / 100),
                          static_cast<char>('0' + status / 10 % 10),
                          static_cast<char>('0' + status % 10)};
  out.append("HTTP/1.1 ");
  out.append(digits, 3);
  out.push_back(' ');
  out.append(ReasonPhrase(status));
  out.append("\r\n");
}

bool AppendField(std::string_view name, std::string_view value, std::string& out) {
  if (!IsToken(name) || !IsFieldValue(value)) return false;
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
  return true;
}

void AppendChunk(std::string_view data, std::string& out) {
  if (data.empty()) return;
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[16];
  size_t pos = sizeof(buf);
  uint64_t size = data.size();
  do {
    buf[--pos] = kHex[size & 15];
    size >>= 4;
  } while (size != 0);
  out.append(buf + pos, sizeof(buf) - pos);
  out.append("\r\n");
  out.append(data);
  out.append("\r\n");
}

void AppendLastChunk(const HeaderList* trailers, std::string& out) {
  out.append("0\r\n");
  if (trailers != nullptr) {
    for (const auto& [name, value] : *trailers) {
      if (ClassifyField(name) == FieldKind::kOrdinary) AppendField(name, value, out);
    }
  }
  out.append("\r\n");
}

}  // namespace cairn::sidecar::http1
