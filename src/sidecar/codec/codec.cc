#include "sidecar/codec/codec.h"

namespace cairn::sidecar {

const std::string* FindHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key == name) return &value;
  }
  return nullptr;
}

}  // namespace cairn::sidecar
