// ClientStream: the server's side of one client's Session stream, as the
// session role sees it. The gRPC reactor implements it; tests use fakes.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include "absl/status/status.h"
#include "common/data_info.h"
#include "registry/session/push_payload.h"

namespace cairn {

class ClientStream {
 public:
  virtual ~ClientStream() = default;

  // Queues a message to the client. A droppable message (a push) is refused
  // with false when the outbound queue is over its bound, i.e. the client is
  // not reading; the push engine retries it later. Answers to requests are
  // never dropped: their number is bounded because reading pauses while the
  // outbound queue is over its bound. Returns false once the stream is closed.
  virtual bool Send(pb::ServerMessage&& message, bool droppable) = 0;

  // Queues an already encoded push (droppable, like Send with droppable =
  // true). The gRPC stream writes the bytes as they are, sharing the body
  // with other streams; this default decodes them for streams that only
  // know messages (test fakes).
  virtual bool SendPush(EncodedPush&& push) {
    pb::ServerMessage message;
    if (!message.ParseFromString(push.Flatten())) return false;
    return Send(std::move(message), /*droppable=*/true);
  }

  // Whether the client reads ServerMessage.batch (what its latest Hello
  // said): while on, messages that queue while a write is on the wire may
  // leave together as one batch. Streams that cannot batch ignore it.
  virtual void SetServerBatches(bool /*on*/) {}

  // Ends the stream with this status. Idempotent.
  virtual void Close(const absl::Status& status) = 0;

  // The session finished handling one message received from this stream:
  // lets the stream read the next one (flow control against floods).
  virtual void MessageHandled() = 0;
};

}  // namespace cairn
