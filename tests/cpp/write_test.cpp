// write_range(): the bytes written are fill()'s, at the file offsets asked, on any path.
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

}  // namespace
