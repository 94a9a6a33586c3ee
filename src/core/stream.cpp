#include <stdexcept>
#include <string>

#include "dgen/dgen.hpp"

namespace dgen {

Stream::Stream(const Params& p, FillOptions opt) : ds_(p), opt_(opt) {
  if (opt_.numa_node) Topology::get().node(*opt_.numa_node);  // refuses a missing node now
}

Stream::Claim Stream::claim(uint64_t max_len) {
  std::lock_guard lk(mu_);
  const uint64_t n = std::min(max_len, ds_.size() - pos_);
  Claim c{ds_, pos_, n};
  pos_ += n;
  return c;
}

void Stream::unclaim(const Claim& c) {
  std::lock_guard lk(mu_);
  if (pos_ == c.offset + c.length) pos_ = c.offset;
}

uint64_t Stream::read(std::span<uint8_t> out) {
  const Claim c = claim(out.size());
  try {
    fill(c.dataset, c.offset, out.first(c.length), opt_);
  } catch (...) {
    unclaim(c);
    throw;
  }
  return c.length;
}

void Stream::seek(uint64_t offset) {
  std::lock_guard lk(mu_);
  if (offset > ds_.size())
    throw std::out_of_range("offset must be in [0, " + std::to_string(ds_.size()) + "], got " +
                            std::to_string(offset));
  pos_ = offset;
}

void Stream::set_seed(uint64_t seed) {
  std::lock_guard lk(mu_);
  Params p = ds_.params();
  p.seed = seed;
  ds_ = Dataset(p);
}

uint64_t Stream::position() const {
  std::lock_guard lk(mu_);
  return pos_;
}

Dataset Stream::dataset_copy() const {
  std::lock_guard lk(mu_);
  return ds_;
}

uint64_t Stream::seed() const {
  std::lock_guard lk(mu_);
  return ds_.params().seed;
}

}  // namespace dgen
