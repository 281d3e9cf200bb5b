#include "sidecar/codec/dubbo/dubbo_frame.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cairn::sidecar::dubbo {
namespace {

// Hessian2 string tags (see ReadHessian2String).
constexpr uint8_t kShortStringMax = 0x1f;
constexpr uint8_t kMediumString0 = 0x30;
constexpr uint8_t kMediumString3 = 0x33;
constexpr uint8_t kFinalChunk = 'S';
constexpr uint8_t kNonFinalChunk = 'R';
constexpr size_t kMaxChunkUnits = 0xffff;

uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

uint32_t Get32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void Set64(char* at, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    at[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

void Set32(char* at, uint32_t v) {
  for (int i = 3; i >= 0; --i) {
    at[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

void Put(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat("dubbo: ", message));
}

// Validates the start of a frame as far as it goes (the magic byte by byte,
// then the body length) and sets `total` to the frame size once the header is
// complete (0 before).
absl::Status Probe(std::string_view prefix, const DubboLimits& limits, size_t& total) {
  total = 0;
  const uint8_t* p = Bytes(prefix);
  if (!prefix.empty() && p[0] != kMagic0) {
    return Invalid(absl::StrCat("bad magic byte 0: ", p[0], " (expected 218 = 0xda)"));
  }
  if (prefix.size() >= 2 && p[1] != kMagic1) {
    return Invalid(absl::StrCat("bad magic byte 1: ", p[1], " (expected 187 = 0xbb)"));
  }
  if (prefix.size() < kHeaderBytes) return absl::OkStatus();
  const auto body_length = static_cast<int32_t>(Get32(p + 12));
  if (body_length < 0) {
    return Invalid(absl::StrCat("body length ", body_length, " is negative"));
  }
  const uint64_t frame_bytes = kHeaderBytes + static_cast<uint64_t>(body_length);
  if (frame_bytes > limits.max_frame_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("dubbo: frame size ", frame_bytes, " (body length ", body_length,
                     ") exceeds max_frame_bytes ", limits.max_frame_bytes));
  }
  total = static_cast<size_t>(frame_bytes);
  return absl::OkStatus();
}

// Advances `at` over `units` UTF-16 code units of UTF-8 in `in`. False when a
// byte is not UTF-8 or the text would end past `in` or in the middle of a
// 4-byte sequence (two units).
bool SkipUtf8Units(std::string_view in, size_t& at, size_t units) {
  const uint8_t* p = Bytes(in);
  size_t i = at;
  while (units > 0) {
    if (i >= in.size()) return false;
    const uint8_t lead = p[i];
    size_t length = 1;
    size_t cost = 1;
    if (lead < 0x80) {
      length = 1;
    } else if (lead >= 0xc2 && lead <= 0xdf) {
      length = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;  // surrogates included: Java writes a pair as two of these
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      cost = 2;
    } else {
      return false;
    }
    if (cost > units || in.size() - i < length) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
    }
    i += length;
    units -= cost;
  }
  at = i;
  return true;
}

// Appends the tag of a final chunk of `units` code units, shortest form.
void AppendFinalChunkTag(size_t units, std::string& out) {
  if (units <= kShortStringMax) {
    Put(out, static_cast<uint8_t>(units));
  } else if (units < 1024) {
    Put(out, static_cast<uint8_t>(kMediumString0 + (units >> 8)));
    Put(out, static_cast<uint8_t>(units & 0xff));
  } else {
    Put(out, kFinalChunk);
    Put(out, static_cast<uint8_t>(units >> 8));
    Put(out, static_cast<uint8_t>(units & 0xff));
  }
}

void BuildFrame(std::string_view data, DubboFrameView& frame) {
  const uint8_t* p = Bytes(data);
  frame = DubboFrameView{};
  frame.flag = p[2];
  frame.status = p[3];
  frame.request_id = Get64(p + 4);
  frame.raw = data;
  frame.body = data.substr(kHeaderBytes);
  if (frame.is_request() && !frame.is_event() && frame.serialization() == kSerializationHessian2) {
    frame.has_head = ParseRequestHead(frame.body, frame.head);
  }
}

}  // namespace

std::string_view DubboStatusName(uint8_t status) {
  switch (static_cast<DubboStatus>(status)) {
    case DubboStatus::kOk:
      return "OK";
    case DubboStatus::kClientTimeout:
      return "CLIENT_TIMEOUT";
    case DubboStatus::kServerTimeout:
      return "SERVER_TIMEOUT";
    case DubboStatus::kChannelInactive:
      return "CHANNEL_INACTIVE";
    case DubboStatus::kBadRequest:
      return "BAD_REQUEST";
    case DubboStatus::kBadResponse:
      return "BAD_RESPONSE";
    case DubboStatus::kServiceNotFound:
      return "SERVICE_NOT_FOUND";
    case DubboStatus::kServiceError:
      return "SERVICE_ERROR";
    case DubboStatus::kServerError:
      return "SERVER_ERROR";
    case DubboStatus::kClientError:
      return "CLIENT_ERROR";
    case DubboStatus::kServerThreadpoolExhausted:
      return "SERVER_THREADPOOL_EXHAUSTED_ERROR";
  }
  return "UNRECOGNIZED";
}

bool ReadHessian2String(std::string_view in, size_t& pos, std::string_view& out) {
  if (pos >= in.size()) return false;
  const uint8_t* p = Bytes(in);
  const uint8_t tag = p[pos];
  size_t at = pos + 1;
  size_t units = 0;
  if (tag == static_cast<uint8_t>(kHessian2Null)) {
    out = {};
    pos = at;
    return true;
  }
  if (tag <= kShortStringMax) {
    units = tag;
  } else if (tag >= kMediumString0 && tag <= kMediumString3) {
    if (at >= in.size()) return false;
    units = (static_cast<size_t>(tag - kMediumString0) << 8) | p[at];
    at += 1;
  } else if (tag == kFinalChunk) {
    if (in.size() - at < 2) return false;
    units = (static_cast<size_t>(p[at]) << 8) | p[at + 1];
    at += 2;
  } else {
    return false;  // 'R' (chunked) and every other type
  }
  const size_t start = at;
  if (!SkipUtf8Units(in, at, units)) return false;
  out = in.substr(start, at - start);
  pos = at;
  return true;
}

bool ParseRequestHead(std::string_view body, DubboRequestHead& head) {
  size_t pos = 0;
  DubboRequestHead h;
  if (ReadHessian2String(body, pos, h.dubbo_version) &&
      ReadHessian2String(body, pos, h.service_path) &&
      ReadHessian2String(body, pos, h.service_version) && ReadHessian2String(body, pos, h.method)) {
    head = h;
    return true;
  }
  head = DubboRequestHead{};
  return false;
}

// ------------------------------------------------------------------ decoder

DubboDecoder::DubboDecoder(const DubboLimits& limits) : limits_(limits) {}

absl::Status DubboDecoder::Fail(absl::Status status) {
  status_ = std::move(status);
  assembler_.Clear();
  frame_ = DubboFrameView{};
  return status_;
}

absl::StatusOr<const DubboFrameView*> DubboDecoder::Next(std::string_view& input) {
  if (!status_.ok()) return status_;
  absl::StatusOr<std::optional<std::string_view>> data =
      assembler_.Next(input, [this](std::string_view prefix, FrameExtent& extent) {
        size_t total = 0;
        absl::Status s = Probe(prefix, limits_, total);
        // Until the header is complete, the header is what is needed next.
        extent = FrameExtent{total, total != 0 ? total : kHeaderBytes};
        return s;
      });
  if (!data.ok()) return Fail(data.status());
  if (!data->has_value()) return nullptr;
  BuildFrame(**data, frame_);
  return &frame_;
}

// ------------------------------------------------------------------ rewrite

absl::Status RewriteRequestId(std::span<char> frame, uint64_t request_id) {
  const std::string_view bytes(frame.data(), frame.size());
  if (bytes.size() < kHeaderBytes) {
    return Invalid(absl::StrCat("RewriteRequestId needs a whole frame; got ", bytes.size(),
                                " bytes, less than the 16-byte header"));
  }
  DubboLimits unlimited;
  unlimited.max_frame_bytes = std::numeric_limits<size_t>::max();
  size_t total = 0;
  if (absl::Status s = Probe(bytes, unlimited, total); !s.ok()) return s;
  if (total != bytes.size()) {
    return Invalid(absl::StrCat("RewriteRequestId needs one whole frame; got ", bytes.size(),
                                " bytes, the header says ", total));
  }
  Set64(frame.data() + 4, request_id);
  return absl::OkStatus();
}

absl::Status RewriteRequestId(std::string& frame, uint64_t request_id) {
  return RewriteRequestId(std::span<char>(frame.data(), frame.size()), request_id);
}

// ------------------------------------------------------------------ encoders

void AppendHessian2AsciiString(std::string_view ascii, std::string& out) {
  while (ascii.size() > kMaxChunkUnits) {
    Put(out, kNonFinalChunk);
    Put(out, 0xff);
    Put(out, 0xff);
    out.append(ascii.substr(0, kMaxChunkUnits));
    ascii.remove_prefix(kMaxChunkUnits);
  }
  AppendFinalChunkTag(ascii.size(), out);
  out.append(ascii);
}

void EncodeFrame(uint8_t flag, uint8_t status, uint64_t request_id, std::string_view body,
                 std::string& out) {
  char header[kHeaderBytes];
  header[0] = static_cast<char>(kMagic0);
  header[1] = static_cast<char>(kMagic1);
  header[2] = static_cast<char>(flag);
  header[3] = static_cast<char>(status);
  Set64(header + 4, request_id);
  Set32(header + 12, static_cast<uint32_t>(body.size()));
  out.reserve(out.size() + kHeaderBytes + body.size());
  out.append(header, kHeaderBytes);
  out.append(body);
}

void EncodeHeartbeat(uint64_t request_id, std::string& out, uint8_t serialization) {
  const uint8_t flag =
      kFlagRequest | kFlagTwoWay | kFlagEvent | (serialization & kSerializationMask);
  EncodeFrame(flag, 0, request_id, std::string_view(&kHessian2Null, 1), out);
}

void EncodeHeartbeatAck(uint64_t request_id, uint8_t serialization, std::string& out,
                        std::string_view null_body) {
  const uint8_t flag = kFlagEvent | (serialization & kSerializationMask);
  EncodeFrame(flag, static_cast<uint8_t>(DubboStatus::kOk), request_id, null_body, out);
}

void EncodeErrorResponse(uint8_t serialization, uint64_t request_id, uint8_t status,
                         std::string_view message, std::string& out) {
  const std::string_view cut = message.substr(0, kMaxErrorMessageBytes);
  const size_t frame_at = out.size();
  // The body length is patched in below, once the string is written: the
  // message is sanitized straight into `out`, with no copy of its own.
  EncodeFrame(serialization & kSerializationMask, status, request_id, {}, out);
  const size_t body_at = out.size();
  AppendFinalChunkTag(cut.size(), out);
  for (char c : cut) out.push_back(c >= 0x20 && c <= 0x7e ? c : '?');
  Set32(out.data() + frame_at + 12, static_cast<uint32_t>(out.size() - body_at));
}

}  // namespace cairn::sidecar::dubbo
