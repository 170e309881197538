/*
 * The daemon harness: pgq-master runs as a child of the test with its output
 * in a log file. The test process makes itself a child subreaper so workers
 * orphaned by a killed master come back to it and are reaped here.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "pgq.h"
#include "tests/harness/daemon.h"
#include "tests/harness/harness.h"

#define HD_MAX_ARGS 32

unsigned long long
hd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000ULL +
	       (unsigned long long)ts.tv_nsec / 1000000ULL;
}

static void
hd_pause(void)
{
	struct timespec ts = {0, 5 * 1000 * 1000};

	nanosleep(&ts, NULL);
}

/* Reaps every exited child; records the master's status when it is one. */
static void
hd_reap(struct hd *d)
{
	int st;
	pid_t p;

	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		if (d != NULL && p == d->pid && !d->reaped) {
			d->reaped = true;
			d->status = st;
		}
	}
}

void
hd_init(struct hd *d)
{
	const char *tmp = getenv("TMPDIR");

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s/pgq-daemon.XXXXXX",
		 tmp != NULL ? tmp : "/tmp");
	cr_assert(mkdtemp(d->dir) != NULL, "mkdtemp: %s", strerror(errno));
	/* The workers run as root too; the cluster's user needs nothing. */
	snprintf(d->ini, sizeof(d->ini), "%s/pgq.ini", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/master.log", d->dir);
	snprintf(d->pidfile, sizeof(d->pidfile), "%s/pgq-master.pid", d->dir);
	cr_assert(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
}

void
hd_rmtree_path(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	char path[600];

	if (dp == NULL)
		return;
	while ((e = readdir(dp)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (e->d_type == DT_DIR)
			hd_rmtree_path(path);
		else
			unlink(path);
	}
	closedir(dp);
	rmdir(dir);
}

void
hd_free(struct hd *d)
{
	pid_t kids[256];
	size_t n = 0;
	unsigned long long deadline;
	char *log;

	if (d->dir[0] == '\0')
		return;
	if (d->pid > 0) {
		hd_reap(d);
		if (!d->reaped) {
			n = proc_children(d->pid, kids,
					  sizeof(kids) / sizeof(kids[0]));
			kill(d->pid, SIGKILL);
			while (!d->reaped) {
				if (waitpid(d->pid, &d->status, 0) == d->pid)
					d->reaped = true;
				else if (errno != EINTR)
					break;
			}
		}
	}
	/* Workers notice the master's death on their own; give them time. */
	deadline = hd_now_ms() + 10000;
	for (size_t i = 0; i < n; i++) {
		while (proc_alive(kids[i]) && hd_now_ms() < deadline) {
			hd_reap(d);
			hd_pause();
		}
		if (proc_alive(kids[i]))
			kill(kids[i], SIGKILL);
	}
	hd_reap(d);
	log = hd_read_log(d);
	if (log != NULL && (strstr(log, "ERROR: AddressSanitizer") != NULL ||
			    strstr(log, "ERROR: LeakSanitizer") != NULL ||
			    strstr(log, "runtime error:") != NULL))
		cr_expect_fail("sanitizer report in the master's log:\n%s",
			       log);
	free(log);
	if (getenv("PGQ_TEST_KEEP") == NULL)
		hd_rmtree_path(d->dir);
	d->dir[0] = '\0';
}

const char *
hd_write_file(struct hd *d, const char *name, const char *text)
{
	static char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", d->dir, name);
	f = fopen(path, "w");
	cr_assert(f != NULL, "%s: %s", path, strerror(errno));
	fputs(text, f);
	cr_assert(fclose(f) == 0);
	return path;
}

void
hd_write_ini(struct hd *d, const char *fmt, ...)
{
	va_list ap;
	FILE *f = fopen(d->ini, "w");

	cr_assert(f != NULL, "%s: %s", d->ini, strerror(errno));
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	cr_assert(fclose(f) == 0);
}

const char *
hd_ini_text(const char *conninfo, unsigned workers, const char *pgq_extra,
	    const char *sections)
{
	static char buf[8192];

	snprintf(buf, sizeof(buf),
		 "[pgq]\nworkers = %u\nlog_level = debug\n%s\n"
		 "[database]\ndsn = %s\n\n%s\n",
		 workers, pgq_extra, conninfo, sections);
	return buf;
}

static size_t
hd_collect_args(const char **argv, size_t i, va_list ap)
{
	const char *a;

	while ((a = va_arg(ap, const char *)) != NULL) {
		cr_assert(i < HD_MAX_ARGS - 1, "too many arguments");
		argv[i++] = a;
	}
	argv[i] = NULL;
	return i;
}

static pid_t
hd_spawn(const char **argv, int out_fd)
{
	pid_t pid = fork();

	cr_assert(pid != -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		dup2(null, 0);
		dup2(out_fd, 1);
		dup2(out_fd, 2);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

pid_t
hd_start(struct hd *d, ...)
{
	const char *argv[HD_MAX_ARGS];
	char bin[4096];
	va_list ap;
	int fd;

	snprintf(bin, sizeof(bin), "%s", harness_bin("pgq-master"));
	argv[0] = bin;
	argv[1] = "-c";
	argv[2] = d->ini;
	/* CI runs as root; the suites that test the refusal use hd_run. */
	argv[3] = "--allow-root";
	va_start(ap, d);
	hd_collect_args(argv, 4, ap);
	va_end(ap);
	fd = open(d->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	cr_assert(fd != -1, "%s: %s", d->log, strerror(errno));
	d->reaped = false;
	d->status = 0;
	d->pid = hd_spawn(argv, fd);
	close(fd);
	return d->pid;
}

static int
hd_decode(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

int
hd_run(char *out, size_t outlen, ...)
{
	const char *argv[HD_MAX_ARGS];
	char bin[4096], path[] = "/tmp/pgq-run.XXXXXX";
	va_list ap;
	int fd, st;
	ssize_t n;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s", harness_bin("pgq-master"));
	argv[0] = bin;
	va_start(ap, outlen);
	hd_collect_args(argv, 1, ap);
	va_end(ap);
	fd = mkstemp(path);
	cr_assert(fd != -1);
	unlink(path);
	pid = hd_spawn(argv, fd);
	while (waitpid(pid, &st, 0) == -1)
		cr_assert(errno == EINTR, "waitpid: %s", strerror(errno));
	n = pread(fd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	return hd_decode(st);
}

char *
hd_read_log(const struct hd *d)
{
	FILE *f = fopen(d->log, "r");
	char *buf;
	long len;

	if (f == NULL)
		return calloc(1, 1);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)len + 1);
	cr_assert(buf != NULL);
	len = (long)fread(buf, 1, (size_t)len, f);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

bool
hd_wait_log(struct hd *d, const char *needle, unsigned timeout_ms)
{
	unsigned long long deadline = hd_now_ms() + timeout_ms;

	for (;;) {
		char *log = hd_read_log(d);
		size_t len = strlen(log);
		char *hit = d->cursor <= len ? strstr(log + d->cursor, needle)
					     : NULL;

		if (hit != NULL) {
			char *eol = strchr(hit, '\n');

			d->cursor = eol != NULL ? (size_t)(eol + 1 - log) : len;
			free(log);
			return true;
		}
		free(log);
		if (hd_now_ms() >= deadline)
			return false;
		hd_reap(d);
		hd_pause();
	}
}

unsigned
hd_count_log(const struct hd *d, const char *needle)
{
	char *log = hd_read_log(d);
	unsigned n = 0;

	for (char *line = log; line != NULL && *line != '\0';) {
		char *eol = strchr(line, '\n');

		if (eol != NULL)
			*eol = '\0';
		if (strstr(line, needle) != NULL)
			n++;
		line = eol != NULL ? eol + 1 : NULL;
	}
	free(log);
	return n;
}

void
hd_signal(struct hd *d, int sig)
{
	cr_assert(d->pid > 0 && !d->reaped, "master not running");
	cr_assert(kill(d->pid, sig) == 0, "kill %ld: %s", (long)d->pid,
		  strerror(errno));
}

int
hd_wait_exit(struct hd *d, unsigned timeout_ms)
{
	unsigned long long deadline = hd_now_ms() + timeout_ms;

	for (;;) {
		hd_reap(d);
		if (d->reaped)
			return hd_decode(d->status);
		if (hd_now_ms() >= deadline)
			return -1;
		hd_pause();
	}
}

bool
hd_until(bool (*pred)(void *arg), void *arg, unsigned timeout_ms)
{
	unsigned long long deadline = hd_now_ms() + timeout_ms;

	for (;;) {
		if (pred(arg))
			return true;
		if (hd_now_ms() >= deadline)
			return false;
		hd_reap(NULL);
		hd_pause();
	}
}

size_t
proc_children(pid_t pid, pid_t *out, size_t max)
{
	char path[128];
	DIR *dp;
	struct dirent *e;
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	dp = opendir(path);
	if (dp == NULL)
		return 0;
	while ((e = readdir(dp)) != NULL) {
		char cpath[300];
		FILE *f;
		long c;

		if (e->d_name[0] == '.')
			continue;
		if (snprintf(cpath, sizeof(cpath), "%s/%s/children", path,
			     e->d_name) >= (int)sizeof(cpath))
			continue;
		f = fopen(cpath, "r");
		if (f == NULL)
			continue;
		while (n < max && fscanf(f, "%ld", &c) == 1)
			out[n++] = (pid_t)c;
		fclose(f);
	}
	closedir(dp);
	return n;
}

static char
proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return '\0';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip to the last.
	 */
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' ? p[2] : '\0';
}

bool
proc_alive(pid_t pid)
{
	char s = proc_state(pid);

	return s != '\0' && s != 'Z' && s != 'X';
}

bool
proc_zombie(pid_t pid)
{
	return proc_state(pid) == 'Z';
}

size_t
proc_fds(pid_t pid, int *out, size_t max)
{
	char path[64];
	DIR *dp;
	struct dirent *e;
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	dp = opendir(path);
	if (dp == NULL)
		return 0;
	while ((e = readdir(dp)) != NULL && n < max) {
		if (e->d_name[0] == '.')
			continue;
		out[n++] = atoi(e->d_name);
	}
	closedir(dp);
	return n;
}

const char *
proc_fd_target(pid_t pid, int fd)
{
	static char target[512];
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%ld/fd/%d", (long)pid, fd);
	n = readlink(path, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	return target;
}

const char *
proc_cmdline(pid_t pid)
{
	static char buf[1024];
	char path[64];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	f = fopen(path, "r");
	buf[0] = '\0';
	if (f == NULL)
		return buf;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\0')
		n--;
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\0')
			buf[i] = ' ';
	}
	buf[n] = '\0';
	return buf;
}

long long
hd_enqueue(PGconn *c, const char *entrypoint, const char *payload, unsigned n,
	   long long delay_ms)
{
	struct pgq_job_spec *jobs = calloc(n, sizeof(*jobs));
	int64_t *ids = calloc(n, sizeof(*ids));
	struct pgq_error err;
	struct pgq *q;
	long long first;

	cr_assert(jobs != NULL && ids != NULL);
	q = pgq_wrap(c, NULL, PGQ_ROLE_PRODUCER, &err);
	cr_assert(q != NULL, "pgq_wrap: %s", err.message);
	for (unsigned i = 0; i < n; i++) {
		jobs[i].entrypoint = entrypoint;
		jobs[i].payload = payload;
		jobs[i].payload_len = payload != NULL ? strlen(payload) : 0;
		jobs[i].delay_ms = delay_ms;
	}
	cr_assert(pgq_enqueue_batch(q, jobs, n, PGQ_CONFLICT_RAISE, ids, NULL,
				    &err) == 0,
		  "enqueue: %s", err.message);
	first = (long long)ids[0];
	pgq_free(q);
	free(jobs);
	free(ids);
	return first;
}

long long
hd_wait_scalar(PGconn *c, long long want, unsigned timeout_ms, const char *fmt,
	       ...)
{
	unsigned long long deadline = hd_now_ms() + timeout_ms;
	char sql[4096];
	va_list ap;
	long long v;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	for (;;) {
		v = harness_scalar(c, "%s", sql);
		if (v == want || hd_now_ms() >= deadline)
			return v;
		hd_reap(NULL);
		hd_pause();
	}
}

size_t
hd_live_children(pid_t pid, pid_t *out, size_t max)
{
	pid_t all[256];
	size_t n = proc_children(pid, all, sizeof(all) / sizeof(all[0]));
	size_t k = 0;

	for (size_t i = 0; i < n && k < max; i++) {
		if (proc_alive(all[i]))
			out[k++] = all[i];
	}
	return k;
}

long long
hd_log_value(const struct hd *d, const char *needle, const char *key)
{
	char *log = hd_read_log(d);
	long long v = -1;

	for (char *line = log; line != NULL && *line != '\0';) {
		char *eol = strchr(line, '\n');
		char *k;

		if (eol != NULL)
			*eol = '\0';
		if (strstr(line, needle) != NULL &&
		    (k = strstr(line, key)) != NULL && k[strlen(key)] == '=')
			v = strtoll(k + strlen(key) + 1, NULL, 10);
		line = eol != NULL ? eol + 1 : NULL;
	}
	free(log);
	return v;
}
