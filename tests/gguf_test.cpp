// GGUF reader/writer: round trip, real fixtures, and hostile input. Every
// malformed file must produce flatline::Error with a message that names the
// problem, never a crash or an out-of-bounds read.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "test_support.h"
#include "util/error.h"

namespace flatline {
namespace {

using gguf::File;
using gguf::Writer;

std::vector<uint8_t> small_file_bytes() {
  Writer w;
  w.add_string("general.architecture", "test");
  w.add_uint32("test.count", 7);
  w.add_float32("test.eps", 1e-5f);
  w.add_bool("test.flag", true);
  w.add_int64("test.big", -42);
  w.add_string_array("tokenizer.ggml.tokens", {"a", "bc", "\xe4\xbd\xa0"});
  w.add_float32_array("tokenizer.ggml.scores", {0.5f, -1.0f, 2.0f});
  std::vector<float> data(2 * 64);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  w.add_tensor("weight", DType::F32, {64, 2}, data.data(), data.size() * 4);
  std::vector<uint8_t> q8(34 * 2, 1);
  w.add_tensor("q", DType::Q8_0, {64}, q8.data(), q8.size());
  std::string path = test::temp_path("small.gguf");
  w.write(path);
  return test::read_file(path);
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    File::parse(bytes, "bad.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

template <typename T>
void poke(std::vector<uint8_t>& bytes, size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof value);
}

TEST(Gguf, RoundTripsMetadataAndTensors) {
  auto bytes = small_file_bytes();
  File f = File::parse(bytes);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.architecture(), "test");
  EXPECT_EQ(f.get_int("test.count"), 7);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("test.eps")), 1e-5f);
  EXPECT_TRUE(f.get_bool("test.flag", false));
  EXPECT_EQ(f.get_int("test.big"), -42);
  auto tokens = f.get("tokenizer.ggml.tokens").string_array();
  ASSERT_EQ(tokens.size(), 3u);
  EXPECT_EQ(tokens[2], "\xe4\xbd\xa0");
  EXPECT_FLOAT_EQ(f.get("tokenizer.ggml.scores").float_at(1), -1.0f);
  const auto& w = f.tensor("weight");
  EXPECT_EQ(w.dims, (std::vector<int64_t>{64, 2}));
  EXPECT_EQ(w.n_bytes, 512u);
  EXPECT_EQ(reinterpret_cast<const float*>(w.data)[65], 65.0f);
  EXPECT_EQ((w.data - bytes.data()) % 32, 0);
  EXPECT_EQ(f.tensor("q").type, DType::Q8_0);
  EXPECT_EQ(f.tensor("q").n_bytes, 68u);
}

// A tensor streamed in pieces (what `flatline convert` does) gives the same
// file as one added whole; a stream of the wrong length is an error that
// leaves no file behind.
TEST(Gguf, StreamedTensorsEqualWholeOnesAndWrongLengthsFail) {
  std::vector<float> data(3 * 64);
  for (size_t i = 0; i < data.size(); ++i) data[i] = 0.25f * static_cast<float>(i);
  Writer whole, streamed;
  for (Writer* w : {&whole, &streamed}) w->add_string("general.architecture", "test");
  whole.add_tensor("w", DType::F32, {64, 3}, data.data(), data.size() * 4);
  streamed.add_tensor_streamed("w", DType::F32, {64, 3}, [&](const Writer::Sink& sink) {
    for (int r = 0; r < 3; ++r) sink(data.data() + 64 * r, 64 * 4);
  });
  EXPECT_EQ(whole.to_bytes(), streamed.to_bytes());

  for (size_t rows : {2u, 4u}) {
    Writer bad;
    bad.add_string("general.architecture", "test");
    std::vector<float> more(4 * 64);
    bad.add_tensor_streamed("w", DType::F32, {64, 3}, [&](const Writer::Sink& sink) {
      for (size_t r = 0; r < rows; ++r) sink(more.data() + 64 * r, 64 * 4);
    });
    const std::string path = test::temp_path("streamed-bad.gguf");
    try {
      bad.write(path);
      ADD_FAILURE() << "expected an Error for " << rows << " rows";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tensor w"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp." + std::to_string(::getpid())));
  }
}

TEST(Gguf, MissingKeyAndTensorNameThem) {
  auto bytes = small_file_bytes();
  File f = File::parse(bytes);
  try {
    f.get_int("test.absent");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing metadata key test.absent"), std::string::npos);
  }
  try {
    f.tensor("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor nope"), std::string::npos);
  }
  EXPECT_THROW(f.get_string("test.count"), Error);  // type mismatch
}

// End of the last tensor's data; bytes after it are only alignment padding.
size_t data_end(const std::vector<uint8_t>& bytes) {
  File f = File::parse(bytes);
  size_t end = 0;
  for (const auto& t : f.tensors()) end = std::max<size_t>(end, t.data - bytes.data() + t.n_bytes);
  return end;
}

TEST(Gguf, EveryTruncationIsAnErrorNotACrash) {
  auto bytes = small_file_bytes();
  size_t end = data_end(bytes);
  ASSERT_GT(end, 100u);
  for (size_t n = 0; n < end; ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
    std::string msg = parse_error(cut);
    EXPECT_FALSE(msg.empty()) << "prefix of " << n << " bytes was accepted";
  }
}

TEST(Gguf, TruncatedTensorDataIsReported) {
  auto bytes = small_file_bytes();
  bytes.resize(data_end(bytes) - 1);
  EXPECT_NE(parse_error(bytes).find("lies outside the data section"), std::string::npos) << parse_error(bytes);
}

TEST(Gguf, BadMagic) {
  auto bytes = small_file_bytes();
  bytes[0] = 'X';
  EXPECT_NE(parse_error(bytes).find("not a GGUF file"), std::string::npos);
}

TEST(Gguf, UnsupportedVersions) {
  auto bytes = small_file_bytes();
  poke<uint32_t>(bytes, 4, 1);
  EXPECT_NE(parse_error(bytes).find("version 1 is not supported"), std::string::npos);
  poke<uint32_t>(bytes, 4, 99);
  EXPECT_NE(parse_error(bytes).find("unsupported GGUF version 99"), std::string::npos);
  poke<uint32_t>(bytes, 4, 2);  // v2 has the same layout and is accepted
  EXPECT_EQ(parse_error(bytes), "");
}

TEST(Gguf, HugeCountsAreRejected) {
  auto bytes = small_file_bytes();
  auto b = bytes;
  poke<uint64_t>(b, 8, uint64_t{1} << 62);
  EXPECT_NE(parse_error(b).find("tensor count"), std::string::npos);
  b = bytes;
  poke<uint64_t>(b, 16, ~uint64_t{0});
  EXPECT_NE(parse_error(b).find("metadata count"), std::string::npos);
}

TEST(Gguf, HugeStringLengthIsRejected) {
  auto bytes = small_file_bytes();
  poke<uint64_t>(bytes, 24, ~uint64_t{0} - 3);  // first key's length
  std::string msg = parse_error(bytes);
  EXPECT_NE(msg.find("length"), std::string::npos) << msg;
}

// Locates the tensor info of `name` in a file we wrote and returns the byte
// offset just after its name.
size_t after_name(const std::vector<uint8_t>& bytes, const std::string& name) {
  for (size_t i = 8; i + name.size() < bytes.size(); ++i) {
    uint64_t len;
    std::memcpy(&len, bytes.data() + i - 8, 8);
    if (len == name.size() && std::memcmp(bytes.data() + i, name.data(), name.size()) == 0) {
      // Tensor infos come after metadata: take the last match.
      size_t pos = i + name.size();
      size_t later = after_name(std::vector<uint8_t>(bytes.begin() + pos, bytes.end()), name);
      return later ? pos + later : pos;
    }
  }
  return 0;
}

TEST(Gguf, HostileTensorInfos) {
  auto bytes = small_file_bytes();
  size_t at = after_name(bytes, "weight");
  ASSERT_GT(at, 0u);
  // Layout after the name: u32 n_dims, u64 dims[2], u32 type, u64 offset.
  auto b = bytes;
  poke<uint32_t>(b, at, 9);
  EXPECT_NE(parse_error(b).find("9 dimensions"), std::string::npos) << parse_error(b);
  b = bytes;
  poke<uint64_t>(b, at + 4, uint64_t{1} << 62);
  poke<uint64_t>(b, at + 12, uint64_t{1} << 62);
  EXPECT_NE(parse_error(b).find("overflows"), std::string::npos) << parse_error(b);
  b = bytes;
  poke<uint32_t>(b, at + 20, 4);  // removed ggml type id
  EXPECT_NE(parse_error(b).find("unknown tensor type id 4"), std::string::npos) << parse_error(b);
  b = bytes;
  poke<uint32_t>(b, at + 20, static_cast<uint32_t>(DType::Q8_0));  // 64 ok, but 2 rows of 64 -> fine; make row 63
  poke<uint64_t>(b, at + 4, 63);
  EXPECT_NE(parse_error(b).find("not a multiple of the Q8_0 block size"), std::string::npos) << parse_error(b);
  b = bytes;
  poke<uint64_t>(b, at + 24, 7);  // misaligned offset
  EXPECT_NE(parse_error(b).find("not a multiple of the alignment"), std::string::npos) << parse_error(b);
  b = bytes;
  poke<uint64_t>(b, at + 24, ~uint64_t{0} - 31);  // offset beyond the file
  EXPECT_NE(parse_error(b).find("outside the data section"), std::string::npos) << parse_error(b);
}

TEST(Gguf, BadAlignmentAndDuplicates) {
  {
    Writer w;
    w.add_uint32("general.alignment", 24);
    std::string path = test::temp_path("align.gguf");
    w.write(path);
    EXPECT_NE(parse_error(test::read_file(path)).find("not a power of two"), std::string::npos);
  }
  {
    // Forge a duplicate key by renaming the second key in place.
    Writer w;
    w.add_uint32("key.aa", 1);
    w.add_uint32("key.bb", 2);
    std::string path = test::temp_path("dup.gguf");
    w.write(path);
    auto bytes = test::read_file(path);
    for (size_t i = 0; i + 6 <= bytes.size(); ++i)
      if (std::memcmp(bytes.data() + i, "key.bb", 6) == 0) std::memcpy(bytes.data() + i, "key.aa", 6);
    EXPECT_NE(parse_error(bytes).find("duplicate metadata key 'key.aa'"), std::string::npos);
  }
}

TEST(Gguf, RandomCorruptionNeverCrashes) {
  auto bytes = small_file_bytes();
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 3000; ++trial) {
    auto b = bytes;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
    try {
      File f = File::parse(b);
      for (const auto& t : f.tensors()) {
        // Every accepted tensor must lie inside the buffer.
        ASSERT_GE(t.data, b.data());
        ASSERT_LE(t.data + t.n_bytes, b.data() + b.size());
      }
      for (const auto& [key, value] : f.metadata()) (void)value.to_string();
    } catch (const Error&) {
    }
  }
}

TEST(Gguf, ReadsTheRwkv7Fixture) {
  REQUIRE_SHARED_MODEL(path, "tiny-rwkv7-834K-f32.gguf");
  File f = File::open(path);
  EXPECT_EQ(f.architecture(), "rwkv7");
  EXPECT_EQ(f.get_int("rwkv7.embedding_length"), 64);
  EXPECT_EQ(f.get_int("rwkv7.block_count"), 12);
  EXPECT_EQ(f.tensor("token_embd.weight").dims, (std::vector<int64_t>{64, 256}));
}

TEST(Gguf, ReadsEveryVocabOnlyFixture) {
  std::string dir = test::shared_dir();
  if (dir.empty()) GTEST_SKIP() << "../shared not found; skipping";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/models/llamacpp-vocab")) {
    if (e.path().extension() != ".gguf") continue;
    File f = File::open(e.path().string());
    EXPECT_TRUE(f.has("tokenizer.ggml.model")) << e.path();
    EXPECT_GT(f.get("tokenizer.ggml.tokens").array_size(), 1000u);
    ++n;
  }
  EXPECT_GT(n, 5);
}

}  // namespace
}  // namespace flatline
