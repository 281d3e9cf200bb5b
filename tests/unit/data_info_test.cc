#include "common/data_info.h"

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(DataInfoTest, NormalizeFillsDefaultsAndIdRoundTrips) {
  pb::DataInfoKey key;
  key.set_data_id("com.example.EchoService:1.0");
  pb::DataInfoKey normalized = NormalizeKey(key);
  EXPECT_EQ(normalized.group(), "DEFAULT_GROUP");
  EXPECT_EQ(normalized.instance_id(), "DEFAULT_INSTANCE_ID");
  std::string id = DataInfoId(normalized);
  EXPECT_EQ(id, "com.example.EchoService:1.0#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP");
  pb::DataInfoKey parsed;
  ASSERT_TRUE(ParseDataInfoId(id, &parsed));
  EXPECT_EQ(parsed.data_id(), key.data_id());
  EXPECT_EQ(parsed.group(), "DEFAULT_GROUP");
  EXPECT_FALSE(ParseDataInfoId("no-separators", &parsed));
}

TEST(DataInfoTest, SlotIsStableAndInRange) {
  // The slot function is part of the cluster's on-disk contract: pin values.
  EXPECT_EQ(SlotOf("a", 256), SlotOf("a", 256));
  EXPECT_EQ(SlotOf("", 256), 1469598103934665603ULL % 256);
  int hits[16] = {};
  for (int i = 0; i < 1600; ++i) ++hits[SlotOf("service-" + std::to_string(i), 16)];
  for (int h : hits) {
    EXPECT_GT(h, 50);  // roughly uniform: 100 expected per slot
    EXPECT_LT(h, 160);
  }
}

TEST(DataInfoTest, ValidatePublishEnforcesLimits) {
  pb::Publish p;
  p.set_registration_id("r1");
  p.mutable_key()->set_data_id("svc");
  p.add_data("bolt://127.0.0.1:12200");
  EXPECT_TRUE(ValidatePublish(p).ok());

  pb::Publish no_id = p;
  no_id.clear_registration_id();
  EXPECT_EQ(ValidatePublish(no_id).code(), absl::StatusCode::kInvalidArgument);

  pb::Publish empty_data_id = p;
  empty_data_id.mutable_key()->clear_data_id();
  EXPECT_EQ(ValidatePublish(empty_data_id).message(), "data_id must not be empty");

  pb::Publish long_id = p;
  long_id.mutable_key()->set_data_id(std::string(Limits::kMaxDataId + 1, 'x'));
  EXPECT_EQ(ValidatePublish(long_id).code(), absl::StatusCode::kInvalidArgument);

  pb::Publish big_entry = p;
  big_entry.add_data(std::string(Limits::kMaxDataEntryBytes + 1, 'x'));
  EXPECT_NE(ValidatePublish(big_entry).message().find("data[1]"), std::string::npos);

  pb::Publish too_many = p;
  for (size_t i = 0; i < Limits::kMaxDataEntries; ++i) too_many.add_data("x");
  EXPECT_EQ(ValidatePublish(too_many).code(), absl::StatusCode::kInvalidArgument);

  pb::Publish separator = p;
  separator.mutable_key()->set_group("a#@#b");
  EXPECT_EQ(ValidatePublish(separator).code(), absl::StatusCode::kInvalidArgument);
}

TEST(DataInfoTest, RejectUnknownFieldsFindsNestedUnknowns) {
  pb::ClientMessage message;
  message.mutable_publish()->set_registration_id("r");
  EXPECT_TRUE(RejectUnknownFields(message).ok());

  // Field 99 of Publish does not exist: craft the bytes by hand.
  pb::Publish inner;
  inner.set_registration_id("r");
  std::string inner_bytes = inner.SerializeAsString();
  inner_bytes += std::string("\x98\x06\x01", 3);  // tag (99 << 3 | varint), value 1
  pb::ClientMessage with_unknown;
  ASSERT_TRUE(with_unknown.mutable_publish()->ParseFromString(inner_bytes));
  absl::Status s = RejectUnknownFields(with_unknown);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("99"), std::string::npos) << s;
}

}  // namespace
}  // namespace cairn
