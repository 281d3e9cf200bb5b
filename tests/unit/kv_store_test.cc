#include <gtest/gtest.h>

#include <filesystem>

#include "store/kv_store.h"

namespace cairn {
namespace {

class KvStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("cairn-kv-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(KvStoreTest, ValuesSurviveReopen) {
  {
    auto store = OpenSqliteKvStore(dir_.string());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Put("meta/a", "1").ok());
    ASSERT_TRUE((*store)->Put("meta/b", std::string("\0binary\xff", 8)).ok());
    ASSERT_TRUE((*store)->Put("meta/a", "2").ok());  // overwrite
  }
  auto store = OpenSqliteKvStore(dir_.string());
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(*(*store)->Get("meta/a"), "2");
  EXPECT_EQ(*(*store)->Get("meta/b"), std::string("\0binary\xff", 8));
  EXPECT_TRUE(absl::IsNotFound((*store)->Get("meta/c").status()));
}

TEST_F(KvStoreTest, ScanReturnsOnlyThePrefixInOrder) {
  auto store = OpenSqliteKvStore(dir_.string());
  ASSERT_TRUE(store.ok());
  for (const char* key : {"rev/b", "rev/a", "revision", "meta/x", "rev/c"}) {
    ASSERT_TRUE((*store)->Put(key, key).ok());
  }
  ASSERT_TRUE((*store)->Delete("rev/c").ok());
  ASSERT_TRUE((*store)->Delete("absent").ok());
  auto scanned = (*store)->Scan("rev/");
  ASSERT_TRUE(scanned.ok());
  ASSERT_EQ(scanned->size(), 2u);
  EXPECT_EQ(scanned->begin()->first, "rev/a");
  EXPECT_EQ(scanned->rbegin()->first, "rev/b");
}

TEST_F(KvStoreTest, UnwritableDirectoryIsAClearError) {
  auto store = OpenSqliteKvStore("/proc/cairn-cannot-exist");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("/proc/cairn-cannot-exist"), std::string::npos);
}

}  // namespace
}  // namespace cairn
