// Dataset: the identity validated and the unit-to-unique-id layout of formats 1 to 5
// (docs/data-model.md); generations in generations.cpp. Also the keyed permutations of model.hpp.
#include "dataset_detail.hpp"
#include "model.hpp"
#include "text.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cmath>
#include <stdexcept>
#include <string>

#include "dgen/dgen.hpp"
#include "kernels/kernels.hpp"
#include "content.hpp"

namespace dgen {
namespace model {

namespace {

// The halves of the smallest even-width power-of-two domain holding [0, n): the Feistel
// network of permute() and unpermute() runs on it.
struct Halves {
  explicit Halves(uint64_t n) {
    int bits = std::bit_width(n - 1);
    bits += bits & 1;
    half = bits / 2;
    mask = (uint64_t{1} << half) - 1;
  }
  int half;
  uint64_t mask;
};

// One pass of the 4-round balanced Feistel network over v's halves (Forward), or of its
// inverse.
template <bool Forward>
inline uint64_t network(uint64_t v, uint64_t key, const Halves& h) {
  uint64_t l = v >> h.half, r = v & h.mask;
  for (uint64_t i = 0; i < 4; ++i) {
    if constexpr (Forward) {
      const uint64_t next = l ^ (mix64(r ^ (key + i * kGolden)) & h.mask);
      l = r;
      r = next;
    } else {
      const uint64_t prev_r = l;
      l = r ^ (mix64(prev_r ^ (key + (3 - i) * kGolden)) & h.mask);
      r = prev_r;
    }
  }
  return (l << h.half) | r;
}

}  // namespace

uint64_t permute(uint64_t x, uint64_t n, uint64_t key) {
  if (n <= 1) return 0;
  const Halves h(n);
  do x = network<true>(x, key, h);
  while (x >= n);  // walk the cycle until back inside [0, n)
  return x;
}

uint64_t unpermute(uint64_t y, uint64_t n, uint64_t key) {
  if (n <= 1) return 0;
  const Halves h(n);
  do y = network<false>(y, key, h);
  while (y >= n);
  return y;
}

template <bool Forward>
void permute_many(uint64_t n, const uint64_t* keys, uint64_t* values, size_t count) {
  if (n <= 1) {
    std::fill(values, values + count, 0);
    return;
  }
  const Halves h(n);
  constexpr size_t kBatch = 64;
  uint32_t walking[kBatch];  // the values still outside [0, n)
  for (size_t base = 0; base < count; base += kBatch) {
    size_t left = std::min(kBatch, count - base);
    for (size_t i = 0; i < left; ++i) walking[i] = uint32_t(base + i);
    while (left > 0) {
      for (size_t p = 0; p < left; ++p) {  // one pass of the network, value after value
        uint64_t& v = values[walking[p]];
        v = network<Forward>(v, keys[walking[p]], h);
      }
      size_t kept = 0;
      for (size_t p = 0; p < left; ++p)
        if (values[walking[p]] >= n) walking[kept++] = walking[p];
      left = kept;
    }
  }
}

template void permute_many<true>(uint64_t, const uint64_t*, uint64_t*, size_t);
template void permute_many<false>(uint64_t, const uint64_t*, uint64_t*, size_t);

SmallPermutation::SmallPermutation(uint64_t n, uint64_t key) : n_(n) {
  if (n <= 1) return;
  if (n > 256) throw std::invalid_argument("SmallPermutation: n must be at most 256");
  const Halves h(n);
  half_ = h.half;
  mask_ = uint8_t(h.mask);
  for (uint64_t round = 0; round < 4; ++round)
    for (uint64_t v = 0; v <= h.mask; ++v)
      f_[round][v] = uint8_t(mix64(v ^ (key + round * kGolden)) & h.mask);
}

template <bool Forward>
void SmallPermutation::apply(uint8_t* values, size_t count) const {
  if (n_ <= 1) {
    std::fill(values, values + count, 0);
    return;
  }
  if (count > 256) throw std::invalid_argument("SmallPermutation: count must be at most 256");
  uint8_t walking[256];  // indices of the values still outside [0, n)
  size_t left = count;
  for (size_t i = 0; i < left; ++i) walking[i] = uint8_t(i);
  while (left > 0) {
    for (size_t p = 0; p < left; ++p) {
      uint8_t& v = values[walking[p]];
      unsigned l = v >> half_, r = v & mask_;
      for (int i = 0; i < 4; ++i) {
        if constexpr (Forward) {
          const unsigned next = l ^ f_[i][r];
          l = r;
          r = next;
        } else {
          const unsigned prev_r = l;
          l = r ^ f_[3 - i][prev_r];
          r = prev_r;
        }
      }
      v = uint8_t((l << half_) | r);
    }
    size_t kept = 0;
    for (size_t p = 0; p < left; ++p)
      if (values[walking[p]] >= n_) walking[kept++] = walking[p];
    left = kept;
  }
}

template void SmallPermutation::apply<true>(uint8_t*, size_t) const;
template void SmallPermutation::apply<false>(uint8_t*, size_t) const;

void shuffle(uint64_t key, uint8_t* order, unsigned n) {
  // One 64-bit draw serves every step: the high word of r * (i + 1) is the choice, the low
  // word the randomness left for the next (8! needs about 15 of its 64 bits).
  for (uint8_t i = 0; i < n; ++i) order[i] = i;
  uint64_t r = mix64(key);
  for (unsigned i = n - 1; i > 0; --i) {
    const auto m = static_cast<unsigned __int128>(r) * (i + 1);
    std::swap(order[i], order[unsigned(m >> 64)]);
    r = uint64_t(m);
  }
}

uint64_t round_half_even(double x) {
  const double f = std::floor(x);
  const double d = x - f;
  const auto r = uint64_t(f);
  return d > 0.5 || (d == 0.5 && (r & 1)) ? r + 1 : r;
}

uint32_t random_len_for(double ratio) {
  // The compressible filler costs each compressor a few bytes per page; subtracting that
  // keeps the measured ratio on target (benchmarks/ratios.py measures it).
  constexpr double kFillerCost = 15.0;
  constexpr double kMinRandom = 16.0;  // keeps every page unique, even at high ratios
  if (ratio <= 1.0) return uint32_t(kPageSize);
  const double r = std::round(double(kPageSize) / ratio - kFillerCost);
  return uint32_t(std::clamp(r, kMinRandom, double(kPageSize)));
}

}  // namespace model

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

void check_ratio(const char* name, double v, double max) {
  if (!std::isfinite(v) || v < 1.0 || v > max)
    bad(std::string(name) + " must be a finite number in [1, " + num(max) + "], got " + num(v));
}

}  // namespace

Dataset::Dataset(const Params& p) : params_(p) {
  if (p.size > kMaxSize)
    bad("size must be in [0, 2^63-1], got " + std::to_string(p.size));
  check_ratio("dedup_ratio", p.dedup_ratio, kMaxDedupRatio);
  check_ratio("compress_ratio", p.compress_ratio, kMaxCompressRatio);
  if (!std::has_single_bit(p.dedup_unit) || p.dedup_unit < kMinDedupUnit ||
      p.dedup_unit > kMaxDedupUnit)
    bad("dedup_unit must be a power of two in [4096, 67108864], got " +
        std::to_string(p.dedup_unit));
  if (p.format_version < kMinFormatVersion || p.format_version > kMaxFormatVersion)
    bad("format_version must be in [" + std::to_string(kMinFormatVersion) + ", " +
        std::to_string(kMaxFormatVersion) + "], got " + std::to_string(p.format_version));
  if (p.dedup_window != 1 && p.dedup_window != 4 && p.dedup_window != 16 && p.dedup_window != 64)
    bad("dedup_window must be 1, 4, 16 or 64, got " + std::to_string(p.dedup_window));
  if (p.format_version < 3 && p.dedup_window != kWindowUnits)
    bad("dedup_window must be 64 in format_version " + std::to_string(p.format_version) +
        " (formats 3 to 5 set it), got " + std::to_string(p.dedup_window));
  if (p.dedup_run < 1 || p.dedup_run > kMaxDedupRun)
    bad("dedup_run must be in [1, " + std::to_string(kMaxDedupRun) + "], got " +
        std::to_string(p.dedup_run));
  if (p.format_version == 1 && p.dedup_run != 1)
    bad("dedup_run must be 1 in format_version 1, got " + std::to_string(p.dedup_run));
  if (p.generation >= kMaxGeneration)
    bad("generation must be in [0, " + std::to_string(kMaxGeneration - 1) + "], got " +
        std::to_string(p.generation));
  if (!(p.change_rate >= 0.0 && p.change_rate <= 1.0))
    bad("change_rate must be a number in [0, 1], got " + num(p.change_rate));
  if (!(p.dedup_skew >= 0.0 && p.dedup_skew <= kMaxDedupSkew))
    bad("dedup_skew must be 0 (uniform) or a Zipf exponent in (0, " + num(kMaxDedupSkew) +
        "], got " + num(p.dedup_skew));
  if (p.format_version == 1 && p.dedup_skew != 0.0)
    bad("dedup_skew must be 0 in format_version 1");
  if (p.format_version == 1 && p.dedup_shift)
    bad("dedup_shift must be false in format_version 1");
  if (p.format_version == 1 && p.generation != 0)
    bad("generation must be 0 in format_version 1, got " + std::to_string(p.generation));
  content::Kind kind;
  if (!content::parse(p.content.c_str(), kind))
    bad("content must be flat, binary or text, got '" + p.content + "'");
  content_kind_ = uint8_t(kind);
  if (kind != content::Kind::flat)
    content_level_ = content::model_for(kind, p.compress_ratio,
                                        content::version_of_format(p.format_version)).level;
  kernels::active();  // a bad DGEN_ISA is refused here, to the caller, not in a worker
  unit_shift_ = std::countr_zero(p.dedup_unit);
  units_ = (p.size + p.dedup_unit - 1) >> unit_shift_;
  random_len_ = model::random_len_for(p.compress_ratio);
  inverse_ratio_ = 1.0 / p.dedup_ratio;
  exact_inverse_ =
      std::has_single_bit(uint64_t(p.dedup_ratio)) && p.dedup_ratio == std::floor(p.dedup_ratio);
  if (p.format_version == 1) {
    key_ = p.seed;
    unique_ = units_ == 0 ? 0 : std::clamp<uint64_t>(model::round_half_even(double(units_) / p.dedup_ratio), 1, units_);
    return;
  }
  key_ = model::mix64(p.seed ^ 0x2545F4914F6CDD1Dull);
  window_ = p.dedup_window;
  side_shift_ = std::bit_width(window_) / 2;
  side_ = uint64_t(1) << side_shift_;
  // Half the copies a window can spare go to the hot set: the other slots still hold every
  // unit born in the window.
  if (p.dedup_skew > 0.0)
    hot_ = uint64_t(std::floor((double(window_) - double(window_) / p.dedup_ratio) / 2));
  if (p.format_version >= 3 && p.dedup_skew > 0.0 && p.dedup_ratio > 1.0 && hot_ == 0)
    bad("dedup_skew needs a window with copies to spare: dedup_window " +
        std::to_string(window_) + " at dedup_ratio " + num(p.dedup_ratio) +
        " has none (use dedup_window 16 or 64)");
  if (p.dedup_ratio == 1.0) {
    unique_ = units_;
    return;
  }
  // Whole runs of dedup_run units; a partial last run adds its units only if its run is
  // new (an earlier copy of it was whole).
  const uint64_t run = p.dedup_run, runs = (units_ + run - 1) / run;
  const uint64_t last = units_ - (runs == 0 ? 0 : (runs - 1) * run);
  if (last == run || runs == 0) {
    unique_ = Detail::distinct_runs(*this, runs) * run;
  } else {
    const uint64_t before = Detail::distinct_runs(*this, runs - 1);
    unique_ = before * run + (Detail::distinct_runs(*this, runs) > before ? last : 0);
  }
  if (hot_ > 0 && p.generation > 0 && p.change_rate < 1.0) Detail::make_early(*this);
}

void Dataset::Detail::make_early(Dataset& d) {
  // In order, so every window is tabulated once; early_ is still empty, so version() makes
  // each entry as it would without the table.
  const uint64_t g = d.params_.generation;
  const uint64_t born = d.params_.format_version >= 3 ? kEarlyWindows * kChangeGroup
                                                    : d.unique_before(kEarlyWindows * kWindowUnits);
  const uint64_t runs = std::min(born, (d.units_ + d.params_.dedup_run - 1) / d.params_.dedup_run);
  auto early = std::make_shared<Early>();
  early->version.resize(runs);
  VersionCache in_order;
  for (uint64_t q = 0; q < runs; ++q)
    early->version[q] = uint32_t(d.version(q * d.params_.dedup_run, g, in_order));
  d.early_ = std::move(early);
}

uint64_t Dataset::Detail::distinct_runs(const Dataset& d, uint64_t n) {
  // Every full window adds to the count; a partial last one adds the new ids among the
  // slots it shows.
  const uint64_t full = n / d.window_ * d.window_;
  const uint64_t before = d.unique_before(full);
  uint64_t seen = 0;  // bit k: id before + k occurs (a window adds at most 64 ids)
  SlotCache cache;
  for (uint64_t q = full; q < n; ++q)
    if (const uint64_t id = locate(d, q, cache).id; id >= before) seen |= 1ull << (id - before);
  return before + uint64_t(std::popcount(seen));
}

uint64_t Dataset::unique_before(uint64_t n) const {
  if (n == 0 || params_.dedup_ratio == 1.0) return n;
  // Format 3: slot s shows id floor(s / r), so that the ids of an integer ratio fill whole
  // multiples of it and a range of whole windows cuts none (format 2's rounding,
  // floor(n / r + 1/2), leaves an id astride every such boundary: a third of the ids of a
  // file of 8 runs at dedup 4).
  if (params_.format_version >= 3) return Detail::floor_quotient(*this, n - 1, 0.0) + 1;
  return std::clamp<uint64_t>(Detail::floor_quotient(*this, n, 0.5), 1, n);
}

uint64_t Dataset::Detail::floor_quotient(const Dataset& d, uint64_t n, double add) {
  // A product with the reciprocal is the quotient when the ratio is a power of two, else
  // within a few ulps of it, so that its floor is the quotient's unless it lies that close
  // to an integer; only then divide. (Positive values below 2^63: truncation is floor.)
  const double x = double(n) * d.inverse_ratio_ + add;
  const auto t = int64_t(x);
  const double frac = x - double(t), margin = double(n) * 0x1p-48;
  return d.exact_inverse_ || (frac > margin && 1 - frac > margin)
             ? uint64_t(t)
             : uint64_t(int64_t(double(n) / d.params_.dedup_ratio + add));
}

uint64_t Dataset::unit_key(uint64_t id) const {
  VersionCache cache;
  return unit_key(id, cache);
}

uint64_t Dataset::unit_key(uint64_t id, VersionCache& cache) const {
  const uint64_t key = model::mix64(key_ + model::kGolden * (id + 1));
  const uint64_t v = version(id, params_.generation, cache);
  return v == 0 ? key : model::mix64(key ^ model::mix64(v * 0xD6E8FEB86659FD93ull));
}

Dataset Dataset::at_generation(uint64_t g) const {
  Params p = params_;
  p.generation = g;
  return Dataset(p);
}

double Dataset::content_ratio() const {
  const auto kind = content::Kind(content_kind_);
  if (kind == content::Kind::flat) return params_.compress_ratio;
  return content::calibrated_ratio(content::model_at(
      kind, content_level_, content::version_of_format(params_.format_version)));
}

uint64_t Dataset::unique_id(uint64_t i) const {
  SlotCache cache;
  return unique_id(i, cache);
}

uint64_t Dataset::unique_id(uint64_t i, SlotCache& cache) const {
  if (params_.format_version >= 2) {
    if (params_.dedup_ratio == 1.0) return i;
    // Runs of dedup_run units repeat runs of consecutive unique units.
    const uint64_t run = params_.dedup_run;
    return Detail::locate(*this, i / run, cache).id * run + i % run;
  }
  if (unique_ == units_) return i;
  // Each period of `unique_` consecutive units shows every unique unit exactly once, in a
  // keyed order that differs from period to period.
  const uint64_t period = i / unique_;
  const uint64_t key = model::mix64(params_.seed ^ model::mix64(period + 0x5851F42D4C957F2Dull));
  return model::permute(i % unique_, unique_, key);
}

namespace {

// A rank in [1, n] drawn with weight about 1 / rank^s: the continuous distribution on
// [1/2, n + 1/2), inverted at u in [0, 1) and rounded, so that rank k gets the mass around k.
// The parts that depend on n and s alone are made once per window (zipf_law()).
struct ZipfLaw {
  double base, span;  // s = 1: log(hi / lo); else lo^(1-s) and hi^(1-s) - lo^(1-s)
};

ZipfLaw zipf_law(uint64_t n, double s) {
  const double lo = 0.5, hi = double(n) + 0.5;
  if (s == 1.0) return {std::log(hi / lo), 0.0};
  return {std::pow(lo, 1 - s), std::pow(hi, 1 - s) - std::pow(lo, 1 - s)};
}

uint64_t zipf_rank(double u, uint64_t n, double s, const ZipfLaw& law) {
  const double lo = 0.5;
  const double x = s == 1.0 ? lo * std::exp(u * law.base) : std::pow(law.base + u * law.span, 1 / (1 - s));
  return std::clamp<uint64_t>(uint64_t(x + 0.5), 1, n);
}

}  // namespace

// (Skew) the id slot `slot` of the cached window shows.
uint64_t Dataset::Detail::slot_id(const Dataset& d, uint64_t slot, const SlotCache& c) {
  // The first W - hot slots of a window show its births, spread evenly; the rest repeat
  // hot units of all those born by the window's end.
  const uint64_t k = slot & (d.window_ - 1), local = d.window_ - d.hot_;
  if (k < local) return c.first + ((k + 1) * (c.upto - c.first) + local - 1) / local - 1;
  const uint64_t draw = model::mix64(d.key_ ^ model::mix64(slot + 0x7A2C1B3D5E4F6071ull));
  const ZipfLaw law{c.zipf_base, c.zipf_span};
  return zipf_rank(double(draw >> 11) * 0x1.0p-53, c.upto, d.params_.dedup_skew, law) - 1;
}

uint64_t Dataset::shift(uint64_t unit_index) const {
  SlotCache cache;
  return shift(unit_index, cache);
}

uint64_t Dataset::shift(uint64_t unit_index, SlotCache& cache) const {
  if (!params_.dedup_shift || params_.dedup_ratio == 1.0) return 0;
  const SlotCache& c = Detail::locate(*this, unit_index / params_.dedup_run, cache);
  if (c.born) return 0;  // the run's first slot
  const uint64_t bytes = params_.dedup_run * params_.dedup_unit;
  const uint64_t s = 1 + model::mix64(key_ ^ model::mix64(c.slot ^ 0x3C6EF372FE94F82Bull)) % (bytes - 1);
  return s % kPageSize ? s : s - 1;
}

const SlotCache& Dataset::Detail::locate(const Dataset& d, uint64_t i, SlotCache& c) {
  // (i counts runs; with dedup_run 1 a run is a unit.)
  // Window w holds slots [wW, wW + W); slot s shows the id born last at or before it,
  // ids being born as unique_before() counts them, so each id has floor(r) or ceil(r)
  // copies in consecutive slots (an id born at a window's end goes on in the next).
  // Slots sit in an n x n grid (n = side_, 8 in format 2): column x holds the n
  // consecutive slots nx..nx+n-1, and slot (x, y) lies on diagonal (x + y) mod n. Unit j
  // of the window shows, at keyed diagonal G(j / n), the slot of keyed column F(j % n). So
  // the copies of an id lie on successive diagonals, in different rows of units but at the
  // same place in them: n or more units apart (a compressor's window of a few units rarely
  // holds two, which would add dedup to the compression it measures), mixed with other
  // ids' first occurrences.
  if (c.run == i) return c;
  // (Powers of two: shifts and masks, not divisions, on this path of every run.)
  const uint64_t W = d.window_, n = d.side_;
  const uint64_t w = i >> (2 * d.side_shift_), j = i & (W - 1);
  if (c.window != w) {
    const uint64_t key = model::mix64(d.key_ ^ model::mix64(w + 0x5851F42D4C957F2Dull));
    model::shuffle(key, c.diagonal, unsigned(n));
    model::shuffle(model::mix64(key + 1), c.column, unsigned(n));
    if (d.hot_ > 0) {
      c.first = d.unique_before(w * W), c.upto = d.unique_before((w + 1) * W);
      const ZipfLaw law = zipf_law(c.upto, d.params_.dedup_skew);
      c.zipf_base = law.base, c.zipf_span = law.span;
    }
    std::fill(std::begin(c.before), std::end(c.before), ~0ull);
    c.window = w;
  }
  const uint64_t x = c.column[j & (n - 1)];
  const uint64_t slot = w * W + n * x + ((c.diagonal[j >> d.side_shift_] + n - x) & (n - 1));
  c.run = i;
  c.slot = slot;
  if (d.hot_ == 0) {
    const auto before = [&](uint64_t k) {  // unique_before(w W + k), once per window
      if (c.before[k] == ~0ull) c.before[k] = d.unique_before(w * W + k);
      return c.before[k];
    };
    const uint64_t k = slot & (W - 1);
    c.id = before(k + 1) - 1;
    c.born = before(k) <= c.id;
    return c;
  }
  const uint64_t k = slot & (W - 1);
  c.id = slot_id(d, slot, c);
  c.born = k < W - d.hot_ && (k == 0 ? c.id == c.first : c.id != slot_id(d, slot - 1, c));
  return c;
}

}  // namespace dgen
