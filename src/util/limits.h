// Bounds on every number a user can give flatline (command-line options and
// HTTP request fields), in one place so the CLI, the server and
// docs/SERVER.md ("Limits") agree. A value outside its range is refused with
// a message naming the option, the value and the range; nothing is clamped
// silently.
#pragma once

#include <cstdint>
#include <string>

namespace flatline::limits {

constexpr int kMaxThreads = 256;               // -t/--threads (0 = physical cores)
constexpr int kMaxHttpThreads = 1024;          // --http-threads
constexpr int kMinHttpThreads = 4;
constexpr int kMaxQueue = 1024;                // --max-queue
constexpr int kMaxLoaded = 16;                 // --max-loaded
constexpr int kMaxStoredResponses = 1000000;   // --max-responses
constexpr int kMaxConnections = 512;           // --max-connections (httplib uses select(): fds stay < 1024)
constexpr int64_t kMaxBatch = 4096;            // -b/--batch
constexpr int64_t kMaxContext = int64_t{1} << 24;  // -c/--ctx, num_ctx (16,777,216 tokens)
constexpr int64_t kMaxPredict = int64_t{1} << 24;  // -n, num_predict, max_tokens (-1 = no limit; Ollama's -2 too)
constexpr int64_t kMaxDiffusionSteps = int64_t{1} << 16;  // steps, diffusion_steps, diffusion_cache
constexpr double kMaxTemperature = 100.0;
constexpr int64_t kMaxTopK = int64_t{1} << 20;
constexpr int64_t kMaxRepeatLastN = int64_t{1} << 24;
constexpr double kMinRepeatPenalty = 0.01;     // 0 would divide by zero
constexpr double kMaxRepeatPenalty = 100.0;
constexpr double kMaxAbsPenalty = 100.0;       // presence / frequency penalty, either sign
constexpr size_t kMaxStopStrings = 64;         // stop strings per request (the template's not counted)
constexpr size_t kMaxStopBytes = 1024;         // bytes per stop string
constexpr int kMaxTimeoutSeconds = 3600;       // --header-timeout, --idle-timeout, ...
constexpr uint64_t kMaxByteSize = uint64_t{1} << 50;  // any SIZE option (1 PiB)
constexpr uint64_t kMinBodyBytes = 1024;       // --max-body
constexpr uint64_t kMaxBodyBytes = uint64_t{1} << 30;

// Throws Error("<name> must be between <lo> and <hi> (got <v>)").
void check_range(const std::string& name, int64_t value, int64_t lo, int64_t hi);
// Also refuses NaN and infinities ("... (got nan)").
void check_range(const std::string& name, double value, double lo, double hi);

// "-1 or 0..N" style checks for counts where -1 means "no limit".
void check_count_or_unlimited(const std::string& name, int64_t value, int64_t hi);

}  // namespace flatline::limits
