// RpcPendingMap: the requests waiting for a response on one multiplexed
// upstream RPC connection (Bolt, Dubbo), by the requestId the sidecar gave them there.
//
// Many downstream connections share one upstream connection, and their own
// requestIds collide (every client counts from 1), so each forwarded request
// gets a fresh id from this connection's counter; the response comes back
// with that id and is matched here. Ids count up from 1 and wrap; 0 is never
// handed out (some peers use it as "no id"), nor an id still waiting, so an
// id is unique among the entries for as long as it is in the map.
//
// A request that gives up (timeout, downstream gone) erases its entry; a
// late response then finds nothing and is dropped. Values are borrowed: the
// map never dereferences them.
//
// Thread-safety: none (one per upstream connection, on its worker).
#pragma once

#include <cstdint>

#include "absl/container/flat_hash_map.h"

namespace cairn::sidecar {

template <typename T>
class RpcPendingMap {
 public:
  // An id not in the map (for a frame that expects no response tracked here,
  // e.g. a oneway request or a heartbeat).
  // Ids stay below 2^32, which every protocol's id field holds.
  uint64_t NextId() {
    for (;;) {
      const uint64_t id = next_++;
      if (id != 0 && !map_.contains(id)) return id;
    }
  }

  // Stores `value` under a fresh id and returns the id. REQUIRES: value != nullptr.
  uint64_t Insert(T* value) {
    const uint64_t id = NextId();
    map_.emplace(id, value);
    return id;
  }

  // Removes and returns the value of `id`, or nullptr when there is none.
  T* Take(uint64_t id) {
    auto it = map_.find(id);
    if (it == map_.end()) return nullptr;
    T* value = it->second;
    map_.erase(it);
    return value;
  }

  // Removes `id`; false when it was not there.
  bool Erase(uint64_t id) { return map_.erase(id) > 0; }

  // Removes and returns any one entry's value (nullptr when empty). Draining
  // with this, one entry per call, stays correct while the callee erases
  // other entries (which iterating the map would not).
  T* TakeAny(uint64_t* id = nullptr) {
    if (map_.empty()) return nullptr;
    auto it = map_.begin();
    T* value = it->second;
    if (id != nullptr) *id = it->first;
    map_.erase(it);
    return value;
  }

  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }

  // Tests: where the id counter stands (to exercise wrap-around).
  void set_next_id_for_test(uint32_t next) { next_ = next; }

 private:
  uint32_t next_ = 1;
  absl::flat_hash_map<uint64_t, T*> map_;
};

}  // namespace cairn::sidecar
