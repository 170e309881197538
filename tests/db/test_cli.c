/*
 * The pgq command as a user runs it: the built binary started with fork and
 * exec, its stdout, stderr and exit code captured, its effects checked in
 * the database of each test.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/common.h"
#include "sql/sql.h"
#include "tests/harness/harness.h"

/* A growing capture of one output stream. */
struct capture {
	char *p;
	size_t len, cap;
};

/* A running pgq. */
struct proc {
	pid_t pid;
	int in, out, err; /* our ends of its stdin, stdout, stderr; -1 closed */
	const char *input;
	size_t input_len, input_off;
	struct capture o, e;
};

static void
capture_add(struct capture *c, const char *s, size_t n)
{
	if (c->len + n + 1 > c->cap) {
		c->cap = (c->len + n + 1) * 2;
		c->p = xrealloc(c->p, c->cap, 1);
	}
	memcpy(c->p + c->len, s, n);
	c->len += n;
	c->p[c->len] = '\0';
}

static const char *
capture_text(const struct capture *c)
{
	return c->p != NULL ? c->p : "";
}

/*
 * Starts pgq with args (NULL-terminated). env lists changes for the child:
 * "NAME=value" sets, "NAME" unsets. input (may be NULL) is fed to its stdin.
 */
static void
proc_start(struct proc *p, const char *const *env, const char *input,
	   size_t input_len, const char *const *args)
{
	int pin[2], pout[2], perr[2];
	char *argv[64];
	size_t n = 0;

	memset(p, 0, sizeof(*p));
	/* copies: execv wants non-const strings */
	argv[n++] = xstrdup("pgq");
	for (; args[n - 1] != NULL && n < PGQ_NELEM(argv) - 1; n++)
		argv[n] = xstrdup(args[n - 1]);
	argv[n] = NULL;
	cr_assert(pipe(pin) == 0 && pipe(pout) == 0 && pipe(perr) == 0);
	fflush(NULL);
	p->pid = fork();
	cr_assert(p->pid >= 0, "fork: %s", strerror(errno));
	if (p->pid == 0) {
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		dup2(perr[1], 2);
		close(pin[0]);
		close(pin[1]);
		close(pout[0]);
		close(pout[1]);
		close(perr[0]);
		close(perr[1]);
		for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
			const char *eq = strchr(env[i], '=');

			if (eq == NULL) {
				unsetenv(env[i]);
			} else {
				char *name =
					xstrndup(env[i], (size_t)(eq - env[i]));

				setenv(name, eq + 1, 1);
				free(name);
			}
		}
		execv(harness_bin("pgq"), argv);
		fprintf(stderr, "exec %s: %s\n", harness_bin("pgq"),
			strerror(errno));
		_exit(127);
	}
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	p->in = pin[1];
	p->out = pout[0];
	p->err = perr[0];
	p->input = input;
	p->input_len = input != NULL ? input_len : 0;
	cr_assert(fd_set_nonblock(p->in) == 0);
	if (p->input_len == 0) {
		close(p->in);
		p->in = -1;
	}
}

/* Moves data between us and the child until pred holds, the pipes close,
 * or the deadline passes. Returns true when pred held (or, with pred NULL,
 * when both output pipes reached end of file). */
static bool
proc_pump(struct proc *p, uint64_t deadline_ms,
	  bool (*pred)(const struct proc *p, const void *arg), const void *arg)
{
	while (p->out >= 0 || p->err >= 0) {
		struct pollfd pfd[3];
		int *fds[3] = {&p->in, &p->out, &p->err};
		uint64_t now = clock_mono_ms();
		int rc;

		if (pred != NULL && pred(p, arg))
			return true;
		if (now >= deadline_ms)
			return false;
		pfd[0].fd = p->in;
		pfd[0].events = POLLOUT;
		pfd[1].fd = p->out;
		pfd[1].events = POLLIN;
		pfd[2].fd = p->err;
		pfd[2].events = POLLIN;
		rc = poll(pfd, 3, (int)(deadline_ms - now));
		if (rc < 0 && errno == EINTR)
			continue;
		cr_assert(rc >= 0, "poll: %s", strerror(errno));
		if (p->in >= 0 && pfd[0].revents != 0) {
			ssize_t w = write(p->in, p->input + p->input_off,
					  p->input_len - p->input_off);

			if (w > 0)
				p->input_off += (size_t)w;
			if (w < 0 || p->input_off == p->input_len) {
				close(p->in);
				p->in = -1;
			}
		}
		for (int k = 1; k < 3; k++) {
			char buf[65536];
			ssize_t r;

			if (*fds[k] < 0 || pfd[k].revents == 0)
				continue;
			r = read(*fds[k], buf, sizeof(buf));
			if (r > 0) {
				capture_add(k == 1 ? &p->o : &p->e, buf,
					    (size_t)r);
			} else if (r == 0 || errno != EINTR) {
				close(*fds[k]);
				*fds[k] = -1;
			}
		}
	}
	return pred == NULL || pred(p, arg);
}

static bool
stdout_has(const struct proc *p, const void *arg)
{
	return strstr(capture_text(&p->o), arg) != NULL;
}

static bool
stderr_has(const struct proc *p, const void *arg)
{
	return strstr(capture_text(&p->e), arg) != NULL;
}

/* Waits for the child to end; returns its exit code (kills it at the
 * deadline and fails the test). Checks its stderr for sanitizer reports:
 * run-test only sees the test binary's own stderr. */
static int
proc_finish(struct proc *p, int timeout_s)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_s * 1000;
	int status = 0;
	bool done = proc_pump(p, deadline, NULL, NULL);

	if (!done)
		kill(p->pid, SIGKILL);
	if (p->in >= 0)
		close(p->in);
	if (p->out >= 0)
		close(p->out);
	if (p->err >= 0)
		close(p->err);
	cr_assert(waitpid(p->pid, &status, 0) == p->pid);
	cr_assert(done, "pgq did not finish within %d s; stderr: %s", timeout_s,
		  capture_text(&p->e));
	cr_assert(strstr(capture_text(&p->e), "Sanitizer") == NULL &&
			  strstr(capture_text(&p->e), "runtime error:") == NULL,
		  "sanitizer report from pgq:\n%s", capture_text(&p->e));
	cr_assert(WIFEXITED(status), "pgq died: status=%d", status);
	return WEXITSTATUS(status);
}

static void
proc_free(struct proc *p)
{
	free(p->o.p);
	free(p->e.p);
}

/* One finished run. */
struct run {
	int code;
	char *out, *err;
};

static struct run
run_full(const char *const *env, const char *input, size_t input_len,
	 int timeout_s, const char *const *args)
{
	struct proc p;
	struct run r;

	proc_start(&p, env, input, input_len, args);
	r.code = proc_finish(&p, timeout_s);
	r.out = xstrdup(capture_text(&p.o));
	r.err = xstrdup(capture_text(&p.e));
	proc_free(&p);
	return r;
}

/* Runs pgq with the arguments given (NULL-terminated). */
#define PGQ(...)                                                               \
	run_full(NULL, NULL, 0, 60, (const char *[]){__VA_ARGS__, NULL})
#define PGQ_ENV(env, ...)                                                      \
	run_full((const char *[]){env, NULL}, NULL, 0, 60,                     \
		 (const char *[]){__VA_ARGS__, NULL})

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static void
expect_code(const struct run *r, int code, const char *what)
{
	cr_assert_eq(r->code, code,
		     "%s: exit %d, want %d\nstdout: %s\nstderr: %s", what,
		     r->code, code, r->out, r->err);
}

static long long
parse_id_line(const char *out)
{
	char *end;
	long long id = strtoll(out, &end, 10);

	cr_assert(id > 0 && *end == '\n' && end[1] == '\0',
		  "want one id line, got \"%s\"", out);
	return id;
}

/* Enqueues one job with pgq and returns its id. */
static long long
queue_one(const char *entrypoint, const char *payload)
{
	struct run r = PGQ("queue", entrypoint, payload);
	long long id;

	expect_code(&r, 0, "queue");
	id = parse_id_line(r.out);
	run_free(&r);
	return id;
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return n;
}

TestSuite(cli, .timeout = 120);

Test(cli, install_then_verify_present_and_absent)
{
	const char *db = harness_db_new(false);
	struct run r;

	(void)db;
	r = PGQ("verify", "--expect", "absent");
	expect_code(&r, 0, "verify absent on an empty db");
	run_free(&r);

	r = PGQ("install");
	expect_code(&r, 0, "install");
	cr_expect(strstr(r.out, "installed") != NULL, "stdout: %s", r.out);
	run_free(&r);

	r = PGQ("verify", "--expect", "present");
	expect_code(&r, 0, "verify present");
	run_free(&r);

	r = PGQ("verify", "--expect=absent");
	expect_code(&r, 1, "verify absent after install");
	cr_expect(count_lines(r.out) >= 5,
		  "want one line per object present, got: %s", r.out);
	cr_expect(strstr(r.out, "pgqueuer") != NULL, "stdout: %s", r.out);
	run_free(&r);

	r = PGQ("uninstall");
	expect_code(&r, 0, "uninstall");
	run_free(&r);
	r = PGQ("verify", "--expect", "present");
	expect_code(&r, 1, "verify present after uninstall");
	cr_expect(count_lines(r.out) >= 5, "stdout: %s", r.out);
	run_free(&r);
}

Test(cli, install_with_prefix_schema_and_durability)
{
	const char *db = harness_db_new(false);
	PGconn *c = harness_connect(db);
	struct run r;

	PQclear(harness_query(c, "CREATE SCHEMA jobs"));
	r = PGQ("--prefix", "app_", "--schema", "jobs", "install",
		"--durability", "volatile");
	expect_code(&r, 0, "install with prefix and schema");
	run_free(&r);
	cr_expect_eq(harness_scalar(c,
				    "SELECT count(*) FROM pg_class c JOIN "
				    "pg_namespace n ON n.oid = c.relnamespace "
				    "WHERE n.nspname = 'jobs' AND c.relname = "
				    "'app_pgqueuer' AND c.relpersistence = "
				    "'u'"),
		     1);
	/* the same names from the environment, options after the verb */
	r = PGQ_ENV("PGQUEUER_PREFIX=app_", "verify", "--schema", "jobs",
		    "--expect", "present");
	expect_code(&r, 0, "verify with env prefix");
	run_free(&r);
	r = PGQ("verify", "--expect", "present");
	expect_code(&r, 1, "verify of the default names");
	run_free(&r);
	r = PGQ("--prefix", "app_", "--schema", "jobs", "durability",
		"durable");
	expect_code(&r, 0, "durability durable");
	run_free(&r);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pg_class WHERE "
				       "relname = 'app_pgqueuer' AND "
				       "relpersistence = 'p'"),
		     1);
	r = PGQ("--prefix", "app_", "--schema", "jobs", "autovac");
	expect_code(&r, 0, "autovac");
	run_free(&r);
	r = PGQ("--prefix", "app_", "--schema", "jobs", "upgrade");
	expect_code(&r, 0, "upgrade of a current schema");
	run_free(&r);
	r = PGQ_ENV("PGQUEUER_SCHEMA=jobs", "--prefix", "app_", "verify",
		    "--expect", "present");
	expect_code(&r, 0, "verify after upgrade");
	run_free(&r);
	PQfinish(c);
}

Test(cli, upgrade_plan_shows_the_layout_and_applies_nothing)
{
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	struct run r;

	/* A PgQueuer 1.3 queue: no slot column, no slot index. */
	PQclear(harness_query(c, "ALTER TABLE pgqueuer DROP COLUMN slot"));
	r = PGQ("verify", "--expect", "present");
	expect_code(&r, 0, "verify of a 1.3 layout");
	cr_expect_not_null(strstr(r.out, "PgQueuer 1.3 layout"), "%s", r.out);
	run_free(&r);
	r = PGQ("upgrade", "--plan");
	expect_code(&r, 0, "upgrade --plan");
	cr_expect_not_null(strstr(r.out, "has the PgQueuer 1.3 layout"), "%s",
			   r.out);
	cr_expect_not_null(strstr(r.out, "SHARE lock on pgqueuer"), "%s",
			   r.out);
	cr_expect_not_null(strstr(r.out, "ADD COLUMN IF NOT EXISTS slot"));
	cr_expect_not_null(strstr(r.out, "pgqueuer_picked_slot_idx ON"));
	run_free(&r);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pg_attribute "
				       "WHERE attrelid = 'pgqueuer'::regclass "
				       "AND attname = 'slot'"),
		     0, "--plan applied something");
	/* The upgrade says what the index build holds, then does it. */
	r = PGQ("upgrade");
	expect_code(&r, 0, "upgrade");
	cr_expect_not_null(strstr(r.err, "SHARE lock"), "stderr: %s", r.err);
	run_free(&r);
	r = PGQ("verify", "--expect", "present");
	expect_code(&r, 0, "verify after the upgrade");
	cr_expect_str_eq(r.out, "every object of pgqueuer is present: "
				"PgQueuer 1.4 layout\n");
	run_free(&r);
	/* Current: nothing to note. */
	r = PGQ("upgrade");
	expect_code(&r, 0, "upgrade again");
	cr_expect_str_empty(r.err);
	run_free(&r);
	PQfinish(c);
}

Test(cli, sql_install_prints_without_a_server)
{
	static const char *const no_server[] = {"PGHOST=/nonexistent-pgq-dir",
						"PGPORT=1",
						"PGDATABASE",
						"PGQUEUER_DSN",
						"PGDSN",
						NULL};
	const char *db;
	PGconn *c;
	PGresult *res;
	struct run r;

	r = run_full(no_server, NULL, 0, 30,
		     (const char *[]){"sql", "install", NULL});
	expect_code(&r, 0, "sql install");
	cr_expect(strstr(r.out, "CREATE TABLE") != NULL, "stdout: %s", r.out);
	cr_expect(strstr(r.out, "pgqueuer_log") != NULL);
	cr_expect(r.out[0] != '\0' && strlen(r.out) >= 2 &&
			  strcmp(r.out + strlen(r.out) - 2, ";\n") == 0,
		  "output must end with \";\\n\"");
	cr_expect_str_empty(r.err);

	/* the printed script installs a schema that verify accepts */
	db = harness_db_new(false);
	c = harness_connect(db);
	res = PQexec(c, r.out);
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "script: %s",
		     PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
	run_free(&r);
	r = PGQ("verify", "--expect", "present");
	expect_code(&r, 0, "verify after the printed install");
	run_free(&r);

	r = run_full(no_server, NULL, 0, 30,
		     (const char *[]){"--prefix", "x_", "sql", "install",
				      "--durability", "volatile", NULL});
	expect_code(&r, 0, "sql install with prefix");
	cr_expect(strstr(r.out, "x_pgqueuer") != NULL);
	cr_expect(strstr(r.out, "UNLOGGED") != NULL, "volatile: %s", r.out);
	run_free(&r);
	for (size_t i = 0; i < 3; i++) {
		static const char *const what[] = {"uninstall", "upgrade",
						   "autovac"};

		r = run_full(no_server, NULL, 0, 30,
			     (const char *[]){"sql", what[i], NULL});
		expect_code(&r, 0, what[i]);
		cr_expect(strlen(r.out) > 10, "sql %s printed nothing",
			  what[i]);
		run_free(&r);
	}
}

Test(cli, queue_prints_the_id_and_stores_the_job)
{
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	long long id = queue_one("hello", "world");
	struct run r;

	cr_expect_str_eq(harness_text(c,
				      "SELECT entrypoint || ':' || "
				      "convert_from(payload, 'UTF8') || ':' "
				      "|| status FROM pgqueuer WHERE id = %lld",
				      id),
			 "hello:world:queued");
	cr_expect_eq(harness_scalar(c,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "job_id = %lld AND status = 'queued'",
				    id),
		     1);

	r = PGQ("queue", "--priority", "-7", "--delay", "1h", "--headers",
		"{\"trace\": \"abc\"}", "later");
	expect_code(&r, 0, "queue with options");
	id = parse_id_line(r.out);
	run_free(&r);
	cr_expect_str_eq(harness_text(c,
				      "SELECT priority || ':' || "
				      "(headers->>'trace') || ':' || (payload "
				      "IS NULL) || ':' || (execute_after > "
				      "now() + interval '59 minutes') FROM "
				      "pgqueuer WHERE id = %lld",
				      id),
			 "-7:abc:true:true");
	PQfinish(c);
}

Test(cli, queue_reads_the_payload_from_stdin)
{
	static const char input[] = "line one\nbinary \x01\x00\xff end";
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	struct run r;
	long long id;

	r = run_full(NULL, input, sizeof(input) - 1, 60,
		     (const char *[]){"queue", "stdin_job", "-", NULL});
	expect_code(&r, 0, "queue -");
	id = parse_id_line(r.out);
	run_free(&r);
	cr_expect_eq(harness_scalar(c,
				    "SELECT length(payload) FROM pgqueuer "
				    "WHERE id = %lld",
				    id),
		     (long long)sizeof(input) - 1);
	cr_expect_str_eq(harness_text(c,
				      "SELECT encode(payload, 'hex') FROM "
				      "pgqueuer WHERE id = %lld",
				      id),
			 "6c696e65206f6e650a62696e6172792001"
			 "00ff20656e64");
	PQfinish(c);
}

Test(cli, queue_count_loads_100000_jobs_and_status_shows_them)
{
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	struct run r;
	const char *line;

	r = run_full(
		NULL, NULL, 0, 110,
		(const char *[]){"queue", "--count", "100000", "noop", NULL});
	expect_code(&r, 0, "queue --count 100000");
	cr_expect_str_eq(r.out, "enqueued 100000 jobs\n");
	run_free(&r);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer WHERE "
				       "entrypoint = 'noop' AND status = "
				       "'queued'"),
		     100000);
	queue_one("other", "x");

	r = PGQ("status");
	expect_code(&r, 0, "status");
	line = strstr(r.out, "noop");
	cr_assert(line != NULL, "status: %s", r.out);
	cr_expect(strstr(line, "queued") != NULL &&
			  strstr(line, "100000") != NULL &&
			  strstr(line, "100000") < strchr(line, '\n'),
		  "want noop ... queued ... 100000 on one line: %s", r.out);
	cr_expect(strstr(r.out, "total") != NULL, "status: %s", r.out);
	cr_expect(strstr(r.out, "100001") != NULL, "status: %s", r.out);
	run_free(&r);

	r = PGQ("status", "--entrypoint", "other");
	expect_code(&r, 0, "status --entrypoint");
	cr_expect(strstr(r.out, "noop") == NULL, "status: %s", r.out);
	cr_expect(strstr(r.out, "other") != NULL, "status: %s", r.out);
	run_free(&r);
	PQfinish(c);
}

Test(cli, dedupe_raise_and_skip_have_their_exit_codes)
{
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	struct run r;

	r = PGQ("queue", "--dedupe-key", "k1", "report");
	expect_code(&r, 0, "first job with the key");
	run_free(&r);

	r = PGQ("queue", "--dedupe-key", "k1", "report");
	expect_code(&r, 3, "duplicate, raise");
	cr_expect(strstr(r.err, "23505") != NULL, "stderr: %s", r.err);
	cr_expect_str_empty(r.out);
	run_free(&r);

	r = PGQ("queue", "--dedupe-key", "k1", "--on-conflict", "skip",
		"report");
	expect_code(&r, 1, "duplicate, skip");
	cr_expect(strstr(r.err, "skipped") != NULL, "stderr: %s", r.err);
	cr_expect_str_empty(r.out);
	run_free(&r);

	r = PGQ("queue", "--dedupe-key", "k2", "--on-conflict=skip", "report");
	expect_code(&r, 0, "a new key, skip mode");
	run_free(&r);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer"), 2);

	r = PGQ("queue", "--dedupe-key", "k3", "--count", "5", "report");
	expect_code(&r, 2, "--count with --dedupe-key");
	run_free(&r);
	PQfinish(c);
}

Test(cli, queue_without_schema_names_the_sqlstate_and_install)
{
	const char *db = harness_db_new(false);
	struct run r;

	(void)db;
	r = PGQ("queue", "noop", "x");
	expect_code(&r, 3, "queue into an empty db");
	cr_expect(strstr(r.err, "42P01") != NULL, "stderr: %s", r.err);
	cr_expect(strstr(r.err, "pgq install") != NULL, "stderr: %s", r.err);
	cr_expect(strncmp(r.err, "pgq: queue failed: ", 19) == 0, "stderr: %s",
		  r.err);
	cr_expect_eq(count_lines(r.err), 1, "one line: %s", r.err);
	run_free(&r);

	r = PGQ("status");
	expect_code(&r, 3, "status on an empty db");
	cr_expect(strstr(r.err, "pgq install") != NULL, "stderr: %s", r.err);
	run_free(&r);
}

Test(cli, cancel_removes_a_queued_job_and_logs_it)
{
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	long long id = queue_one("doomed", "x");
	long long keep = queue_one("kept", "y");
	char ids[32];
	struct run r;

	snprintf(ids, sizeof(ids), "%lld", id);
	r = PGQ("cancel", ids);
	expect_code(&r, 0, "cancel");
	cr_expect_str_eq(r.out, "canceled 1 queued job\n");
	run_free(&r);
	cr_expect_eq(harness_scalar(c,
				    "SELECT count(*) FROM pgqueuer WHERE id = "
				    "%lld",
				    id),
		     0);
	cr_expect_eq(harness_scalar(c,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "job_id = %lld AND status = 'canceled'",
				    id),
		     1);
	cr_expect_eq(harness_scalar(c,
				    "SELECT count(*) FROM pgqueuer WHERE id = "
				    "%lld",
				    keep),
		     1);

	r = PGQ("cancel", ids);
	expect_code(&r, 1, "cancel of a job already gone");
	cr_expect(strstr(r.err,
			 "1 of the ids are neither queued nor running") != NULL,
		  "stderr: %s", r.err);
	run_free(&r);
	PQfinish(c);
}

/* A picked job is running (or waits in a worker's batch): the
 * cancellation_event reaches it, and that is a success. */
Test(cli, cancel_of_a_running_job_succeeds)
{
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	long long id = queue_one("busy", "x");
	char ids[32];
	struct run r;

	PQclear(harness_query(c, "UPDATE pgqueuer SET status = 'picked', "
				 "queue_manager_id = gen_random_uuid()"));
	PQclear(harness_query(c,
			      "INSERT INTO pgqueuer_log (job_id, status, "
			      "priority, entrypoint) VALUES (%lld, "
			      "'picked', 0, 'busy')",
			      id));
	snprintf(ids, sizeof(ids), "%lld", id);
	r = PGQ("cancel", ids);
	expect_code(&r, 0, "cancel of a running job");
	cr_expect_str_eq(r.out, "canceled 0 queued jobs\n"
				"sent a cancellation to 1 running job\n");
	run_free(&r);
	PQfinish(c);
}

Test(cli, failed_lists_a_held_job_and_requeue_puts_it_back)
{
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	long long id = queue_one("flaky", "x");
	char ids[32];
	struct run r;

	snprintf(ids, sizeof(ids), "%lld", id);
	r = PGQ("failed");
	expect_code(&r, 0, "failed with none held");
	cr_expect(strstr(r.out, "no held jobs") != NULL, "stdout: %s", r.out);
	run_free(&r);

	PQclear(harness_query(c,
			      "UPDATE pgqueuer SET status = 'failed', "
			      "attempts = 3 WHERE id = %lld",
			      id));
	PQclear(harness_query(
		c,
		"INSERT INTO pgqueuer_log (job_id, status, priority, "
		"entrypoint, traceback) VALUES (%lld, 'failed', 0, 'flaky', "
		"'{\"exception_type\": \"TimeoutError\", "
		"\"exception_message\": \"took too long\"}')",
		id));
	r = PGQ("failed", "--limit", "10");
	expect_code(&r, 0, "failed");
	cr_expect(strstr(r.out, ids) != NULL, "stdout: %s", r.out);
	cr_expect(strstr(r.out, "flaky") != NULL, "stdout: %s", r.out);
	cr_expect(strstr(r.out, "TimeoutError: took too long") != NULL,
		  "stdout: %s", r.out);
	run_free(&r);

	r = PGQ("requeue", ids);
	expect_code(&r, 0, "requeue");
	cr_expect_str_eq(r.out, "requeued 1 job\n");
	run_free(&r);
	cr_expect_str_eq(harness_text(c,
				      "SELECT status || ':' || attempts FROM "
				      "pgqueuer WHERE id = %lld",
				      id),
			 "queued:0");

	r = PGQ("requeue", "--all");
	expect_code(&r, 1, "requeue --all with nothing held");
	run_free(&r);
	PQfinish(c);
}

Test(cli, log_prints_the_queued_and_picked_rows)
{
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	long long id = queue_one("traced", "x");
	char uuid[UUID_STR_LEN], ids[32];
	const char *params[4];
	struct sql_names n;
	struct pgq_error err;
	PGresult *res;
	char *claim;
	struct run r;

	/* claim it with the workers' own statement */
	cr_assert(sql_names_init(&n, NULL, NULL, NULL, &err) == 0);
	claim = sql_stmt_render(SQL_CLAIM, &n);
	uuid_generate_str(uuid);
	params[0] = "{traced}";
	params[1] = "10";
	params[2] = "30 seconds";
	params[3] = uuid;
	res = PQexecParams(c, claim, 4, NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "claim: %s",
		     PQerrorMessage(c));
	cr_assert_eq(PQntuples(res), 1);
	PQclear(res);
	free(claim);

	snprintf(ids, sizeof(ids), "%lld", id);
	r = PGQ("log", ids);
	expect_code(&r, 0, "log");
	cr_expect(strstr(r.out, "queued") != NULL, "stdout: %s", r.out);
	cr_expect(strstr(r.out, "picked") != NULL, "stdout: %s", r.out);
	cr_expect(strstr(r.out, "queued") < strstr(r.out, "picked"),
		  "oldest first: %s", r.out);
	cr_expect(strstr(r.out, "traced") != NULL, "stdout: %s", r.out);
	run_free(&r);

	r = PGQ("log", "999999999");
	expect_code(&r, 1, "log of an unknown job");
	run_free(&r);
	PQfinish(c);
}

Test(cli, listen_prints_the_event_of_an_insert)
{
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	struct proc p;
	int code;

	proc_start(&p, NULL, NULL, 0,
		   (const char *[]){"listen", "--count", "1", NULL});
	cr_assert(proc_pump(&p, clock_mono_ms() + 30000, stderr_has,
			    "listening on channel ch_pgqueuer"),
		  "listener not ready: %s", capture_text(&p.e));
	PQclear(harness_query(c, "INSERT INTO pgqueuer (priority, entrypoint, "
				 "status) VALUES (0, 'from_sql', 'queued')"));
	code = proc_finish(&p, 30);
	cr_expect_eq(code, 0, "stderr: %s", capture_text(&p.e));
	cr_expect(strncmp(capture_text(&p.o),
			  "table_changed_event operation=insert "
			  "table=pgqueuer {",
			  50) == 0,
		  "stdout: %s", capture_text(&p.o));
	cr_expect(strstr(capture_text(&p.o), "\"type\"") != NULL,
		  "raw JSON: %s", capture_text(&p.o));
	cr_expect_eq(count_lines(capture_text(&p.o)), 1);
	proc_free(&p);
	PQfinish(c);
}

Test(cli, listen_prints_a_cancellation_and_stops_on_sigterm)
{
	const char *db = harness_db_new(true);
	long long id = queue_one("victim", "x");
	char ids[32], want[64];
	struct proc p;
	struct run r;

	(void)db;
	snprintf(ids, sizeof(ids), "%lld", id);
	snprintf(want, sizeof(want), "cancellation_event ids=%lld {", id);
	proc_start(&p, NULL, NULL, 0, (const char *[]){"listen", NULL});
	cr_assert(proc_pump(&p, clock_mono_ms() + 30000, stderr_has,
			    "listening on channel"),
		  "listener not ready: %s", capture_text(&p.e));
	r = PGQ("cancel", ids);
	expect_code(&r, 0, "cancel");
	run_free(&r);
	cr_assert(proc_pump(&p, clock_mono_ms() + 30000, stdout_has, want),
		  "no cancellation_event: %s", capture_text(&p.o));
	kill(p.pid, SIGTERM);
	cr_expect_eq(proc_finish(&p, 30), 0, "stderr: %s", capture_text(&p.e));
	proc_free(&p);
}

Test(cli, listen_exits_3_when_its_connection_is_terminated)
{
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	struct proc p;

	proc_start(&p, NULL, NULL, 0, (const char *[]){"listen", NULL});
	cr_assert(proc_pump(&p, clock_mono_ms() + 30000, stderr_has,
			    "listening on channel"),
		  "listener not ready: %s", capture_text(&p.e));
	cr_assert_eq(harness_scalar(c,
				    "SELECT count(pg_terminate_backend(pid)) "
				    "FROM pg_stat_activity WHERE datname = "
				    "current_database() AND query LIKE "
				    "'LISTEN %%' AND pid <> pg_backend_pid()"),
		     1);
	cr_expect_eq(proc_finish(&p, 30), 3, "stderr: %s", capture_text(&p.e));
	cr_expect(strstr(capture_text(&p.e), "pgq: listen failed: ") != NULL,
		  "stderr: %s", capture_text(&p.e));
	proc_free(&p);
	PQfinish(c);
}

Test(cli, usage_errors_exit_2_with_a_message)
{
	const char *const *cases[] = {
		(const char *[]){NULL},
		(const char *[]){"frobnicate", NULL},
		(const char *[]){"--bogus", "status", NULL},
		(const char *[]){"--dsn", NULL},
		(const char *[]){"queue", NULL},
		(const char *[]){"queue", "", NULL},
		(const char *[]){"queue", "a", "b", "c", NULL},
		(const char *[]){"queue", "--priority", "high", "ep", NULL},
		(const char *[]){"queue", "--priority", "99999999999", "ep",
				 NULL},
		(const char *[]){"queue", "--delay", "soon", "ep", NULL},
		(const char *[]){"queue", "--headers", "[1,2]", "ep", NULL},
		(const char *[]){"queue", "--headers", "{", "ep", NULL},
		(const char *[]){"queue", "--on-conflict", "ignore", "ep",
				 NULL},
		(const char *[]){"queue", "--count", "0", "ep", NULL},
		(const char *[]){"queue", "--count", NULL},
		(const char *[]){"queue", "--nope", "ep", NULL},
		(const char *[]){"queue", "-5", NULL},
		(const char *[]){"verify", NULL},
		(const char *[]){"verify", "--expect", "maybe", NULL},
		(const char *[]){"install", "--durability", "forever", NULL},
		(const char *[]){"install", "extra", NULL},
		(const char *[]){"durability", NULL},
		(const char *[]){"sql", NULL},
		(const char *[]){"sql", "drop", NULL},
		(const char *[]){"sql", "upgrade", "--durability", "volatile",
				 NULL},
		(const char *[]){"cancel", NULL},
		(const char *[]){"cancel", "12", "abc", NULL},
		(const char *[]){"cancel", "0", NULL},
		(const char *[]){"requeue", NULL},
		(const char *[]){"requeue", "--all", "4", NULL},
		(const char *[]){"requeue", "--all=yes", NULL},
		(const char *[]){"log", NULL},
		(const char *[]){"log", "1", "2", NULL},
		(const char *[]){"failed", "--limit", "-1", NULL},
		(const char *[]){"listen", "--count", "x", NULL},
		(const char *[]){"help", "frobnicate", NULL},
	};

	/* no server is needed: nothing may be sent */
	setenv("PGHOST", "/nonexistent-pgq-dir", 1);
	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		struct run r = run_full(NULL, NULL, 0, 30, cases[i]);
		char what[256] = "pgq";

		for (size_t k = 0; cases[i][k] != NULL; k++) {
			strncat(what, " ", sizeof(what) - strlen(what) - 1);
			strncat(what, cases[i][k],
				sizeof(what) - strlen(what) - 1);
		}
		expect_code(&r, 2, what);
		cr_expect(strncmp(r.err, "pgq: ", 5) == 0 ||
				  strncmp(r.err, "usage: ", 7) == 0,
			  "%s: stderr: %s", what, r.err);
		cr_expect_str_empty(r.out, "%s: stdout: %s", what, r.out);
		run_free(&r);
	}
}

Test(cli, help_and_version_on_every_verb)
{
	static const char *const verbs[] = {
		"install",    "uninstall", "upgrade", "verify", "sql",
		"durability", "autovac",   "queue",   "status", "failed",
		"requeue",    "cancel",	   "log",     "listen"};
	struct run r;

	setenv("PGHOST", "/nonexistent-pgq-dir", 1);
	r = PGQ("--help");
	expect_code(&r, 0, "--help");
	for (size_t i = 0; i < PGQ_NELEM(verbs); i++)
		cr_expect(strstr(r.out, verbs[i]) != NULL, "--help lacks %s",
			  verbs[i]);
	run_free(&r);
	r = PGQ("-V");
	expect_code(&r, 0, "-V");
	cr_expect_str_eq(r.out, "pgq " PACKAGE_VERSION "\n");
	run_free(&r);
	for (size_t i = 0; i < PGQ_NELEM(verbs); i++) {
		r = PGQ(verbs[i], "--help");
		expect_code(&r, 0, verbs[i]);
		cr_expect(strstr(r.out, "usage: pgq") != NULL &&
				  strstr(r.out, verbs[i]) != NULL,
			  "%s --help: %s", verbs[i], r.out);
		run_free(&r);
		r = PGQ("help", verbs[i]);
		expect_code(&r, 0, verbs[i]);
		run_free(&r);
	}
	r = PGQ("queue", "--help");
	cr_expect(strstr(r.out, "--dedupe-key") != NULL &&
			  strstr(r.out, "--count") != NULL,
		  "queue --help: %s", r.out);
	run_free(&r);
}

Test(cli, injection_shaped_prefix_is_refused)
{
	const char *db = harness_db_new(true);
	PGconn *c = harness_connect(db);
	struct run r;

	r = PGQ("--prefix", "x;drop", "queue", "noop");
	expect_code(&r, 2, "--prefix x;drop");
	cr_expect(strstr(r.err, "x;drop") != NULL, "stderr: %s", r.err);
	run_free(&r);
	r = PGQ("--prefix", "x;drop", "sql", "install");
	expect_code(&r, 2, "sql install --prefix x;drop");
	cr_expect_str_empty(r.out);
	run_free(&r);
	r = PGQ("--schema", "public; DROP TABLE pgqueuer", "status");
	expect_code(&r, 2, "--schema with SQL");
	run_free(&r);
	r = PGQ("--channel", "ch\"; NOTIFY x", "listen");
	expect_code(&r, 2, "--channel with SQL");
	run_free(&r);
	/* from the environment it is a configuration error */
	r = PGQ_ENV("PGQUEUER_PREFIX=x;drop", "status");
	expect_code(&r, 78, "PGQUEUER_PREFIX=x;drop");
	cr_expect(strstr(r.err, "PGQUEUER_PREFIX") != NULL, "stderr: %s",
		  r.err);
	run_free(&r);
	/* an entrypoint is a value: stored as given, nothing else happens */
	queue_one("noop'); DROP TABLE pgqueuer; --", "x");
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer WHERE "
				       "entrypoint LIKE 'noop''); DROP%%'"),
		     1);
	PQfinish(c);
}

Test(cli, the_dsn_password_is_never_printed)
{
	struct run r;

	r = PGQ("--dsn", "host=/nonexistent-pgq-dir port=1 password=hunter2",
		"status");
	expect_code(&r, 3, "unreachable server");
	cr_expect(strstr(r.err, "hunter2") == NULL, "stderr: %s", r.err);
	cr_expect(strstr(r.err, "pgq: status failed: ") != NULL, "stderr: %s",
		  r.err);
	cr_expect_eq(count_lines(r.err), 1, "one line: %s", r.err);
	run_free(&r);

	r = PGQ("--dsn", "password=hunter2 dbname", "status");
	expect_code(&r, 2, "malformed --dsn");
	cr_expect(strstr(r.err, "hunter2") == NULL, "stderr: %s", r.err);
	run_free(&r);

	r = PGQ("--dsn", "password='hunter2", "status");
	expect_code(&r, 2, "unterminated quote");
	cr_expect(strstr(r.err, "hunter2") == NULL, "stderr: %s", r.err);
	run_free(&r);

	r = PGQ_ENV("PGQUEUER_DSN=postgresql://u:hunter2%zz@h/db", "status");
	expect_code(&r, 78, "malformed PGQUEUER_DSN");
	cr_expect(strstr(r.err, "hunter2") == NULL, "stderr: %s", r.err);
	cr_expect(strstr(r.err, "PGQUEUER_DSN") != NULL, "stderr: %s", r.err);
	run_free(&r);

	/* a good DSN from the environment is used */
	harness_db_new(true);
	r = PGQ_ENV("PGQUEUER_DSN=dbname=postgres", "status");
	expect_code(&r, 3, "PGQUEUER_DSN names a db without the schema");
	cr_expect(strstr(r.err, "42P01") != NULL, "stderr: %s", r.err);
	run_free(&r);
}
