/*
 * Helpers for the daemon suites: write an INI into a private directory, run
 * pgq-master as a real process with its output in a log file, wait for log
 * lines and exits with deadlines, signal it by pid, and read /proc to find its
 * workers and their descriptors.
 */
#ifndef PGQ_HARNESS_DAEMON_H
#define PGQ_HARNESS_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>

struct hd {
	pid_t pid;  /* the master, 0 when not started or reaped */
	int status; /* wait status once reaped */
	bool reaped;
	char dir[256];	   /* private directory, removed by hd_free */
	char ini[300];	   /* dir/pgq.ini */
	char log[300];	   /* dir/master.log: stdout and stderr */
	char pidfile[300]; /* dir/pgq-master.pid (not written unless asked) */
	size_t cursor;	   /* hd_wait_log searches from here */
};

/* Creates the directory; fails the test on error. */
void hd_init(struct hd *d);
/* Kills the master (SIGKILL) if still running, reaps it, waits for its
 * workers to vanish, and removes the directory. */
void hd_free(struct hd *d);

/* Removes a directory tree (no symlink following; best effort). */
void hd_rmtree_path(const char *dir);

/* Writes d->ini from a printf format (fails the test on error). */
void hd_write_ini(struct hd *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Writes any file under d->dir; returns its path (static storage). */
const char *hd_write_file(struct hd *d, const char *name, const char *text);

/*
 * The INI text for a test: [pgq] with workers and the given extra [pgq] lines
 * (may be ""), [database] dsn = conninfo, then extra sections (may be "").
 * Returns a static buffer.
 */
const char *hd_ini_text(const char *conninfo, unsigned workers,
			const char *pgq_extra, const char *sections);

/*
 * Starts pgq-master -c d->ini --allow-root plus the NULL-terminated extra
 * arguments, output appended to d->log. Returns the pid.
 */
pid_t hd_start(struct hd *d, ...);
/*
 * Runs pgq-master with the given arguments (NULL-terminated) to completion,
 * output into out (NUL-terminated, truncated to outlen). Returns the exit
 * status (or 128 + signal).
 */
int hd_run(char *out, size_t outlen, ...);

/*
 * Waits up to timeout_ms for a log line containing needle after d->cursor;
 * moves the cursor past that line. True when found.
 */
bool hd_wait_log(struct hd *d, const char *needle, unsigned timeout_ms);
/* Number of lines of the whole log that contain needle. */
unsigned hd_count_log(const struct hd *d, const char *needle);
/* The whole log (malloc'd, caller frees), for messages. */
char *hd_read_log(const struct hd *d);

/* Sends sig to the master; fails the test when it is gone. */
void hd_signal(struct hd *d, int sig);
/*
 * Waits up to timeout_ms for the master to exit. Returns its exit code, 128 +
 * the signal when killed, or -1 on timeout.
 */
int hd_wait_exit(struct hd *d, unsigned timeout_ms);

/* Children of pid (from /proc/PID/task/.../children); returns the count. */
size_t proc_children(pid_t pid, pid_t *out, size_t max);
/* True when pid exists and is not a zombie. */
bool proc_alive(pid_t pid);
/* True when pid is a zombie. */
bool proc_zombie(pid_t pid);
/* Open descriptors of pid; returns the count, numbers in out. */
size_t proc_fds(pid_t pid, int *out, size_t max);
/* Where descriptor fd of pid points (readlink), static storage. */
const char *proc_fd_target(pid_t pid, int fd);
/* /proc/PID/cmdline with NULs turned to spaces and trailing ones cut. */
const char *proc_cmdline(pid_t pid);

/*
 * Waits up to timeout_ms until pred(arg) is true; polls every few ms. For
 * conditions on rows or processes.
 */
bool hd_until(bool (*pred)(void *arg), void *arg, unsigned timeout_ms);

/*
 * Enqueues n jobs of entrypoint with payload (may be NULL) in one statement
 * through libpgq, delayed by delay_ms; fails the test on error. Returns the
 * first id.
 */
long long hd_enqueue(PGconn *c, const char *entrypoint, const char *payload,
		     unsigned n, long long delay_ms);
/*
 * Polls the scalar query (printf format) until it returns want or
 * timeout_ms passes; returns the last value seen.
 */
long long hd_wait_scalar(PGconn *c, long long want, unsigned timeout_ms,
			 const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Live (non-zombie) children of pid; returns the count. */
size_t hd_live_children(pid_t pid, pid_t *out, size_t max);
/* The first number after key= in the last log line holding needle; -1. */
long long hd_log_value(const struct hd *d, const char *needle, const char *key);

/* Monotonic milliseconds. */
unsigned long long hd_now_ms(void);

#endif
