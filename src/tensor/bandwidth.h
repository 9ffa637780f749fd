// Measured memory read bandwidth: the denominator of the roofline fraction
// `flatline bench` reports (decode reads every weight once per token).
#pragma once

#include "tensor/thread_pool.h"

namespace flatline {

// Best of several multi-threaded streaming reads over a buffer much larger
// than the last-level cache, in GB/s (1e9 bytes per second).
double measure_read_bandwidth_gbs(ThreadPool& pool);

}  // namespace flatline
