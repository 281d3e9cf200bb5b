// Fuzz target for the client's handling of registry pushes (PushAssembler:
// whole pushes and delta pushes, registry.proto Push.base_version).
//
// The input is a sequence of length-prefixed (2 bytes, little endian)
// protobuf encodings of Push, applied in order to one assembler, as a
// subscriber's pushes would be. Whatever the bytes, it must not crash, and:
//   * after a whole push or an applied delta, the push handed on is whole
//     (no base_version, no removed ids), its version is the assembler's, and
//     its zones and each zone's publishers are in strictly ascending order;
//   * an applied delta keeps every (zone, publisher) of the previous data that
//     it neither removed nor replaced, holds every publisher the delta carried
//     with the delta's content, and none that it removed without replacing;
//   * a stale or refused delta changes nothing.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <utility>

#include <google/protobuf/stubs/logging.h>

#include "client/push_assembler.h"

namespace {

namespace pb = cairn::pb;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// (zone, registration id) of every publisher of a push.
std::set<std::pair<std::string, std::string>> Members(const pb::Push& push) {
  std::set<std::pair<std::string, std::string>> out;
  for (const auto& zone : push.zones()) {
    for (const auto& p : zone.publishers()) out.emplace(zone.zone(), p.registration_id());
  }
  return out;
}

void CheckWholeAndOrdered(const pb::Push& push) {
  Check(push.base_version() == 0 && push.removed_size() == 0);
  for (int z = 0; z < push.zones_size(); ++z) {
    if (z > 0) Check(push.zones(z - 1).zone() < push.zones(z).zone());
    const auto& publishers = push.zones(z).publishers();
    for (int i = 1; i < publishers.size(); ++i) {
      Check(publishers[i - 1].registration_id() < publishers[i].registration_id());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  google::protobuf::SetLogHandler(nullptr);
  cairn::PushAssembler assembler;
  pb::Push state;  // what the assembler should hold (valid once has_state())
  size_t pos = 0;
  while (pos + 2 <= size) {
    size_t length = data[pos] | (static_cast<size_t>(data[pos + 1]) << 8);
    pos += 2;
    if (length > size - pos) length = size - pos;
    pb::Push push;
    bool parsed = push.ParseFromArray(data + pos, static_cast<int>(length));
    pos += length;
    if (!parsed) continue;
    const pb::Push delta = push;
    bool had_state = assembler.has_state();
    uint64_t version_before = assembler.version();
    auto outcome = assembler.Apply(push);
    switch (outcome) {
      case cairn::PushAssembler::Outcome::kWhole:
        Check(delta.base_version() == 0);
        Check(assembler.version() == delta.version());
        state = push;
        break;
      case cairn::PushAssembler::Outcome::kApplied: {
        Check(had_state && delta.base_version() == version_before);
        Check(delta.version() > version_before);
        Check(assembler.version() == delta.version());
        CheckWholeAndOrdered(push);
        auto after = Members(push);
        std::set<std::string> replaced(delta.removed().begin(), delta.removed().end());
        std::set<std::string> carried;
        for (const auto& zone : delta.zones()) {
          for (const auto& p : zone.publishers()) {
            replaced.insert(p.registration_id());
            carried.insert(p.registration_id());
            Check(after.count({zone.zone(), p.registration_id()}) == 1);
          }
        }
        for (const auto& member : Members(state)) {
          if (replaced.count(member.second) == 0) Check(after.count(member) == 1);
        }
        for (const auto& member : after) {
          Check(carried.count(member.second) == 1 || replaced.count(member.second) == 0);
        }
        state = push;
        break;
      }
      case cairn::PushAssembler::Outcome::kStale:
      case cairn::PushAssembler::Outcome::kNeedFull:
        Check(delta.base_version() != 0);
        Check(assembler.has_state() == had_state && assembler.version() == version_before);
        break;
    }
  }
  return 0;
}
