// Minimal leveled logging to stderr. The CLI and server decide the level.
#pragma once

#include <sstream>
#include <string>

namespace flatline {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3, Quiet = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log_line(LogLevel level, const std::string& message);

}  // namespace flatline

#define FLATLINE_LOG(level, expr)                                     \
  do {                                                                \
    if (static_cast<int>(level) >= static_cast<int>(::flatline::log_level())) { \
      std::ostringstream flatline_log_os_;                            \
      flatline_log_os_ << expr;                                       \
      ::flatline::log_line(level, flatline_log_os_.str());            \
    }                                                                 \
  } while (0)

#define LOG_DEBUG(expr) FLATLINE_LOG(::flatline::LogLevel::Debug, expr)
#define LOG_INFO(expr) FLATLINE_LOG(::flatline::LogLevel::Info, expr)
#define LOG_WARN(expr) FLATLINE_LOG(::flatline::LogLevel::Warn, expr)
#define LOG_ERROR(expr) FLATLINE_LOG(::flatline::LogLevel::Error, expr)
