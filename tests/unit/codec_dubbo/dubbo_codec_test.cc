// Dubbo 2 codec: golden frames written out byte by byte (hessian2 bodies as a
// Java Dubbo 2.7 consumer sends them), fragmentation, pipelining, malformed
// input and limits, bodies we cannot read (forwarded, no service), UTF-8 in
// hessian2 strings, the request id rewrite and the frames the sidecar writes.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sidecar/codec/dubbo/dubbo_codec.h"
#include "sidecar/codec/dubbo/dubbo_frame.h"

namespace cairn::sidecar::dubbo {
namespace {

using namespace std::string_literals;

// A two-way hessian2 request: DemoService.sayHello("world") with attachments.
constexpr uint8_t kGoldenRequest[] = {
    0xda, 0xbb, 0xc2, 0x00,                          // magic, request|two-way|hessian2, status
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // request id
    0x00, 0x00, 0x00, 0x96,                          // body length 150
    // "2.0.2"
    0x05, 0x32, 0x2e, 0x30, 0x2e, 0x32,
    // "org.apache.dubbo.demo.DemoService" (33 units: medium form)
    0x30, 0x21, 0x6f, 0x72, 0x67, 0x2e, 0x61, 0x70, 0x61, 0x63, 0x68, 0x65, 0x2e, 0x64, 0x75, 0x62,
    0x62, 0x6f, 0x2e, 0x64, 0x65, 0x6d, 0x6f, 0x2e, 0x44, 0x65, 0x6d, 0x6f, 0x53, 0x65, 0x72, 0x76,
    0x69, 0x63, 0x65,
    // "1.0.0"
    0x05, 0x31, 0x2e, 0x30, 0x2e, 0x30,
    // "sayHello"
    0x08, 0x73, 0x61, 0x79, 0x48, 0x65, 0x6c, 0x6c, 0x6f,
    // "Ljava/lang/String;"
    0x12, 0x4c, 0x6a, 0x61, 0x76, 0x61, 0x2f, 0x6c, 0x61, 0x6e, 0x67, 0x2f, 0x53, 0x74, 0x72, 0x69,
    0x6e, 0x67, 0x3b,
    // argument "world"
    0x05, 0x77, 0x6f, 0x72, 0x6c, 0x64,
    // attachments: 'H' (untyped map)
    0x48,
    // "path" -> "org.apache.dubbo.demo.DemoService"
    0x04, 0x70, 0x61, 0x74, 0x68, 0x30, 0x21, 0x6f, 0x72, 0x67, 0x2e, 0x61, 0x70, 0x61, 0x63, 0x68,
    0x65, 0x2e, 0x64, 0x75, 0x62, 0x62, 0x6f, 0x2e, 0x64, 0x65, 0x6d, 0x6f, 0x2e, 0x44, 0x65, 0x6d,
    0x6f, 0x53, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65,
    // "timeout" -> "3000"
    0x07, 0x74, 0x69, 0x6d, 0x65, 0x6f, 0x75, 0x74, 0x04, 0x33, 0x30, 0x30, 0x30,
    // "version" -> "1.0.0"
    0x07, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x05, 0x31, 0x2e, 0x30, 0x2e, 0x30,
    // 'Z' (end of map)
    0x5a};

// A heartbeat: request|two-way|event|hessian2, body 'N'.
constexpr uint8_t kGoldenHeartbeat[] = {
    0xda, 0xbb, 0xe2, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
    0x66, 0x77, 0x88, 0x00, 0x00, 0x00, 0x01, 0x4e,
};

// An OK response: int 4 (value with attachments), "Hello world", {"dubbo": "2.0.2"}.
constexpr uint8_t kGoldenOkResponse[] = {
    0xda, 0xbb, 0x02, 0x14,                          // magic, response|hessian2, OK (20)
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // request id
    0x00, 0x00, 0x00, 0x1b,                          // body length 27
    0x94,                                            // int 4
    0x0b, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x77, 0x6f, 0x72, 0x6c, 0x64,  // "Hello world"
    0x48, 0x05, 0x64, 0x75, 0x62, 0x62, 0x6f,                                // 'H' "dubbo"
    0x05, 0x32, 0x2e, 0x30, 0x2e, 0x32, 0x5a,                                // "2.0.2" 'Z'
};

// SERVICE_NOT_FOUND (60) with the message "No provider for org.x.Foo".
constexpr uint8_t kGoldenErrorResponse[] = {
    0xda, 0xbb, 0x02, 0x3c,                          // magic, response|hessian2, 60
    0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11,  // request id
    0x00, 0x00, 0x00, 0x1a,                          // body length 26
    0x19, 0x4e, 0x6f, 0x20, 0x70, 0x72, 0x6f, 0x76, 0x69, 0x64, 0x65, 0x72, 0x20,
    0x66, 0x6f, 0x72, 0x20, 0x6f, 0x72, 0x67, 0x2e, 0x78, 0x2e, 0x46, 0x6f, 0x6f,
};

template <size_t N>
std::string Str(const uint8_t (&bytes)[N]) {
  return std::string(reinterpret_cast<const char*>(bytes), N);
}

// A header built by hand (not by EncodeFrame, which is under test).
std::string Header(uint8_t flag, uint8_t status, uint64_t id, uint32_t body_length) {
  std::string h = "\xda\xbb"s;
  h.push_back(static_cast<char>(flag));
  h.push_back(static_cast<char>(status));
  for (int shift = 56; shift >= 0; shift -= 8) h.push_back(static_cast<char>(id >> shift));
  for (int shift = 24; shift >= 0; shift -= 8) h.push_back(static_cast<char>(body_length >> shift));
  return h;
}

std::string Frame(uint8_t flag, uint64_t id, const std::string& body) {
  return Header(flag, 0, id, static_cast<uint32_t>(body.size())) + body;
}

// A short hessian2 string of ASCII text (under 32 bytes).
std::string Short(std::string_view ascii) {
  return std::string(1, static_cast<char>(ascii.size())) + std::string(ascii);
}

// Everything the path sees of a message, owned.
struct Msg {
  RpcKind kind;
  uint64_t id;
  std::string service, method;
  int64_t timeout_ms;
  uint32_t status;
  uint64_t framing;
  std::string raw;
  bool operator==(const Msg&) const = default;
};

Msg Own(const RpcMessage& m) {
  return Msg{m.kind,   m.request_id, std::string(m.service), std::string(m.method), m.timeout_ms,
             m.status, m.framing,    std::string(m.raw)};
}

struct Result {
  std::vector<Msg> messages;
  absl::Status status;
  size_t buffered = 0;
};

// Decodes `input` fed in pieces ending at `cuts` (then the rest).
Result Decode(std::string_view input, const std::vector<size_t>& cuts = {},
              const RpcLimits& limits = RpcLimits{}) {
  std::unique_ptr<RpcDecoder> decoder = DubboCodec().NewDecoder(limits);
  Result result;
  size_t at = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  for (size_t end : ends) {
    std::string_view piece = input.substr(at, end - at);
    at = end;
    while (result.status.ok()) {
      absl::StatusOr<const RpcMessage*> next = decoder->Next(piece);
      if (!next.ok()) {
        result.status = next.status();
        break;
      }
      if (*next == nullptr) break;
      result.messages.push_back(Own(**next));
    }
  }
  result.buffered = decoder->buffered_bytes();
  return result;
}

Msg DecodeOne(std::string_view input) {
  Result r = Decode(input);
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.buffered, 0u);
  return r.messages.empty() ? Msg{} : r.messages[0];
}

TEST(DubboCodecTest, Identity) {
  const RpcCodec& codec = DubboCodec();
  EXPECT_EQ(&codec, &DubboCodec());
  EXPECT_EQ(codec.name(), "dubbo");
  EXPECT_EQ(codec.log_tag(), "DUBBO");
  EXPECT_TRUE(codec.MatchesFirstByte(0xda));
  for (int b : {0x00, 0x01, 0x02, 0xbb, int{'G'}, int{'P'}, int{'d'}, 0xdb}) {
    EXPECT_FALSE(codec.MatchesFirstByte(static_cast<uint8_t>(b))) << b;
  }
}

TEST(DubboCodecTest, DecodesGoldenRequestInPlace) {
  const std::string in = Str(kGoldenRequest);
  std::unique_ptr<RpcDecoder> decoder = DubboCodec().NewDecoder(RpcLimits{});
  std::string_view input = in;
  absl::StatusOr<const RpcMessage*> next = decoder->Next(input);
  ASSERT_TRUE(next.ok() && *next != nullptr);
  const RpcMessage& m = **next;
  EXPECT_EQ(m.kind, RpcKind::kRequest);
  EXPECT_TRUE(m.two_way());
  EXPECT_EQ(m.request_id, 0x0102030405060708u);
  EXPECT_EQ(m.service, "org.apache.dubbo.demo.DemoService");
  EXPECT_EQ(m.method, "sayHello");
  EXPECT_EQ(m.timeout_ms, 0);
  EXPECT_EQ(m.status, 0u);
  EXPECT_EQ(m.framing, 2u);
  EXPECT_EQ(m.raw.size(), 166u);
  // No copy: the views point into the input.
  EXPECT_EQ(m.raw.data(), in.data());
  EXPECT_EQ(m.service.data(), in.data() + 16 + 6 + 2);
  EXPECT_TRUE(input.empty());
}

TEST(DubboFrameTest, GoldenRequestHead) {
  const std::string in = Str(kGoldenRequest);
  DubboDecoder decoder;
  std::string_view input = in;
  absl::StatusOr<const DubboFrameView*> next = decoder.Next(input);
  ASSERT_TRUE(next.ok() && *next != nullptr);
  const DubboFrameView& f = **next;
  EXPECT_TRUE(f.is_request());
  EXPECT_TRUE(f.is_two_way());
  EXPECT_FALSE(f.is_event());
  EXPECT_EQ(f.serialization(), kSerializationHessian2);
  EXPECT_EQ(f.body.size(), 150u);
  ASSERT_TRUE(f.has_head);
  EXPECT_EQ(f.head.dubbo_version, "2.0.2");
  EXPECT_EQ(f.head.service_path, "org.apache.dubbo.demo.DemoService");
  EXPECT_EQ(f.head.service_version, "1.0.0");
  EXPECT_EQ(f.head.method, "sayHello");
}

TEST(DubboCodecTest, DecodesGoldenHeartbeat) {
  const Msg m = DecodeOne(Str(kGoldenHeartbeat));
  EXPECT_EQ(m.kind, RpcKind::kHeartbeat);
  EXPECT_EQ(m.id, 0x1122334455667788u);
  EXPECT_EQ(m.service, "");
  EXPECT_EQ(m.framing, 2u);
  EXPECT_EQ(m.raw.size(), 17u);
}

TEST(DubboCodecTest, EmptyBodyHeartbeat) {
  const Msg m = DecodeOne(Header(0xe2, 0, 9, 0));
  EXPECT_EQ(m.kind, RpcKind::kHeartbeat);
  EXPECT_EQ(m.id, 9u);
  EXPECT_EQ(m.raw.size(), 16u);
}

TEST(DubboCodecTest, DecodesGoldenResponses) {
  const Msg ok = DecodeOne(Str(kGoldenOkResponse));
  EXPECT_EQ(ok.kind, RpcKind::kResponse);
  EXPECT_EQ(ok.id, 0x0102030405060708u);
  EXPECT_EQ(ok.status, 20u);
  EXPECT_EQ(ok.service, "");
  EXPECT_EQ(ok.framing, 2u);
  EXPECT_EQ(ok.raw.size(), 43u);

  const Msg error = DecodeOne(Str(kGoldenErrorResponse));
  EXPECT_EQ(error.kind, RpcKind::kResponse);
  EXPECT_EQ(error.id, 0x0a0b0c0d0e0f1011u);
  EXPECT_EQ(error.status, 60u);
  EXPECT_EQ(error.raw.size(), 42u);
  const std::string_view body = std::string_view(error.raw).substr(16);
  size_t pos = 0;
  std::string_view message;
  ASSERT_TRUE(ReadHessian2String(body, pos, message));
  EXPECT_EQ(message, "No provider for org.x.Foo");
  EXPECT_EQ(pos, body.size());
}

TEST(DubboCodecTest, KindsFromFlags) {
  const std::string body = Short("2.0.2") + Short("a.B") + Short("") + Short("m") + Short("V");
  // Oneway: request without two-way; the head is still read.
  const Msg oneway = DecodeOne(Frame(0x82, 1, body));
  EXPECT_EQ(oneway.kind, RpcKind::kOneway);
  EXPECT_EQ(oneway.service, "a.B");
  EXPECT_EQ(oneway.method, "m");
  // A oneway event (the READONLY notice of a provider going down).
  const Msg oneway_event = DecodeOne(Frame(0xa2, 2, "\x01R"s));
  EXPECT_EQ(oneway_event.kind, RpcKind::kGoingAway);
  EXPECT_EQ(oneway_event.service, "");
  // A response with the event bit: a heartbeat ack.
  const Msg ack = DecodeOne(Header(0x22, 20, 3, 1) + "N");
  EXPECT_EQ(ack.kind, RpcKind::kHeartbeatAck);
  EXPECT_EQ(ack.status, 20u);
  // Request status bytes are not reported.
  const Msg request = DecodeOne(Header(0xc2, 77, 4, static_cast<uint32_t>(body.size())) + body);
  EXPECT_EQ(request.kind, RpcKind::kRequest);
  EXPECT_EQ(request.status, 0u);
}

TEST(DubboCodecTest, NullVersionStringsAreEmpty) {
  const std::string body = "N"s + Short("a.B") + "N" + Short("m");
  const Msg m = DecodeOne(Frame(0xc2, 1, body));
  EXPECT_EQ(m.service, "a.B");
  EXPECT_EQ(m.method, "m");
}

TEST(DubboCodecTest, SplitAtEveryByteGivesSameMessages) {
  for (const std::string& frame : {Str(kGoldenRequest), Str(kGoldenHeartbeat),
                                   Str(kGoldenOkResponse), Str(kGoldenErrorResponse)}) {
    const Result whole = Decode(frame);
    ASSERT_EQ(whole.messages.size(), 1u);
    for (size_t cut = 1; cut < frame.size(); ++cut) {
      const Result split = Decode(frame, {cut});
      ASSERT_TRUE(split.status.ok()) << cut;
      EXPECT_EQ(split.messages, whole.messages) << "cut at " << cut;
    }
    std::vector<size_t> every;
    for (size_t cut = 1; cut < frame.size(); ++cut) every.push_back(cut);
    EXPECT_EQ(Decode(frame, every).messages, whole.messages);
  }
}

TEST(DubboCodecTest, BuffersIncompleteFrames) {
  const std::string frame = Str(kGoldenRequest);
  for (size_t cut : {1, 15, 16, 100, 165}) {
    const Result r = Decode(frame.substr(0, cut));
    EXPECT_TRUE(r.status.ok());
    EXPECT_TRUE(r.messages.empty());
    EXPECT_EQ(r.buffered, cut);
  }
}

TEST(DubboCodecTest, BackToBackFrames) {
  const std::string input = Str(kGoldenRequest) + Str(kGoldenHeartbeat) + Str(kGoldenOkResponse) +
                            Str(kGoldenErrorResponse);
  const Result r = Decode(input);
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].kind, RpcKind::kRequest);
  EXPECT_EQ(r.messages[1].kind, RpcKind::kHeartbeat);
  EXPECT_EQ(r.messages[2].status, 20u);
  EXPECT_EQ(r.messages[3].status, 60u);
  EXPECT_EQ(r.messages[3].raw, Str(kGoldenErrorResponse));
  EXPECT_EQ(r.buffered, 0u);
  // Cut in the middle of the second and the fourth frames.
  EXPECT_EQ(Decode(input, {170, 166 + 17 + 43 + 20}).messages, r.messages);
}

TEST(DubboCodecTest, FrameOverLimitFailsBeforeTheBody) {
  RpcLimits limits;
  limits.max_frame_bytes = 100;
  // The header alone (body length 200) is enough to refuse.
  const Result r = Decode(Header(0xc2, 0, 1, 200), {}, limits);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(r.status.message().find("216"), std::string_view::npos) << r.status;
  // Split header: same.
  EXPECT_EQ(Decode(Header(0xc2, 0, 1, 200), {5, 15}, limits).status, r.status);
  // Exactly at the limit is fine.
  EXPECT_TRUE(Decode(Header(0xc2, 0, 1, 84) + std::string(84, 'x'), {}, limits).status.ok());
  EXPECT_EQ(Decode(Header(0xc2, 0, 1, 85), {}, limits).status.code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(DubboCodecTest, BadMagicIsInvalidAndSticky) {
  for (const std::string& bad : {"\xdb"s, "\xda\xbc"s, "GET / HTTP/1.1\r\n"s}) {
    std::unique_ptr<RpcDecoder> decoder = DubboCodec().NewDecoder(RpcLimits{});
    std::string_view input = bad;
    absl::StatusOr<const RpcMessage*> first = decoder->Next(input);
    ASSERT_FALSE(first.ok());
    EXPECT_EQ(first.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(first.status().message().find("magic"), std::string_view::npos);
    const std::string good = Str(kGoldenHeartbeat);
    std::string_view more = good;
    EXPECT_EQ(decoder->Next(more).status(), first.status());
    EXPECT_EQ(more.size(), good.size());
  }
  // A bad magic after a good frame, split: byte 1 is checked when it arrives.
  const std::string input = Str(kGoldenHeartbeat) + "\xda\x00"s;
  const Result r = Decode(input, {18});
  EXPECT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(DubboCodecTest, NegativeBodyLengthIsInvalid) {
  const Result r = Decode(Header(0xc2, 0, 1, 0x80000000u));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status.message().find("negative"), std::string_view::npos) << r.status;
  EXPECT_EQ(Decode(Header(0x02, 20, 1, 0xffffffffu), {7}).status.code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DubboCodecTest, UnreadableBodiesAreForwardedWithoutService) {
  const std::string tail = Short("m") + Short("V");
  const std::vector<std::string> bodies = {
      // The service path as a non-final 'R' chunk and a final one.
      Short("2.0.2") + "R\x00\x02"s + "a." + "\x01" + "B" + Short("") + tail,
      // Not a string at all (an int).
      Short("2.0.2") + "\x94" + Short("") + tail,
      // Garbage and an empty body.
      "\xff\xfe\xfd"s,
      ""s,
      // Invalid UTF-8 (a lone continuation byte).
      Short("2.0.2") + "\x03" + "a\x80" + "b" + Short("") + tail,
      // Only three strings.
      Short("2.0.2") + Short("a.B") + Short(""),
  };
  for (const std::string& body : bodies) {
    const Msg m = DecodeOne(Frame(0xc2, 5, body));
    EXPECT_EQ(m.kind, RpcKind::kRequest);
    EXPECT_EQ(m.id, 5u);
    EXPECT_EQ(m.service, "");
    EXPECT_EQ(m.method, "");
    EXPECT_EQ(m.raw.size(), 16 + body.size());
  }
  // Good hessian2 strings under another serialization (6): not read.
  const std::string good = Short("2.0.2") + Short("a.B") + Short("") + tail;
  ASSERT_EQ(DecodeOne(Frame(0xc2, 5, good)).service, "a.B");
  const Msg other = DecodeOne(Frame(0xc6, 5, good));
  EXPECT_EQ(other.service, "");
  EXPECT_EQ(other.framing, 6u);
}

TEST(DubboCodecTest, StringsNeverReadPastTheBody) {
  // The method string claims 4 units, the body holds 2 of them; the next
  // frame's bytes would complete it, but they are not this body's.
  const std::string body = Short("2.0.2") + Short("a.B") + Short("") + "\x04" + "ab";
  const std::string input = Frame(0xc2, 1, body) + "cd" + Str(kGoldenHeartbeat);
  // ("cd" would be a bad magic: decode the first frame only.)
  std::unique_ptr<RpcDecoder> decoder = DubboCodec().NewDecoder(RpcLimits{});
  std::string_view view = input;
  absl::StatusOr<const RpcMessage*> next = decoder->Next(view);
  ASSERT_TRUE(next.ok() && *next != nullptr);
  EXPECT_EQ((*next)->service, "");
  EXPECT_EQ((*next)->method, "");
  // Medium and 'S' lengths cut after their tag.
  for (const std::string& cut : {"\x30"s, "S\x00"s, "S"s}) {
    size_t pos = 0;
    std::string_view out;
    EXPECT_FALSE(ReadHessian2String(cut, pos, out));
    EXPECT_EQ(pos, 0u);
  }
}

TEST(DubboCodecTest, Utf8LengthsCountUtf16Units) {
  // "com.é.Svc": 9 units, 10 bytes.
  const std::string service =
      "\x09"
      "com.\xc3\xa9.Svc";
  // "hi😀": 4 units (the emoji is a surrogate pair), 6 bytes.
  const std::string method =
      "\x04"
      "hi\xf0\x9f\x98\x80";
  const std::string body = Short("2.0.2") + service + Short("1.0") + method + Short("V");
  const Msg m = DecodeOne(Frame(0xc2, 1, body));
  EXPECT_EQ(m.service, "com.\xc3\xa9.Svc");
  EXPECT_EQ(m.method, "hi\xf0\x9f\x98\x80");
  // Java's encoder writes the pair as two 3-byte sequences: still 4 units.
  const std::string java_method =
      "\x04"
      "hi\xed\xa0\xbd\xed\xb8\x80";
  const Msg java = DecodeOne(Frame(0xc2, 1, Short("2.0.2") + service + Short("1.0") + java_method));
  EXPECT_EQ(java.method, "hi\xed\xa0\xbd\xed\xb8\x80");
  // A length in bytes instead of units (10): the walk takes ".Svc" plus the
  // next string's tag byte as text, and the head no longer parses.
  const std::string by_bytes =
      "\x0a"
      "com.\xc3\xa9.Svc";
  EXPECT_EQ(DecodeOne(Frame(0xc2, 1, Short("2.0.2") + by_bytes + Short("1.0") + method)).service,
            "");
  // 3 units cannot end in the middle of the emoji's pair.
  const std::string half =
      "\x03"
      "hi\xf0\x9f\x98\x80";
  EXPECT_EQ(DecodeOne(Frame(0xc2, 1, Short("2.0.2") + service + Short("1.0") + half)).method, "");
}

TEST(DubboCodecTest, RewriteRequestIdRoundTrip) {
  const std::string original = Str(kGoldenRequest);
  std::string frame = original;
  const uint64_t new_id = 0x7fffffffffffff01ull;
  ASSERT_TRUE(DubboCodec().RewriteRequestId(std::span<char>(frame), new_id).ok());
  EXPECT_EQ(frame.substr(4, 8), "\x7f\xff\xff\xff\xff\xff\xff\x01"s);
  EXPECT_EQ(frame.substr(0, 4), original.substr(0, 4));
  EXPECT_EQ(frame.substr(12), original.substr(12));
  Msg expected = DecodeOne(original);
  expected.id = new_id;
  expected.raw = frame;
  EXPECT_EQ(DecodeOne(frame), expected);
  ASSERT_TRUE(RewriteRequestId(frame, 0x0102030405060708u).ok());
  EXPECT_EQ(frame, original);
}

TEST(DubboCodecTest, RewriteRequestIdRefusesNonFrames) {
  for (std::string bad : {Str(kGoldenRequest).substr(0, 15), Str(kGoldenRequest).substr(0, 100),
                          Str(kGoldenRequest) + "x", "\xdb"s + Str(kGoldenRequest).substr(1)}) {
    const std::string before = bad;
    const absl::Status s = DubboCodec().RewriteRequestId(std::span<char>(bad), 42);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_EQ(bad, before);
  }
}

TEST(DubboCodecTest, EncodeErrorShortMessageBytes) {
  std::string out = "prefix";
  DubboCodec().EncodeError(2, 7, RpcError::kNoRoute, "no route", out);
  const std::string expected =
      "prefix"
      "\xda\xbb\x02\x3c"                  // magic, response|hessian2, SERVICE_NOT_FOUND
      "\x00\x00\x00\x00\x00\x00\x00\x07"  // id
      "\x00\x00\x00\x09"                  // body length
      "\x08no route"s;
  EXPECT_EQ(out, expected);
}

TEST(DubboCodecTest, EncodeErrorKeepsSerializationDefaultsToHessian2) {
  std::string out;
  DubboCodec().EncodeError(0, 1, RpcError::kTimeout, "", out);
  EXPECT_EQ(out, "\xda\xbb\x02\x1f\0\0\0\0\0\0\0\x01\0\0\0\x01\x00"s);
  out.clear();
  DubboCodec().EncodeError(6, 1, RpcError::kTimeout, "t", out);
  EXPECT_EQ(out.substr(2, 2), "\x06\x1f"s);
}

// The body of an error frame, which must be a frame by itself.
std::string ErrorBody(std::string_view message) {
  std::string out;
  DubboCodec().EncodeError(2, 1, RpcError::kUpstreamFailure, message, out);
  EXPECT_EQ(Decode(out).messages.size(), 1u);
  return out.substr(16);
}

TEST(DubboCodecTest, EncodeErrorStringForms) {
  EXPECT_EQ(ErrorBody(std::string(31, 'a')), "\x1f"s + std::string(31, 'a'));
  EXPECT_EQ(ErrorBody(std::string(32, 'a')), "\x30\x20"s + std::string(32, 'a'));
  EXPECT_EQ(ErrorBody(std::string(500, 'b')), "\x31\xf4"s + std::string(500, 'b'));
  EXPECT_EQ(ErrorBody(std::string(1023, 'c')), "\x33\xff"s + std::string(1023, 'c'));
  EXPECT_EQ(ErrorBody(std::string(1024, 'd')), "S\x04\x00"s + std::string(1024, 'd'));
  EXPECT_EQ(ErrorBody(std::string(2000, 'e')), "S\x07\xd0"s + std::string(2000, 'e'));
  // Each form reads back.
  for (size_t n : {0, 31, 32, 1023, 1024, 4096}) {
    const std::string body = ErrorBody(std::string(n, 'f'));
    size_t pos = 0;
    std::string_view text;
    ASSERT_TRUE(ReadHessian2String(body, pos, text)) << n;
    EXPECT_EQ(text, std::string(n, 'f'));
    EXPECT_EQ(pos, body.size());
  }
}

TEST(DubboCodecTest, EncodeErrorReplacesNonPrintable) {
  EXPECT_EQ(ErrorBody("a\x01\xc3\xa9\x7f~ z\n"),
            "\x09"
            "a????~ z?"s);
}

TEST(DubboCodecTest, EncodeErrorCutsAt4KiB) {
  std::string out;
  DubboCodec().EncodeError(2, 1, RpcError::kCodecError, std::string(5000, 'x'), out);
  ASSERT_EQ(out.size(), 16u + 3 + 4096);
  EXPECT_EQ(out.substr(12, 4), "\x00\x00\x10\x03"s);
  EXPECT_EQ(out.substr(16, 3), "S\x10\x00"s);
  EXPECT_EQ(out.substr(19), std::string(4096, 'x'));
}

TEST(DubboCodecTest, AsciiStringChunksAbove65535) {
  std::string out;
  AppendHessian2AsciiString(std::string(65536, 'z'), out);
  EXPECT_EQ(out.substr(0, 3), "R\xff\xff"s);
  EXPECT_EQ(out.substr(3 + 65535), "\x01z"s);
  size_t pos = 0;
  std::string_view text;
  EXPECT_FALSE(ReadHessian2String(out, pos, text));  // chunked: not read as a view
}

TEST(DubboCodecTest, EncodeHeartbeatBytes) {
  std::string out;
  DubboCodec().EncodeHeartbeat(0x0102030405060708u, out);
  EXPECT_EQ(out, "\xda\xbb\xe2\x00\x01\x02\x03\x04\x05\x06\x07\x08\x00\x00\x00\x01N"s);
  const Msg m = DecodeOne(out);
  EXPECT_EQ(m.kind, RpcKind::kHeartbeat);
}

TEST(DubboCodecTest, EncodeHeartbeatAckBytes) {
  const std::string hb = Str(kGoldenHeartbeat);
  std::unique_ptr<RpcDecoder> decoder = DubboCodec().NewDecoder(RpcLimits{});
  std::string_view input = hb;
  absl::StatusOr<const RpcMessage*> next = decoder->Next(input);
  ASSERT_TRUE(next.ok() && *next != nullptr);
  std::string out;
  DubboCodec().EncodeHeartbeatAck(**next, out);
  EXPECT_EQ(out, "\xda\xbb\x22\x14\x11\x22\x33\x44\x55\x66\x77\x88\x00\x00\x00\x01N"s);
  EXPECT_EQ(DecodeOne(out).kind, RpcKind::kHeartbeatAck);

  // Another serialization (6): its own null, as the heartbeat carried it.
  const std::string other = Frame(0xe6, 3, "null");
  std::string_view other_input = other;
  std::unique_ptr<RpcDecoder> other_decoder = DubboCodec().NewDecoder(RpcLimits{});
  next = other_decoder->Next(other_input);
  ASSERT_TRUE(next.ok() && *next != nullptr);
  out.clear();
  DubboCodec().EncodeHeartbeatAck(**next, out);
  EXPECT_EQ(out, Header(0x26, 20, 3, 4) + "null");
}

TEST(DubboCodecTest, ErrorStatusMapping) {
  const RpcCodec& codec = DubboCodec();
  EXPECT_EQ(codec.ErrorStatus(RpcError::kNoRoute), 60u);
  EXPECT_EQ(codec.ErrorStatus(RpcError::kOverflow), 100u);
  EXPECT_EQ(codec.ErrorStatus(RpcError::kTimeout), 31u);
  EXPECT_EQ(codec.ErrorStatus(RpcError::kUpstreamFailure), 80u);
  EXPECT_EQ(codec.ErrorStatus(RpcError::kCodecError), 40u);
}

TEST(DubboCodecTest, StatusNamesAndSlots) {
  const RpcCodec& codec = DubboCodec();
  const std::vector<std::pair<uint32_t, std::string_view>> named = {
      {20, "OK"},
      {30, "CLIENT_TIMEOUT"},
      {31, "SERVER_TIMEOUT"},
      {35, "CHANNEL_INACTIVE"},
      {40, "BAD_REQUEST"},
      {50, "BAD_RESPONSE"},
      {60, "SERVICE_NOT_FOUND"},
      {70, "SERVICE_ERROR"},
      {80, "SERVER_ERROR"},
      {90, "CLIENT_ERROR"},
      {100, "SERVER_THREADPOOL_EXHAUSTED_ERROR"},
  };
  std::vector<bool> used(kRpcStatusSlots, false);
  for (const auto& [status, name] : named) {
    EXPECT_EQ(codec.StatusName(status), name);
    const size_t slot = codec.StatusSlot(status);
    ASSERT_LT(slot, kRpcStatusSlots - 1) << status;
    EXPECT_FALSE(used[slot]) << status;
    used[slot] = true;
  }
  EXPECT_EQ(codec.StatusSlot(20), 0u);
  for (uint32_t other : {0u, 21u, 99u, 255u, 276u, 0xffffffffu}) {
    EXPECT_EQ(codec.StatusName(other), "UNRECOGNIZED") << other;
    EXPECT_EQ(codec.StatusSlot(other), kRpcStatusSlots - 1) << other;
  }
}

TEST(DubboCodecTest, PeekTwoWayRequest) {
  const RpcCodec& codec = DubboCodec();
  const std::string request = Str(kGoldenRequest);
  uint64_t framing = 99;
  uint64_t id = 99;
  EXPECT_FALSE(codec.PeekTwoWayRequest(request.substr(0, 11), framing, id));
  EXPECT_EQ(id, 99u);
  ASSERT_TRUE(codec.PeekTwoWayRequest(request.substr(0, 12), framing, id));
  EXPECT_EQ(framing, 2u);
  EXPECT_EQ(id, 0x0102030405060708u);
  // A frame refused for its length still names its request.
  ASSERT_TRUE(codec.PeekTwoWayRequest(Header(0xc6, 0, 77, 0x80000000u), framing, id));
  EXPECT_EQ(framing, 6u);
  EXPECT_EQ(id, 77u);
  EXPECT_FALSE(codec.PeekTwoWayRequest(Str(kGoldenHeartbeat), framing, id));
  EXPECT_FALSE(codec.PeekTwoWayRequest(Header(0x82, 0, 1, 0), framing, id));  // oneway
  EXPECT_FALSE(codec.PeekTwoWayRequest(Str(kGoldenOkResponse), framing, id));
  std::string bad_magic = request;
  bad_magic[1] = '\x00';
  EXPECT_FALSE(codec.PeekTwoWayRequest(bad_magic, framing, id));
}

}  // namespace
}  // namespace cairn::sidecar::dubbo
