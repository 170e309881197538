/*
 * The log sink. Lines are built in one buffer and written with one write(2)
 * so that lines from a master and its workers sharing a file never interleave.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static const char *log_progname = "pgq";
static enum log_level log_level_cur = LOG_LEVEL_INFO;
static enum log_target log_target_cur = LOG_TARGET_STDERR;
static char *log_path;
static int log_fd = STDERR_FILENO;
static char log_role[64];
static bool log_timestamps;

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

void
log_init(const char *progname, enum log_level level)
{
	log_progname = progname;
	log_level_cur = level;
}

void
log_set_level(enum log_level level)
{
	log_level_cur = level;
}

enum log_level
log_get_level(void)
{
	return log_level_cur;
}

bool
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < PGQ_NELEM(log_level_names); i++) {
		if (strcasecmp(s, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

static int
log_open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int
log_set_target(enum log_target target, const char *path)
{
	int fd = STDERR_FILENO;

	if (target == LOG_TARGET_FILE) {
		fd = log_open_file(path);
		if (fd == -1)
			return -1;
	}
	if (log_target_cur == LOG_TARGET_FILE && log_fd != STDERR_FILENO)
		close(log_fd);
	if (log_target_cur == LOG_TARGET_SYSLOG)
		closelog();
	free(log_path);
	log_path = NULL;
	log_target_cur = target;
	log_fd = fd;
	if (target == LOG_TARGET_FILE)
		log_path = xstrdup(path);
	if (target == LOG_TARGET_SYSLOG)
		openlog(log_progname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	return 0;
}

int
log_reopen(void)
{
	int fd;

	if (log_target_cur != LOG_TARGET_FILE)
		return 0;
	fd = log_open_file(log_path);
	if (fd == -1)
		return -1;
	close(log_fd);
	log_fd = fd;
	return 0;
}

void
log_set_role(const char *role)
{
	if (role == NULL)
		log_role[0] = '\0';
	else
		snprintf(log_role, sizeof(log_role), "%s", role);
}

void
log_set_timestamps(bool on)
{
	log_timestamps = on;
}

static void log_vwrite(enum log_level level, const char *errstr,
		       const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void
log_vwrite(enum log_level level, const char *errstr, const char *fmt,
	   va_list ap)
{
	char line[2048];
	size_t off = 0;
	int n;
	int saved = errno;

	if (level > log_level_cur)
		goto out;
	if (log_target_cur == LOG_TARGET_SYSLOG) {
		static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO,
					   LOG_DEBUG};
		n = 0;
		if (log_role[0] != '\0')
			n = snprintf(line, sizeof(line), "%s: ", log_role);
		off = n > 0 ? (size_t)n : 0;
		vsnprintf(line + off, sizeof(line) - off, fmt, ap);
		if (errstr != NULL)
			syslog(prio[level], "%s: %s", line, errstr);
		else
			syslog(prio[level], "%s", line);
		goto out;
	}
	if (log_timestamps || log_target_cur == LOG_TARGET_FILE) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		off = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
		n = snprintf(line + off, sizeof(line) - off, ".%03ld ",
			     ts.tv_nsec / 1000000);
		off += n > 0 ? (size_t)n : 0;
	}
	n = snprintf(line + off, sizeof(line) - off, "%s[%ld]: %s%s%s%s",
		     log_progname, (long)getpid(), log_role,
		     log_role[0] != '\0' ? ": " : "",
		     level == LOG_LEVEL_ERROR ? "error: " : "",
		     level == LOG_LEVEL_WARN ? "warning: " : "");
	off += n > 0 ? (size_t)n : 0;
	if (off < sizeof(line)) {
		n = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
		off += n > 0 ? (size_t)n : 0;
	}
	if (errstr != NULL && off < sizeof(line)) {
		n = snprintf(line + off, sizeof(line) - off, ": %s", errstr);
		off += n > 0 ? (size_t)n : 0;
	}
	if (off > sizeof(line) - 2)
		off = sizeof(line) - 2;
	line[off++] = '\n';
	/* One write per line; a short write to a log is not worth a retry. */
	if (write(log_fd, line, off) < 0) {
		/* nothing sensible to do when the log itself fails */
	}
out:
	errno = saved;
}

#define LOG_BODY(level, errstr)                                                \
	do {                                                                   \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		log_vwrite(level, errstr, fmt, ap);                            \
		va_end(ap);                                                    \
	} while (0)

void
log_warn(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, strerror(errno));
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, NULL);
}

void
log_error(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_INFO, NULL);
}

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_DEBUG, NULL);
}

void
fatal(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, strerror(errno));
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, NULL);
	exit(1);
}
