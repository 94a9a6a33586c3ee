// fill(): splits a range into blocks, runs them on the pool, and walks units and pages.
#include <algorithm>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>

#include "dgen/dgen.hpp"
#include "kernels/kernels.hpp"
#include "blocks.hpp"
#include "model.hpp"
#include "pool.hpp"

namespace dgen {
namespace {

// Above this many bytes per call, pages go out with non-temporal stores: the data would
// not stay in cache anyway, and skipping the read-for-ownership saves bandwidth.
constexpr uint64_t kStreamThreshold = 8ull << 20;

}  // namespace

namespace detail {

void fill_range(const Dataset& ds, uint64_t offset, uint8_t* out, uint64_t len, bool stream) {
  constexpr uint64_t kRun = 32;  // pages handed to the kernel at once
  const kernels::Table& k = kernels::active();
  const uint64_t unit = ds.params().dedup_unit;
  const uint32_t random_len = ds.random_bytes_per_page();
  const uint64_t end = offset + len;
  bool streamed = false;
  uint64_t keys[kRun];
  VersionCache versions;
  // Bytes [at, at + n) of the content with key ukey (at + n <= unit) to out.
  const auto emit = [&](uint64_t ukey, uint64_t at, uint64_t n) {
    const uint64_t stop = at + n;
    while (at < stop) {
      const uint64_t in_page = at % kPageSize, page = at / kPageSize;
      const uint64_t whole = in_page == 0 ? (stop - at) / kPageSize : 0;
      if (whole > 0) {  // a run of whole pages, straight to `out`
        const uint64_t m = std::min(whole, kRun);
        for (uint64_t i = 0; i < m; ++i) keys[i] = model::page_key(ukey, page + i);
        k.pages(out, keys, m, random_len, stream);
        streamed |= stream;
        at += m * kPageSize;
        out += m * kPageSize;
        continue;
      }
      // A page cut by the range: make all of it, keep the part asked for.
      const uint64_t m = std::min(kPageSize - in_page, stop - at);
      alignas(64) uint8_t buf[kPageSize];
      keys[0] = model::page_key(ukey, page);
      k.pages(buf, keys, 1, random_len, false);
      std::memcpy(out, buf + in_page, m);
      at += m;
      out += m;
    }
  };
  // The same bytes through a cached scratch: the pages of a shifted copy start off the
  // page grid of `out`, so they are made aligned where stores are cheap and then copied,
  // each page made once (writing them in place would split every store across lines; a
  // rotated run of one page needs its page twice).
  constexpr uint64_t kScratchPages = 8;
  alignas(64) uint8_t scratch[kScratchPages * kPageSize];
  uint64_t scratch_key = 0, scratch_page = 0, scratch_pages = 0;  // what scratch holds
  const auto emit_shifted = [&](uint64_t ukey, uint64_t at, uint64_t n) {
    while (n > 0) {
      const uint64_t page = at / kPageSize;
      if (scratch_pages == 0 || ukey != scratch_key || page < scratch_page ||
          page >= scratch_page + scratch_pages) {
        const uint64_t need = (at % kPageSize + n + kPageSize - 1) / kPageSize;
        scratch_pages = std::min(kScratchPages, need);
        for (uint64_t i = 0; i < scratch_pages; ++i) keys[i] = model::page_key(ukey, page + i);
        k.pages(scratch, keys, scratch_pages, random_len, false);
        scratch_key = ukey;
        scratch_page = page;
      }
      const uint64_t from = at - scratch_page * kPageSize;
      const uint64_t m = std::min(n, scratch_pages * kPageSize - from);
      std::memcpy(out, scratch + from, m);
      out += m;
      at += m;
      n -= m;
    }
  };
  while (offset < end) {
    const uint64_t unit_index = offset / unit;
    const uint64_t unit_end = std::min(end, (unit_index + 1) * unit);
    const uint64_t id = ds.unique_id(unit_index);
    const uint64_t shift = ds.shift(unit_index);
    if (shift == 0) {
      emit(ds.unit_key(id, versions), offset % unit, unit_end - offset);
      offset = unit_end;
      continue;
    }
    // A shifted copy of a run: its bytes are the run's, rotated by `shift`.
    const uint64_t run = ds.params().dedup_run, t = unit_index % run, run_bytes = run * unit;
    for (uint64_t x = offset % unit, left = unit_end - offset; left > 0;) {
      const uint64_t from = (t * unit + x + shift) % run_bytes, at = from % unit;
      const uint64_t n = std::min(left, unit - at);
      emit_shifted(ds.unit_key(id - t + from / unit, versions), at, n);
      x += n;
      left -= n;
    }
    offset = unit_end;
  }
  if (streamed) k.fence();
}

void check_range(const Dataset& ds, uint64_t offset, uint64_t len) {
  if (offset > ds.size() || len > ds.size() - offset)
    throw std::out_of_range("range [" + std::to_string(offset) + ", " +
                            std::to_string(offset + len) + ") is past the dataset's size " +
                            std::to_string(ds.size()));
}

void for_each_block(uint64_t offset, uint64_t len, const FillOptions& opt,
                    const std::function<void(uint64_t, uint64_t)>& work) {
  if (len == 0) return;
  const uint64_t block = opt.block_size ? opt.block_size : kDefaultBlockSize;
  // Blocks are aligned to absolute multiples of `block`, so a worker never splits a page
  // that another worker also generates.
  const uint64_t first = offset / block, last = (offset + len - 1) / block;
  if (runs_on_caller(offset, len, opt)) {  // small calls: no hand-off, no plan
    work(offset, offset + len);
    return;
  }
  const WorkerPlan plan = plan_workers(Topology::get(), opt.numa_mode, opt.numa_node,
                                       opt.threads, allowed_cpus());
  pool::run(
      last - first + 1, plan,
      [&](size_t i) {
        const uint64_t b = (first + i) * block;
        work(std::max(b, offset), std::min(b + block, offset + len));
      },
      opt.interrupted);
}

}  // namespace detail

void fill(const Dataset& ds, uint64_t offset, std::span<uint8_t> out, const FillOptions& opt) {
  const uint64_t len = out.size();
  detail::check_range(ds, offset, len);
  const bool stream = len >= kStreamThreshold;
  detail::for_each_block(offset, len, opt, [&](uint64_t lo, uint64_t hi) {
    detail::fill_range(ds, lo, out.data() + (lo - offset), hi - lo, stream);
  });
}

bool runs_on_caller(uint64_t offset, uint64_t len, const FillOptions& opt) {
  const uint64_t block = opt.block_size ? opt.block_size : kDefaultBlockSize;
  return len == 0 || (offset / block == (offset + len - 1) / block && !opt.numa_node);
}

uint64_t random_seed() {
  std::random_device rd;  // getrandom()/urandom on Linux
  return (uint64_t{rd()} << 32) | rd();
}

const char* isa_name() { return kernels::active().name; }

unsigned available_cpus() { return unsigned(allowed_cpus().size()); }

}  // namespace dgen
