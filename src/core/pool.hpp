// A process-wide pool of worker threads, reused by every fill.
//
// Fork-safe: a pthread_atfork handler waits for the running job, joins the workers before
// fork() and lets the next job restart them, in parent and child alike (GNU OpenMP hangs a
// forked child instead — GCC bug 60035).
#pragma once

#include <cstddef>
#include <functional>

namespace dgen::pool {

// Calls task(i) for every i in [0, n) on up to `threads` threads, the caller being one of
// them; returns when all are done and rethrows the first exception a task threw. Calls from
// several threads at once are run one after the other.
//
// `interrupted`, when set, is polled on the calling thread between its tasks (at most every
// few tens of milliseconds); once it returns true no further task starts and run() throws
// dgen::Interrupted after the running ones finish.
void run(size_t n, unsigned threads, const std::function<void(size_t)>& task,
         const std::function<bool()>& interrupted = {});

}  // namespace dgen::pool
