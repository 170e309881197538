/*
 * Logging for every pgq process: stderr, a file or syslog, with a prefix of
 * program name, pid and role ("pgq-master[12]: worker 3: "). log_warn adds
 * strerror(errno); every call saves and restores errno.
 */
#ifndef PGQ_LOG_H
#define PGQ_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "common/common.h"

enum log_level {
	LOG_LEVEL_ERROR = 0, /* fatal conditions and failed actions */
	LOG_LEVEL_WARN,	     /* something went wrong and was handled */
	LOG_LEVEL_INFO,	     /* life-cycle events an operator wants to see */
	LOG_LEVEL_DEBUG,     /* per-job and per-message detail */
};

enum log_target {
	LOG_TARGET_STDERR = 0, /* write to standard error */
	LOG_TARGET_FILE,       /* append to a file, reopened on log_reopen */
	LOG_TARGET_SYSLOG,     /* syslog(3), facility daemon */
};

/* Sets the program name used in the prefix; call once at start. */
void log_init(const char *progname, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info" or "debug". */
bool log_level_parse(const char *s, enum log_level *out) PGQ_WUR;
/*
 * Chooses where lines go. For LOG_TARGET_FILE, path is opened in append mode
 * (close-on-exec). Returns 0 or -1 (errno set, old target kept).
 */
int log_set_target(enum log_target target, const char *path) PGQ_WUR;
/* Reopens the log file (after rotation); no-op for other targets. */
int log_reopen(void) PGQ_WUR;
/* Sets the role shown after the pid, e.g. "worker 3"; NULL clears it. */
void log_set_role(const char *role);
/* Prefixes timestamps on stderr lines (daemons running in a terminal). */
void log_set_timestamps(bool on);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2))) PGQ_NORETURN;
void fatalx(const char *fmt, ...)
	__attribute__((format(printf, 1, 2))) PGQ_NORETURN;

#endif
