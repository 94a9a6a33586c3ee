// fill(): the bytes depend on the dataset identity and offset only.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <stdexcept>
#include <vector>

#include "dgen/dgen.hpp"
#include "kernels/kernels.hpp"
#include "simd_available.hpp"

namespace {

using dgen::kernels::Stores;

std::vector<uint8_t> whole(const dgen::Params& p, dgen::FillOptions opt = {1, 0}) {
  std::vector<uint8_t> v(p.size);
  dgen::fill(dgen::Dataset(p), 0, v, opt);
  return v;
}

dgen::Params params(uint64_t size, double dedup = 1, double compress = 1,
                    uint64_t unit = dgen::kDefaultDedupUnit, uint64_t seed = 42) {
  return dgen::Params{seed, size, dedup, compress, unit};
}


// The bytes of buf outside [lo, hi) still hold the canary.
bool untouched(const uint8_t* buf, size_t size, size_t lo, size_t hi) {
  constexpr uint8_t kCanary = 0xA5;
  return std::all_of(buf, buf + lo, [](uint8_t x) { return x == kCanary; }) &&
         std::all_of(buf + hi, buf + size, [](uint8_t x) { return x == kCanary; });
}

TEST(Kernels, EveryPathMatchesTheScalarReference) {
  const auto tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  for (const dgen::kernels::Table* t : tables) {
    SCOPED_TRACE(t->name);
    const dgen::kernels::Table& simd = *t;
    std::mt19937_64 rng(7);
    constexpr size_t kMax = 5;
    alignas(64) static uint8_t a[4096 * kMax], b[4096 * kMax + 64];
    for (int i = 0; i < 1500; ++i) {
      const size_t count = 1 + rng() % kMax;
      uint64_t keys[kMax];
      for (auto& k : keys) k = rng();
      const uint32_t r = uint32_t(rng() % 4097);
      // On the 64-byte grid, 16, 32 or 48 bytes off it, or unaligned; every way of storing
      // (odd and even page counts for pairs).
      const size_t shift = std::array<size_t, 5>{0, 16, 32, 48, 5}[i % 5];
      const Stores stores = std::array<Stores, 3>{Stores::plain, Stores::paired, Stores::stream}[i % 3];
      dgen::kernels::scalar().pages(a, keys, count, r, Stores::plain);
      std::memset(b, 0xA5, sizeof b);
      simd.pages(b + shift, keys, count, r, stores);
      simd.fence();
      ASSERT_EQ(0, std::memcmp(a, b + shift, 4096 * count)) << "random_len " << r << ", " << count << " pages, shift " << shift << ", stores " << int(stores);
      ASSERT_TRUE(untouched(b, sizeof b, shift, shift + 4096 * count)) << "random_len " << r << ", shift " << shift;
    }
  }
}

TEST(Kernels, ShiftedAndRingCopyMatchTheScalarReference) {
  const auto tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  for (const dgen::kernels::Table* t : tables) {
    SCOPED_TRACE(t->name);
    const dgen::kernels::Table &ref = dgen::kernels::scalar(), &simd = *t;
    std::mt19937_64 rng(17);
    constexpr size_t kMax = 6;
    alignas(64) static uint8_t a[4096 * kMax], b[4096 * kMax + 64];
    alignas(64) static uint8_t ring[4096 * 2 + dgen::kernels::kRingPad];
    for (int i = 0; i < 3000; ++i) {
      const size_t count = 1 + rng() % kMax;
      uint64_t keys[kMax];
      for (auto& k : keys) k = rng();
      const uint32_t r = uint32_t(16 + rng() % 4081);
      const size_t skip = rng() % 4096, n = rng() % (4096 * count - skip + 1);
      const size_t shift = size_t(16 * (i % 4));  // on the 64-byte grid or 16, 32, 48 off it
      ref.shifted(a, keys, count, skip, n, r);
      std::memset(b, 0xA5, sizeof b);
      simd.shifted(b + shift, keys, count, skip, n, r);
      simd.fence();
      ASSERT_EQ(0, std::memcmp(a, b + shift, n)) << count << " pages, skip " << skip << ", n " << n << ", shift " << shift;
      ASSERT_TRUE(untouched(b, sizeof b, shift, shift + n)) << "skip " << skip << ", n " << n << ", shift " << shift;
      // ring_copy: a ring of one or two pages, wrapping, to any alignment.
      const size_t ring_size = 4096 * (1 + i % 2), start = rng() % ring_size;
      const size_t m = rng() % (4096 * 3), at = rng() % 64;
      ref.pages(ring, keys, ring_size / 4096, r, Stores::plain);
      std::memcpy(ring + ring_size, ring, dgen::kernels::kRingPad);
      for (size_t x = 0; x < m; ++x) a[x] = ring[(start + x) % ring_size];
      std::memset(b, 0xA5, sizeof b);
      simd.ring_copy(b + at, ring, ring_size, start, m);
      simd.fence();
      ASSERT_EQ(0, std::memcmp(a, b + at, m)) << "ring " << ring_size << ", start " << start << ", n " << m << ", at " << at;
      ASSERT_TRUE(untouched(b, sizeof b, at, at + m)) << "ring_copy at " << at << ", n " << m;
    }
  }
}

TEST(Kernels, EqualFindsEveryChangedByteOnEveryPath) {
  std::vector<const dgen::kernels::Table*> tables = simd_tables();
  tables.push_back(&dgen::kernels::scalar());
  std::mt19937_64 rng(23);
  constexpr size_t kMax = 5;
  alignas(64) static uint8_t a[4096 * kMax + 64];
  for (const dgen::kernels::Table* t : tables) {
    SCOPED_TRACE(t->name);
    for (int i = 0; i < 600; ++i) {
      const size_t count = 1 + rng() % kMax, at = rng() % 64;
      uint64_t keys[kMax];
      for (auto& k : keys) k = rng();
      const uint32_t r = uint32_t(rng() % 4097);
      const bool paired = i % 2 == 0;
      dgen::kernels::scalar().pages(a + at, keys, count, r, Stores::plain);
      ASSERT_TRUE(t->equal(a + at, keys, count, r, paired)) << count << " pages, random_len " << r << ", paired " << paired;
      const size_t flip = rng() % (4096 * count);
      a[at + flip] ^= uint8_t(1 + rng() % 255);
      ASSERT_FALSE(t->equal(a + at, keys, count, r, paired)) << "byte " << flip << " of " << count << " pages, paired " << paired;
    }
  }
}

TEST(Kernels, RandomLengthsCoverEveryValue) {
  const auto tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  for (const dgen::kernels::Table* t : tables) {
    SCOPED_TRACE(t->name);
    alignas(64) static uint8_t a[8192], b[8192 + 64];
    for (uint32_t r = 0; r <= 4096; ++r) {
      const uint64_t keys[2] = {0x1234 + r, 0x99 * r};
      dgen::kernels::scalar().pages(a, keys, 2, r, Stores::plain);
      for (size_t shift : {0, 16, 32, 48}) {  // every 16-byte aligned layout, every way of storing
        for (Stores stream : {Stores::stream, Stores::plain, Stores::paired}) {
          std::memset(b, 0xA5, sizeof b);
          t->pages(b + shift, keys, 2, r, stream);
          t->fence();
          ASSERT_EQ(0, std::memcmp(a, b + shift, sizeof a))
              << "random_len " << r << ", shift " << shift << ", stores " << int(stream);
          ASSERT_TRUE(untouched(b, sizeof b, shift, shift + sizeof a))
              << "random_len " << r << ", shift " << shift << ", stores " << int(stream);
        }
      }
    }
  }
}

TEST(Fill, SizesAreExact) {
  for (uint64_t n : {0, 1, 100, 4095, 4096, 4097, 131071, 131073, 1000003}) {
    dgen::Dataset ds(params(n, 2, 2));
    std::vector<uint8_t> v(n + 16, 0xEE);
    dgen::fill(ds, 0, std::span(v).first(n));
    for (size_t i = n; i < v.size(); ++i) ASSERT_EQ(v[i], 0xEE) << "wrote past the end";
  }
}

TEST(Fill, ChunkingDoesNotChangeBytes) {
  for (const auto& p : {params(3'000'001, 1, 1), params(2'500'000, 2.5, 3.3, 4096),
                        params(5'000'000, 1.5, 1.25, 65536)}) {
    const auto ref = whole(p);
    std::mt19937_64 rng(p.size);
    for (int round = 0; round < 4; ++round) {
      std::vector<uint8_t> got(p.size);
      dgen::Dataset ds(p);
      for (uint64_t off = 0; off < p.size;) {
        const uint64_t n = std::min<uint64_t>(p.size - off, 1 + rng() % (round < 2 ? 9000 : 900000));
        dgen::fill(ds, off, std::span(got).subspan(off, n), {unsigned(1 + rng() % 4), 0});
        off += n;
      }
      ASSERT_EQ(ref, got);
    }
  }
}

TEST(Fill, ThreadCountAndBlockSizeDoNotChangeBytes) {
  const auto p = params(20'000'123, 2, 2);
  const auto ref = whole(p);
  for (unsigned t : {2u, 3u, 8u})
    for (uint64_t block : {uint64_t{4096}, uint64_t{65536 + 4096}, uint64_t{1} << 20, uint64_t{7} << 20})
      ASSERT_EQ(ref, whole(p, {t, block})) << t << " threads, block " << block;
}

TEST(Fill, FormatTwoOptionsDoNotDependOnChunkingThreadsOrBlocks) {
  // Shifted copies go through a scratch of pages kept between pieces: any cut of the
  // range, any thread count and block size must still give the same bytes.
  std::vector<dgen::Params> all;
  for (uint64_t unit : {uint64_t{4096}, uint64_t{16384}}) {
    auto p = params(3'000'007, 2.0, 2.0, unit, 9);
    p.dedup_shift = true;
    all.push_back(p);
    p.dedup_run = 3;
    p.generation = 2;
    p.change_rate = 0.3;
    p.dedup_skew = 1.5;
    all.push_back(p);
  }
  // Large enough for one call to stream: shifted copies of runs of pages then take
  // another path than in pieces.
  const uint64_t streamed = dgen::kernels::stream_threshold() + 11;
  for (uint64_t unit : {uint64_t{4096}, uint64_t{131072}}) {
    auto p = params(streamed, 2.0, 2.0, unit, 4);
    p.dedup_shift = true;
    all.push_back(p);
    p.dedup_run = 5;
    all.push_back(p);
  }
  for (const auto& p : all) {
    const auto ref = whole(p);
    ASSERT_EQ(ref, whole(p, {3, 4096 * 3}));
    if (p.size >= streamed) {  // streamed into a buffer off the 32-byte grid, and off both
      const dgen::Dataset ds(p);
      for (size_t at : {16, 5}) {
        std::vector<uint8_t> buf(p.size + 64);
        uint8_t* base = buf.data() + (32 - reinterpret_cast<uintptr_t>(buf.data()) % 32) % 32;
        dgen::fill(ds, 0, std::span(base + at, p.size), {1, 0});
        ASSERT_EQ(0, std::memcmp(ref.data(), base + at, p.size)) << "unit " << p.dedup_unit << " at " << at;
      }
    }
    std::mt19937_64 rng(p.size + p.dedup_run);
    std::vector<uint8_t> got(p.size);
    const dgen::Dataset ds(p);
    for (uint64_t off = 0; off < p.size;) {
      const uint64_t n = std::min<uint64_t>(p.size - off, 1 + rng() % 40000);
      dgen::fill(ds, off, std::span(got).subspan(off, n), {unsigned(1 + rng() % 3), 0});
      off += n;
    }
    ASSERT_EQ(ref, got) << "unit " << p.dedup_unit << " run " << p.dedup_run;
  }
}

TEST(Fill, SeedsGiveDifferentData) {
  EXPECT_NE(whole(params(8192, 1, 1, 131072, 1)), whole(params(8192, 1, 1, 131072, 2)));
}

TEST(Fill, NoPageIsAllZeros) {
  for (double c : {1.0, 2.0, 10.0, 64.0}) {
    const auto v = whole(params(64 * 4096, 3, c, 4096));
    for (size_t pg = 0; pg < 64; ++pg) {
      bool zero = true;
      for (size_t i = 0; i < 4096 && zero; ++i) zero = v[pg * 4096 + i] == 0;
      ASSERT_FALSE(zero) << "page " << pg << " compress " << c;
    }
  }
}

TEST(Fill, RangePastTheEndThrows) {
  dgen::Dataset ds(params(1000));
  std::vector<uint8_t> v(10);
  EXPECT_THROW(dgen::fill(ds, 995, v), std::out_of_range);
  EXPECT_THROW(dgen::fill(ds, ~uint64_t{0} - 3, v), std::out_of_range);
  EXPECT_NO_THROW(dgen::fill(ds, 990, v));
}

TEST(Stream, ConcurrentReadersCoverTheDatasetOnce) {
  const auto p = params(8'000'000, 2, 2);
  const auto ref = whole(p);
  dgen::Stream s(p, {2, 0});
  std::vector<uint8_t> got(p.size);
  std::vector<std::thread> readers;
  for (int t = 0; t < 8; ++t)
    readers.emplace_back([&] {
      std::vector<uint8_t> buf(100'003);
      for (;;) {
        const auto c = s.claim(buf.size());
        if (c.length == 0) return;
        dgen::fill(c.dataset, c.offset, std::span(got).subspan(c.offset, c.length));
      }
    });
  for (auto& r : readers) r.join();
  EXPECT_EQ(ref, got);
  EXPECT_EQ(s.position(), p.size);
}

TEST(Stream, SeekAndSetSeed) {
  const auto p = params(1'000'000, 1.5, 2);
  dgen::Stream s(p);
  std::vector<uint8_t> a(5000), b(5000);
  s.seek(123'456);
  s.read(a);
  s.seek(123'456);
  s.read(b);
  EXPECT_EQ(a, b);
  EXPECT_THROW(s.seek(1'000'001), std::out_of_range);
  s.set_seed(99);
  s.seek(0);
  s.read(a);
  auto q = p;
  q.seed = 99;
  const auto expected = whole(q);
  EXPECT_EQ(std::vector<uint8_t>(expected.begin(), expected.begin() + 5000), a);
}

}  // namespace
