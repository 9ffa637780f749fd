// The safetensors reader: well-formed files round-trip, and every kind of
// hostile file built here (truncated, huge header length, bad JSON, offsets
// past the end, overlapping, wrong sizes, unknown dtype, duplicates, broken
// indexes) is refused with a message saying what was wrong.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include "safetensors/safetensors.h"
#include "safetensors_support.h"
#include "test_support.h"
#include "util/error.h"

namespace flatline {
namespace {

namespace st = safetensors;
namespace fs = std::filesystem;

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    st::File::parse(bytes, "bad.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_MENTIONS(message, ...)                                                         \
  do {                                                                                       \
    const std::string m_ = (message);                                                        \
    EXPECT_FALSE(m_.empty()) << "expected an Error";                                         \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(m_.find(part), std::string::npos) << m_; \
  } while (0)

std::vector<uint8_t> bytes_of(size_t n) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7 + 1);
  return b;
}

TEST(Safetensors, ReadsTensorsMetadataAndData) {
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  const auto file = test::st_build({test::st_f32("b.weight", {2, 3}, a), test::st_bf16("a.bias", {2}, {1.0f, -0.5f})},
                                   {{"format", "pt"}});
  const st::File f = st::File::parse(file);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  // Data order, not alphabetical.
  EXPECT_EQ(f.tensors()[0].name, "b.weight");
  const st::TensorInfo* w = f.find("b.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, st::DType::F32);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w->n_elements(), 6);
  EXPECT_EQ(w->shape_string(), "[2, 3]");
  EXPECT_EQ(std::memcmp(w->data, a.data(), 24), 0);
  const st::TensorInfo* b = f.find("a.bias");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, st::DType::BF16);
  EXPECT_EQ(b->n_bytes(), 4u);
  EXPECT_EQ(f.find("missing"), nullptr);
}

TEST(Safetensors, ScalarsAndEmptyTensorsAreAccepted) {
  const auto file = test::st_raw(
      R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"e":{"dtype":"F16","shape":[0,5],"data_offsets":[4,4]}})",
      bytes_of(4));
  const st::File f = st::File::parse(file);
  EXPECT_EQ(f.find("s")->n_elements(), 1);
  EXPECT_EQ(f.find("e")->n_elements(), 0);
}

TEST(Safetensors, RefusesTruncatedFiles) {
  EXPECT_MENTIONS(parse_error({1, 2, 3}), "bad.safetensors", "3 bytes", "8-byte header length");
  // Header length says 100 bytes, only 10 follow.
  EXPECT_MENTIONS(parse_error(test::st_raw("{\"a\":1}   ", {}, 100)), "header length 100", "10 bytes", "truncated");
  // Data cut short: the last tensor's range ends after the file.
  auto whole = test::st_build({test::st_f32("w", {4}, {1, 2, 3, 4})});
  whole.resize(whole.size() - 3);
  EXPECT_MENTIONS(parse_error(whole), "tensor 'w'", "data_offsets [0, 16]", "past the end", "13 bytes");
}

TEST(Safetensors, RefusesHugeHeaderLength) {
  EXPECT_MENTIONS(parse_error(test::st_raw("{}", {}, 1ull << 40)), "header length 1099511627776", "limit");
  EXPECT_MENTIONS(parse_error(test::st_raw("{}", {}, UINT64_MAX - 1)), "exceeds the limit");
}

TEST(Safetensors, RefusesBadJson) {
  EXPECT_MENTIONS(parse_error(test::st_raw("{\"w\": {\"dtype\": ", {})), "not valid JSON");
  EXPECT_MENTIONS(parse_error(test::st_raw("[1, 2, 3]", {})), "must be a JSON object", "array");
  EXPECT_MENTIONS(parse_error(test::st_raw(R"({"w": 5})", {})), "tensor 'w'", "expected an object");
  EXPECT_MENTIONS(parse_error(test::st_raw(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", bytes_of(4))),
                  "missing string field 'dtype'");
  EXPECT_MENTIONS(parse_error(test::st_raw(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", bytes_of(4))),
                  "shape entries must be integers >= 0");
  EXPECT_MENTIONS(parse_error(test::st_raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", bytes_of(4))),
                  "data_offsets");
  EXPECT_MENTIONS(parse_error(test::st_raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", bytes_of(4))),
                  "end before they begin");
  EXPECT_MENTIONS(parse_error(test::st_raw(R"({"__metadata__":{"format":3}})", {})), "__metadata__['format']",
                  "must be a string");
  EXPECT_MENTIONS(
      parse_error(test::st_raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", bytes_of(4))),
      "unexpected field 'extra'");
}

TEST(Safetensors, RefusesOffsetsPastTheEnd) {
  EXPECT_MENTIONS(parse_error(test::st_raw(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", bytes_of(16))),
                  "tensor 'w'", "[8, 24]", "past the end of the data section (16 bytes)");
}

TEST(Safetensors, RefusesOverlappingTensors) {
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
  EXPECT_MENTIONS(parse_error(test::st_raw(header, bytes_of(24))), "'a' [0, 16)", "'b' [8, 24)", "overlap");
}

TEST(Safetensors, RefusesWrongSizes) {
  EXPECT_MENTIONS(parse_error(test::st_raw(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", bytes_of(20))),
                  "tensor 'w'", "shape [2, 3] x 4 bytes (F32) = 24 bytes", "span 20 bytes");
  // A shape whose byte count does not fit 64 bits.
  EXPECT_MENTIONS(
      parse_error(test::st_raw(
          R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", bytes_of(8))),
      "overflows");
}

TEST(Safetensors, RefusesUnknownDtype) {
  EXPECT_MENTIONS(parse_error(test::st_raw(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})", bytes_of(2))),
                  "tensor 'w'", "dtype 'Q4' is unknown", "F32", "BF16");
}

TEST(Safetensors, RefusesDuplicateNames) {
  const std::string header =
      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_MENTIONS(parse_error(test::st_raw(header, bytes_of(8))), "tensor 'w' appears twice");
}

// --- checkpoints ------------------------------------------------------------

struct ShardedDir {
  std::string dir;
  ShardedDir() {
    dir = test::temp_path("sharded");
    fs::create_directories(dir);
    test::write_bytes(dir + "/model-00001-of-00002.safetensors",
                      test::st_build({test::st_f32("a", {2}, {1, 2}), test::st_f32("b", {1}, {3})}));
    test::write_bytes(dir + "/model-00002-of-00002.safetensors", test::st_build({test::st_f32("c", {3}, {4, 5, 6})}));
  }
  void write_index(const std::string& weight_map) const {
    test::write_text(dir + "/model.safetensors.index.json",
                     R"({"metadata": {"total_size": 24}, "weight_map": )" + weight_map + "}");
  }
  std::string open_error() const {
    try {
      st::Checkpoint::open_dir(dir);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

const char* kGoodMap =
    R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"})";

TEST(SafetensorsCheckpoint, OpensShardsThroughTheIndex) {
  ShardedDir d;
  d.write_index(kGoodMap);
  const st::Checkpoint c = st::Checkpoint::open_dir(d.dir);
  EXPECT_EQ(c.file_count(), 2u);
  EXPECT_EQ(c.tensors().size(), 3u);
  EXPECT_EQ(c.total_bytes(), 24u);
  float v;
  std::memcpy(&v, c.tensor("c").data + 8, 4);
  EXPECT_EQ(v, 6.0f);
  EXPECT_EQ(c.find("z"), nullptr);
  try {
    c.tensor("z");
    ADD_FAILURE() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_MENTIONS(e.what(), "missing tensor 'z'");
  }
}

TEST(SafetensorsCheckpoint, WithoutIndexReadsAllModelParts) {
  ShardedDir d;
  const st::Checkpoint c = st::Checkpoint::open_dir(d.dir);
  EXPECT_EQ(c.tensors().size(), 3u);
}

TEST(SafetensorsCheckpoint, RefusesIndexNamingAMissingShard) {
  ShardedDir d;
  d.write_index(R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                    "c": "model-00003-of-00003.safetensors"})");
  EXPECT_MENTIONS(d.open_error(), "model.safetensors.index.json", "shard 'model-00003-of-00003.safetensors'",
                  "tensor 'c'", "does not exist");
}

TEST(SafetensorsCheckpoint, RefusesIndexNamingAMissingTensor) {
  ShardedDir d;
  d.write_index(R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                    "c": "model-00002-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"})");
  EXPECT_MENTIONS(d.open_error(), "tensor 'd' is mapped to shard 'model-00002-of-00002.safetensors'",
                  "does not hold it");
}

TEST(SafetensorsCheckpoint, RefusesShardTensorsTheIndexDoesNotList) {
  ShardedDir d;
  d.write_index(R"({"a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"})");
  EXPECT_MENTIONS(d.open_error(), "holds tensor 'b'", "does not list");
}

TEST(SafetensorsCheckpoint, RefusesBadIndexes) {
  ShardedDir d;
  test::write_text(d.dir + "/model.safetensors.index.json", "{\"weight_map\": [");
  EXPECT_MENTIONS(d.open_error(), "model.safetensors.index.json", "not valid JSON");
  test::write_text(d.dir + "/model.safetensors.index.json", "{\"metadata\": {}}");
  EXPECT_MENTIONS(d.open_error(), "\"weight_map\"");
  d.write_index(R"({"a": "../elsewhere.safetensors"})");
  EXPECT_MENTIONS(d.open_error(), "'../elsewhere.safetensors'", "inside the checkpoint directory");
  d.write_index(R"({"a": 3})");
  EXPECT_MENTIONS(d.open_error(), "weight_map['a']", "file name string");
}

TEST(SafetensorsCheckpoint, RefusesATensorInTwoFiles) {
  ShardedDir d;
  test::write_bytes(d.dir + "/model-00002-of-00002.safetensors", test::st_build({test::st_f32("a", {1}, {4})}));
  EXPECT_MENTIONS(d.open_error(), "tensor 'a' is in both", "model-00001-of-00002", "model-00002-of-00002");
}

TEST(SafetensorsCheckpoint, RefusesADirectoryWithoutWeights) {
  const std::string dir = test::temp_path("empty-model");
  fs::create_directories(dir);
  try {
    st::Checkpoint::open_dir(dir);
    ADD_FAILURE() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_MENTIONS(e.what(), "no model.safetensors");
  }
}

TEST(SafetensorsCheckpoint, OpensTheOuroFixtureBothWays) {
  REQUIRE_SHARED_MODEL(single, "ouro/model.safetensors");
  REQUIRE_SHARED_MODEL(sharded, "ouro/sharded/model.safetensors.index.json");
  const st::Checkpoint a = st::Checkpoint::open_files({single});
  const st::Checkpoint b = st::Checkpoint::open_index(sharded);
  EXPECT_EQ(b.file_count(), 2u);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const st::TensorInfo* t : a.tensors()) {
    const st::TensorInfo& u = b.tensor(t->name);
    EXPECT_EQ(t->shape, u.shape) << t->name;
    ASSERT_EQ(t->n_bytes(), u.n_bytes()) << t->name;
    EXPECT_EQ(std::memcmp(t->data, u.data, t->n_bytes()), 0) << t->name;
  }
}

}  // namespace
}  // namespace flatline
