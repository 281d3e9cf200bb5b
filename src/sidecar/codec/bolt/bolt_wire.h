// Big-endian field access for the Bolt codec (internal to codec/bolt).
#pragma once

#include <cstdint>
#include <string>

namespace cairn::sidecar::bolt::wire {

inline uint16_t Get16(const void* at) {
  const auto* p = static_cast<const uint8_t*>(at);
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

inline uint32_t Get32(const void* at) {
  const auto* p = static_cast<const uint8_t*>(at);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

inline void Set32(void* at, uint32_t v) {
  auto* p = static_cast<uint8_t*>(at);
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

inline void Put8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }

inline void Put16(std::string& out, uint16_t v) {
  const char bytes[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(bytes, 2);
}

inline void Put32(std::string& out, uint32_t v) {
  char bytes[4];
  Set32(bytes, v);
  out.append(bytes, 4);
}

}  // namespace cairn::sidecar::bolt::wire
