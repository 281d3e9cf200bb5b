#include "sidecar/codec/http1/http1_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "http1_test_recorders.h"

// Server codec tests; client codec and round-trip tests are in
// http1_client_codec_test.cc (same binary).
namespace cairn::sidecar {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using namespace std::string_literals;
using http1_test::ErrorResponse;
using http1_test::ServerRecorder;
using http1_test::ServerRequest;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

class ServerTest : public ::testing::Test {
 protected:
  void Reset(const CodecLimits& limits) {
    rec_ = ServerRecorder();
    codec_ = NewHttp1ServerCodec(rec_, limits);
    out_.clear();
  }
  absl::Status Feed(std::string_view bytes) { return codec_->OnIngress(bytes, out_); }
  absl::Status FeedByteByByte(std::string_view bytes) {
    for (char c : bytes) {
      absl::Status status = Feed(std::string_view(&c, 1));
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  void Respond(StreamId stream, int status, HeaderList headers, std::string_view body) {
    ResponseHead head;
    head.status = status;
    head.headers = std::move(headers);
    codec_->EncodeResponseHead(stream, head, body.empty(), out_);
    if (!body.empty()) codec_->EncodeResponseData(stream, body, true, out_);
  }

  ServerRecorder rec_;
  std::unique_ptr<ServerCodec> codec_ = NewHttp1ServerCodec(rec_, CodecLimits{});
  std::string out_;
};

TEST_F(ServerTest, SimpleGet) {
  ASSERT_TRUE(Feed("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test\r\n"
                   "Accept: */*\r\n\r\n")
                  .ok());
  ASSERT_EQ(rec_.requests.size(), 1u);
  const ServerRequest& r = rec_.requests[0];
  EXPECT_EQ(r.id, 1u);
  EXPECT_EQ(r.head.method, "GET");
  EXPECT_EQ(r.head.path, "/a?b=c");
  EXPECT_EQ(r.head.authority, "example.com");
  EXPECT_EQ(r.head.scheme, "http");
  EXPECT_THAT(r.head.headers, ElementsAre(Pair("user-agent", "test"), Pair("accept", "*/*")));
  EXPECT_TRUE(r.head_end);
  EXPECT_EQ(r.data_events, 0);
  EXPECT_TRUE(out_.empty());
  EXPECT_FALSE(codec_->WantsClose());
  EXPECT_FALSE(codec_->SupportsMultiplexing());
}

TEST_F(ServerTest, HeaderNamesLowerCasedValuesTrimmedNotFolded) {
  ASSERT_TRUE(Feed("GET / HTTP/1.1\r\nHOST: Example.COM\r\nX-Custom-Header: \t MiXeD Value \t\r\n"
                   "Empty:\r\n\r\n")
                  .ok());
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_EQ(rec_.requests[0].head.authority, "Example.COM");
  EXPECT_THAT(rec_.requests[0].head.headers,
              ElementsAre(Pair("x-custom-header", "MiXeD Value"), Pair("empty", "")));
}

TEST_F(ServerTest, HopByHopFieldsStripped) {
  ASSERT_TRUE(Feed("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\n"
                   "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: websocket\r\n"
                   "TE: gzip\r\nX-Secret: 1\r\nX-Kept: 2\r\nContent-Length: 0\r\n\r\n")
                  .ok());
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_THAT(rec_.requests[0].head.headers,
              ElementsAre(Pair("x-kept", "2"), Pair("content-length", "0")));
}

TEST_F(ServerTest, TeTrailersKept) {
  ASSERT_TRUE(Feed("POST /svc/M HTTP/1.1\r\nHost: a\r\nTE: deflate, Trailers\r\n\r\n").ok());
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_THAT(rec_.requests[0].head.headers, ElementsAre(Pair("te", "trailers")));
}

TEST_F(ServerTest, UpgradeRequestServedAsPlainHttp) {
  ASSERT_TRUE(Feed("GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                   "Sec-WebSocket-Key: k\r\n\r\n"
                   "GET /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                   "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
                  .ok());
  ASSERT_EQ(rec_.requests.size(), 2u);
  EXPECT_THAT(rec_.requests[0].head.headers, ElementsAre(Pair("sec-websocket-key", "k")));
  EXPECT_TRUE(rec_.requests[1].head.headers.empty());
  // A 101 is never sent: the caller answers as plain HTTP/1.1.
  codec_->EncodeResponseHead(1, ResponseHead{101, {{"upgrade", "websocket"}}}, false, out_);
  EXPECT_EQ(out_, "");
  Respond(1, 200, {}, "");
  EXPECT_EQ(out_, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
  EXPECT_FALSE(codec_->WantsClose());
}

TEST_F(ServerTest, ContentLengthBodyByteByByte) {
  const std::string input =
      "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
      "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
  ASSERT_TRUE(FeedByteByByte(input).ok());
  ASSERT_EQ(rec_.requests.size(), 2u);
  const ServerRequest& r = rec_.requests[0];
  EXPECT_FALSE(r.head_end);
  EXPECT_THAT(r.head.headers, ElementsAre(Pair("content-length", "11")));
  EXPECT_EQ(r.body, "hello world");
  EXPECT_EQ(r.data_events, 11);
  EXPECT_EQ(r.end_events, 1);
  EXPECT_EQ(rec_.requests[1].head.path, "/next");
  EXPECT_EQ(rec_.requests[1].id, 2u);
}

TEST_F(ServerTest, ChunkedWithTrailersWholeAndByteByByte) {
  const std::string input =
      "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=\"v\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\nContent-Length: 9\r\n\r\n";
  for (bool byte_by_byte : {false, true}) {
    SCOPED_TRACE(byte_by_byte);
    Reset(CodecLimits{});
    ASSERT_TRUE((byte_by_byte ? FeedByteByByte(input) : Feed(input)).ok());
    ASSERT_EQ(rec_.requests.size(), 1u);
    const ServerRequest& r = rec_.requests[0];
    EXPECT_FALSE(r.head_end);
    EXPECT_TRUE(r.head.headers.empty());  // transfer-encoding is hop-by-hop
    EXPECT_EQ(r.body, "hello world");
    EXPECT_TRUE(r.has_trailers);
    // Framing fields cannot be trailers.
    EXPECT_THAT(r.trailers, ElementsAre(Pair("x-checksum", "abc")));
    EXPECT_EQ(r.end_events, 1);
  }
}

TEST_F(ServerTest, ChunkedWithoutTrailersEndsWithEmptyData) {
  ASSERT_TRUE(Feed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabc\r\n0\r\n\r\n")
                  .ok());
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_EQ(rec_.requests[0].body, "abc");
  EXPECT_FALSE(rec_.requests[0].has_trailers);
  EXPECT_EQ(rec_.requests[0].end_events, 1);
}

TEST_F(ServerTest, PipelinedRequestsInOneBuffer) {
  ASSERT_TRUE(Feed("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                   "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                   "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
                  .ok());
  ASSERT_EQ(rec_.requests.size(), 3u);
  EXPECT_EQ(rec_.requests[0].id, 1u);
  EXPECT_EQ(rec_.requests[1].id, 2u);
  EXPECT_EQ(rec_.requests[2].id, 3u);
  EXPECT_EQ(rec_.requests[0].head.path, "/1");
  EXPECT_EQ(rec_.requests[1].head.path, "/2");
  EXPECT_EQ(rec_.requests[1].body, "abc");
  EXPECT_EQ(rec_.requests[2].head.path, "/3");

  // Out of order: ignored until stream 1 is done.
  Respond(2, 200, {}, "two");
  EXPECT_EQ(out_, "");
  Respond(1, 200, {}, "one");
  Respond(2, 200, {}, "two");
  Respond(3, 200, {}, "three");
  EXPECT_EQ(out_,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n0\r\n\r\n"
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n");
  EXPECT_FALSE(codec_->WantsClose());
}

TEST_F(ServerTest, KeepAliveSemantics) {
  struct Case {
    const char* request;
    bool wants_close;
    const char* connection_line;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", false, ""},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", true, "connection: close\r\n"},
      {"GET / HTTP/1.0\r\n\r\n", true, "connection: close\r\n"},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", false, "connection: keep-alive\r\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.request);
    Reset(CodecLimits{});
    ASSERT_TRUE(Feed(c.request).ok());
    ASSERT_EQ(rec_.requests.size(), 1u);
    EXPECT_FALSE(codec_->WantsClose());  // only once the response is written
    Respond(1, 200, {{"content-length", "2"}}, "ok");
    EXPECT_EQ(out_, std::string("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n") + c.connection_line +
                        "\r\nok");
    EXPECT_EQ(codec_->WantsClose(), c.wants_close);
  }
}

TEST_F(ServerTest, BytesAfterClosingRequestAreDiscarded) {
  ASSERT_TRUE(Feed("GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                   "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
                  .ok());
  ASSERT_TRUE(Feed("GET /3 HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_EQ(rec_.requests[0].head.path, "/1");
}

TEST_F(ServerTest, ExpectContinueSentBeforeBody) {
  ASSERT_TRUE(Feed("POST /u HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                   "Content-Length: 5\r\n\r\n")
                  .ok());
  EXPECT_EQ(out_, kContinue);
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_THAT(rec_.requests[0].head.headers, ElementsAre(Pair("content-length", "5")));
  ASSERT_TRUE(Feed("hello").ok());
  EXPECT_EQ(rec_.requests[0].body, "hello");
  EXPECT_EQ(out_, kContinue);
}

TEST_F(ServerTest, ExpectContinueNotSentWithoutBodyOrToHttp10) {
  ASSERT_TRUE(Feed("POST /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                   "Content-Length: 0\r\n\r\n")
                  .ok());
  EXPECT_EQ(out_, "");
  Reset(CodecLimits{});
  ASSERT_TRUE(Feed("POST /u HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").ok());
  EXPECT_EQ(out_, "");
  ASSERT_EQ(rec_.requests.size(), 1u);
}

TEST_F(ServerTest, ExpectContinueDeferredBehindPendingResponse) {
  ASSERT_TRUE(
      Feed("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
           "POST /2 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
          .ok());
  EXPECT_EQ(out_, "");  // it would otherwise be read as the answer to /1
  Respond(1, 204, {}, "");
  EXPECT_EQ(out_, "HTTP/1.1 204 No Content\r\n\r\n" + std::string(kContinue));
}

TEST_F(ServerTest, MalformedRequestsGetErrorResponse) {
  struct Case {
    const char* name;
    std::string input;
    const char* status_line;
    absl::StatusCode code;
  };
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  const std::string kPost = "POST / HTTP/1.1\r\nHost: a\r\n";
  const std::string kChunked = kPost + "Transfer-Encoding: chunked\r\n\r\n";
  const Case cases[] = {
      {"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", "400 Bad Request", kInvalid},
      {"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", kInvalid},
      {"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", kInvalid},
      {"no version", "GET /\r\n\r\n", "400 Bad Request", kInvalid},
      {"bad version", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", kInvalid},
      {"http/2 version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505 HTTP Version Not Supported",
       kInvalid},
      {"ctl in target", "GET /a\x01z HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", kInvalid},
      {"nul in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s, "400 Bad Request",
       kInvalid},
      {"cr in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "400 Bad Request", kInvalid},
      {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "400 Bad Request", kInvalid},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  b\r\n\r\n", "400 Bad Request", kInvalid},
      {"bare LF", "GET / HTTP/1.1\nHost: a\n\n", "400 Bad Request", kInvalid},
      {"bare LF header line", "GET / HTTP/1.1\r\nHost: a\r\nX-A: bc\n\r\n", "400 Bad Request",
       kInvalid},
      {"missing host", "GET / HTTP/1.1\r\n\r\n", "400 Bad Request", kInvalid},
      {"duplicate host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 Bad Request",
       kInvalid},
      {"invalid host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400 Bad Request", kInvalid},
      {"connect", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "501 Not Implemented",
       absl::StatusCode::kUnimplemented},
      {"options *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "501 Not Implemented",
       absl::StatusCode::kUnimplemented},
      {"get *", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", kInvalid},
      {"authority-form", "GET a.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", kInvalid},
      {"ftp absolute", "GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", kInvalid},
      {"userinfo", "GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", kInvalid},
      {"cl not a number", kPost + "Content-Length: abc\r\n\r\n", "400 Bad Request", kInvalid},
      {"cl negative", kPost + "Content-Length: -1\r\n\r\n", "400 Bad Request", kInvalid},
      {"cl overflow", kPost + "Content-Length: 99999999999999999999\r\n\r\n", "400 Bad Request",
       kInvalid},
      {"bad chunk size", kChunked + "zz\r\n", "400 Bad Request", kInvalid},
      {"chunk size 17 digits", kChunked + "00000000000000001\r\n", "400 Bad Request", kInvalid},
      {"chunk without CRLF", kChunked + "5\r\nhelloX", "400 Bad Request", kInvalid},
      {"bad chunk extension", kChunked + "5 x\r\n", "400 Bad Request", kInvalid},
      {"bare LF chunk line", kChunked + "5\nhello", "400 Bad Request", kInvalid},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Reset(CodecLimits{});
    absl::Status status = Feed(c.input);
    EXPECT_EQ(status.code(), c.code) << status;
    EXPECT_EQ(out_, ErrorResponse(c.status_line));
    EXPECT_TRUE(codec_->WantsClose());
    const size_t surfaced = rec_.requests.size();
    // Sticky: the same error again, nothing more written or surfaced.
    out_.clear();
    EXPECT_EQ(Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n").code(), c.code);
    EXPECT_EQ(out_, "");
    EXPECT_EQ(rec_.requests.size(), surfaced);
  }
}

TEST_F(ServerTest, ErrorInBodyResetsSurfacedStream) {
  ASSERT_TRUE(Feed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab").ok());
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_EQ(Feed("\r\nxyz\r\n").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out_, ErrorResponse("400 Bad Request"));
  EXPECT_THAT(rec_.resets, ElementsAre(Pair(1u, ResetReason::kProtocolError)));
  // The reset stream can no longer be answered.
  out_.clear();
  Respond(1, 200, {}, "x");
  EXPECT_EQ(out_, "");
}

TEST_F(ServerTest, NoErrorResponseWhileEarlierResponsePending) {
  EXPECT_EQ(Feed("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nBAD\r\n\r\n").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out_, "");  // a 400 here would be read as the answer to /1
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_THAT(rec_.resets, ElementsAre(Pair(1u, ResetReason::kProtocolError)));
  EXPECT_TRUE(codec_->WantsClose());
}

TEST_F(ServerTest, SmugglingAttemptsRejected) {
  struct Case {
    const char* name;
    std::string headers;
    const char* status_line;
  };
  const Case cases[] = {
      {"cl and te", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "400 Bad Request"},
      {"te and cl", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "400 Bad Request"},
      {"conflicting cl", "Content-Length: 5\r\nContent-Length: 6\r\n", "400 Bad Request"},
      {"cl list", "Content-Length: 5, 6\r\n", "400 Bad Request"},
      {"chunked not last", "Transfer-Encoding: chunked, gzip\r\n", "400 Bad Request"},
      {"chunked twice", "Transfer-Encoding: chunked, chunked\r\n", "400 Bad Request"},
      {"unknown coding", "Transfer-Encoding: xchunked\r\n", "400 Bad Request"},
      {"empty te", "Transfer-Encoding: \r\n", "400 Bad Request"},
      {"gzip then chunked", "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
       "501 Not Implemented"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Reset(CodecLimits{});
    EXPECT_FALSE(Feed("POST / HTTP/1.1\r\nHost: a\r\n" + c.headers +
                      "\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n")
                     .ok());
    EXPECT_EQ(out_, ErrorResponse(c.status_line));
    EXPECT_TRUE(rec_.requests.empty());
  }
  Reset(CodecLimits{});
  EXPECT_EQ(Feed("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out_, ErrorResponse("400 Bad Request"));
}

TEST_F(ServerTest, IdenticalContentLengthsCollapse) {
  ASSERT_TRUE(Feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n"
                   "\r\nhello")
                  .ok());
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_THAT(rec_.requests[0].head.headers, ElementsAre(Pair("content-length", "5")));
  EXPECT_EQ(rec_.requests[0].body, "hello");
}

TEST_F(ServerTest, HeaderCountLimitBoundary) {
  CodecLimits limits;
  limits.max_headers = 3;
  Reset(limits);
  ASSERT_TRUE(Feed("GET / HTTP/1.1\r\nHost: a\r\nX-1: a\r\nX-2: b\r\n\r\n").ok());
  EXPECT_EQ(rec_.requests.size(), 1u);
  Reset(limits);
  EXPECT_EQ(Feed("GET / HTTP/1.1\r\nHost: a\r\nX-1: a\r\nX-2: b\r\nX-3: c\r\n\r\n").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(out_, ErrorResponse("431 Request Header Fields Too Large"));
  EXPECT_TRUE(rec_.requests.empty());
}

TEST_F(ServerTest, HeaderBytesLimitBoundary) {
  CodecLimits limits;
  // "GET / HTTP/1.1" = 14 (the request line counts), "Host" + "a" = 5,
  // "X-Pad" = 5, value 22 -> 46.
  limits.max_header_bytes = 46;
  Reset(limits);
  ASSERT_TRUE(
      Feed("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(22, 'v') + "\r\n\r\n").ok());
  EXPECT_EQ(rec_.requests.size(), 1u);
  Reset(limits);
  EXPECT_EQ(Feed("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(23, 'v') + "\r\n\r\n").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(out_, ErrorResponse("431 Request Header Fields Too Large"));
}

TEST_F(ServerTest, UnterminatedHugeHeadRejectedBeforeItEnds) {
  CodecLimits limits;
  limits.max_header_bytes = 32;
  limits.max_headers = 3;
  Reset(limits);
  // A request line may use max_header_bytes + its CRLF (34); no line end
  // ever arrives: 414 as soon as it is longer, nothing buffered beyond.
  EXPECT_TRUE(Feed("GET /" + std::string(29, 'a')).ok());
  EXPECT_EQ(Feed("a").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(out_, ErrorResponse("414 URI Too Long"));
  EXPECT_TRUE(rec_.requests.empty());
  // A header line that never ends: the raw cap (32 + 4 * 3 + 8 KiB), 431.
  Reset(limits);
  EXPECT_TRUE(Feed("GET / HTTP/1.1\r\nX-A: " + std::string(8000, 'a')).ok());
  EXPECT_EQ(Feed(std::string(1000, 'a')).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(out_, ErrorResponse("431 Request Header Fields Too Large"));
}

// Issue 16: a 70,000-byte request-target was proxied because only header
// fields counted towards max_header_bytes.
TEST_F(ServerTest, RequestLineCountsTowardsHeaderBytes) {
  Reset(CodecLimits{});  // max_header_bytes 64 KiB
  const std::string huge = "GET /" + std::string(70000, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(Feed(huge).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(out_, ErrorResponse("414 URI Too Long"));
  EXPECT_TRUE(rec_.requests.empty());
  // The same, arriving a byte at a time: refused before the line ends.
  Reset(CodecLimits{});
  absl::Status status;
  size_t fed = 0;
  for (; fed < huge.size() && status.ok(); ++fed) status = Feed(huge.substr(fed, 1));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LE(fed, 64u * 1024 + 3);
  EXPECT_TRUE(rec_.requests.empty());

  CodecLimits limits;
  limits.max_header_bytes = 100;
  // A request line of exactly 100 bytes fits; then no field fits (431).
  const std::string line100 = "GET /" + std::string(86, 'b') + " HTTP/1.1";
  ASSERT_EQ(line100.size(), 100u);
  Reset(limits);
  EXPECT_EQ(Feed(line100 + "\r\nHost: a\r\n\r\n").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(out_, ErrorResponse("431 Request Header Fields Too Large"));
  // 101 bytes: 414.
  Reset(limits);
  EXPECT_EQ(Feed("GET /" + std::string(87, 'b') + " HTTP/1.1\r\nHost: a\r\n\r\n").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(out_, ErrorResponse("414 URI Too Long"));
  // 95 + "Host" + "a" = 100: accepted.
  Reset(limits);
  ASSERT_TRUE(Feed("GET /" + std::string(81, 'b') + " HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  EXPECT_EQ(rec_.requests.size(), 1u);
}

// The codec says when a request head is partly in (the sidecar's request
// header timeout runs then), and not between requests or in a body.
TEST_F(ServerTest, ReadingRequestHeadTracksPartialHeads) {
  Reset(CodecLimits{});
  EXPECT_FALSE(codec_->ReadingRequestHead());
  ASSERT_TRUE(Feed("GE").ok());
  EXPECT_TRUE(codec_->ReadingRequestHead());
  ASSERT_TRUE(Feed("T / HTTP/1.1\r\nHost: a\r\n").ok());
  EXPECT_TRUE(codec_->ReadingRequestHead());
  ASSERT_TRUE(Feed("Content-Length: 4\r\n\r\nab").ok());
  EXPECT_FALSE(codec_->ReadingRequestHead());  // in the body
  ASSERT_TRUE(Feed("cd").ok());
  EXPECT_FALSE(codec_->ReadingRequestHead());  // between requests
  ASSERT_TRUE(Feed("GET /2 HTTP/1.1\r").ok());
  EXPECT_TRUE(codec_->ReadingRequestHead());
}

TEST_F(ServerTest, ContentLengthBodyLimitBoundary) {
  CodecLimits limits;
  limits.max_body_bytes = 10;
  Reset(limits);
  ASSERT_TRUE(Feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789").ok());
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_EQ(rec_.requests[0].body, "0123456789");
  Reset(limits);
  EXPECT_EQ(Feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(out_, ErrorResponse("413 Content Too Large"));
  EXPECT_TRUE(rec_.requests.empty());  // refused before it was surfaced
}

TEST_F(ServerTest, ChunkedBodyLimitBoundary) {
  CodecLimits limits;
  limits.max_body_bytes = 10;
  const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  Reset(limits);
  ASSERT_TRUE(Feed(head + "5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n").ok());
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_EQ(rec_.requests[0].body, "0123456789");
  EXPECT_TRUE(rec_.resets.empty());
  Reset(limits);
  EXPECT_EQ(Feed(head + "5\r\n01234\r\n6\r\n").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(out_, ErrorResponse("413 Content Too Large"));
  EXPECT_THAT(rec_.resets, ElementsAre(Pair(1u, ResetReason::kTooLarge)));
}

TEST_F(ServerTest, AbsoluteFormSplit) {
  ASSERT_TRUE(Feed("GET http://Example.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"
                   "GET HTTPS://b.com HTTP/1.1\r\nHost: b.com\r\n\r\n"
                   "GET http://c.com?x HTTP/1.1\r\n\r\n")
                  .ok());
  ASSERT_EQ(rec_.requests.size(), 3u);
  EXPECT_EQ(rec_.requests[0].head.authority, "Example.com:8080");
  EXPECT_EQ(rec_.requests[0].head.path, "/p?q=1");
  EXPECT_EQ(rec_.requests[0].head.scheme, "http");
  EXPECT_TRUE(rec_.requests[0].head.headers.empty());  // Host is never a header
  EXPECT_EQ(rec_.requests[1].head.path, "/");
  EXPECT_EQ(rec_.requests[1].head.scheme, "https");
  EXPECT_EQ(rec_.requests[2].head.authority, "c.com");
  EXPECT_EQ(rec_.requests[2].head.path, "/?x");
}

TEST_F(ServerTest, LeadingEmptyLinesIgnored) {
  ASSERT_TRUE(Feed("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  EXPECT_EQ(rec_.requests.size(), 1u);
}

// ------------------------------------------------------- server: encoding

TEST_F(ServerTest, EncodeContentLengthResponse) {
  ASSERT_TRUE(Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  codec_->EncodeResponseHead(
      1, ResponseHead{200, {{"content-type", "text/plain"}, {"Content-Length", "5"}}}, false, out_);
  codec_->EncodeResponseData(1, "hel", false, out_);
  codec_->EncodeResponseData(1, "lo world", true, out_);  // the excess is dropped
  EXPECT_EQ(out_, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello");
  EXPECT_FALSE(codec_->WantsClose());
}

TEST_F(ServerTest, ShortContentLengthBodyClosesConnection) {
  ASSERT_TRUE(Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  codec_->EncodeResponseHead(1, ResponseHead{200, {{"content-length", "5"}}}, false, out_);
  codec_->EncodeResponseData(1, "hel", true, out_);
  EXPECT_TRUE(codec_->WantsClose());
}

TEST_F(ServerTest, EncodeEndStreamOnHeadAddsZeroLength) {
  ASSERT_TRUE(Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  codec_->EncodeResponseHead(1, ResponseHead{404, {}}, true, out_);
  EXPECT_EQ(out_, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
}

TEST_F(ServerTest, EncodeChunkedResponseWithTrailers) {
  ASSERT_TRUE(Feed("POST /svc HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  codec_->EncodeResponseHead(1, ResponseHead{200, {{"content-type", "application/grpc"}}}, false,
                             out_);
  codec_->EncodeResponseData(1, "hello", false, out_);
  codec_->EncodeResponseData(1, "", false, out_);  // must not end the body early
  codec_->EncodeResponseData(1, std::string(26, 'z'), false, out_);
  codec_->EncodeResponseTrailers(1, {{"grpc-status", "0"}, {"content-length", "9"}}, out_);
  EXPECT_EQ(
      out_,
      "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n1a\r\n" +
          std::string(26, 'z') + "\r\n0\r\ngrpc-status: 0\r\n\r\n");
  EXPECT_FALSE(codec_->WantsClose());
}

TEST_F(ServerTest, TrailersDroppedForContentLengthResponse) {
  ASSERT_TRUE(Feed("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  codec_->EncodeResponseHead(1, ResponseHead{200, {{"content-length", "2"}}}, false, out_);
  codec_->EncodeResponseData(1, "ok", false, out_);
  codec_->EncodeResponseTrailers(1, {{"x-t", "v"}}, out_);
  EXPECT_EQ(out_, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
  Respond(2, 204, {}, "");  // stream 1 is finished: 2 is next
  EXPECT_EQ(out_, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n");
}

TEST_F(ServerTest, HeadResponseHasNoBody) {
  ASSERT_TRUE(Feed("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  codec_->EncodeResponseHead(1, ResponseHead{200, {{"content-length", "5"}}}, false, out_);
  codec_->EncodeResponseData(1, "hello", true, out_);
  EXPECT_EQ(out_, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
  EXPECT_FALSE(codec_->WantsClose());
}

TEST_F(ServerTest, NoBodyStatuses) {
  ASSERT_TRUE(Feed("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  codec_->EncodeResponseHead(1, ResponseHead{204, {{"content-length", "3"}}}, false, out_);
  codec_->EncodeResponseData(1, "abc", true, out_);
  codec_->EncodeResponseHead(2, ResponseHead{304, {{"content-length", "3"}}}, false, out_);
  codec_->EncodeResponseData(2, "abc", true, out_);
  EXPECT_EQ(out_,
            "HTTP/1.1 204 No Content\r\n\r\n"
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 3\r\n\r\n");
  EXPECT_FALSE(codec_->WantsClose());
}

TEST_F(ServerTest, Http10ClientGetsCloseDelimitedBody) {
  ASSERT_TRUE(Feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").ok());
  codec_->EncodeResponseHead(1, ResponseHead{200, {}}, false, out_);
  codec_->EncodeResponseData(1, "abc", false, out_);
  EXPECT_FALSE(codec_->WantsClose());
  codec_->EncodeResponseData(1, "def", true, out_);
  EXPECT_EQ(out_, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabcdef");
  EXPECT_TRUE(codec_->WantsClose());
}

TEST_F(ServerTest, CallerHopByHopFieldsDroppedAndCloseHonoured) {
  ASSERT_TRUE(Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  codec_->EncodeResponseHead(1,
                             ResponseHead{200,
                                          {{"Transfer-Encoding", "chunked"},
                                           {"upgrade", "h2c"},
                                           {"keep-alive", "timeout=5"},
                                           {"x-a", "1"},
                                           {"x-inject", "1\r\nx-evil: 2"},
                                           {"bad name", "v"},
                                           {"connection", "Close"}}},
                             true, out_);
  EXPECT_EQ(out_, "HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
  EXPECT_TRUE(codec_->WantsClose());
}

TEST_F(ServerTest, InterimResponseDoesNotEndStream) {
  ASSERT_TRUE(Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  codec_->EncodeResponseHead(1, ResponseHead{103, {{"link", "</a.css>"}}}, false, out_);
  codec_->EncodeResponseHead(1, ResponseHead{599, {}}, true, out_);
  EXPECT_EQ(out_,
            "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"
            "HTTP/1.1 599 \r\ncontent-length: 0\r\n\r\n");
}

TEST_F(ServerTest, EarlyResponseClosesAndDiscardsRestOfBody) {
  ASSERT_TRUE(Feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc").ok());
  Respond(1, 413, {}, "");
  EXPECT_TRUE(codec_->WantsClose());
  ASSERT_TRUE(Feed("defghij").ok());
  ASSERT_EQ(rec_.requests.size(), 1u);
  EXPECT_EQ(rec_.requests[0].body, "abc");
  EXPECT_EQ(rec_.requests[0].end_events, 0);
}

TEST_F(ServerTest, ResponseFromInsideCallback) {
  // The connection manager may answer synchronously from a callback.
  rec_.on_end = [this](StreamId stream) { Respond(stream, 200, {}, "ok"); };
  ASSERT_TRUE(Feed("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  EXPECT_EQ(rec_.requests.size(), 2u);
  const std::string one =
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
  EXPECT_EQ(out_, one + one);
  EXPECT_FALSE(codec_->WantsClose());
}

TEST_F(ServerTest, ResetStreamClosesConnection) {
  ASSERT_TRUE(Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  EXPECT_TRUE(codec_->ResetStream(7, out_));  // unknown: nothing to do
  EXPECT_FALSE(codec_->WantsClose());
  EXPECT_FALSE(codec_->ResetStream(1, out_));
  EXPECT_TRUE(codec_->WantsClose());
  Respond(1, 200, {}, "");
  EXPECT_EQ(out_, "");
}

}  // namespace
}  // namespace cairn::sidecar
