// verify(): regenerate block by block in a cache-sized scratch buffer and compare.
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "blocks.hpp"
#include "dgen/dgen.hpp"

namespace dgen {
namespace {

constexpr uint64_t kScratch = 64 * 1024;  // stays in L2 while it is compared

// Ranges separated by fewer than kVerifyGap matching bytes are one.
bool joins(const Mismatch& a, uint64_t next_offset) {
  return a.offset + a.length + kVerifyGap > next_offset;
}

struct BlockResult {
  uint64_t mismatched = 0;
  std::vector<Mismatch> ranges;
};

// Appends the differing runs of expected vs got (both at dataset offset `at`) to out.
void diff(const uint8_t* expected, const uint8_t* got, uint64_t n, uint64_t at,
          BlockResult& out) {
  if (std::memcmp(expected, got, n) == 0) return;  // the common case, at memcmp speed
  for (uint64_t i = 0; i < n;) {
    // Skip equal 64-byte stretches quickly, then find the exact first differing byte.
    const uint64_t step = std::min<uint64_t>(64, n - i);
    if (std::memcmp(expected + i, got + i, step) == 0) {
      i += step;
      continue;
    }
    while (expected[i] == got[i]) ++i;
    const uint64_t start = i;
    uint64_t last = i, run_equal = 0;
    for (; i < n && run_equal < kVerifyGap; ++i) {
      if (expected[i] != got[i]) {
        last = i;
        run_equal = 0;
        ++out.mismatched;
      } else {
        ++run_equal;
      }
    }
    const uint64_t off = at + start, len = last - start + 1;
    if (!out.ranges.empty() && joins(out.ranges.back(), off))
      out.ranges.back().length = off + len - out.ranges.back().offset;
    else
      out.ranges.push_back({off, len});
  }
}

// Whether the unit at `start` holds what it held at an older generation: the latest such
// generation, or -1. Each distinct older version of the unit's content is tried once.
int64_t stale_generation(const Dataset& ds, uint64_t start, const uint8_t* got, uint64_t len,
                         std::vector<uint8_t>& expected) {
  constexpr uint64_t kMaxTries = 64;  // bounds the regeneration work per unit
  const uint64_t g = ds.params().generation;
  if (g == 0) return -1;
  const uint64_t id = ds.unique_id(start / ds.params().dedup_unit);
  uint64_t tried = 0, last = ds.version(id, g);
  for (uint64_t h = g; h-- > 0 && tried < kMaxTries;) {
    const uint64_t v = ds.version(id, h);
    if (v == last) continue;
    last = v;
    ++tried;
    detail::fill_range(ds.at_generation(h), start, expected.data(), len,
                       kernels::cached_stores(len));
    if (std::memcmp(expected.data(), got, len) == 0) return int64_t(h);
  }
  return -1;
}

// Finds whole units of data that hold the content of another damaged unit of the same call
// (swapped or misdirected writes), or their own content of an older generation (lost
// writes), and reports each as one range with belongs_at or stale_generation set.
void find_moved_units(const Dataset& ds, uint64_t offset, std::span<const uint8_t> data,
                      std::vector<Mismatch>& ranges) {
  constexpr size_t kMaxCandidates = 256;  // bounds the extra regeneration work
  constexpr uint64_t kHead = 64;
  const uint64_t unit = ds.params().dedup_unit;
  struct Unit {
    uint64_t start, len;
  };
  // Damaged units wholly in `data` whose first bytes differ: every unit a range starts in
  // (near its start) or covers from its start — adjacent swapped units make one range.
  std::vector<Unit> units;
  for (const Mismatch& m : ranges) {
    for (uint64_t start = m.offset / unit * unit;
         start < m.offset + m.length && units.size() < kMaxCandidates; start += unit) {
      const uint64_t len = std::min(unit, ds.size() - start);
      const bool from_start = m.offset <= start || m.offset - start < kVerifyGap;
      if (from_start && start >= offset && start + len <= offset + data.size() &&
          (units.empty() || units.back().start != start))
        units.push_back({start, len});
    }
    if (units.size() == kMaxCandidates) break;
  }
  if (units.empty()) return;

  std::map<std::string, Unit> by_head;  // expected first bytes -> unit
  std::vector<uint8_t> expected(unit);
  for (const Unit& u : units) {
    const uint64_t n = std::min(u.len, kHead);
    detail::fill_range(ds, u.start, expected.data(), n, kernels::cached_stores(n));
    by_head.emplace(std::string(expected.begin(), expected.begin() + n), u);
  }
  // A damaged unit may hold another damaged unit's content (a swap), its own of an older
  // generation (a lost write), or that of an intact unit of the piece (a misdirected copy):
  // the heads of every unit of the piece are indexed only when the first two fail.
  bool all_indexed = false;
  auto index_piece = [&] {
    constexpr uint64_t kMaxIndexed = 8192;  // units: bounds the extra regeneration work
    all_indexed = true;
    const uint64_t first = (offset + unit - 1) / unit * unit;
    for (uint64_t start = first, n = 0; start < offset + data.size() && n < kMaxIndexed;
         start += unit, ++n) {
      const uint64_t len = std::min(unit, ds.size() - start);
      if (start + len > offset + data.size()) break;
      const uint64_t head = std::min(len, kHead);
      detail::fill_range(ds, start, expected.data(), head, kernels::cached_stores(head));
      by_head.emplace(std::string(expected.begin(), expected.begin() + head), Unit{start, len});
    }
  };
  auto holds = [&](const Unit& u, const uint8_t* got) -> int64_t {
    const auto it = by_head.find(std::string(got, got + std::min(u.len, kHead)));
    if (it == by_head.end() || it->second.start == u.start || it->second.len < u.len) return -1;
    detail::fill_range(ds, it->second.start, expected.data(), u.len, kernels::cached_stores(u.len));
    return std::memcmp(expected.data(), got, u.len) == 0 ? int64_t(it->second.start) : -1;
  };
  std::vector<Mismatch> moved;
  for (const Unit& u : units) {
    const uint8_t* got = data.data() + (u.start - offset);
    int64_t at = units.size() > 1 ? holds(u, got) : -1;
    if (at < 0) {
      if (const int64_t h = stale_generation(ds, u.start, got, u.len, expected); h >= 0) {
        moved.push_back({u.start, u.len, false, -1, h});
        continue;
      }
      if (!all_indexed) index_piece();
      at = holds(u, got);
    }
    if (at >= 0) moved.push_back({u.start, u.len, false, at});
  }
  if (moved.empty()) return;

  // What is left of [lo, hi) next to a moved unit, trimmed to its first and last
  // differing bytes: the cut can leave up to kVerifyGap - 1 matching bytes at an edge.
  auto push_differing = [&](std::vector<Mismatch>& out, uint64_t lo, uint64_t hi) {
    uint8_t want[kVerifyGap];
    while (lo < hi) {
      const uint64_t n = std::min(kVerifyGap, hi - lo);
      detail::fill_range(ds, lo, want, n, kernels::Stores::paired);
      uint64_t i = 0;
      while (i < n && want[i] == data[lo + i - offset]) ++i;
      lo += i;
      if (i < n) break;
    }
    while (hi > lo) {
      const uint64_t n = std::min(kVerifyGap, hi - lo);
      detail::fill_range(ds, hi - n, want, n, kernels::Stores::paired);
      uint64_t i = n;
      while (i > 0 && want[i - 1] == data[hi - n + i - 1 - offset]) --i;
      hi -= n - i;
      if (i > 0) break;
    }
    if (lo < hi) out.push_back({lo, hi - lo, false, -1, -1});
  };
  // Replace what the ranges said about each moved unit with the one range for it.
  std::vector<Mismatch> out;
  size_t mi = 0;
  for (Mismatch m : ranges) {
    for (; mi < moved.size() && moved[mi].offset + moved[mi].length <= m.offset; ++mi)
      out.push_back(moved[mi]);
    uint64_t lo = m.offset;
    const uint64_t hi = m.offset + m.length;
    bool cut = false;
    for (size_t k = mi; k < moved.size() && moved[k].offset < hi; ++k) {
      if (moved[k].offset > lo) push_differing(out, lo, moved[k].offset);
      lo = std::max(lo, moved[k].offset + moved[k].length);
      cut = true;
    }
    if (lo < hi) {
      if (cut)
        push_differing(out, lo, hi);
      else
        out.push_back(m);
    }
  }
  for (; mi < moved.size(); ++mi) out.push_back(moved[mi]);
  std::sort(out.begin(), out.end(), [](const Mismatch& a, const Mismatch& b) {
    return a.offset < b.offset;
  });
  ranges = std::move(out);
}

bool all_zero(const uint8_t* p, uint64_t n) {
  return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

}  // namespace

Verifier::Verifier(Dataset ds, size_t max_ranges) : ds_(std::move(ds)), max_ranges_(max_ranges) {}

void Verifier::add(uint64_t offset, std::span<const uint8_t> data, const FillOptions& opt) {
  detail::check_range(ds_, offset, data.size());
  if (offset < end_)
    throw std::invalid_argument("verify pieces must come in offset order: a piece at " +
                                std::to_string(offset) + " starts before the previous one ends at " +
                                std::to_string(end_));
  const uint64_t block = opt.block_size ? opt.block_size : kDefaultBlockSize;
  const uint64_t first_block = offset / block;
  std::vector<BlockResult> blocks(data.empty() ? 0 : (offset + data.size() - 1) / block - first_block + 1);
  const bool paired = data.size() <= kernels::kPairedLimit;
  detail::for_each_block(offset, data.size(), opt, [&](uint64_t lo, uint64_t hi) {
    alignas(64) static thread_local uint8_t expected[kScratch];
    BlockResult& r = blocks[lo / block - first_block];
    // The common case, data as it should be, compared as it is made, the whole block at
    // once; otherwise chunk by chunk, each that differs made in the scratch buffer to find
    // where.
    if (detail::equal_range(ds_, lo, data.data() + (lo - offset), hi - lo, paired).value_or(false))
      return;
    for (uint64_t at = lo; at < hi; at += kScratch) {
      const uint64_t n = std::min(kScratch, hi - at);
      if (detail::equal_range(ds_, at, data.data() + (at - offset), n, paired).value_or(false))
        continue;
      detail::fill_range(ds_, at, expected, n, kernels::Stores::paired);
      diff(expected, data.data() + (at - offset), n, at, r);
    }
  });

  // Nothing has changed until here, so an interrupted piece is simply not counted.
  if (offset != end_) {  // a gap: what came before can no longer grow
    has_last_ = false;
    tail_.clear();
  }
  std::vector<Mismatch> merged;
  for (BlockResult& b : blocks) {
    result_.mismatched_bytes += b.mismatched;
    for (const Mismatch& m : b.ranges) {
      if (!merged.empty() && joins(merged.back(), m.offset))
        merged.back().length = m.offset + m.length - merged.back().offset;
      else
        merged.push_back(m);
    }
  }
  find_moved_units(ds_, offset, data, merged);
  for (Mismatch& m : merged) {
    m.zeros = m.belongs_at < 0 && m.stale_generation < 0 &&
              all_zero(data.data() + (m.offset - offset), m.length);
    append(m, data, offset, &m == merged.data());
  }
  result_.bytes += data.size();

  const size_t keep = std::min<size_t>(data.size(), kVerifyGap);
  tail_.insert(tail_.end(), data.end() - keep, data.end());
  if (tail_.size() > kVerifyGap) tail_.erase(tail_.begin(), tail_.end() - kVerifyGap);
  end_ = offset + data.size();
}

// Lists m, or, for a piece's first range, merges it into the previous piece's last range
// when they are close. The bytes between lie in that piece's tail and this one's head.
void Verifier::append(const Mismatch& m, std::span<const uint8_t> data, uint64_t offset,
                      bool first) {
  if (first && has_last_ && last_.belongs_at < 0 && m.belongs_at < 0 &&
      last_.stale_generation < 0 && m.stale_generation < 0 &&
      joins(last_, m.offset)) {
    const uint64_t lo = last_.offset + last_.length;  // <= end_ == offset
    last_.zeros = last_.zeros && m.zeros &&
                  all_zero(tail_.data() + tail_.size() - (end_ - lo), end_ - lo) &&
                  all_zero(data.data(), m.offset - offset);
    last_.length = m.offset + m.length - last_.offset;
    if (last_listed_) result_.ranges.back() = last_;
    return;
  }
  ++result_.range_count;
  last_ = m;
  has_last_ = true;
  last_listed_ = result_.ranges.size() < max_ranges_;
  if (last_listed_) result_.ranges.push_back(m);
}

VerifyResult verify(const Dataset& ds, uint64_t offset, std::span<const uint8_t> data,
                    const FillOptions& opt, size_t max_ranges) {
  Verifier v(ds, max_ranges);
  v.add(offset, data, opt);
  return v.result();
}

}  // namespace dgen
