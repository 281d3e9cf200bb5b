// BoltDecoder: golden frames built by hand from the DESIGN.md table,
// fragmentation, pipelining, malformed input and limits. Encoders, rewrite
// and round trips are in bolt_encoder_test.cc (same binary).
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
using test::MapString;
using test::U16;
using test::U32;
using test::U8;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using namespace std::string_literals;

// A v1 request, byte by byte from DESIGN.md section 4: every field gets a
// distinct value so that a field read at the wrong offset shows.
std::string GoldenV1Request() {
  std::string f;
  U8(f, 0x01);            // 0: proto
  U8(f, 0x01);            // 1: type request
  U16(f, 0x0001);         // 2-3: cmdcode request
  U8(f, 0x01);            // 4: ver2
  U32(f, 0x01020304);     // 5-8: requestId
  U8(f, 0x0B);            // 9: codec protobuf
  U32(f, 3000);           // 10-13: timeout
  U16(f, 5);              // 14-15: classLen
  U16(f, 4 + 7 + 4 + 3);  // 16-17: headerLen
  U32(f, 6);              // 18-21: contentLen
  EXPECT_EQ(f.size(), 22u);
  f += "Klass";
  MapString(f, "service");
  MapString(f, "a:1");
  f += "body!!";
  return f;
}

// A v1 response with status TIMEOUT, same idea (20-byte header).
std::string GoldenV1Response() {
  std::string f;
  U8(f, 0x01);         // 0: proto
  U8(f, 0x00);         // 1: type response
  U16(f, 0x0002);      // 2-3: cmdcode response
  U8(f, 0x01);         // 4: ver2
  U32(f, 0xA0B0C0D0);  // 5-8: requestId
  U8(f, 0x01);         // 9: codec hessian2
  U16(f, 0x0007);      // 10-11: status
  U16(f, 2);           // 12-13: classLen
  U16(f, 0);           // 14-15: headerLen
  U32(f, 3);           // 16-19: contentLen
  EXPECT_EQ(f.size(), 20u);
  f += "Rx";
  f += "abc";
  return f;
}

// A v2 request with ver1 2 and the CRC switch (24-byte header + CRC32).
std::string GoldenV2RequestCrc() {
  std::string f;
  U8(f, 0x02);         // 0: proto
  U8(f, 0x02);         // 1: ver1
  U8(f, 0x02);         // 2: type oneway
  U16(f, 0x0001);      // 3-4: cmdcode request
  U8(f, 0x01);         // 5: ver2
  U32(f, 77);          // 6-9: requestId
  U8(f, 0x01);         // 10: codec
  U8(f, 0x01);         // 11: switch (CRC)
  U32(f, 0xFFFFFFFF);  // 12-15: timeout -1
  U16(f, 1);           // 16-17: classLen
  U16(f, 0);           // 18-19: headerLen
  U32(f, 2);           // 20-23: contentLen
  EXPECT_EQ(f.size(), 24u);
  f += "C";
  f += "xy";
  U32(f, test::ReferenceCrc32(f));
  return f;
}

TEST(BoltDecoderTest, GoldenV1Request) {
  const std::string bytes = GoldenV1Request();
  BoltDecoder decoder;
  std::string_view input = bytes;
  absl::StatusOr<const BoltFrameView*> next = decoder.Next(input);
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_NE(*next, nullptr);
  const BoltFrameView& f = **next;
  EXPECT_TRUE(input.empty());
  EXPECT_EQ(f.protocol, BoltProtocol::kV1);
  EXPECT_EQ(f.type, BoltType::kRequest);
  EXPECT_EQ(f.cmdcode, BoltCmdCode::kRequest);
  EXPECT_EQ(f.ver2, 1);
  EXPECT_EQ(f.request_id, 0x01020304u);
  EXPECT_EQ(f.codec, kCodecProtobuf);
  EXPECT_EQ(f.timeout_ms, 3000);
  EXPECT_FALSE(f.has_crc);
  EXPECT_EQ(f.header_bytes, 22u);
  EXPECT_EQ(f.class_name, "Klass");
  ASSERT_EQ(f.headers.size(), 1u);
  EXPECT_EQ(f.headers[0].key, "service");
  EXPECT_EQ(f.headers[0].value, "a:1");
  EXPECT_EQ(f.content_offset, 22u + 5 + 18);
  EXPECT_EQ(f.content(), "body!!");
  EXPECT_EQ(RoutingService(f), "a:1");
  // Zero copy: a frame complete in the input is a view into it.
  EXPECT_EQ(f.raw.data(), bytes.data());
  EXPECT_EQ(f.raw.size(), bytes.size());
  EXPECT_EQ(f.content().data(), bytes.data() + 45);
  EXPECT_TRUE(f.is_request() && !f.is_oneway() && !f.is_heartbeat());
}

TEST(BoltDecoderTest, GoldenV1Response) {
  DecodeResult r = DecodeAll(GoldenV1Response());
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.frames.size(), 1u);
  const test::OwnedFrame& f = r.frames[0];
  EXPECT_EQ(f.type, BoltType::kResponse);
  EXPECT_EQ(f.cmdcode, BoltCmdCode::kResponse);
  EXPECT_EQ(f.request_id, 0xA0B0C0D0u);
  EXPECT_EQ(f.status, BoltStatus::kTimeout);
  EXPECT_EQ(f.header_bytes, 20u);
  EXPECT_EQ(f.class_name, "Rx");
  EXPECT_TRUE(f.headers.empty());
  EXPECT_EQ(f.content, "abc");
}

TEST(BoltDecoderTest, GoldenV2RequestWithCrc) {
  const std::string bytes = GoldenV2RequestCrc();
  DecodeResult r = DecodeAll(bytes);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.frames.size(), 1u);
  const test::OwnedFrame& f = r.frames[0];
  EXPECT_EQ(f.protocol, BoltProtocol::kV2);
  EXPECT_EQ(f.ver1, 2);
  EXPECT_EQ(f.switches, kSwitchCrc);
  EXPECT_EQ(f.type, BoltType::kOneway);
  EXPECT_EQ(f.request_id, 77u);
  EXPECT_EQ(f.timeout_ms, -1);
  EXPECT_TRUE(f.has_crc);
  EXPECT_EQ(f.header_bytes, 24u);
  EXPECT_EQ(f.class_name, "C");
  EXPECT_EQ(f.content, "xy");
  EXPECT_EQ(f.raw, bytes);
}

TEST(BoltDecoderTest, V2WithVer1OneHasNoCrcEvenWithTheSwitchBit) {
  // SOFA Bolt only appends (and checks) the CRC when ver1 is 2.
  std::string f;
  U8(f, 2);
  U8(f, 1);  // ver1
  U8(f, 0);  // response
  U16(f, 2);
  U8(f, 1);
  U32(f, 9);
  U8(f, 1);
  U8(f, kSwitchCrc);
  U16(f, 0);
  U16(f, 0);
  U16(f, 0);
  U32(f, 1);
  f += "z";
  DecodeResult r = DecodeAll(f + f);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.frames.size(), 2u);
  EXPECT_FALSE(r.frames[0].has_crc);
  EXPECT_EQ(r.frames[0].header_bytes, 22u);
  EXPECT_EQ(r.frames[0].content, "z");
}

TEST(BoltDecoderTest, CrcReferenceValue) {
  EXPECT_EQ(BoltCrc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(test::ReferenceCrc32("123456789"), 0xCBF43926u);
}

std::string ThreeFrames() { return GoldenV1Request() + GoldenV2RequestCrc() + GoldenV1Response(); }

TEST(BoltDecoderTest, PipelinedFramesInOneBuffer) {
  const std::string bytes = ThreeFrames();
  BoltDecoder decoder;
  std::string_view input = bytes;
  std::vector<uint32_t> ids;
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<const BoltFrameView*> next = decoder.Next(input);
    ASSERT_TRUE(next.ok()) << next.status();
    if (*next == nullptr) break;
    ids.push_back((*next)->request_id);
    // Each frame is a view into the caller's buffer, back to back.
    EXPECT_EQ((*next)->raw.data() + (*next)->raw.size(), input.data());
  }
  EXPECT_THAT(ids, ElementsAre(0x01020304u, 77u, 0xA0B0C0D0u));
  EXPECT_TRUE(input.empty());
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

TEST(BoltDecoderTest, ByteByByteAndEveryChunkSizeMatchWhole) {
  const std::string bytes = ThreeFrames();
  const DecodeResult whole = DecodeAll(bytes);
  ASSERT_TRUE(whole.status.ok());
  ASSERT_EQ(whole.frames.size(), 3u);
  for (size_t chunk = 1; chunk <= bytes.size(); ++chunk) {
    const DecodeResult pieces = DecodeAll(bytes, chunk);
    ASSERT_TRUE(pieces.status.ok()) << "chunk " << chunk << ": " << pieces.status;
    EXPECT_EQ(pieces.frames, whole.frames) << "chunk " << chunk;
    EXPECT_EQ(pieces.buffered, 0u);
  }
}

TEST(BoltDecoderTest, EverySplitPointInTwoCalls) {
  const std::string bytes = ThreeFrames();
  const DecodeResult whole = DecodeAll(bytes);
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    BoltDecoder decoder;
    std::vector<test::OwnedFrame> frames;
    for (std::string_view part :
         {std::string_view(bytes).substr(0, cut), std::string_view(bytes).substr(cut)}) {
      for (int i = 0; i < 10; ++i) {
        absl::StatusOr<const BoltFrameView*> next = decoder.Next(part);
        ASSERT_TRUE(next.ok()) << "cut " << cut << ": " << next.status();
        if (*next == nullptr) break;
        frames.emplace_back(**next);
      }
      EXPECT_TRUE(part.empty());
    }
    EXPECT_EQ(frames, whole.frames) << "cut " << cut;
  }
}

TEST(BoltDecoderTest, PartialFrameIsBufferedAndReported) {
  const std::string bytes = GoldenV1Request();
  BoltDecoder decoder;
  std::string_view input = std::string_view(bytes).substr(0, 30);
  absl::StatusOr<const BoltFrameView*> next = decoder.Next(input);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, nullptr);
  EXPECT_TRUE(input.empty());
  EXPECT_EQ(decoder.buffered_bytes(), 30u);
  // The rest plus the start of another frame: the first frame comes out and
  // only its missing bytes are taken.
  const std::string rest = bytes.substr(30) + bytes.substr(0, 3);
  input = rest;
  next = decoder.Next(input);
  ASSERT_TRUE(next.ok());
  ASSERT_NE(*next, nullptr);
  EXPECT_EQ((*next)->raw, bytes);
  EXPECT_EQ((*next)->content(), "body!!");
  EXPECT_EQ(input.size(), 3u);
  next = decoder.Next(input);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, nullptr);
  EXPECT_EQ(decoder.buffered_bytes(), 3u);
}

// ------------------------------------------------------------ header map

std::string RequestWithMap(const std::string& map) {
  std::string f;
  U8(f, 1);
  U8(f, 1);
  U16(f, 1);
  U8(f, 1);
  U32(f, 5);
  U8(f, 1);
  U32(f, 1000);
  U16(f, 0);
  U16(f, static_cast<uint16_t>(map.size()));
  U32(f, 0);
  return f + map;
}

std::vector<std::pair<std::string, std::string>> HeadersOf(const std::string& map) {
  DecodeResult r = DecodeAll(RequestWithMap(map));
  EXPECT_TRUE(r.status.ok()) << r.status;
  return r.frames.empty() ? std::vector<std::pair<std::string, std::string>>{}
                          : r.frames[0].headers;
}

TEST(BoltHeaderMapTest, EmptyValuesEmptyKeysAndNullsSkipped) {
  std::string map;
  MapString(map, "empty");
  MapString(map, "");
  MapString(map, "");
  MapString(map, "v");
  MapString(map, "", /*null=*/true);  // null key: skipped, as SOFARPC does
  MapString(map, "x");
  MapString(map, "k");
  MapString(map, "", /*null=*/true);  // null value: skipped
  MapString(map, "last");
  MapString(map, "1");
  EXPECT_THAT(HeadersOf(map), ElementsAre(Pair("empty", ""), Pair("", "v"), Pair("last", "1")));
}

BoltFrameView ViewOf(const std::vector<BoltHeader>& headers) {
  BoltFrameView view;
  view.headers = headers;
  return view;
}

TEST(BoltHeaderMapTest, RoutingKeyPreference) {
  std::vector<BoltHeader> both = {{"service", "svc:1.0"},
                                  {"sofa_head_target_service", "target:2.0"}};
  EXPECT_EQ(RoutingService(ViewOf(both)), "target:2.0");
  std::vector<BoltHeader> only_service = {{"service", "svc:1.0"}, {"other", "x"}};
  EXPECT_EQ(RoutingService(ViewOf(only_service)), "svc:1.0");
  // An empty target is no target.
  std::vector<BoltHeader> empty_target = {{"sofa_head_target_service", ""}, {"service", "svc:1.0"}};
  EXPECT_EQ(RoutingService(ViewOf(empty_target)), "svc:1.0");
  std::vector<BoltHeader> none = {{"sofa_head_method_name", "hello"}};
  BoltFrameView view = ViewOf(none);
  view.class_name = "com.alipay.sofa.rpc.core.request.SofaRequest";
  EXPECT_EQ(RoutingService(view), "");
  // Duplicates: the last wins, as in the Java peers' HashMap.
  std::vector<BoltHeader> dup = {{"service", "first"}, {"service", "second"}};
  EXPECT_EQ(RoutingService(ViewOf(dup)), "second");
  EXPECT_EQ(ViewOf(dup).FindHeader("missing"), nullptr);
}

TEST(BoltHeaderMapTest, RoutingFromDecodedFrame) {
  std::string map;
  MapString(map, "service");
  MapString(map, "com.example.Echo:1.0");
  MapString(map, "sofa_head_target_service");
  MapString(map, "com.example.Echo:2.0");
  BoltDecoder decoder;
  const std::string bytes = RequestWithMap(map);
  std::string_view input = bytes;
  absl::StatusOr<const BoltFrameView*> next = decoder.Next(input);
  ASSERT_TRUE(next.ok() && *next != nullptr);
  EXPECT_EQ(RoutingService(**next), "com.example.Echo:2.0");
  EXPECT_EQ(*(*next)->FindHeader("service"), "com.example.Echo:1.0");
  EXPECT_EQ((*next)->header_map, map);
}

// ------------------------------------------------------------- malformed

struct BadCase {
  const char* name;
  std::string bytes;
  absl::StatusCode code;
  const char* message;  // a substring naming the field
};

std::string Patched(std::string bytes, size_t at, std::string_view with) {
  bytes.replace(at, with.size(), with);
  return bytes;
}

std::vector<BadCase> BadCases() {
  const std::string req = GoldenV1Request();
  const std::string v2 = GoldenV2RequestCrc();
  std::vector<BadCase> cases;
  cases.push_back({"proto 0", Patched(req, 0, "\x00"s), absl::StatusCode::kInvalidArgument,
                   "unknown proto byte 0"});
  cases.push_back({"proto 3", Patched(req, 0, "\x03"), absl::StatusCode::kInvalidArgument,
                   "unknown proto byte 3"});
  cases.push_back({"http", "GET / HTTP/1.1\r\n\r\n", absl::StatusCode::kInvalidArgument,
                   "unknown proto byte 71"});
  cases.push_back(
      {"ver1 3", Patched(v2, 1, "\x03"), absl::StatusCode::kInvalidArgument, "unknown ver1 3"});
  cases.push_back(
      {"type 3", Patched(req, 1, "\x03"), absl::StatusCode::kInvalidArgument, "unknown type 3"});
  cases.push_back({"cmdcode 3", Patched(req, 2, "\x00\x03"s), absl::StatusCode::kInvalidArgument,
                   "unknown cmdcode 3"});
  cases.push_back({"request with cmdcode response", Patched(req, 2, "\x00\x02"s),
                   absl::StatusCode::kInvalidArgument, "cmdcode 2 does not fit type 1"});
  cases.push_back({"response with cmdcode request", Patched(GoldenV1Response(), 2, "\x00\x01"s),
                   absl::StatusCode::kInvalidArgument, "cmdcode 1 does not fit type 0"});
  // Header map: headerLen 18 holds key "service" (4+7) and a value length
  // field; patch the value length to 4 (one byte more than there is).
  cases.push_back({"value overruns headerLen", Patched(req, 22 + 5 + 11, "\x00\x00\x00\x04"s),
                   absl::StatusCode::kInvalidArgument,
                   "header map entry 0: value length 4 overruns headerLen 18"});
  cases.push_back({"key overruns headerLen", Patched(req, 22 + 5, "\x00\x00\x01\x00"s),
                   absl::StatusCode::kInvalidArgument,
                   "header map entry 0: key length 256 overruns headerLen 18"});
  {
    // headerLen 2 more than the entry: a truncated length field remains.
    std::string map;
    MapString(map, "k");
    MapString(map, "v");
    map += "\x00\x00"s;
    cases.push_back({"truncated length field", RequestWithMap(map),
                     absl::StatusCode::kInvalidArgument,
                     "header map entry 1: key length at offset 10 overruns headerLen 12"});
  }
  cases.push_back(
      {"CRC mismatch", Patched(v2, 26, "X"), absl::StatusCode::kInvalidArgument, "CRC32 mismatch"});
  cases.push_back({"CRC field corrupt", Patched(v2, v2.size() - 1, "\x00"s),
                   absl::StatusCode::kInvalidArgument, "CRC32 mismatch"});
  cases.push_back({"negative contentLen", Patched(req, 18, "\x80\x00\x00\x00"s),
                   absl::StatusCode::kInvalidArgument, "contentLen 2147483648"});
  return cases;
}

TEST(BoltDecoderTest, MalformedFramesFailNamingTheFieldAndPoison) {
  for (const BadCase& c : BadCases()) {
    for (size_t chunk : {size_t{0}, size_t{1}, size_t{7}}) {
      DecodeResult r = DecodeAll(c.bytes, chunk);
      EXPECT_EQ(r.status.code(), c.code) << c.name << " chunk " << chunk << ": " << r.status;
      EXPECT_THAT(std::string(r.status.message()), HasSubstr(c.message)) << c.name;
      EXPECT_TRUE(r.frames.empty()) << c.name;
    }
    // Poisoned: a valid frame afterwards gets the same error, and no input
    // is consumed.
    BoltDecoder decoder;
    std::string_view bad = c.bytes;
    absl::Status first;
    for (int i = 0; i < 4 && first.ok() && !bad.empty(); ++i) {
      absl::StatusOr<const BoltFrameView*> next = decoder.Next(bad);
      if (!next.ok()) first = next.status();
    }
    ASSERT_FALSE(first.ok()) << c.name;
    const std::string good = GoldenV1Response();
    std::string_view input = good;
    absl::StatusOr<const BoltFrameView*> again = decoder.Next(input);
    EXPECT_EQ(again.status(), first) << c.name;
    EXPECT_EQ(input.size(), good.size());
    EXPECT_EQ(decoder.status(), first);
    EXPECT_EQ(decoder.buffered_bytes(), 0u);
  }
}

TEST(BoltDecoderTest, BadProtoIsRejectedOnTheFirstByte) {
  BoltDecoder decoder;
  std::string_view input = "\x05";
  EXPECT_EQ(decoder.Next(input).status().code(), absl::StatusCode::kInvalidArgument);
}

// ----------------------------------------------------------------- limits

TEST(BoltDecoderTest, MaxFrameBytesIsInclusiveAndCheckedAtTheFixedHeader) {
  const std::string req = GoldenV1Request();  // 51 bytes
  BoltLimits limits;
  limits.max_frame_bytes = req.size();
  EXPECT_TRUE(DecodeAll(req, 0, limits).status.ok());
  limits.max_frame_bytes = req.size() - 1;
  // Only the fixed header is fed: the declared size is already refused.
  DecodeResult r = DecodeAll(req.substr(0, 22), 0, limits);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr("frame size 51 exceeds max_frame_bytes 50"));
  // The CRC trailer counts.
  const std::string v2 = GoldenV2RequestCrc();
  limits.max_frame_bytes = v2.size() - 1;
  EXPECT_EQ(DecodeAll(v2, 0, limits).status.code(), absl::StatusCode::kResourceExhausted);
}

TEST(BoltDecoderTest, DefaultLimitRefusesAHugeDeclaredContent) {
  std::string req = GoldenV1Request().substr(0, 22);
  req = Patched(req, 18, "\x01\x00\x00\x00"s);  // 16 MiB of content
  DecodeResult r = DecodeAll(req);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(r.buffered, 0u);
}

TEST(BoltDecoderTest, ClassNameLimit) {
  const std::string req = GoldenV1Request();
  BoltLimits limits;
  limits.max_class_name_bytes = 5;
  EXPECT_TRUE(DecodeAll(req, 0, limits).status.ok());
  limits.max_class_name_bytes = 4;
  DecodeResult r = DecodeAll(req, 0, limits);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("classLen 5"));
}

TEST(BoltDecoderTest, HeaderMapBytesLimit) {
  const std::string req = GoldenV1Request();
  BoltLimits limits;
  limits.max_header_map_bytes = 18;
  EXPECT_TRUE(DecodeAll(req, 0, limits).status.ok());
  limits.max_header_map_bytes = 17;
  DecodeResult r = DecodeAll(req, 0, limits);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("headerLen 18"));
}

TEST(BoltDecoderTest, HeaderEntriesLimit) {
  std::string map;
  for (int i = 0; i < 3; ++i) {
    MapString(map, "k" + std::to_string(i));
    MapString(map, "v");
  }
  MapString(map, "", /*null=*/true);  // skipped entries do not count
  MapString(map, "v");
  const std::string req = RequestWithMap(map);
  BoltLimits limits;
  limits.max_header_entries = 3;
  DecodeResult ok = DecodeAll(req, 0, limits);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.frames[0].headers.size(), 3u);
  limits.max_header_entries = 2;
  DecodeResult r = DecodeAll(req, 0, limits);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("max_header_entries 2"));
}

TEST(BoltProbeTest, SaysHowMuchIsNeeded) {
  const std::string v2 = GoldenV2RequestCrc();
  absl::StatusOr<BoltFrameSize> size = ProbeFrame(std::string_view(v2).substr(0, 1), {});
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(size->needed_bytes, 3u);
  size = ProbeFrame(std::string_view(v2).substr(0, 3), {});
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(size->header_bytes, 24u);
  EXPECT_EQ(size->total_bytes, 0u);
  size = ProbeFrame(v2, {});
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(size->total_bytes, v2.size());
}

TEST(BoltStatusTest, Names) {
  EXPECT_EQ(BoltStatusName(BoltStatus::kSuccess), "SUCCESS");
  EXPECT_EQ(BoltStatusName(BoltStatus::kServerThreadpoolBusy), "SERVER_THREADPOOL_BUSY");
  EXPECT_EQ(BoltStatusName(BoltStatus::kNoProcessor), "NO_PROCESSOR");
  EXPECT_EQ(BoltStatusName(BoltStatus::kTimeout), "TIMEOUT");
  EXPECT_EQ(BoltStatusName(BoltStatus::kCodecException), "CODEC_EXCEPTION");
  EXPECT_EQ(BoltStatusName(BoltStatus::kServerDeserialException), "SERVER_DESERIAL_EXCEPTION");
  EXPECT_EQ(static_cast<uint16_t>(BoltStatus::kConnectionClosed), 0x10);
  EXPECT_EQ(BoltStatusName(static_cast<BoltStatus>(0x42)), "UNRECOGNIZED");
}

}  // namespace
}  // namespace cairn::sidecar::bolt
