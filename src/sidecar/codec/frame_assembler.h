// FrameAssembler: cuts a byte stream into length-prefixed frames for the RPC
// codecs' decoders (Bolt, Dubbo), so that every decoder shares one way of
// handling frames split across reads.
//
// A frame that lies whole inside the caller's input is returned as a view
// into that input (no copy); only a frame split across calls is put together
// in the assembler's buffer, reserved once to the frame's size when its
// header says it. The decoder's `probe` validates a prefix and says how long
// the frame is (FrameExtent); its last call before a frame is returned saw
// that frame's header (the same bytes), so a decoder may keep what its probe
// parsed for the frame it builds.
//
// Thread-safety: none (one per connection, on its worker).
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cairn::sidecar {

// What a frame's prefix says about its length.
struct FrameExtent {
  size_t total_bytes = 0;   // the whole frame; 0 until the prefix tells
  size_t needed_bytes = 0;  // prefix bytes needed to learn more (= total_bytes once known)
};

class FrameAssembler {
 public:
  // Returns the next complete frame's bytes, consuming them from the front
  // of `input` (a view into `input`, or into the assembler's buffer: valid
  // until the next call), or nullopt once `input` is used up without
  // completing one. `probe` is `absl::Status(std::string_view prefix,
  // FrameExtent& extent)`; its error is returned as is (the caller is
  // expected to give up on the stream, and Clear()).
  template <typename Probe>
  absl::StatusOr<std::optional<std::string_view>> Next(std::string_view& input, Probe&& probe) {
    if (from_pending_) {
      // The previous frame was assembled here and the caller is done with it.
      from_pending_ = false;
      Clear();
    }
    FrameExtent extent;
    if (pending_.empty()) {
      // Fast path: a frame wholly inside `input` is used in place.
      if (input.empty()) return std::nullopt;
      if (absl::Status s = probe(input, extent); !s.ok()) return s;
      if (extent.total_bytes != 0 && input.size() >= extent.total_bytes) {
        const std::string_view frame = input.substr(0, extent.total_bytes);
        input.remove_prefix(extent.total_bytes);
        return frame;
      }
      // Incomplete: keep it (the probe bounds total_bytes by its limit).
      if (extent.total_bytes != 0) pending_.reserve(extent.total_bytes);
      pending_.append(input);
      input = {};
      return std::nullopt;
    }
    // Assembling a split frame: take only what it still needs, learning its
    // length as the header completes. Each turn takes at least one byte or
    // returns, so the loop ends.
    for (;;) {
      if (absl::Status s = probe(std::string_view(pending_), extent); !s.ok()) return s;
      if (extent.total_bytes != 0 && pending_.size() == extent.total_bytes) {
        from_pending_ = true;
        return std::string_view(pending_);
      }
      if (input.empty()) return std::nullopt;
      if (extent.total_bytes != 0) pending_.reserve(extent.total_bytes);
      const size_t take = std::min(extent.needed_bytes - pending_.size(), input.size());
      pending_.append(input.data(), take);
      input.remove_prefix(take);
    }
  }

  // Bytes of an incomplete frame held here (non-zero: a frame is arriving).
  size_t buffered_bytes() const { return from_pending_ ? 0 : pending_.size(); }

  // Drops what is buffered. A buffer grown for a large frame is released;
  // a small one is kept to spare the next split frame an allocation.
  void Clear() {
    if (pending_.capacity() > kKeepBufferBytes) {
      std::string().swap(pending_);
    } else {
      pending_.clear();
    }
  }

 private:
  static constexpr size_t kKeepBufferBytes = 64 * 1024;

  std::string pending_;        // an incomplete frame (or the last frame, if from_pending_)
  bool from_pending_ = false;  // the last frame returned lies in pending_
};

}  // namespace cairn::sidecar
