// PushEngine: the subscribers of one session server and the pipeline that
// keeps each of them up to date.
//
// For every subscriber the engine guarantees:
//   * a push at once on subscribe (marked empty when nothing is visible);
//   * after every change, eventually a push of the newest data;
//   * at most one push in flight: changes that arrive meanwhile are coalesced
//     and only the newest version goes out after the client's ack;
//   * an unacknowledged push is retried with exponential backoff; after
//     max_attempts the subscriber is "stalled" (logged, counted) and left
//     alone until it acknowledges or resubscribes, so a dead or stuck client
//     is not hammered.
// While held (Hold, a restarted registry's warm-up) nothing is sent: changes
// and new subscribers are queued as usual, and Resume pushes each of them
// the data current then.
// Work is queued and drained by posted tasks in batches: when the registry is
// quiet a change is pushed on the next loop turn; under load the queue
// coalesces repeated changes of the same subscriber into one push.
// The datum part of a push is encoded once per datum version and view and
// shared by every subscriber (PushPayloadCache): a change to a datum with many
// subscribers costs one protobuf build, not one per subscriber. A subscriber
// whose client accepts deltas and who acknowledged the version before the
// newest gets only what changed (a delta, also built once and shared).
//
// Thread-safety: not thread-safe; every method runs on the registry loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/event_loop.h"
#include "registry/data/data_service.h"
#include "registry/metrics.h"
#include "registry/session/push_payload.h"

namespace cairn {

class PushEngine final : public DataChangeListener {
 public:
  struct Options {
    // First wait for an ack before resending; doubles per attempt.
    std::chrono::milliseconds ack_timeout{2000};
    std::chrono::milliseconds max_backoff{30000};
    int max_attempts = 6;
    size_t batch = 256;  // subscribers handled per loop turn before yielding
  };

  // Where pushes go. Returns false when the connection is gone or its
  // outbound queue is full; the engine then retries later. `push` is an
  // encoded ServerMessage whose body may be shared with other subscribers.
  class Transport {
   public:
    virtual ~Transport() = default;
    virtual bool SendPush(uint64_t connection_id, EncodedPush&& push) = 0;
  };

  struct SubscriberSpec {
    std::string registration_id;
    pb::DataInfoKey key;  // normalized
    pb::Scope scope = pb::SCOPE_DATACENTER;
    std::string zone;
    uint64_t connection_id = 0;
    // The client applies delta pushes (Hello.accepts_delta_pushes): once it
    // acknowledged a version, the next push carries only what changed since.
    bool accepts_deltas = false;
  };

  // What a query shows about a subscriber.
  struct SubscriberView {
    SubscriberSpec spec;
    uint64_t acked_version = 0;
    uint64_t pushed_version = 0;
    bool stalled = false;
  };

  // REQUIRES: loop, data, transport and metrics outlive the engine.
  PushEngine(EventLoop& loop, DataService& data, Transport& transport, RegistryMetrics& metrics,
             Options options);
  ~PushEngine() override;

  // Registers a subscriber and queues its first push. Returns its id.
  uint64_t Subscribe(SubscriberSpec spec);
  // Forgets the subscriber; a late ack for it is ignored.
  void Unsubscribe(uint64_t subscriber_id);
  // The client confirmed push_id. Unknown or old ids are ignored.
  // need_full: it could not apply that delta push; it is sent the whole
  // datum next.
  void OnAck(uint64_t subscriber_id, uint64_t push_id, bool need_full = false);

  // Hold: send no push until Resume; subscribers stay queued and are sent
  // the newest data on Resume (one push each, whatever changed meanwhile).
  // A push already in flight still takes its ack; its resend waits too.
  void Hold() { held_ = true; }
  void Resume();
  bool held() const { return held_; }

  // DataChangeListener
  void OnDatumChanged(const std::string& data_info_id, uint64_t version) override;
  // Every subscribed datum `affected` names is fetched again (and pushed
  // where the subscriber's version is older).
  void OnDatumsMaybeChanged(const std::function<bool(const std::string&)>& affected) override;

  size_t subscriber_count() const { return subscribers_.size(); }
  size_t SubscriberCountOf(const std::string& data_info_id) const;
  std::vector<SubscriberView> SubscribersOf(const std::string& data_info_id) const;
  std::optional<SubscriberView> View(uint64_t subscriber_id) const;

  // Builds the push a subscriber with `spec` gets for `snapshot` as a
  // message (what the encoded pushes decode to). Public for tests.
  static pb::ServerMessage BuildPush(const DatumSnapshot& snapshot, const SubscriberSpec& spec,
                                     uint64_t push_id);
  // Encodes that push, sharing the datum part through `cache`.
  static EncodedPush EncodeFor(PushPayloadCache& cache, const DatumSnapshot& snapshot,
                               const SubscriberSpec& spec, uint64_t push_id);

  const PushPayloadCache& payload_cache() const { return payloads_; }

 private:
  struct Subscriber {
    uint64_t id = 0;
    SubscriberSpec spec;
    std::string data_info_id;
    uint64_t inflight_push_id = 0;  // 0: nothing in flight
    uint64_t inflight_version = 0;
    SteadyTime inflight_change_time{};
    SteadyTime dirty_since{};  // earliest change not yet sent
    uint64_t pushed_version = 0;
    uint64_t acked_version = 0;
    bool initial_acked = false;
    bool dirty = false;   // a newer datum may exist than the one acked
    bool queued = false;  // in ready_
    bool stalled = false;
    int attempts = 0;
    std::unique_ptr<EventLoop::Timer> retry_timer;
  };

  void MarkDirty(Subscriber& sub, SteadyTime change_time);
  void Enqueue(Subscriber& sub);
  void Drain();
  void SendNewest(Subscriber& sub, const std::shared_ptr<const DatumSnapshot>& snapshot);
  void OnAckTimeout(uint64_t subscriber_id, uint64_t push_id);
  std::chrono::milliseconds Backoff(int attempts) const;

  EventLoop& loop_;
  DataService& data_;
  Transport& transport_;
  RegistryMetrics& metrics_;
  Options options_;

  uint64_t next_subscriber_id_ = 1;
  uint64_t next_push_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Subscriber>> subscribers_;
  std::unordered_map<std::string, std::unordered_set<uint64_t>> by_data_info_;
  std::deque<uint64_t> ready_;
  bool drain_posted_ = false;
  bool held_ = false;
  PushPayloadCache payloads_;
  // Guards posted tasks against running after destruction.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cairn
