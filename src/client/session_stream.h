// SessionStream: one Registry.Session call, driven by the gRPC callback API.
// Internal to cairn_client.
//
// Batching: a publish or unregister that waits in the write queue behind the
// write in flight is coalesced with the publishes and unregisters queued
// right after it (up to kMaxBatchMessages of them and kMaxBatchBytes) into
// one `Batch` message when the writer gets to it, so a burst of them costs
// one gRPC message instead of one each (registry.proto, "Batch"). The order
// of messages on the stream does not change, and a lone message still goes
// out on its own. It is always on: client and server ship together, and a
// server older than the Batch message would refuse it as an unknown field
// (the requests would then time out). The server answers a batch with one
// `ResultBatch`, which reaches the observer as one message. While the
// observer handles a received message, new messages wait ("cork"): the
// answers in a ResultBatch typically release as many new requests, and
// starting the write at the first of them would send it alone and batch only
// the rest. Push acks join batches once the server has sent a ServerBatch
// (registry.proto, Hello.accepts_server_batches).
//
// Thread safety: Send(), CloseWrites() and Cancel() may be called from any
// thread, also before Start(), until the owner has seen OnStreamDone. The
// reactions run on gRPC threads and report to a StreamObserver. The write
// queue is guarded by a leaf mutex: the observer must not be called while it
// is held, and callers may hold their own locks while calling in.
//
// Ownership: the owner (ClientCore) creates the stream and deletes it, but
// only after StreamObserver::OnStreamDone returned control to it: OnDone is
// gRPC's last use of the reactor and of its ClientContext.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "cairn/registry/v1/registry.pb.h"

namespace cairn::client_internal {

namespace pb = ::cairn::registry::v1;

class SessionStream;

// Receives a stream's events. Called on gRPC threads, never with the
// stream's own lock held.
class StreamObserver {
 public:
  virtual ~StreamObserver() = default;
  // Answers to batched requests come as one `result_batch` message.
  virtual void OnStreamMessage(SessionStream* stream, pb::ServerMessage message) = 0;
  // The WritesDone requested by CloseWrites() went out.
  virtual void OnStreamDrained(SessionStream* stream) = 0;
  // The last event of the stream; after it returns the owner may delete it.
  virtual void OnStreamDone(SessionStream* stream, const grpc::Status& status) = 0;
};

class SessionStream final : public grpc::ClientBidiReactor<pb::ClientMessage, pb::ServerMessage> {
 public:
  // Bounds of one coalesced Batch. Below the server's limits (1000 messages,
  // a 4 MiB message); a single message over kMaxBatchBytes goes alone.
  static constexpr int kMaxBatchMessages = 500;
  static constexpr size_t kMaxBatchBytes = 1 << 20;

  SessionStream(StreamObserver* observer, uint64_t generation, std::string server);

  // Binds the call to `stub`, sends what Send() queued so far, starts reading.
  // Called once.
  void Start(pb::Registry::Stub* stub);

  // Queues a message; messages go out in order, one write at a time. Returns
  // false when the stream no longer writes (broken or CloseWrites called).
  bool Send(pb::ClientMessage message);

  // After the queued messages, half-closes the stream (WritesDone).
  void CloseWrites();

  // Cancels the call; OnStreamDone follows soon.
  void Cancel() { context_.TryCancel(); }

  // True while Send() would accept a message.
  bool writable() const;

  uint64_t generation() const { return generation_; }
  const std::string& server() const { return server_; }

 private:
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnWritesDoneDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

  // Starts the next write or the WritesDone if nothing is in flight.
  void StartNextLocked();
  // Replaces the queued publishes and unregisters (and push acks, see
  // BatchableLocked) at the front of the queue (two or more) by one Batch
  // holding them, in order.
  void CoalesceFrontLocked();
  // Requests the server accepts inside a Batch: publishes and unregisters,
  // and push acks once the server has shown, by sending a ServerBatch, that
  // it is new enough to take them (an older one would refuse the batch).
  bool BatchableLocked(const pb::ClientMessage& message) const;

  StreamObserver* const observer_;
  const uint64_t generation_;
  const std::string server_;
  grpc::ClientContext context_;
  pb::ServerMessage read_buffer_;  // touched only by the single outstanding read

  mutable std::mutex mu_;
  // The front element is the write in flight while writing_ (StartWrite keeps
  // a pointer to it; deque push_back does not move existing elements).
  std::deque<pb::ClientMessage> queue_;
  bool started_ = false;
  bool writing_ = false;
  bool corked_ = false;  // OnStreamMessage is running: Send only queues
  bool close_requested_ = false;
  bool writes_done_started_ = false;
  bool broken_ = false;               // a read or write failed: nothing more will be written
  bool server_batches_seen_ = false;  // a ServerBatch arrived: acks may batch
};

}  // namespace cairn::client_internal
