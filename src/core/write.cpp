// write_range(): generate a chunk in cache, write it, next; optionally with producer
// threads making the next chunks while the caller writes. write_tfrecords(): the same loop
// for records around the payloads, each payload checksummed while it is in cache.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "blocks.hpp"
#include "dgen/io.hpp"
#include "dgen/topology.hpp"

namespace dgen {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPoll = std::chrono::milliseconds(20);
constexpr unsigned kMaxProducers = 3;  // one writer copies at memcpy speed: more cannot help

// Calls progress and opt.interrupted every kPoll.
class Ticker {
 public:
  Ticker(const WriteTarget& t, const FillOptions& o) : t_(t), o_(o) {}
  bool tick(uint64_t n, bool now = false) {
    pending_ += n;
    const auto at = Clock::now();
    if (!now && at - last_ < kPoll) return true;
    last_ = at;
    interrupt_check();
    const uint64_t p = pending_;
    pending_ = 0;
    return !t_.progress || t_.progress(p);
  }
  void interrupt_check() const {
    if (o_.interrupted && o_.interrupted()) throw Interrupted();
  }

 private:
  const WriteTarget& t_;
  const FillOptions& o_;
  Clock::time_point last_{};  // the first chunk reports at once
  uint64_t pending_ = 0;
};

bool is_pipe(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

// Hands n bytes at p (page-aligned) to a pipe by reference, then drops them from this
// process (MADV_DONTNEED), so that the next fill of p faults in fresh pages: whoever still
// holds the old ones (the pipe, or another pipe or socket the reader spliced them into)
// sees them unchanged. False when vmsplice is refused before any byte went: write() then.
bool gift(const WriteTarget& t, uint8_t* p, uint64_t n, const Ticker& ticker) {
  iovec v{p, n};
  while (v.iov_len) {
    const ssize_t r = ::vmsplice(t.fd, &v, 1, SPLICE_F_GIFT);
    if (r < 0 && errno == EINTR) {
      ticker.interrupt_check();
      continue;
    }
    if (r < 0 && (errno == EINVAL || errno == ENOSYS) && v.iov_len == n) return false;
    if (r <= 0) throw WriteError(r < 0 ? errno : EIO, -1);
    v.iov_base = static_cast<uint8_t*>(v.iov_base) + r;
    v.iov_len -= uint64_t(r);
  }
  // The pipe holds these pages now: fresh ones take their place, or the next chunk would
  // change bytes already handed over (locked memory, mlockall, refuses it).
  if (madvise(p, (n + kPageSize - 1) / kPageSize * kPageSize, MADV_DONTNEED) != 0)
    throw WriteError(errno, -1);
  return true;
}

void write_all(const WriteTarget& t, const uint8_t* p, uint64_t n, uint64_t file_pos,
               const Ticker& ticker) {
  while (n) {
    const ssize_t r = t.file_offset < 0 ? ::write(t.fd, p, n)
                                        : ::pwrite(t.fd, p, n, off_t(file_pos));
    if (r < 0 && errno == EINTR) {  // a signal (Ctrl-C) woke a blocked write
      ticker.interrupt_check();
      continue;
    }
    if (r <= 0) throw WriteError(r < 0 ? errno : EIO, t.file_offset < 0 ? -1 : int64_t(file_pos));
    p += r;
    n -= uint64_t(r);
    file_pos += uint64_t(r);
  }
}

struct Memory {
  Memory(uint64_t n, std::optional<unsigned> node)
      : p(static_cast<uint8_t*>(allocate(n, node))), n(n), node(node) {}
  ~Memory() { free_memory(p, n, node); }
  uint8_t* p;
  uint64_t n;
  std::optional<unsigned> node;
};

unsigned producers_for(const FillOptions& opt) {
  const unsigned threads = opt.threads ? opt.threads : available_cpus();
  return std::min(threads - 1, kMaxProducers);
}

// Chunk buffers: one on the caller alone; with producers, two more than them, so that one
// is being written while each producer fills another and one waits.
uint64_t slots_for(unsigned producers) { return producers ? producers + 2 : 1; }

uint64_t chunk_of(const WriteTarget& t, bool to_pipe) {
  return t.chunk ? t.chunk : to_pipe ? kPipeChunk : write_chunk();
}

bool splices(const WriteTarget& t) {
  return t.file_offset < 0 && !t.direct && is_pipe(t.fd);
}

uint64_t checked_chunk(const WriteTarget& t, bool to_pipe) {
  const uint64_t chunk = chunk_of(t, to_pipe);
  if (chunk < kPageSize || (chunk & (chunk - 1)))
    throw std::invalid_argument("chunk must be a power of two of at least 4096 bytes, got " +
                                std::to_string(chunk));
  return chunk;
}

// TFRecord's masked CRC: the checksum rotated and offset, stored little-endian.
void put_masked(uint8_t* out, uint32_t crc) {
  const uint32_t m = ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
  for (int i = 0; i < 4; ++i) out[i] = uint8_t(m >> (8 * i));
}

}  // namespace

WriteError::WriteError(int err, int64_t at)
    : std::system_error(err, std::generic_category(),
                        at < 0 ? std::string("write") : "at offset " + std::to_string(at)),
      offset(at) {}

uint64_t write_chunk() {
  const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  uint64_t c = 256 * 1024;
  while (l2 > 0 && c * 2 <= uint64_t(l2) && c < (2u << 20)) c *= 2;
  return l2 > 0 ? c : 1u << 20;
}

uint64_t write_memory(const WriteTarget& t, const FillOptions& opt) {
  const unsigned p = producers_for(opt);
  return chunk_of(t, splices(t)) * slots_for(p);
}

uint64_t write_range(const Dataset& ds, uint64_t offset, uint64_t len, const WriteTarget& t,
                     const FillOptions& opt) {
  detail::check_range(ds, offset, len);
  bool to_pipe = splices(t);
  const uint64_t chunk = checked_chunk(t, to_pipe);
  if (len == 0) return 0;
  // Chunks end on absolute multiples of `chunk`: O_DIRECT offsets stay aligned.
  const uint64_t end = offset + len, first = offset / chunk;
  const uint64_t count = (end - 1) / chunk - first + 1;
  auto lo = [&](uint64_t k) { return k == 0 ? offset : (first + k) * chunk; };
  auto hi = [&](uint64_t k) { return std::min(end, (first + k + 1) * chunk); };
  auto file_pos = [&](uint64_t pos) { return uint64_t(t.file_offset) + (pos - offset); };
  Ticker ticker(t, opt);
  const unsigned producers = producers_for(opt);
  Memory mem(chunk * slots_for(producers), opt.numa_node);
  const kernels::Stores stores = t.direct ? kernels::Stores::stream : kernels::cached_stores(mem.n);
  // A chunk goes to a pipe by reference where it can, else it is copied by write().
  auto put = [&](uint8_t* p, uint64_t n, uint64_t pos) {
    if (to_pipe) to_pipe = gift(t, p, n, ticker);  // refused: write() from now on
    if (!to_pipe) write_all(t, p, n, file_pos(pos), ticker);
  };

  uint64_t done = 0;
  if (producers == 0) {  // all on this thread: no pool, no hand-off
    for (uint64_t k = 0; k < count; ++k) {
      const uint64_t n = hi(k) - lo(k);
      detail::fill_range(ds, lo(k), mem.p, n, stores);
      put(mem.p, n, lo(k));
      done += n;
      if (!ticker.tick(n, k + 1 == count)) break;
    }
    return done;
  }

  // Chunk k goes to slot k % slots, made by producer k % producers; the caller writes the
  // chunks in order and frees each slot once written.
  const uint64_t slots = slots_for(producers);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint64_t> ready(slots, UINT64_MAX);  // the chunk a slot holds
  uint64_t written = 0;                            // chunks written so far
  bool stop = false;
  auto produce = [&](unsigned j) {
    for (uint64_t k = j; k < count; k += producers) {
      {
        std::unique_lock l(mu);
        cv.wait(l, [&] { return stop || k < written + slots; });
        if (stop) return;
      }
      detail::fill_range(ds, lo(k), mem.p + (k % slots) * chunk, hi(k) - lo(k), stores);
      {
        std::lock_guard l(mu);
        ready[k % slots] = k;
      }
      cv.notify_all();
    }
  };
  struct Join {  // stops and joins the producers however the caller leaves
    std::vector<std::thread> threads;
    std::mutex& mu;
    std::condition_variable& cv;
    bool& stop;
    ~Join() {
      {
        std::lock_guard l(mu);
        stop = true;
      }
      cv.notify_all();
      for (auto& th : threads) th.join();
    }
  } join{{}, mu, cv, stop};
  for (unsigned j = 0; j < producers && j < count; ++j) join.threads.emplace_back(produce, j);
  for (uint64_t k = 0; k < count; ++k) {
    {
      std::unique_lock l(mu);
      while (ready[k % slots] != k) {
        // Wake now and then to poll for Ctrl-C while a producer is slow.
        if (!cv.wait_for(l, kPoll, [&] { return ready[k % slots] == k; })) {
          l.unlock();
          ticker.interrupt_check();
          l.lock();
        }
      }
    }
    const uint64_t n = hi(k) - lo(k);
    put(mem.p + (k % slots) * chunk, n, lo(k));
    {
      std::lock_guard l(mu);
      ready[k % slots] = UINT64_MAX;
      ++written;
    }
    cv.notify_all();
    done += n;
    if (!ticker.tick(n, k + 1 == count)) break;
  }
  return done;
}

uint64_t write_tfrecords(const Dataset& ds, const TfRecords& r, Crc32cExtend crc,
                         const WriteTarget& t, const FillOptions& opt) {
  if (!crc) throw std::invalid_argument("write_tfrecords needs a CRC-32C function");
  if (t.file_offset < 0 || t.direct)
    throw std::invalid_argument("TFRecord records are written at a file offset, without O_DIRECT");
  const uint64_t stride = r.stride ? r.stride : r.size;
  if (stride < r.size)
    throw std::invalid_argument("TFRecord records: stride " + std::to_string(stride) +
                                " is smaller than size " + std::to_string(r.size));
  if (r.count && stride && r.count - 1 > (UINT64_MAX - r.size) / stride)
    throw std::out_of_range("TFRecord records: count * stride overflows");
  detail::check_range(ds, r.offset, r.count ? (r.count - 1) * stride + r.size : 0);
  const uint64_t chunk = checked_chunk(t, false);
  Ticker ticker(t, opt);
  // Records are laid out in one buffer and written a full chunk at a time (one pwrite
  // from one buffer: cheaper for the kernel than gathering the pieces).
  Memory mem(chunk, opt.numa_node);
  uint64_t used = 0, file_pos = uint64_t(t.file_offset);
  auto flush = [&] {
    write_all(t, mem.p, used, file_pos, ticker);
    file_pos += used;
    used = 0;
  };
  auto put = [&](const uint8_t* p, uint64_t n) {
    while (n) {
      if (used == chunk) flush();
      const uint64_t k = std::min(n, chunk - used);
      std::memcpy(mem.p + used, p, k);
      used += k;
      p += k;
      n -= k;
    }
  };
  uint8_t masked[4];
  for (uint64_t i = 0; i < r.count; ++i) {
    put(r.before.data(), r.before.size());
    uint32_t sum = r.head_crc;
    for (uint64_t at = r.offset + i * stride, end = at + r.size; at < end;) {
      if (used == chunk) flush();
      const uint64_t n = std::min(end - at, chunk - used);
      uint8_t* p = mem.p + used;
      detail::fill_range(ds, at, p, n, kernels::cached_stores(chunk));
      sum = crc(sum, p, n);  // while the bytes are in cache
      used += n;
      at += n;
    }
    put(r.after.data(), r.after.size());
    put_masked(masked, crc(sum, r.after.data(), r.after.size()));
    put(masked, 4);
    if (!ticker.tick(r.size, i + 1 == r.count)) break;
  }
  flush();
  return file_pos - uint64_t(t.file_offset);
}

}  // namespace dgen
