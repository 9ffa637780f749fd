// The paged KV part on its own: pages appear as positions are written, a
// clone shares them until one side writes (copy on write, the other side
// unchanged), window layers release what no query sees, and the sizes the
// budget reserves bound what is held.
#include <gtest/gtest.h>

#include <cstring>

#include "models/state/kv_part.h"
#include "util/error.h"

namespace flatline {
namespace {

KvPart make(int64_t window = 0) {
  KvLayerShape full{2, 32, 32, 0, false}, win{1, 32, 32, window, false};
  return KvPart(DType::F32, window ? std::vector<KvLayerShape>{full, win} : std::vector<KvLayerShape>{full});
}

void write(KvPart& kv, int64_t layer, int64_t lo, int64_t hi, float base) {
  kv.make_writable(layer, lo, hi);
  for (int64_t p = lo; p < hi; ++p)
    for (int64_t h = 0; h < kv.layers()[layer].n_head_kv; ++h) {
      float k[32], v[32];
      for (int i = 0; i < 32; ++i) k[i] = base + p, v[i] = -base - p;
      std::memcpy(kv.k_row(layer, h, p), k, sizeof k);
      std::memcpy(kv.v_row(layer, h, p), v, sizeof v);
    }
}

float k_at(const KvPart& kv, int64_t layer, int64_t head, int64_t pos) {
  float f;
  std::memcpy(&f, kv.k_rows(layer, head).row_at(pos), 4);
  return f;
}

TEST(KvPart, PagesAppearAsPositionsAreWritten) {
  KvPart kv = make();
  EXPECT_EQ(kv.bytes(), 0u);
  write(kv, 0, 0, 10, 1);
  EXPECT_EQ(kv.bytes(), kv.page_bytes(0));
  write(kv, 0, 10, 130, 1);
  EXPECT_EQ(kv.bytes(), 3 * kv.page_bytes(0));
  EXPECT_EQ(kv.page_bytes(0), KvPart::kPageRows * 2 * 2 * 32 * 4);
  EXPECT_EQ(k_at(kv, 0, 1, 129), 130.0f);
  EXPECT_EQ(KvPart::bytes_for(DType::F32, kv.layers(), 130), 3 * kv.page_bytes(0));
}

TEST(KvPart, CloneSharesPagesUntilOneSideWrites) {
  KvPart a = make();
  write(a, 0, 0, 100, 1);
  KvPart b = a;
  EXPECT_EQ(b.shared_bytes(), b.bytes());
  // b appends into the shared second page: only that page is copied.
  write(b, 0, 100, 101, 1000);
  EXPECT_EQ(b.shared_bytes(), b.page_bytes(0));
  EXPECT_EQ(a.shared_bytes(), a.page_bytes(0));
  // a's copy of position 99 and the untouched slot 100 are unchanged by b.
  write(a, 0, 100, 101, 5);
  EXPECT_EQ(k_at(a, 0, 0, 100), 105.0f);
  EXPECT_EQ(k_at(b, 0, 0, 100), 1100.0f);
  EXPECT_EQ(k_at(a, 0, 0, 99), 100.0f);
  EXPECT_EQ(k_at(b, 0, 0, 99), 100.0f);
}

TEST(KvPart, WindowLayersReleaseWhatNoQuerySees) {
  KvPart kv = make(8);
  write(kv, 0, 0, 200, 1);
  write(kv, 1, 0, 200, 1);
  kv.release_unseen(0, 200);
  kv.release_unseen(1, 200);
  EXPECT_EQ(kv.kept_from(0), 0);
  EXPECT_EQ(kv.kept_from(1), 192);  // the next query (200) sees 193 on: pages 0-2 (0..191) are gone
  EXPECT_EQ(k_at(kv, 1, 0, 199), 200.0f);
  EXPECT_LE(kv.bytes(), KvPart::bytes_for(DType::F32, kv.layers(), 200));
}

TEST(KvPart, SaveFormatRoundTrips) {
  KvPart a = make();
  write(a, 0, 0, 70, 3);
  std::vector<uint8_t> bytes;
  a.append_positions(bytes, 0, 5, 70);
  EXPECT_EQ(bytes.size(), a.payload_bytes(0, 65));
  KvPart b = make();
  EXPECT_EQ(b.read_positions(bytes, 0, 5, 70), bytes.size());
  for (int64_t p = 5; p < 70; ++p) EXPECT_EQ(k_at(b, 0, 1, p), k_at(a, 0, 1, p));
}

TEST(KvPart, RejectsBadShapesAndTypes) {
  EXPECT_THROW(KvPart(DType::Q4_0, {{1, 32, 32, 0, false}}), Error);
  EXPECT_THROW(KvPart(DType::F16, {{0, 32, 32, 0, false}}), Error);
}

}  // namespace
}  // namespace flatline
