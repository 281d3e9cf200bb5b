// Bolt encoders, round trips through the decoder, and RewriteRequestId.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bolt_test_util.h"
#include "sidecar/codec/bolt/bolt_encoder.h"
#include "sidecar/codec/bolt/bolt_frame.h"

namespace cairn::sidecar::bolt {
namespace {

using test::DecodeAll;
using test::DecodeResult;
using test::OwnedFrame;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

const std::vector<BoltFraming>& AllFramings() {
  static const std::vector<BoltFraming> framings = {
      BoltFraming::V1(), BoltFraming::V1(kCodecProtobuf), BoltFraming::V2(false),
      BoltFraming::V2(true, kCodecProtobuf),
      // ver1 2 without the CRC switch: no CRC either.
      BoltFraming{BoltProtocol::kV2, 2, 0, kCodecHessian2}};
  return framings;
}

std::string Describe(const BoltFraming& f) {
  return "proto " + std::to_string(static_cast<int>(f.protocol)) + " ver1 " +
         std::to_string(f.ver1) + " switch " + std::to_string(f.switches) + " codec " +
         std::to_string(f.codec);
}

bool WantsCrc(const BoltFraming& f) {
  return f.protocol == BoltProtocol::kV2 && f.ver1 == 2 && (f.switches & kSwitchCrc) != 0;
}

void ExpectFraming(const OwnedFrame& frame, const BoltFraming& f) {
  EXPECT_EQ(frame.protocol, f.protocol);
  EXPECT_EQ(frame.codec, f.codec);
  EXPECT_EQ(frame.ver2, 1);
  EXPECT_EQ(frame.has_crc, WantsCrc(f));
  if (f.protocol == BoltProtocol::kV2) {
    EXPECT_EQ(frame.ver1, f.ver1);
    EXPECT_EQ(frame.switches, f.switches);
  }
}

OwnedFrame DecodeOne(const std::string& bytes) {
  DecodeResult r = DecodeAll(bytes);
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.frames.size(), 1u);
  if (r.frames.empty()) ADD_FAILURE() << "no frame";
  return r.frames.at(0);
}

TEST(BoltRoundTripTest, RequestsAndOneways) {
  const std::vector<BoltHeader> headers = {
      {"service", "com.example.Echo:1.0"}, {"sofa_head_method_name", "echo"}, {"empty", ""}};
  const std::string content("\x00\x01hessian-ish\xff", 14);
  for (const BoltFraming& framing : AllFramings()) {
    for (bool oneway : {false, true}) {
      SCOPED_TRACE(Describe(framing) + (oneway ? " oneway" : " request"));
      BoltRequestParams p;
      p.framing = framing;
      p.request_id = 0xFEEDBEEF;
      p.oneway = oneway;
      p.timeout_ms = 2500;
      p.class_name = "com.alipay.sofa.rpc.core.request.SofaRequest";
      p.headers = headers;
      p.content = content;
      std::string out = "prefix";
      ASSERT_TRUE(EncodeRequest(p, out).ok());
      ASSERT_EQ(out.substr(0, 6), "prefix");  // appends
      const OwnedFrame f = DecodeOne(out.substr(6));
      ExpectFraming(f, framing);
      EXPECT_EQ(f.type, oneway ? BoltType::kOneway : BoltType::kRequest);
      EXPECT_EQ(f.cmdcode, BoltCmdCode::kRequest);
      EXPECT_EQ(f.request_id, 0xFEEDBEEFu);
      EXPECT_EQ(f.timeout_ms, 2500);
      EXPECT_EQ(f.class_name, p.class_name);
      EXPECT_THAT(f.headers, ElementsAre(Pair("service", "com.example.Echo:1.0"),
                                         Pair("sofa_head_method_name", "echo"), Pair("empty", "")));
      EXPECT_EQ(f.content, p.content);
      EXPECT_EQ(f.header_bytes, framing.protocol == BoltProtocol::kV2 ? 24u : 22u);
    }
  }
}

TEST(BoltRoundTripTest, ResponsesWithEveryStatus) {
  const std::vector<BoltStatus> statuses = {BoltStatus::kSuccess,
                                            BoltStatus::kError,
                                            BoltStatus::kServerException,
                                            BoltStatus::kUnknown,
                                            BoltStatus::kServerThreadpoolBusy,
                                            BoltStatus::kErrorComm,
                                            BoltStatus::kNoProcessor,
                                            BoltStatus::kTimeout,
                                            BoltStatus::kClientSendError,
                                            BoltStatus::kCodecException,
                                            BoltStatus::kConnectionClosed,
                                            BoltStatus::kServerSerialException,
                                            BoltStatus::kServerDeserialException};
  for (const BoltFraming& framing : AllFramings()) {
    for (BoltStatus status : statuses) {
      SCOPED_TRACE(Describe(framing) + " " + std::string(BoltStatusName(status)));
      BoltResponseParams p;
      p.framing = framing;
      p.request_id = 12;
      p.status = status;
      p.class_name = "com.alipay.sofa.rpc.core.response.SofaResponse";
      p.content = "result";
      std::string out;
      ASSERT_TRUE(EncodeResponse(p, out).ok());
      const OwnedFrame f = DecodeOne(out);
      ExpectFraming(f, framing);
      EXPECT_EQ(f.type, BoltType::kResponse);
      EXPECT_EQ(f.cmdcode, BoltCmdCode::kResponse);
      EXPECT_EQ(f.status, status);
      EXPECT_EQ(f.request_id, 12u);
      EXPECT_EQ(f.class_name, p.class_name);
      EXPECT_TRUE(f.headers.empty());
      EXPECT_EQ(f.content, "result");
      EXPECT_EQ(f.header_bytes, framing.protocol == BoltProtocol::kV2 ? 22u : 20u);
    }
  }
}

TEST(BoltRoundTripTest, HeartbeatAndAck) {
  for (const BoltFraming& framing : AllFramings()) {
    SCOPED_TRACE(Describe(framing));
    std::string out;
    EncodeHeartbeat(41, out, framing);
    EncodeHeartbeatAck(41, out, framing);
    DecodeResult r = DecodeAll(out);
    ASSERT_TRUE(r.status.ok()) << r.status;
    ASSERT_EQ(r.frames.size(), 2u);
    const OwnedFrame& hb = r.frames[0];
    ExpectFraming(hb, framing);
    EXPECT_EQ(hb.type, BoltType::kRequest);
    EXPECT_EQ(hb.cmdcode, BoltCmdCode::kHeartbeat);
    EXPECT_EQ(hb.request_id, 41u);
    EXPECT_EQ(hb.timeout_ms, -1);
    EXPECT_TRUE(hb.class_name.empty() && hb.headers.empty() && hb.content.empty());
    const OwnedFrame& ack = r.frames[1];
    ExpectFraming(ack, framing);
    EXPECT_EQ(ack.type, BoltType::kResponse);
    EXPECT_EQ(ack.cmdcode, BoltCmdCode::kHeartbeat);
    EXPECT_EQ(ack.status, BoltStatus::kSuccess);
    EXPECT_EQ(ack.request_id, 41u);
  }
}

TEST(BoltEncoderTest, DefaultHeartbeatIsTheV1WireBytes) {
  std::string out;
  EncodeHeartbeat(0x0A0B0C0D, out);
  EXPECT_EQ(out, std::string("\x01\x01\x00\x00\x01\x0A\x0B\x0C\x0D\x01\xFF\xFF\xFF\xFF"
                             "\x00\x00\x00\x00\x00\x00\x00\x00",
                             22));
  out.clear();
  EncodeHeartbeatAck(7, out);
  EXPECT_EQ(out, std::string("\x01\x00\x00\x00\x01\x00\x00\x00\x07\x01\x00\x00"
                             "\x00\x00\x00\x00\x00\x00\x00\x00",
                             20));
}

TEST(BoltEncoderTest, ErrorResponseAnswersARequestInKind) {
  BoltRequestParams req;
  req.framing = BoltFraming::V2(true, kCodecProtobuf);
  req.request_id = 99;
  std::string wire;
  ASSERT_TRUE(EncodeRequest(req, wire).ok());
  BoltDecoder decoder;
  std::string_view input = wire;
  absl::StatusOr<const BoltFrameView*> request = decoder.Next(input);
  ASSERT_TRUE(request.ok() && *request != nullptr);

  std::string out;
  EncodeErrorResponse(FramingOf(**request), (*request)->request_id, BoltStatus::kNoProcessor,
                      "no route for com.example.Echo:1.0", out);
  const OwnedFrame f = DecodeOne(out);
  EXPECT_EQ(f.protocol, BoltProtocol::kV2);
  EXPECT_TRUE(f.has_crc);
  EXPECT_EQ(f.codec, kCodecProtobuf);
  EXPECT_EQ(f.type, BoltType::kResponse);
  EXPECT_EQ(f.cmdcode, BoltCmdCode::kResponse);
  EXPECT_EQ(f.request_id, 99u);
  EXPECT_EQ(f.status, BoltStatus::kNoProcessor);
  EXPECT_EQ(f.class_name, kErrorClassName);
  EXPECT_EQ(f.content, "no route for com.example.Echo:1.0");
}

TEST(BoltEncoderTest, ErrorMessageIsCutOnAUtf8Boundary) {
  // 4095 ASCII bytes then a 3-byte character straddling the 4096 cut.
  const std::string message = std::string(4095, 'a') + "\xE2\x82\xAC" + "tail";
  std::string out;
  EncodeErrorResponse(BoltFraming::V1(), 1, BoltStatus::kTimeout, message, out);
  const OwnedFrame f = DecodeOne(out);
  EXPECT_EQ(f.content, std::string(4095, 'a'));
  EXPECT_EQ(f.status, BoltStatus::kTimeout);
}

TEST(BoltEncoderTest, FieldsThatDoNotFitAreRefusedAndNothingIsAppended) {
  std::string out = "keep";
  const std::string long_class(65536, 'c');
  BoltRequestParams p;
  p.class_name = long_class;
  absl::Status s = EncodeRequest(p, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("classLen"));
  EXPECT_EQ(out, "keep");

  p.class_name = std::string_view(long_class).substr(0, 65535);
  EXPECT_TRUE(EncodeRequest(p, out).ok());  // the largest that fits

  const std::string big(40000, 'v');
  const std::vector<BoltHeader> headers = {{"a", big}, {"b", big}};
  BoltResponseParams r;
  r.headers = headers;
  out = "keep";
  s = EncodeResponse(r, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("headerLen"));
  EXPECT_EQ(out, "keep");
}

// ---------------------------------------------------------------- rewrite

std::string SampleRequest(const BoltFraming& framing, size_t content_bytes = 10) {
  const std::vector<BoltHeader> headers = {{"service", "s:1.0"}};
  const std::string content(content_bytes, 'q');
  BoltRequestParams p;
  p.framing = framing;
  p.request_id = 1;
  p.timeout_ms = 100;
  p.class_name = "K";
  p.headers = headers;
  p.content = content;
  std::string out;
  EXPECT_TRUE(EncodeRequest(p, out).ok());
  return out;
}

TEST(BoltRewriteTest, SwapsOnlyTheRequestIdAndKeepsTheCrcValid) {
  for (const BoltFraming& framing : AllFramings()) {
    for (size_t content : {size_t{0}, size_t{10}, size_t{1} << 20}) {
      SCOPED_TRACE(Describe(framing) + " content " + std::to_string(content));
      const std::string original = SampleRequest(framing, content);
      std::string frame = original;
      ASSERT_TRUE(RewriteRequestId(frame, 0xDEADBEEF).ok());
      ASSERT_EQ(frame.size(), original.size());
      const OwnedFrame before = DecodeOne(original);
      const OwnedFrame after = DecodeOne(frame);  // the decoder verifies any CRC
      EXPECT_EQ(after.request_id, 0xDEADBEEFu);
      EXPECT_EQ(after.has_crc, WantsCrc(framing));
      EXPECT_EQ(after.content, before.content);
      EXPECT_EQ(after.headers, before.headers);
      // Only the id bytes and (with a CRC) the CRC bytes changed.
      const size_t id_at = framing.protocol == BoltProtocol::kV2 ? 6 : 5;
      const size_t crc_at = WantsCrc(framing) ? frame.size() - 4 : frame.size();
      for (size_t i = 0; i < frame.size(); ++i) {
        if ((i >= id_at && i < id_at + 4) || i >= crc_at) continue;
        ASSERT_EQ(frame[i], original[i]) << "byte " << i;
      }
      if (WantsCrc(framing)) {
        EXPECT_EQ(test::Get32ForTest(frame, crc_at),
                  test::ReferenceCrc32(std::string_view(frame).substr(0, crc_at)));
      }
    }
  }
}

TEST(BoltRewriteTest, SpanVariantOnAFrameInsideALargerBuffer) {
  const std::string one = SampleRequest(BoltFraming::V2(true));
  std::string buffer = "xx" + one + "yy";
  ASSERT_TRUE(RewriteRequestId(std::span<char>(buffer.data() + 2, one.size()), 5).ok());
  EXPECT_EQ(buffer.substr(0, 2), "xx");
  EXPECT_EQ(buffer.substr(buffer.size() - 2), "yy");
  EXPECT_EQ(DecodeOne(buffer.substr(2, one.size())).request_id, 5u);
}

TEST(BoltRewriteTest, RewriteTwiceBackToTheOriginal) {
  const std::string original = SampleRequest(BoltFraming::V2(true), 1000);
  std::string frame = original;
  ASSERT_TRUE(RewriteRequestId(frame, 123456).ok());
  EXPECT_NE(frame, original);
  ASSERT_TRUE(RewriteRequestId(frame, 1).ok());
  EXPECT_EQ(frame, original);
}

TEST(BoltRewriteTest, RefusesWhatIsNotOneWholeFrame) {
  const std::string original = SampleRequest(BoltFraming::V2(true));
  std::string truncated = original.substr(0, original.size() - 1);
  const std::string before = truncated;
  EXPECT_EQ(RewriteRequestId(truncated, 9).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(truncated, before);
  std::string two = original + original;
  EXPECT_EQ(RewriteRequestId(two, 9).code(), absl::StatusCode::kInvalidArgument);
  std::string junk = "\x07junk";
  EXPECT_EQ(RewriteRequestId(junk, 9).code(), absl::StatusCode::kInvalidArgument);
  std::string empty;
  EXPECT_EQ(RewriteRequestId(empty, 9).code(), absl::StatusCode::kInvalidArgument);
  std::string header_only = original.substr(0, 10);
  EXPECT_EQ(RewriteRequestId(header_only, 9).code(), absl::StatusCode::kInvalidArgument);
}

TEST(BoltRewriteTest, ForwardedFrameFromTheDecoder) {
  // What the proxy does: copy the decoded frame's raw bytes into its output
  // and swap the id there.
  const std::string wire = SampleRequest(BoltFraming::V2(true)) + SampleRequest(BoltFraming::V1());
  BoltDecoder decoder;
  std::string_view input = wire;
  std::string upstream;
  uint32_t next_id = 1000;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<const BoltFrameView*> f = decoder.Next(input);
    ASSERT_TRUE(f.ok());
    if (*f == nullptr) break;
    const size_t at = upstream.size();
    upstream.append((*f)->raw);
    ASSERT_TRUE(
        RewriteRequestId(std::span<char>(upstream.data() + at, (*f)->raw.size()), next_id++).ok());
  }
  DecodeResult r = DecodeAll(upstream);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.frames.size(), 2u);
  EXPECT_EQ(r.frames[0].request_id, 1000u);
  EXPECT_EQ(r.frames[1].request_id, 1001u);
}

}  // namespace
}  // namespace cairn::sidecar::bolt
