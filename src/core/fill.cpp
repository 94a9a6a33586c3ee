// fill(): splits a range into blocks, runs them on the pool, and walks units and pages.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "dgen/dgen.hpp"
#include "kernels/kernels.hpp"
#include "blocks.hpp"
#include "content.hpp"
#include "dataset_detail.hpp"
#include "model.hpp"
#include "pool.hpp"

namespace dgen {
namespace detail {
namespace {

using kernels::Stores;

// Makes `count` whole pages from keys to out: flat pages with the kernel, stored as asked
// (true when it streamed), content pages with the content model (cached stores).
bool make_pages(const Dataset& ds, const kernels::Table& k, uint8_t* out, const uint64_t* keys,
                uint64_t count, Stores stores) {
  if (ds.content_kind() == 0) {
    k.pages(out, keys, count, ds.random_bytes_per_page(), stores);
    return stores == Stores::stream;
  }
  content::pages(out, keys, count,
                 content::model_at(content::Kind(ds.content_kind()), ds.content_level(),
                                   content::version_of_format(ds.params().format_version)),
                 k);
  return false;
}

}  // namespace

void fill_range(const Dataset& ds, uint64_t offset, uint8_t* out, uint64_t len, Stores stores) {
  const bool stream = stores == Stores::stream;
  constexpr uint64_t kRun = 32;  // pages handed to the kernel at once
  const kernels::Table& k = kernels::active();
  const uint64_t unit = ds.params().dedup_unit;
  const uint32_t random_len = ds.random_bytes_per_page();
  const bool flat = ds.content_kind() == 0;
  const uint64_t end = offset + len;
  bool streamed = false;
  uint64_t keys[kRun];
  VersionCache versions;
  SlotCache slots;
  // Bytes [at, at + n) of the content with key ukey (at + n <= unit) to out.
  const auto emit = [&](uint64_t ukey, uint64_t at, uint64_t n) {
    const uint64_t stop = at + n;
    while (at < stop) {
      const uint64_t in_page = at % kPageSize, page = at / kPageSize;
      const uint64_t whole = in_page == 0 ? (stop - at) / kPageSize : 0;
      if (whole > 0) {  // a run of whole pages, straight to `out`
        const uint64_t m = std::min(whole, kRun);
        for (uint64_t i = 0; i < m; ++i) keys[i] = model::page_key(ukey, page + i);
        streamed |= make_pages(ds, k, out, keys, m, stores);
        at += m * kPageSize;
        out += m * kPageSize;
        continue;
      }
      // A page cut by the range: make all of it, keep the part asked for.
      const uint64_t m = std::min(kPageSize - in_page, stop - at);
      alignas(64) uint8_t buf[kPageSize];
      keys[0] = model::page_key(ukey, page);
      make_pages(ds, k, buf, keys, 1, Stores::paired);
      std::memcpy(out, buf + in_page, m);
      at += m;
      out += m;
    }
  };
  // A shifted copy is its run's content from a byte offset off the page grid. Source page
  // q of the run is made, when needed, in slot q mod S of an L1 ring: S is the run's page
  // count up to kRingPages (the whole run), else kRingPages (a window sliding along it),
  // each page made once per run copy, consecutive missing pages in one call. Into cached
  // memory, whole source pages go straight to `out`, off its page grid, and only the parts
  // at the ends come from the ring. Streaming, every store must be non-temporal and
  // aligned (a line written both ways is slow): shifted() realigns runs of pages on the
  // fly, and a run of one page (or a destination off the 16-byte grid) is made in the ring
  // and taken out, wrapping, by ring_copy().
  constexpr uint64_t kRingPages = 8;
  alignas(64) uint8_t ring[kRingPages * kPageSize + kernels::kRingPad];
  uint64_t held[kRingPages];  // the source page in each slot, of the run ring_run
  // Pages per shifted() call: a call remakes the page its predecessor ended in.
  constexpr uint64_t kShiftedPages = 128;
  uint64_t shifted_keys[kShiftedPages];
  uint64_t ring_run = ~0ull;
  // n bytes of the run of units [first_id, first_id + run) from byte `from` of it, wrapping.
  const auto emit_rotated = [&](uint64_t first_id, uint64_t run, uint64_t from, uint64_t n) {
    const uint64_t pages_per_unit = unit / kPageSize, run_pages = run * pages_per_unit;
    const uint64_t slots = std::min(run_pages, kRingPages);
    const bool whole = slots == run_pages;
    if (ring_run != first_id) {
      std::fill(held, held + kRingPages, ~0ull);
      ring_run = first_id;
    }
    uint64_t cached_unit = ~0ull, cached_key = 0;
    const auto key_of = [&](uint64_t q) {  // source page q of the run
      const uint64_t u = q / pages_per_unit;
      if (u != cached_unit) cached_unit = u, cached_key = ds.unit_key(first_id + u, versions);
      return model::page_key(cached_key, q % pages_per_unit);
    };
    const auto hold = [&](uint64_t q, uint64_t span) {  // pages q.. q + span - 1 in the ring
      for (uint64_t i = 0; i < span;) {
        const uint64_t p = (q + i) % run_pages, slot = p % slots;
        if (held[slot] == p) {
          ++i;
          continue;
        }
        uint64_t count = 0;
        while (i + count < span && slot + count < slots &&
               held[slot + count] != (q + i + count) % run_pages) {
          keys[count] = key_of((q + i + count) % run_pages);
          held[slot + count] = (q + i + count) % run_pages;
          ++count;
        }
        make_pages(ds, k, ring + slot * kPageSize, keys, count, Stores::paired);
        if (slot == 0) std::memcpy(ring + slots * kPageSize, ring, kernels::kRingPad);
        i += count;
      }
    };
    while (n > 0) {
      const uint64_t q = from / kPageSize, o = from % kPageSize;
      uint64_t m;
      if (!stream && o == 0 && n >= kPageSize) {
        const uint64_t count = std::min({n / kPageSize, run_pages - q, kRun});
        for (uint64_t i = 0; i < count; ++i) keys[i] = key_of(q + i);
        make_pages(ds, k, out, keys, count, stores);
        m = count * kPageSize;
      } else if (!stream) {
        hold(q, 1);
        m = std::min(n, kPageSize - o);
        std::memcpy(out, ring + (q % slots) * kPageSize + o, m);
      } else if (flat && run_pages > 1 && reinterpret_cast<uintptr_t>(out) % 16 == 0) {
        // (shifted() remakes flat pages only: content pages are cut from the ring below.)
        const uint64_t count = std::min(kShiftedPages, (o + n + kPageSize - 1) / kPageSize);
        for (uint64_t i = 0; i < count; ++i) shifted_keys[i] = key_of((q + i) % run_pages);
        m = std::min(n, count * kPageSize - o);
        if (m < n) m -= (reinterpret_cast<uintptr_t>(out) + m) % 32;  // the next one on the grid
        k.shifted(out, shifted_keys, count, o, m, random_len);
        streamed = true;
      } else {
        const uint64_t span = std::min({slots, (o + n + kPageSize - 1) / kPageSize,
                                        whole ? slots : run_pages - q});
        hold(q, span);
        // With the whole run held, the rotation wraps inside the ring.
        m = whole && span == slots ? n : std::min(n, span * kPageSize - o);
        k.ring_copy(out, ring, slots * kPageSize, (q % slots) * kPageSize + o, m);
        streamed = true;
      }
      out += m;
      from = (from + m) % (run_pages * kPageSize);
      n -= m;
    }
  };
  while (offset < end) {
    const uint64_t unit_index = offset / unit;
    const uint64_t unit_end = std::min(end, (unit_index + 1) * unit);
    const uint64_t id = ds.unique_id(unit_index, slots);
    const uint64_t shift = ds.shift(unit_index, slots);
    if (shift == 0) {
      emit(ds.unit_key(id, versions), offset % unit, unit_end - offset);
      offset = unit_end;
      continue;
    }
    // A shifted copy of a run: its bytes are the run's, rotated by `shift` (all its units
    // in the range at once).
    const uint64_t run = ds.params().dedup_run, t = unit_index % run;
    const uint64_t copy_end = std::min(end, (unit_index - t + run) * unit);
    emit_rotated(id - t, run, (t * unit + offset % unit + shift) % (run * unit), copy_end - offset);
    offset = copy_end;
  }
  if (streamed) k.fence();
}

std::optional<bool> equal_range(const Dataset& ds, uint64_t offset, const uint8_t* data,
                                uint64_t len, bool paired) {
  // fill_range()'s walk over units and pages, with compares for stores.
  const kernels::Table& k = kernels::active();
  const uint64_t unit = ds.params().dedup_unit, end = offset + len;
  const uint32_t random_len = ds.random_bytes_per_page();
  constexpr uint64_t kRun = 32;
  uint64_t keys[kRun];
  VersionCache versions;
  SlotCache slots;
  const bool flat = ds.content_kind() == 0;
  // Content pages: made kBatch at a time in a buffer and compared (equal() makes flat ones).
  constexpr uint64_t kBatch = 8;
  alignas(64) uint8_t made[kBatch * kPageSize];
  const auto equal_content = [&](const uint8_t* want, uint64_t m) {
    for (uint64_t i = 0; i < m; i += kBatch) {
      const uint64_t n = std::min(kBatch, m - i);
      make_pages(ds, k, made, keys + i, n, Stores::paired);
      if (std::memcmp(made, want + i * kPageSize, n * kPageSize) != 0) return false;
    }
    return true;
  };
  while (offset < end) {
    const uint64_t unit_index = offset / unit;
    const uint64_t unit_end = std::min(end, (unit_index + 1) * unit);
    const uint64_t id = ds.unique_id(unit_index, slots);
    if (ds.shift(unit_index, slots) != 0) return std::nullopt;
    const uint64_t ukey = ds.unit_key(id, versions);
    for (uint64_t at = offset % unit, stop = at + (unit_end - offset); at < stop;) {
      const uint64_t in_page = at % kPageSize, page = at / kPageSize;
      const uint64_t whole = in_page == 0 ? (stop - at) / kPageSize : 0;
      if (whole > 0) {
        const uint64_t m = std::min(whole, kRun);
        for (uint64_t i = 0; i < m; ++i) keys[i] = model::page_key(ukey, page + i);
        if (flat ? !k.equal(data, keys, m, random_len, paired) : !equal_content(data, m))
          return false;
        at += m * kPageSize;
        data += m * kPageSize;
        continue;
      }
      const uint64_t m = std::min(kPageSize - in_page, stop - at);
      alignas(64) uint8_t buf[kPageSize];
      keys[0] = model::page_key(ukey, page);
      make_pages(ds, k, buf, keys, 1, Stores::paired);
      if (std::memcmp(buf + in_page, data, m) != 0) return false;
      at += m;
      data += m;
    }
    offset = unit_end;
  }
  return true;
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
  const kernels::Stores stores = kernels::stores_for(len);
  detail::for_each_block(offset, len, opt, [&](uint64_t lo, uint64_t hi) {
    detail::fill_range(ds, lo, out.data() + (lo - offset), hi - lo, stores);
  });
}

bool runs_on_caller(uint64_t offset, uint64_t len, const FillOptions& opt) {
  const uint64_t block = opt.block_size ? opt.block_size : kDefaultBlockSize;
  return len == 0 || (offset / block == (offset + len - 1) / block && !opt.numa_node);
}

const char* isa_name() { return kernels::active().name; }

void set_isa(std::string_view isa) { kernels::select(isa, "isa"); }

unsigned available_cpus() { return unsigned(allowed_cpus().size()); }

}  // namespace dgen
