// The README's C++ example; exits 0 when the filled range verifies and a changed byte does not.
#include <dgen/dgen.hpp>

#include <cstdint>
#include <cstdio>
#include <vector>

int main() {
  dgen::Dataset ds({.seed = 42, .size = 1ull << 30, .dedup_ratio = 2, .compress_ratio = 3});
  std::vector<uint8_t> buf(1 << 20);
  dgen::fill(ds, /*offset=*/512 << 20, buf);                // any range, any thread count
  dgen::VerifyResult r = dgen::verify(ds, 512 << 20, buf);  // r.ok(), r.ranges
  dgen::Verifier v(ds);                                     // data read back in pieces
  v.add(512 << 20, buf);                                    // ... then v.result()
  buf[12345] ^= 1;
  const bool damaged_found = !dgen::verify(ds, 512 << 20, buf).ok();
  std::printf("verify %s, damage %s\n", r.ok() && v.result().ok() ? "ok" : "FAILED",
              damaged_found ? "found" : "MISSED");
  return r.ok() && v.result().ok() && damaged_found ? 0 : 1;
}
