// Client codec tests, and the cross-codec round trip (server parse ->
// client encode -> server parse).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "http1_test_recorders.h"
#include "sidecar/codec/http1/http1_codec.h"

namespace cairn::sidecar {
namespace {

using http1_test::ClientRecorder;
using http1_test::ClientResponse;
using http1_test::ServerRecorder;
using http1_test::ServerRequest;
using ::testing::ElementsAre;
using ::testing::Pair;

class ClientTest : public ::testing::Test {
 protected:
  StreamId Start(std::string method, std::string path, HeaderList headers, bool end_stream) {
    RequestHead head;
    head.method = std::move(method);
    head.path = std::move(path);
    head.authority = "api.local";
    head.scheme = "http";
    head.headers = std::move(headers);
    return codec_->EncodeRequestHead(head, end_stream, out_);
  }
  absl::Status Feed(std::string_view bytes) { return codec_->OnIngress(bytes, out_); }

  ClientRecorder rec_;
  std::unique_ptr<ClientCodec> codec_ = NewHttp1ClientCodec(rec_, CodecLimits{});
  std::string out_;
};

TEST_F(ClientTest, EncodeGetRequest) {
  EXPECT_TRUE(codec_->CanStartStream());
  const StreamId id = Start("GET", "/p?q",
                            {{"x-a", "1"},
                             {"connection", "close"},
                             {"host", "other"},
                             {"transfer-encoding", "chunked"},
                             {"te", "trailers"}},
                            true);
  EXPECT_EQ(id, 1u);
  EXPECT_EQ(out_, "GET /p?q HTTP/1.1\r\nhost: api.local\r\nx-a: 1\r\nte: trailers\r\n\r\n");
  EXPECT_FALSE(codec_->CanStartStream());
  EXPECT_FALSE(codec_->SupportsMultiplexing());
  // One request at a time: misuse writes nothing.
  out_.clear();
  EXPECT_EQ(Start("GET", "/", {}, true), 0u);
  EXPECT_EQ(out_, "");
}

TEST_F(ClientTest, EncodeRejectsUnencodableHeads) {
  EXPECT_EQ(Start("GE T", "/", {}, true), 0u);
  EXPECT_EQ(Start("GET", "/a b", {}, true), 0u);
  EXPECT_EQ(Start("GET", "/a\r\nx: y", {}, true), 0u);
  EXPECT_EQ(out_, "");
  EXPECT_TRUE(codec_->CanStartStream());
}

TEST_F(ClientTest, EncodeChunkedRequestWithTrailers) {
  const StreamId id = Start("POST", "/up", {}, false);
  codec_->EncodeRequestData(id, "abc", false, out_);
  codec_->EncodeRequestTrailers(id, {{"x-t", "v"}, {"transfer-encoding", "x"}}, out_);
  EXPECT_EQ(out_,
            "POST /up HTTP/1.1\r\nhost: api.local\r\ntransfer-encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n0\r\nx-t: v\r\n\r\n");
}

TEST_F(ClientTest, EncodeContentLengthRequest) {
  const StreamId id = Start("POST", "/up", {{"content-length", "3"}}, false);
  codec_->EncodeRequestData(id, "abcdef", true, out_);
  EXPECT_EQ(out_, "POST /up HTTP/1.1\r\nhost: api.local\r\ncontent-length: 3\r\n\r\nabc");
}

TEST_F(ClientTest, ContentLengthResponseWholeAndByteByByte) {
  const std::string response =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nKeep-Alive: x\r\n\r\n"
      "hello";
  for (bool byte_by_byte : {false, true}) {
    SCOPED_TRACE(byte_by_byte);
    rec_ = ClientRecorder();
    codec_ = NewHttp1ClientCodec(rec_, CodecLimits{});
    Start("GET", "/", {}, true);
    if (byte_by_byte) {
      for (char c : response) ASSERT_TRUE(Feed(std::string_view(&c, 1)).ok());
    } else {
      ASSERT_TRUE(Feed(response).ok());
    }
    ASSERT_EQ(rec_.responses.size(), 1u);
    const ClientResponse& r = rec_.responses[0];
    EXPECT_EQ(r.id, 1u);
    EXPECT_EQ(r.head.status, 200);
    EXPECT_THAT(r.head.headers,
                ElementsAre(Pair("content-type", "text/plain"), Pair("content-length", "5")));
    EXPECT_FALSE(r.head_end);
    EXPECT_EQ(r.body, "hello");
    EXPECT_EQ(r.end_events, 1);
    EXPECT_TRUE(codec_->CanStartStream());
    EXPECT_FALSE(codec_->WantsClose());
  }
  out_.clear();
  EXPECT_EQ(Start("GET", "/again", {}, true), 2u);
}

TEST_F(ClientTest, ChunkedResponseWithTrailers) {
  Start("POST", "/svc", {}, true);
  ASSERT_TRUE(Feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabc\r\n0\r\ngrpc-status: 0\r\n\r\n")
                  .ok());
  ASSERT_EQ(rec_.responses.size(), 1u);
  EXPECT_TRUE(rec_.responses[0].head.headers.empty());
  EXPECT_EQ(rec_.responses[0].body, "abc");
  EXPECT_THAT(rec_.responses[0].trailers, ElementsAre(Pair("grpc-status", "0")));
  EXPECT_EQ(rec_.responses[0].end_events, 1);
  EXPECT_TRUE(codec_->CanStartStream());
}

TEST_F(ClientTest, CloseDelimitedResponseEndsAtEof) {
  Start("GET", "/", {}, true);
  ASSERT_TRUE(Feed("HTTP/1.1 200 OK\r\n\r\nabc").ok());
  ASSERT_TRUE(Feed("def").ok());
  ASSERT_EQ(rec_.responses.size(), 1u);
  EXPECT_EQ(rec_.responses[0].end_events, 0);
  EXPECT_TRUE(codec_->WantsClose());
  codec_->OnUpstreamClosed();
  EXPECT_EQ(rec_.responses[0].body, "abcdef");
  EXPECT_EQ(rec_.responses[0].end_events, 1);
  EXPECT_TRUE(rec_.resets.empty());
  EXPECT_FALSE(codec_->CanStartStream());
}

TEST_F(ClientTest, InterimResponsesSkipped) {
  Start("POST", "/", {{"content-length", "0"}}, true);
  ASSERT_TRUE(Feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                  .ok());
  ASSERT_EQ(rec_.responses.size(), 1u);
  EXPECT_EQ(rec_.responses[0].head.status, 200);
  EXPECT_EQ(rec_.responses[0].body, "ok");
}

TEST_F(ClientTest, HeadResponseHasNoBody) {
  Start("HEAD", "/", {}, true);
  ASSERT_TRUE(Feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").ok());
  ASSERT_EQ(rec_.responses.size(), 1u);
  EXPECT_TRUE(rec_.responses[0].head_end);
  EXPECT_THAT(rec_.responses[0].head.headers, ElementsAre(Pair("content-length", "5")));
  ASSERT_TRUE(codec_->CanStartStream());
  Start("GET", "/", {}, true);
  ASSERT_TRUE(Feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").ok());
  ASSERT_EQ(rec_.responses.size(), 2u);
  EXPECT_EQ(rec_.responses[1].body, "ok");
}

TEST_F(ClientTest, NoBodyStatuses) {
  for (const char* response : {"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
                               "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n"}) {
    SCOPED_TRACE(response);
    ASSERT_TRUE(codec_->CanStartStream());
    Start("GET", "/", {}, true);
    ASSERT_TRUE(Feed(response).ok());
    EXPECT_TRUE(rec_.responses.back().head_end);
  }
  EXPECT_EQ(rec_.responses.size(), 2u);
  EXPECT_TRUE(codec_->CanStartStream());
}

TEST_F(ClientTest, ConnectionReuseRules) {
  struct Case {
    const char* response;
    bool reusable;
  };
  const Case cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.response);
    rec_ = ClientRecorder();
    codec_ = NewHttp1ClientCodec(rec_, CodecLimits{});
    Start("GET", "/", {}, true);
    ASSERT_TRUE(Feed(c.response).ok());
    ASSERT_EQ(rec_.responses.size(), 1u);
    EXPECT_EQ(codec_->CanStartStream(), c.reusable);
    EXPECT_EQ(codec_->WantsClose(), !c.reusable);
  }
}

TEST_F(ClientTest, MalformedResponsesResetStream) {
  const char* cases[] = {
      "HTTP/1.1 2x0 OK\r\n\r\n",
      "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",  // only requests may lead with CRLF
      "ICY 200 OK\r\n\r\n",
      "HTTP/2.0 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
  };
  for (const char* response : cases) {
    SCOPED_TRACE(response);
    rec_ = ClientRecorder();
    codec_ = NewHttp1ClientCodec(rec_, CodecLimits{});
    Start("GET", "/", {}, true);
    EXPECT_EQ(Feed(response).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(rec_.resets, ElementsAre(Pair(1u, ResetReason::kProtocolError)));
    EXPECT_FALSE(codec_->CanStartStream());
    EXPECT_TRUE(codec_->WantsClose());
    EXPECT_EQ(Feed("HTTP/1.1 200 OK\r\n\r\n").code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(rec_.resets.size(), 1u);
  }
}

TEST_F(ClientTest, UnsolicitedBytesAreProtocolError) {
  EXPECT_EQ(Feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(rec_.responses.empty());
  EXPECT_TRUE(codec_->WantsClose());
}

TEST_F(ClientTest, BytesAfterCompleteResponseAreProtocolError) {
  Start("GET", "/", {}, true);
  EXPECT_EQ(Feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokX").code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(rec_.responses.size(), 1u);
  EXPECT_EQ(rec_.responses[0].end_events, 1);
  EXPECT_TRUE(rec_.resets.empty());  // that stream had already completed
}

TEST_F(ClientTest, EofMidBodyResetsStream) {
  Start("GET", "/", {}, true);
  ASSERT_TRUE(Feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").ok());
  codec_->OnUpstreamClosed();
  EXPECT_THAT(rec_.resets, ElementsAre(Pair(1u, ResetReason::kCancelled)));
  EXPECT_EQ(rec_.responses[0].end_events, 0);
  EXPECT_TRUE(codec_->WantsClose());
}

TEST_F(ClientTest, ResponseBodyLimit) {
  CodecLimits limits;
  limits.max_body_bytes = 4;
  codec_ = NewHttp1ClientCodec(rec_, limits);
  Start("GET", "/", {}, true);
  EXPECT_EQ(Feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(rec_.resets, ElementsAre(Pair(1u, ResetReason::kTooLarge)));
}

TEST_F(ClientTest, EarlyResponseEndsExchange) {
  const StreamId id = Start("POST", "/", {{"content-length", "10"}}, false);
  ASSERT_TRUE(Feed("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n").ok());
  ASSERT_EQ(rec_.responses.size(), 1u);
  EXPECT_FALSE(codec_->CanStartStream());
  EXPECT_TRUE(codec_->WantsClose());
  out_.clear();
  codec_->EncodeRequestData(id, "abc", true, out_);
  EXPECT_EQ(out_, "");
}

TEST_F(ClientTest, ResetStreamClosesConnection) {
  const StreamId id = Start("GET", "/", {}, true);
  EXPECT_TRUE(codec_->ResetStream(id + 1, out_));
  EXPECT_FALSE(codec_->ResetStream(id, out_));
  EXPECT_TRUE(codec_->WantsClose());
  EXPECT_FALSE(codec_->CanStartStream());
}

// -------------------------------------------------------------- round trip

// Downstream parse -> upstream encode -> parse again: what the proxy
// forwards must mean the same as what it received.
TEST(Http1RoundTripTest, ServerParseClientEncodeServerParse) {
  const std::string inputs[] = {
      "POST http://api.local:8080/v1/items?x=1 HTTP/1.1\r\nHost: ignored\r\n"
      "Content-Type: application/json\r\nX-Multi: a\r\nX-Multi: b\r\nTE: trailers\r\n"
      "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
      "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nx-digest: abc\r\n\r\n",
      "PUT /put HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nAccept: */*\r\n\r\nhello",
      "GET /get HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\n",
  };
  for (const std::string& input : inputs) {
    SCOPED_TRACE(input);
    ServerRecorder first;
    auto server = NewHttp1ServerCodec(first, CodecLimits{});
    std::string unused;
    ASSERT_TRUE(server->OnIngress(input, unused).ok());
    ASSERT_EQ(first.requests.size(), 1u);
    const ServerRequest& original = first.requests[0];
    ASSERT_EQ(original.end_events, 1);

    ClientRecorder upstream;
    auto client = NewHttp1ClientCodec(upstream, CodecLimits{});
    std::string wire;
    const StreamId id = client->EncodeRequestHead(original.head, original.head_end, wire);
    ASSERT_NE(id, 0u);
    if (!original.head_end) {
      client->EncodeRequestData(id, original.body, !original.has_trailers, wire);
      if (original.has_trailers) client->EncodeRequestTrailers(id, original.trailers, wire);
    }

    ServerRecorder second;
    auto server2 = NewHttp1ServerCodec(second, CodecLimits{});
    ASSERT_TRUE(server2->OnIngress(wire, unused).ok()) << wire;
    ASSERT_EQ(second.requests.size(), 1u);
    const ServerRequest& again = second.requests[0];
    EXPECT_EQ(again.head.method, original.head.method);
    EXPECT_EQ(again.head.path, original.head.path);
    EXPECT_EQ(again.head.authority, original.head.authority);
    EXPECT_EQ(again.head.headers, original.head.headers);
    EXPECT_EQ(again.head_end, original.head_end);
    EXPECT_EQ(again.body, original.body);
    EXPECT_EQ(again.trailers, original.trailers);
    EXPECT_EQ(again.end_events, 1);
  }
}

}  // namespace
}  // namespace cairn::sidecar
