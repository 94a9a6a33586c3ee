// Worker threads, created once and reused by every call.
//
// Unbound work goes to one shared pool where the caller takes part and blocks are handed
// out dynamically. A WorkerPlan with CPU sets gets a pool of its own whose workers are
// bound to those CPUs; each worker then takes a fixed share of the call's blocks, so that
// it keeps writing the pages it touched first (node-local on NUMA machines).
//
// Calls from several threads run at once and share the workers; fork-safe. The protocol
// is written at the top of pool.cpp.
#pragma once

#include <cstddef>
#include <functional>

#include "dgen/topology.hpp"

namespace dgen::pool {

// Calls task(i) for every i in [0, n) on plan.threads threads; returns when all are done
// and rethrows the first exception a task threw. Calls from several threads at once run
// side by side, a task of each in turn.
//
// `interrupted`, when set, is polled on the calling thread (at most every few tens of
// milliseconds); once it returns true no further task starts and run() throws
// dgen::Interrupted after the running ones finish.
void run(size_t n, const WorkerPlan& plan, const std::function<void(size_t)>& task,
         const std::function<bool()>& interrupted = {});

// Same with an unbound plan of `threads` threads.
void run(size_t n, unsigned threads, const std::function<void(size_t)>& task,
         const std::function<bool()>& interrupted = {});

// The lock of allocate()'s recycler of freed buffers (topology.cpp), for the fork handler
// of pool.cpp: taken before fork(), then released in the parent or made anew in the child.
void recycler_before_fork();
void recycler_after_fork(bool child);

}  // namespace dgen::pool
