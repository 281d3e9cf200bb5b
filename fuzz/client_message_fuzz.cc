// Fuzz target for the registry's handling of client stream messages.
//
// The input is a sequence of length-prefixed (1 byte) protobuf encodings of
// ClientMessage, fed in order to a real SessionServer over one fake stream,
// with the real data role behind it, wrapped by application-level discovery
// (so register_revision and app-instance publishes reach the real index). Whatever the bytes, the
// server must not crash, must answer every request that carries an id, and must release the read
// window once per message. A batch (registry.proto: 1..1000 publishes, unregisters and push
// acks) is answered by one ResultBatch with a Result per inner publish or unregister that has an
// id, and none of its own; a refused batch by one Result for its own id. The seeds come from
// make_client_message_seeds.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "registry/app/app_discovery.h"
#include "registry/data/local_data_server.h"
#include "registry/session/session_server.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

class CountingStream : public cairn::ClientStream {
 public:
  bool Send(cairn::pb::ServerMessage&& message, bool) override {
    if (message.has_result()) ++results;
    if (message.has_result_batch()) {
      ++batches;
      results += message.result_batch().results_size();
    }
    return true;
  }
  void Close(const absl::Status&) override {}
  void MessageHandled() override { ++handled; }
  int results = 0;
  int batches = 0;
  int handled = 0;
};

// The Results a well-formed batch `message` is owed under the documented
// rules, or -1 if the batch must be refused as a whole.
int BatchAnswers(const cairn::pb::ClientMessage& message) {
  const auto& inner = message.batch().messages();
  if (inner.empty() || inner.size() > 1000) return -1;
  int answers = 0;
  for (const cairn::pb::ClientMessage& m : inner) {
    if (!m.has_publish() && !m.has_unregister() && !m.has_push_ack()) return -1;
    // A push_ack is never answered, with or without an id.
    answers += m.request_id() != 0 && !m.has_push_ack() ? 1 : 0;
  }
  return answers;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Invalid UTF-8 in string fields makes protobuf log each refusal: noise here.
  static bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  static cairn::RegistryMetrics* metrics = new cairn::RegistryMetrics();
  cairn::EventLoop loop("fuzz");
  cairn::LocalDataServer data_server(8, *cairn::VersionClock::Open(nullptr));
  cairn::SessionOptions options;
  options.max_registrations_per_client = 16;
  auto apps = *cairn::AppDiscovery::Create(loop, data_server, nullptr, {});
  cairn::SessionServer session(loop, *apps, *metrics, options);
  session.SetRevisionService(apps.get());
  auto stream = std::make_shared<CountingStream>();
  auto other = std::make_shared<CountingStream>();
  uint64_t conn = session.OnConnect("ipv4:127.0.0.1:1", stream);
  session.OnConnect("ipv4:127.0.0.1:2", other);

  int messages = 0;
  int expected_results = 0;
  int expected_batches = 0;
  size_t pos = 0;
  while (pos < size) {
    size_t len = data[pos++];
    if (len > size - pos) len = size - pos;
    cairn::pb::ClientMessage message;
    if (message.ParseFromArray(data + pos, static_cast<int>(len))) {
      ++messages;
      // A request with an id is answered by a Result, except pings (answered
      // by a Pong) and acks (never answered) - unless they are malformed.
      bool malformed = !cairn::RejectUnknownFields(message).ok();
      bool quiet_kind =
          message.body_case() == message.kPushAck || message.body_case() == message.kPing;
      bool answers = message.request_id() != 0 && (!quiet_kind || malformed);
      int batch_answers = message.has_batch() && !malformed ? BatchAnswers(message) : -1;
      if (batch_answers >= 0) {
        expected_results += batch_answers;
        expected_batches += batch_answers > 0 ? 1 : 0;
      } else {
        expected_results += answers ? 1 : 0;
      }
      session.OnMessage(conn, std::move(message));
      loop.PollForTest();
    }
    pos += len;
  }
  Check(stream->handled == messages);
  Check(stream->results == expected_results);
  Check(stream->batches == expected_batches);
  session.OnDisconnect(conn, "fuzz done");
  loop.PollForTest();
  Check(session.publisher_count() == 0);
  return 0;
}
