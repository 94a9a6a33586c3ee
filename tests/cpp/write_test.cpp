// write_range(): the bytes written are fill()'s, at the file offsets asked, on any path;
// write_tfrecords(): the records around them, checksummed.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "dgen/dgen.hpp"
#include "dgen/io.hpp"

namespace {

dgen::Dataset dataset(uint64_t size) {
  return dgen::Dataset(dgen::Params{7, size, 2.0, 3.0, 64 * 1024});
}

std::vector<uint8_t> expected(const dgen::Dataset& ds, uint64_t offset, uint64_t len) {
  std::vector<uint8_t> v(len);
  dgen::fill(ds, offset, v, {1, 0});
  return v;
}

struct MemFile {  // an anonymous in-memory file
  int fd = memfd_create("dgen-write-test", 0);
  ~MemFile() { close(fd); }
  std::vector<uint8_t> read(uint64_t at, uint64_t len) const {
    std::vector<uint8_t> v(len);
    EXPECT_EQ(pread(fd, v.data(), len, off_t(at)), ssize_t(len));
    return v;
  }
};

TEST(Write, BytesAtFileOffsetsAreFillsOnEveryThreadCountAndChunk) {
  const auto ds = dataset(5 << 20);
  const uint64_t offset = 12345, len = (3 << 20) + 777, at = 4096 * 3 + 5;
  for (unsigned threads : {1u, 2u, 4u}) {
    for (uint64_t chunk : {uint64_t(4096), uint64_t(256 << 10), uint64_t(0)}) {
      MemFile f;
      dgen::WriteTarget t{f.fd, int64_t(at), false, chunk, {}};
      EXPECT_EQ(dgen::write_range(ds, offset, len, t, {threads, 0}), len);
      EXPECT_EQ(f.read(at, len), expected(ds, offset, len))
          << "threads " << threads << " chunk " << chunk;
    }
  }
}

TEST(Write, StreamedToAPipeInOrder) {
  const auto ds = dataset(3 << 20);
  for (unsigned threads : {1u, 3u}) {
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    std::vector<uint8_t> got;
    std::thread reader([&] {
      uint8_t buf[65536];
      for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) got.insert(got.end(), buf, buf + n);
    });
    dgen::WriteTarget t{p[1], -1, false, 64 * 1024, {}};
    EXPECT_EQ(dgen::write_range(ds, 100, ds.size() - 100, t, {threads, 0}), ds.size() - 100);
    close(p[1]);
    reader.join();
    close(p[0]);
    EXPECT_EQ(got, expected(ds, 100, ds.size() - 100)) << "threads " << threads;
  }
}

TEST(Write, ProgressCountsEveryByteAndFalseStopsEarly) {
  const auto ds = dataset(8 << 20);
  for (unsigned threads : {1u, 2u}) {
    MemFile f;
    uint64_t seen = 0;
    dgen::WriteTarget t{f.fd, 0, false, 4096, [&](uint64_t n) { seen += n; return true; }};
    EXPECT_EQ(dgen::write_range(ds, 0, ds.size(), t, {threads, 0}), ds.size());
    EXPECT_EQ(seen, ds.size());
    // Stopping at the first call: one chunk written, and counted.
    MemFile g;
    seen = 0;
    t = {g.fd, 0, false, 4096, [&](uint64_t n) { seen += n; return false; }};
    const uint64_t done = dgen::write_range(ds, 0, ds.size(), t, {threads, 0});
    EXPECT_EQ(done, 4096u);  // the first chunk reports at once
    EXPECT_EQ(seen, done);
  }
}

TEST(Write, FailureNamesTheErrnoAndTheFileOffset) {
  const auto ds = dataset(1 << 20);
  const int fd = open("/dev/null", O_RDONLY);  // not open for writing: EBADF
  for (unsigned threads : {1u, 2u}) {
    try {
      dgen::write_range(ds, 4096, 8192, {fd, 1 << 20, false, 0, {}}, {threads, 0});
      ADD_FAILURE() << "no error";
    } catch (const dgen::WriteError& e) {
      EXPECT_EQ(e.code().value(), EBADF);
      EXPECT_EQ(e.offset, 1 << 20);
    }
    try {
      dgen::write_range(ds, 0, 8192, {fd, -1, false, 0, {}}, {threads, 0});
      ADD_FAILURE() << "no error";
    } catch (const dgen::WriteError& e) {
      EXPECT_EQ(e.offset, -1);
    }
  }
  close(fd);
}

TEST(Write, InterruptedThrowsOnEveryPath) {
  const auto ds = dataset(64 << 20);
  for (unsigned threads : {1u, 3u}) {
    MemFile f;
    dgen::FillOptions opt{threads, 0};
    opt.interrupted = [] { return true; };
    EXPECT_THROW(dgen::write_range(ds, 0, ds.size(), {f.fd, 0, false, 4096, {}}, opt),
                 dgen::Interrupted);
  }
}

TEST(Write, RefusesAChunkThatIsNotAPowerOfTwoPage) {
  const auto ds = dataset(1 << 20);
  EXPECT_THROW(dgen::write_range(ds, 0, 4096, {1, -1, false, 6000, {}}), std::invalid_argument);
  EXPECT_THROW(dgen::write_range(ds, 0, 4096, {1, -1, false, 2048, {}}), std::invalid_argument);
}

TEST(Write, PastTheEndIsOutOfRange) {
  const auto ds = dataset(1 << 20);
  EXPECT_THROW(dgen::write_range(ds, 4096, 1 << 20, {1, -1, false, 0, {}}), std::out_of_range);
}

TEST(Write, ChunkFitsInCacheAndMemoryIsBounded) {
  const uint64_t c = dgen::write_chunk();
  EXPECT_GE(c, 256u << 10);
  EXPECT_LE(c, 2u << 20);
  EXPECT_EQ(c & (c - 1), 0u);
  EXPECT_EQ(dgen::write_memory({}, {1, 0}), c);
  EXPECT_EQ(dgen::write_memory({}, {64, 0}), 5 * c);
}

// write_tfrecords() with a stand-in checksum: any fold of the bytes in order continues
// across pieces as crc32c_extend() does, so this checks which bytes are covered, in which
// order, and where the masked result goes, without a CRC library in the tests.
uint32_t fold(uint32_t sum, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) sum = sum * 31 + p[i] + 1;
  return sum;
}

std::vector<uint8_t> tfrecords_expected(const dgen::Dataset& ds, const dgen::TfRecords& r) {
  std::vector<uint8_t> out;
  for (uint64_t i = 0; i < r.count; ++i) {
    out.insert(out.end(), r.before.begin(), r.before.end());
    const auto payload = expected(ds, r.offset + i * (r.stride ? r.stride : r.size), r.size);
    out.insert(out.end(), payload.begin(), payload.end());
    out.insert(out.end(), r.after.begin(), r.after.end());
    uint32_t sum = fold(fold(r.head_crc, payload.data(), payload.size()), r.after.data(),
                        r.after.size());
    sum = ((sum >> 15) | (sum << 17)) + 0xA282EAD8u;
    for (int k = 0; k < 4; ++k) out.push_back(uint8_t(sum >> (8 * k)));
  }
  return out;
}

TEST(WriteTfRecords, RecordsAcrossChunksAreFramedAndChecksummed) {
  const auto ds = dataset(4 << 20);
  const std::vector<uint8_t> before{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, after{42, 43};
  // Payloads smaller than, equal to and larger than a chunk; pieces of `before` and
  // `after` split by a full chunk too.
  for (uint64_t size : {uint64_t(1), uint64_t(777), uint64_t(4096), uint64_t(10007)}) {
    for (uint64_t chunk : {uint64_t(4096), uint64_t(0)}) {
      const dgen::TfRecords r{before, 0x1234567u, after, 12345, size, 7};
      MemFile f;
      const uint64_t at = 100;
      const auto want = tfrecords_expected(ds, r);
      EXPECT_EQ(dgen::write_tfrecords(ds, r, fold, {f.fd, int64_t(at), false, chunk, {}}),
                want.size());
      EXPECT_EQ(f.read(at, want.size()), want) << "size " << size << " chunk " << chunk;
    }
  }
}

TEST(WriteTfRecords, PayloadsAtAStrideSkipTheStreamBytesBetweenThem) {
  const auto ds = dataset(4 << 20);
  const std::vector<uint8_t> before(30, 5), after{42, 43};
  for (uint64_t chunk : {uint64_t(4096), uint64_t(0)}) {
    dgen::TfRecords r{before, 0x1234567u, after, 8192, 5000, 5};
    r.stride = 8192;
    MemFile f;
    const auto want = tfrecords_expected(ds, r);
    EXPECT_EQ(dgen::write_tfrecords(ds, r, fold, {f.fd, 0, false, chunk, {}}), want.size());
    EXPECT_EQ(f.read(0, want.size()), want) << "chunk " << chunk;
  }
  dgen::TfRecords r{before, 0, after, 0, 5000, 2};
  r.stride = 4999;  // payloads would overlap
  MemFile f;
  EXPECT_THROW(dgen::write_tfrecords(ds, r, fold, {f.fd, 0, false, 0, {}}),
               std::invalid_argument);
  r.stride = 4 << 20;  // the second payload lies past the dataset's end
  EXPECT_THROW(dgen::write_tfrecords(ds, r, fold, {f.fd, 0, false, 0, {}}), std::out_of_range);
}

TEST(WriteTfRecords, ProgressCountsPayloadAndFalseStopsAfterARecord) {
  const auto ds = dataset(4 << 20);
  const std::vector<uint8_t> before(20, 7), after(9, 8);
  const dgen::TfRecords r{before, 0, after, 0, 50000, 40};
  MemFile f;
  uint64_t seen = 0;
  dgen::WriteTarget t{f.fd, 0, false, 4096, [&](uint64_t n) { seen += n; return true; }};
  const auto want = tfrecords_expected(ds, r);
  EXPECT_EQ(dgen::write_tfrecords(ds, r, fold, t), want.size());
  EXPECT_EQ(seen, r.size * r.count);
  MemFile g;
  seen = 0;
  t = {g.fd, 0, false, 4096, [&](uint64_t n) { seen += n; return false; }};
  const uint64_t one = before.size() + r.size + after.size() + 4;
  EXPECT_EQ(dgen::write_tfrecords(ds, r, fold, t), one);  // the first record reports at once
  EXPECT_EQ(seen, r.size);
  EXPECT_EQ(g.read(0, one), std::vector<uint8_t>(want.begin(), want.begin() + one));
}

TEST(WriteTfRecords, RefusesWhatItCannotWrite) {
  const auto ds = dataset(1 << 20);
  const dgen::TfRecords r{{}, 0, {}, 0, 1000, 3};
  MemFile f;
  EXPECT_THROW(dgen::write_tfrecords(ds, r, nullptr, {f.fd, 0, false, 0, {}}),
               std::invalid_argument);
  EXPECT_THROW(dgen::write_tfrecords(ds, r, fold, {f.fd, -1, false, 0, {}}),
               std::invalid_argument);
  EXPECT_THROW(dgen::write_tfrecords(ds, r, fold, {f.fd, 0, true, 0, {}}), std::invalid_argument);
  EXPECT_THROW(dgen::write_tfrecords(ds, r, fold, {f.fd, 0, false, 6000, {}}),
               std::invalid_argument);
  EXPECT_THROW(dgen::write_tfrecords(ds, {{}, 0, {}, 0, 1 << 19, 3}, fold, {f.fd, 0, false, 0, {}}),
               std::out_of_range);
  EXPECT_THROW(dgen::write_tfrecords(ds, {{}, 0, {}, 0, 1ull << 40, 1ull << 30}, fold,
                                     {f.fd, 0, false, 0, {}}),
               std::out_of_range);
  const int ro = open("/dev/null", O_RDONLY);
  try {
    dgen::write_tfrecords(ds, r, fold, {ro, 4096, false, 0, {}});
    ADD_FAILURE() << "no error";
  } catch (const dgen::WriteError& e) {
    EXPECT_EQ(e.code().value(), EBADF);
    EXPECT_EQ(e.offset, 4096);
  }
  close(ro);
}

}  // namespace
