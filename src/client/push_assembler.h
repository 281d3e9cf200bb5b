// PushAssembler: turns one subscriber's delta pushes back into whole pushes.
//
// A client that says Hello.accepts_delta_pushes gets, once it acknowledged a
// version of a datum, only what changed for the next version (Push.base_version
// set: the publishers added or changed, the ids of those removed). The
// assembler keeps the subscriber's current data and applies each delta to
// it, so that callbacks still see the whole datum, in the order a whole push
// lists it (zones by name, publishers by registration id).
//
// Thread-safety: none; one per subscriber, used by one thread at a time.
#pragma once

#include <cstdint>

#include "cairn/registry/v1/registry.pb.h"

namespace cairn {

namespace pb = ::cairn::registry::v1;

class PushAssembler {
 public:
  enum class Outcome {
    kWhole,     // a whole push: it is the new state
    kApplied,   // a delta on the state: `push` now holds the whole result
    kStale,     // a delta not newer than the state (a replay): nothing changed
    kNeedFull,  // a delta on another version than the state's: nothing changed;
                // acknowledge with need_full to get the whole datum
  };

  // Takes `push` in. After kWhole and kApplied, `push` is a whole push
  // (base_version 0, no removed ids) and the state is a copy of it.
  Outcome Apply(pb::Push& push);

  bool has_state() const { return has_state_; }
  uint64_t version() const { return state_.version(); }

 private:
  bool has_state_ = false;
  pb::Push state_;  // the last whole data: version, empty, zones
};

}  // namespace cairn
