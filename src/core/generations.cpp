// Generations (format 2 and 3): which runs each rewrite changes, and the version (the latest
// generation that changed it) of a unique unit, by window tables kept in a VersionCache.
// See docs/data-model.md, "Generations" under Format 2 and Format 3.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "dgen/dgen.hpp"
#include "dataset_detail.hpp"
#include "model.hpp"

namespace dgen {

// Exactly round(change_rate * n) of the first n runs change in each generation, n counted
// at the end of each window: the runs born in window w, [a, b), get floor(c b + 1/2) -
// floor(c a + 1/2) changes, the runs at the first positions of a permutation keyed by the
// generation. A unit's version is the latest generation that changed its run.
Dataset::BirthWindow Dataset::Detail::birth_window(const Dataset& d, uint64_t r) {
  // Format 3 counts changes in groups of kChangeGroup births whatever the window (a window
  // of one run has at most one birth: the same runs would change in every generation), few
  // enough that a dataset of a few groups changes its share exactly.
  if (d.params_.format_version >= 3) {
    const uint64_t w = r / kChangeGroup;
    return {w, w * kChangeGroup, (w + 1) * kChangeGroup};
  }
  if (d.params_.dedup_ratio == 1.0) {
    const uint64_t w = r / kWindowUnits;
    return {w, w * kWindowUnits, (w + 1) * kWindowUnits};
  }
  uint64_t w = uint64_t(double(r) * d.params_.dedup_ratio / double(kWindowUnits));
  while (w > 0 && d.unique_before(w * kWindowUnits) > r) --w;
  while (d.unique_before((w + 1) * kWindowUnits) <= r) ++w;
  return {w, d.unique_before(w * kWindowUnits), d.unique_before((w + 1) * kWindowUnits)};
}

uint64_t Dataset::Detail::changes(const Dataset& d, const BirthWindow& bw) {
  const double c = d.params_.change_rate;
  return uint64_t(std::floor(c * double(bw.end) + 0.5)) -
         uint64_t(std::floor(c * double(bw.first) + 0.5));
}

uint64_t Dataset::Detail::change_key(const Dataset& d, uint64_t h, uint64_t w) {
  return model::mix64(d.key_ ^ model::mix64(h * 0x9FB21C651E98DF25ull + w));
}

bool Dataset::changed_at(uint64_t id, uint64_t h) const {
  if (h == 0 || h >= kMaxGeneration)
    throw std::invalid_argument("generation must be in [1, " +
                                std::to_string(kMaxGeneration - 1) + "], got " +
                                std::to_string(h));
  if (params_.format_version < 2) return false;  // format 1 has no generations
  if (params_.change_rate == 1.0) return true;
  const uint64_t r = id / params_.dedup_run;
  const BirthWindow bw = Detail::birth_window(*this, r);
  const uint64_t key = Detail::change_key(*this, h, bw.index);
  return model::permute(r - bw.first, bw.end - bw.first, key) < Detail::changes(*this, bw);
}

std::vector<std::pair<uint64_t, uint64_t>> Dataset::changed_units(uint64_t begin, uint64_t end,
                                                                  uint64_t h) const {
  end = std::min(end, units_);
  std::vector<std::pair<uint64_t, uint64_t>> out;
  // A run's units change together (the ids of run q are one run of unique units).
  const uint64_t run = params_.dedup_run;
  for (uint64_t i = begin; i < end;) {
    const uint64_t next = std::min(end, (i / run + 1) * run);
    if (changed_at(unique_id(i), h)) {
      if (!out.empty() && out.back().second == i)
        out.back().second = next;
      else
        out.emplace_back(i, next);
    }
    i = next;
  }
  return out;
}

uint64_t Dataset::version(uint64_t id, uint64_t g) const {
  VersionCache cache;
  return version(id, g, cache);
}

uint64_t Dataset::version(uint64_t id, uint64_t g, VersionCache& cache) const {
  if (params_.change_rate == 1.0 || g == 0) return g;
  const uint64_t r = id / params_.dedup_run;
  for (const auto& c : cache.windows)
    if (c.generation == g && r >= c.first && r < c.first + c.count) return c.version[r - c.first];
  const BirthWindow bw = Detail::birth_window(*this, r);
  const uint64_t n = bw.end - bw.first;  // at most 64: a window's slots
  const uint64_t m = Detail::changes(*this, bw);
  // A run born well before the windows a sequential caller is in (a hot unit of
  // dedup_skew) is looked up alone: one permutation per generation back to its latest
  // change, instead of a whole window's table used once.
  if (bw.index + 1 < cache.ahead) {
    if (early_ && g == params_.generation && bw.index < kEarlyWindows &&
        r < early_->version.size())
      return early_->version[r];
    if (m == 0) return 0;  // no rewrite changes a run of this window
    VersionCache::Alone& a = cache.alone[r % VersionCache::kAlone];
    if (a.run == r && a.generation == g) return a.version;
    // A few generations at a time: about as many as a run goes between changes.
    constexpr uint64_t kGroup = 8;
    const auto per_group = uint64_t(std::clamp(std::round(1 / params_.change_rate), 1.0, 8.0));
    uint64_t h = g;
    while (h > 0) {
      uint64_t keys[kGroup], at[kGroup];
      const uint64_t group = std::min(per_group, h);
      for (uint64_t i = 0; i < group; ++i)
        keys[i] = Detail::change_key(*this, h - i, bw.index), at[i] = r - bw.first;
      model::permute_many<true>(n, keys, at, group);
      uint64_t i = 0;
      while (i < group && at[i] >= m) ++i;
      h -= i;
      if (i < group) break;  // generation h changed it
    }
    a = {r, g, h};
    return h;
  }
  cache.ahead = std::max(cache.ahead, bw.index);
  // Every run of the window at once, from generation g down; a run's version is the first
  // generation met that changed it. Each generation costs the cheaper of: its m changes
  // inverted, or the runs still without a version permuted forward. Eight values or more
  // go through the permutation's table (a hash per round value to make it, then lookups);
  // fewer through the hashes, a few generations at once. The values of one call go
  // through side by side.
  auto& slot = cache.windows[cache.next];
  cache.next ^= 1;
  slot = {g, bw.first, n, {}};
  uint8_t open[kWindowUnits];  // the runs without a version yet, once going forward
  uint64_t left = n;
  bool listed = false;
  constexpr uint64_t kTable = 8;
  for (uint64_t h = g; h > 0 && m > 0 && left > 0;) {
    const bool forward = left <= m;
    if (forward && !listed) {
      left = 0;
      for (uint64_t x = 0; x < n; ++x)
        if (slot.version[x] == 0) open[left++] = uint8_t(x);
      listed = true;
    }
    const uint64_t count = forward ? left : m;
    uint8_t values[kWindowUnits];
    uint64_t group = 1;
    if (count >= kTable) {
      for (uint64_t i = 0; i < count; ++i) values[i] = uint8_t(forward ? open[i] : i);
      const model::SmallPermutation p(n, Detail::change_key(*this, h, bw.index));
      forward ? p.apply<true>(values, count) : p.apply<false>(values, count);
    } else {
      group = forward ? 1 : std::min(h, kTable / count);
      uint64_t keys[kTable], wide[kTable];
      for (uint64_t i = 0; i < group * count; ++i)
        keys[i] = Detail::change_key(*this, h - i / count, bw.index),
        wide[i] = forward ? open[i] : i % count;
      forward ? model::permute_many<true>(n, keys, wide, count)
              : model::permute_many<false>(n, keys, wide, group * count);
      for (uint64_t i = 0; i < group * count; ++i) values[i] = uint8_t(wide[i]);
    }
    if (forward) {
      uint64_t kept = 0;
      for (uint64_t i = 0; i < left; ++i)
        if (values[i] < m)
          slot.version[open[i]] = uint32_t(h);
        else
          open[kept++] = open[i];
      left = kept;
    } else {
      for (uint64_t i = 0; i < group * count; ++i)
        if (uint32_t& v = slot.version[values[i]]; v == 0) v = uint32_t(h - i / count), --left;
    }
    h -= group;
  }
  return slot.version[r - bw.first];
}

}  // namespace dgen
