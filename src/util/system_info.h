// Facts about the machine and this process: memory and cores.
#pragma once

#include <cstdint>

namespace flatline {

uint64_t total_memory_bytes();      // MemTotal
uint64_t available_memory_bytes();  // MemAvailable (what can be allocated without swapping)
uint64_t current_rss_bytes();       // VmRSS of this process
uint64_t peak_rss_bytes();          // VmHWM of this process
int physical_core_count();          // distinct (package, core) pairs; >= 1

// Cgroup memory limit if one applies and is lower than MemTotal, else 0.
uint64_t cgroup_memory_limit_bytes();

}  // namespace flatline
