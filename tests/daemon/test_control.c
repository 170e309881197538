/*
 * Job control through the daemon: retries keep their job and run at their
 * delays with no polling; held jobs go through pgq failed / pgq requeue;
 * timeouts stop a command that ignores SIGTERM and a module (by killing its
 * worker); cancellations stop commands and modules (replace and flag); the
 * log rows carry rusage; commands get their limits, user and a scrubbed
 * environment with no stray descriptors; workers are recycled.
 */
#include "config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "pgq.h"
#include "tests/daemon/suite.h"

TestSuite(control, .init = suite_setup, .fini = suite_teardown, .timeout = 180);

/* An executable script in the test's directory; returns its path. */
static const char *
script(const char *name, const char *text)
{
	static char path[4][600];
	static unsigned next;
	char *p = path[next++ % 4];

	snprintf(p, 600, "%s", hd_write_file(&d, name, text));
	cr_assert(chmod(p, 0755) == 0, "chmod %s: %s", p, strerror(errno));
	return p;
}

/* A path in the test's directory (static storage, one at a time). */
static const char *
in_dir(const char *name)
{
	static char path[600];

	snprintf(path, sizeof(path), "%s/%s", d.dir, name);
	return path;
}

/* Waits until job has n log rows of status; true when it does. */
static bool
wait_rows(long long job, const char *status, long long n, unsigned ms)
{
	return hd_wait_scalar(db, n, ms,
			      "SELECT count(*) FROM pgqueuer_log WHERE job_id "
			      "= %lld AND status = '%s'",
			      job, status) == n;
}

/* Milliseconds between the nth (0-based) rows of status a and b of job. */
static long long
row_gap_ms(long long job, const char *a, int na, const char *b, int nb)
{
	return harness_scalar(
		db,
		"SELECT (extract(epoch FROM y.created - x.created) * 1000)"
		"::bigint FROM "
		"(SELECT created FROM pgqueuer_log WHERE job_id = %lld AND "
		"status = '%s' ORDER BY created, id OFFSET %d LIMIT 1) x, "
		"(SELECT created FROM pgqueuer_log WHERE job_id = %lld AND "
		"status = '%s' ORDER BY created, id OFFSET %d LIMIT 1) y",
		job, a, na, job, b, nb);
}

/* Reads a whole small file the handler wrote; "" when it is not there. */
static const char *
slurp(const char *path)
{
	static char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	buf[0] = '\0';
	if (fd == -1)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

/* Waits until path holds at least want lines. */
static bool
wait_lines(const char *path, unsigned want, unsigned ms)
{
	unsigned long long deadline = hd_now_ms() + ms;

	for (;;) {
		const char *s = slurp(path);
		unsigned n = 0;

		for (; *s != '\0'; s++)
			n += *s == '\n';
		if (n >= want)
			return true;
		if (hd_now_ms() >= deadline)
			return false;
		(void)hd_wait_exit(&d, 10);
	}
}

/* Waits until the whole log has n lines holding needle. */
static bool
wait_count(const char *needle, unsigned n, unsigned ms)
{
	unsigned long long deadline = hd_now_ms() + ms;

	while (hd_count_log(&d, needle) < n) {
		if (hd_now_ms() >= deadline)
			return false;
		(void)hd_wait_exit(&d, 10);
	}
	return true;
}

/* Runs the pgq command line with args (NULL-terminated); output in out. */
static int
run_pgq(char *out, size_t outlen, ...)
{
	const char *argv[16];
	char bin[4096], path[] = "/tmp/pgq-ctl.XXXXXX";
	va_list ap;
	size_t n = 1;
	ssize_t got;
	int fd, st;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s", harness_bin("pgq"));
	argv[0] = bin;
	va_start(ap, outlen);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	fd = mkstemp(path);
	cr_assert(fd != -1);
	unlink(path);
	pid = fork();
	cr_assert(pid != -1);
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		execv(bin, (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) == -1)
		cr_assert(errno == EINTR);
	got = pread(fd, out, outlen - 1, 0);
	out[got > 0 ? got : 0] = '\0';
	close(fd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void
cancel_job(long long job)
{
	struct pgq_error err;
	int64_t id = job;
	struct pgq *q = pgq_wrap(db, NULL, PGQ_ROLE_PRODUCER, &err);

	cr_assert(q != NULL, "%s", err.message);
	cr_assert(pgq_cancel(q, &id, 1, NULL, &err) == 0, "%s", err.message);
	pgq_free(q);
}

/* Waits for "job start job=ID " in the log. */
static void
wait_started(long long job)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "job start job=%lld ", job);
	cr_assert(hd_wait_log(&d, needle, T_EVENT_MS), "%s", hd_read_log(&d));
}

/* ---- retries ---- */

Test(control, a_retry_chain_runs_at_its_delays_and_keeps_its_job)
{
	char sections[1024];
	const char *runs = NULL, *handler;
	struct pgq_job_spec spec;
	struct pgq_error err;
	int64_t id;
	struct pgq *q;
	long long gap1, gap2;
	char runs_path[600];

	snprintf(runs_path, sizeof(runs_path), "%s", in_dir("runs"));
	/* Exit 75 (retry) on the first two runs, then succeed; record what
	 * each run saw of its job. */
	{
		char text[1024];

		snprintf(text, sizeof(text),
			 "#!/bin/sh\n"
			 "echo \"$PGQ_JOB_ID $PGQ_PRIORITY $PGQ_HEADERS "
			 "$(cat)\" >> %s\n"
			 "[ \"$PGQ_ATTEMPTS\" -ge 2 ] || exit 75\n",
			 runs_path);
		handler = script("retry.sh", text);
	}
	snprintf(sections, sizeof(sections),
		 "[entrypoint flaky]\ncommand = %s\nmax_attempts = 5\n"
		 "retry_delay = 1s\nretry_backoff = 2\nretry_jitter = 0\n",
		 handler);
	/* A poll every hour cannot explain a run on time. */
	suite_start(1, "poll_interval = 1h\n", sections);
	suite_wait_idle(1);
	q = pgq_wrap(db, NULL, PGQ_ROLE_PRODUCER, &err);
	cr_assert(q != NULL, "%s", err.message);
	memset(&spec, 0, sizeof(spec));
	spec.entrypoint = "flaky";
	spec.payload = "hello";
	spec.payload_len = 5;
	spec.priority = 7;
	spec.headers_json = "{\"k\": \"v\"}";
	cr_assert(pgq_enqueue(q, &spec, &id, &err) == 0, "%s", err.message);
	pgq_free(q);
	cr_assert(wait_rows(id, "successful", 1, 20000), "%s", hd_read_log(&d));
	/* queued rows: the enqueue, then one per retry. */
	cr_assert_eq(harness_scalar(db,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "job_id = %lld AND status = 'queued'",
				    (long long)id),
		     3);
	gap1 = row_gap_ms(id, "queued", 1, "picked", 1);
	gap2 = row_gap_ms(id, "queued", 2, "picked", 2);
	cr_expect(gap1 >= 1000 - 300 && gap1 <= 1000 + 300,
		  "first retry after %lldms, want 1s", gap1);
	cr_expect(gap2 >= 2000 - 300 && gap2 <= 2000 + 300,
		  "second retry after %lldms, want 2s", gap2);
	cr_expect_geq(hd_count_log(&d, "reason=due"), 2, "%s", hd_read_log(&d));
	runs = slurp(runs_path);
	{
		char one[256], want[800];

		snprintf(one, sizeof(one), "%lld 7 {\"k\": \"v\"} hello\n",
			 (long long)id);
		snprintf(want, sizeof(want), "%s%s%s", one, one, one);
		cr_expect_str_eq(runs, want, "every run sees the same job");
	}
	cr_expect_str_eq(
		harness_text(db,
			     "SELECT traceback->>'exception_type' FROM "
			     "pgqueuer_log WHERE job_id = %lld AND status = "
			     "'queued' ORDER BY id OFFSET 1 LIMIT 1",
			     (long long)id),
		"RetryRequested");
}

Test(control, retry_jitter_spreads_the_delays)
{
	long long lo, hi, n;

	suite_start(1, "",
		    "[entrypoint fail]\ncommand = /bin/sh -c 'exit 75'\n"
		    "retry_delay = 10m\nretry_max_delay = 1h\n"
		    "retry_jitter = 0.5\n");
	(void)hd_enqueue(db, "fail", NULL, 20, 0);
	n = hd_wait_scalar(db, 20, T_EVENT_MS,
			   "SELECT count(*) FROM pgqueuer WHERE attempts = 1 "
			   "AND status = 'queued'");
	cr_assert_eq(n, 20, "%s", hd_read_log(&d));
	lo = harness_scalar(db, "SELECT min(extract(epoch FROM execute_after "
				"- updated))::bigint FROM pgqueuer");
	hi = harness_scalar(db, "SELECT max(extract(epoch FROM execute_after "
				"- updated))::bigint FROM pgqueuer");
	cr_expect_geq(lo, 300 - 1, "shortest delay %llds", lo);
	cr_expect_leq(hi, 900 + 1, "longest delay %llds", hi);
	cr_expect_gt(hi - lo, 30, "delays %lld..%llds are not spread", lo, hi);
}

Test(control, held_jobs_are_listed_and_requeued_with_the_command_line)
{
	char sections[1024], text[1024], out[4096], idtext[32];
	const char *handler;
	long long job;
	int rc;

	snprintf(text, sizeof(text),
		 "#!/bin/sh\n[ -e %s ] || { echo no marker >&2; exit 3; }\n",
		 in_dir("ok"));
	handler = script("held.sh", text);
	snprintf(sections, sizeof(sections),
		 "[entrypoint held]\ncommand = %s\nmax_attempts = 1\n"
		 "on_failure = hold\n",
		 handler);
	suite_start(1, "poll_interval = 1h\n", sections);
	job = hd_enqueue(db, "held", NULL, 1, 0);
	cr_assert_eq(hd_wait_scalar(db, 1, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer WHERE id = "
				    "%lld AND status = 'failed'",
				    job),
		     1, "%s", hd_read_log(&d));
	cr_expect(wait_rows(job, "failed", 1, T_EVENT_MS));
	snprintf(idtext, sizeof(idtext), "%lld", job);
	rc = run_pgq(out, sizeof(out), "failed", NULL);
	cr_assert_eq(rc, 0, "pgq failed: %d\n%s", rc, out);
	cr_expect(strstr(out, idtext) != NULL && strstr(out, "held") != NULL,
		  "pgq failed does not list job %s:\n%s", idtext, out);
	cr_expect(strstr(out, "no marker") != NULL ||
			  strstr(out, "CommandFailed") != NULL,
		  "no reason shown:\n%s", out);
	(void)hd_write_file(&d, "ok", "");
	rc = run_pgq(out, sizeof(out), "requeue", idtext, NULL);
	cr_assert_eq(rc, 0, "pgq requeue: %d\n%s", rc, out);
	cr_expect(strstr(out, "requeued 1 job") != NULL, "%s", out);
	/* The requeue notifies: no poll is needed to run it. */
	cr_assert(wait_rows(job, "successful", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer"), 0);
}

/* ---- timeouts ---- */

Test(control, a_command_that_ignores_sigterm_is_killed_after_kill_grace)
{
	char sections[1024];
	const char *handler;
	long long job, ms;

	handler = script("stubborn.sh", "#!/bin/sh\ntrap '' TERM\nsleep 30\n");
	snprintf(sections, sizeof(sections),
		 "[entrypoint stubborn]\ncommand = %s\ntimeout = 1s\n"
		 "kill_grace = 500ms\nmax_attempts = 1\n",
		 handler);
	suite_start(1, "", sections);
	job = hd_enqueue(db, "stubborn", NULL, 1, 0);
	cr_assert(wait_rows(job, "exception", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	ms = row_gap_ms(job, "picked", 0, "exception", 0);
	cr_expect(ms >= 1400 && ms < 3000,
		  "ended %lldms after the start, want 1s + 500ms", ms);
	cr_expect_str_eq(harness_text(db,
				      "SELECT traceback->>'exception_type' "
				      "FROM pgqueuer_log WHERE job_id = %lld "
				      "AND status = 'exception'",
				      job),
			 "Timeout");
	cr_expect_str_eq(harness_text(db,
				      "SELECT traceback->'additional_context'"
				      "->>'signal' FROM pgqueuer_log WHERE "
				      "job_id = %lld AND status = 'exception'",
				      job),
			 "SIGKILL");
	cr_expect_geq(hd_count_log(&d, "sending SIGKILL to its process group"),
		      1, "%s", hd_read_log(&d));
}

Test(control, a_module_timeout_kills_the_worker_and_retries_without_backoff)
{
	char sections[1024];
	long long job, ms;

	snprintf(sections, sizeof(sections),
		 "[entrypoint hang]\nmodule = %s\nfunction = hang_handler\n"
		 "timeout = 1s\nmax_attempts = 2\nretry_jitter = 0\n",
		 suite_module("mod_control"));
	/* One counted crash would trip this breaker. */
	suite_start(1,
		    "crash_breaker_count = 1\nrespawn_backoff = 10s\n"
		    "respawn_backoff_max = 10s\n",
		    sections);
	job = hd_enqueue(db, "hang", NULL, 1, 0);
	cr_assert(wait_rows(job, "queued", 2, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	ms = row_gap_ms(job, "picked", 0, "queued", 1);
	cr_expect(ms >= 900 && ms < 2500, "put back %lldms after the start",
		  ms);
	cr_expect_str_eq(harness_text(db,
				      "SELECT traceback->>'exception_type' "
				      "FROM pgqueuer_log WHERE job_id = %lld "
				      "AND status = 'queued' ORDER BY id "
				      "OFFSET 1 LIMIT 1",
				      job),
			 "Timeout");
	cr_expect(strstr(harness_text(db,
				      "SELECT traceback->>'exception_message' "
				      "FROM pgqueuer_log WHERE job_id = %lld "
				      "AND status = 'queued' ORDER BY id "
				      "OFFSET 1 LIMIT 1",
				      job),
			 "timeout") != NULL);
	/* The second run times out too: attempts are used up. */
	cr_assert(wait_rows(job, "exception", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_expect_str_eq(harness_text(db,
				      "SELECT traceback->>'exception_type' "
				      "FROM pgqueuer_log WHERE job_id = %lld "
				      "AND status = 'exception'",
				      job),
			 "Timeout");
	cr_assert(wait_count("worker 0: ready", 3, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_expect_eq(hd_count_log(&d, "worker 0: started pid="), 3, "%s",
		     hd_read_log(&d));
	cr_expect_eq(hd_count_log(&d, "respawn in"), 0, "%s", hd_read_log(&d));
	cr_expect_eq(hd_count_log(&d, "crash breaker tripped"), 0, "%s",
		     hd_read_log(&d));
	cr_expect_eq(hd_count_log(&d, "ran past its timeout"), 4, "%s",
		     hd_read_log(&d));
}

/* ---- cancellation ---- */

Test(control, cancel_of_a_running_command_ends_it_canceled_within_a_second)
{
	unsigned long long t0, took;
	long long job;

	suite_start(1, "",
		    "[entrypoint sleeper]\ncommand = /bin/sleep 30\n"
		    "kill_grace = 5s\n");
	job = hd_enqueue(db, "sleeper", NULL, 1, 0);
	wait_started(job);
	t0 = hd_now_ms();
	cancel_job(job);
	cr_assert(wait_rows(job, "canceled", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	took = hd_now_ms() - t0;
	cr_expect_lt(took, 1000, "canceled after %llums", took);
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer"), 0);
	cr_expect_eq(harness_scalar(db,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "job_id = %lld AND status IN "
				    "('successful', 'exception')",
				    job),
		     0);
}

Test(control, cancel_replace_kills_a_module_worker_and_ends_the_job_canceled)
{
	char sections[1024];
	unsigned long long t0, took;
	long long job, other;
	pid_t before;

	snprintf(sections, sizeof(sections),
		 "[entrypoint hang]\nmodule = %s\nfunction = hang_handler\n"
		 "cancel = replace\nbatch_size = 1\n",
		 suite_module("mod_control"));
	suite_start(1, "crash_breaker_count = 1\n", sections);
	before = suite_worker_pid(0);
	job = hd_enqueue(db, "hang", NULL, 1, 0);
	wait_started(job);
	t0 = hd_now_ms();
	cancel_job(job);
	cr_assert(wait_rows(job, "canceled", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	took = hd_now_ms() - t0;
	cr_expect_lt(took, 1000, "canceled after %llums", took);
	cr_expect_str_eq(harness_text(db,
				      "SELECT traceback->>'exception_type' "
				      "FROM pgqueuer_log WHERE job_id = %lld "
				      "AND status = 'canceled'",
				      job),
			 "Canceled");
	/* The master's record reads as PgQueuer's TracebackRecord. */
	cr_expect_eq(
		harness_scalar(db,
			       "SELECT count(*) FROM pgqueuer_log WHERE job_id "
			       "= %lld AND status = 'canceled' "
			       "AND " SUITE_PGQUEUER_TRACEBACK,
			       job),
		1, "%s",
		harness_text(db,
			     "SELECT traceback::text FROM pgqueuer_log WHERE "
			     "job_id = %lld AND status = 'canceled'",
			     job));
	cr_expect_eq(harness_scalar(db,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "job_id = %lld AND status = 'queued'",
				    job),
		     1, "the canceled job was put back");
	cr_assert(wait_count("worker 0: ready", 2, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_expect_neq(suite_worker_pid(0), before);
	cr_expect_eq(hd_count_log(&d, "crash breaker tripped"), 0);
	cr_expect_eq(hd_count_log(&d, "respawn in"), 0);
	/* The new worker runs the next job. */
	other = hd_enqueue(db, "hang", NULL, 1, 0);
	wait_started(other);
	cancel_job(other);
	cr_expect(wait_rows(other, "canceled", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
}

Test(control, cancel_flag_lets_a_module_stop_itself_in_the_same_worker)
{
	char sections[1024];
	unsigned long long t0, took;
	long long job;
	pid_t before;

	snprintf(sections, sizeof(sections),
		 "[entrypoint poll]\nmodule = %s\nfunction = poll_handler\n"
		 "cancel = flag\n",
		 suite_module("mod_control"));
	suite_start(1, "", sections);
	before = suite_worker_pid(0);
	job = hd_enqueue(db, "poll", NULL, 1, 0);
	wait_started(job);
	t0 = hd_now_ms();
	cancel_job(job);
	cr_assert(wait_rows(job, "canceled", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	took = hd_now_ms() - t0;
	cr_expect_lt(took, 1000, "canceled after %llums", took);
	cr_expect_str_eq(harness_text(db,
				      "SELECT traceback->>'exception_type' "
				      "FROM pgqueuer_log WHERE job_id = %lld "
				      "AND status = 'canceled'",
				      job),
			 "Canceled");
	cr_expect_eq(suite_worker_pid(0), before, "the worker was replaced");
	cr_expect_eq(hd_count_log(&d, ": started pid="), 1);
}

/* ---- accounting, limits, isolation ---- */

Test(control, log_rows_carry_the_rusage_of_commands)
{
	long long ok, bad;
	double cpu;

	suite_start(1, "",
		    "[entrypoint work]\ncommand = /bin/sh -c "
		    "'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
		    "exit ${PGQ_HEADERS:+4}0'\nmax_attempts = 1\n");
	ok = hd_enqueue(db, "work", NULL, 1, 0);
	cr_assert(wait_rows(ok, "successful", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_expect_gt(harness_scalar(db,
				    "SELECT (traceback->'additional_context'"
				    "->'rusage'->>'max_rss_kib')::bigint FROM "
				    "pgqueuer_log WHERE job_id = %lld AND "
				    "status = 'successful'",
				    ok),
		     0);
	cpu = strtod(harness_text(db,
				  "SELECT (traceback->'additional_context'->"
				  "'rusage'->>'user_cpu_s')::float8 + "
				  "(traceback->'additional_context'->'rusage'"
				  "->>'system_cpu_s')::float8 FROM "
				  "pgqueuer_log WHERE job_id = %lld AND "
				  "status = 'successful'",
				  ok),
		     NULL);
	cr_expect_gt(cpu, 0.0, "no CPU time recorded");
	cr_expect_eq(harness_scalar(db,
				    "SELECT (traceback->'additional_context'"
				    "->>'exit_status')::int FROM pgqueuer_log "
				    "WHERE job_id = %lld AND status = "
				    "'successful'",
				    ok),
		     0);
	cr_expect_str_eq(harness_text(db,
				      "SELECT traceback->>'exception_type' "
				      "FROM pgqueuer_log WHERE job_id = %lld "
				      "AND status = 'successful'",
				      ok),
			 "");
	/* A failure has it in the same place. */
	{
		struct pgq_job_spec spec;
		struct pgq_error err;
		int64_t id;
		struct pgq *q = pgq_wrap(db, NULL, PGQ_ROLE_PRODUCER, &err);

		cr_assert(q != NULL);
		memset(&spec, 0, sizeof(spec));
		spec.entrypoint = "work";
		spec.headers_json = "{\"fail\": true}";
		cr_assert(pgq_enqueue(q, &spec, &id, &err) == 0, "%s",
			  err.message);
		pgq_free(q);
		bad = id;
	}
	cr_assert(wait_rows(bad, "exception", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_expect_eq(harness_scalar(db,
				    "SELECT (traceback->'additional_context'"
				    "->>'exit_status')::int FROM pgqueuer_log "
				    "WHERE job_id = %lld AND status = "
				    "'exception'",
				    bad),
		     40);
	cr_expect_gt(harness_scalar(db,
				    "SELECT (traceback->'additional_context'"
				    "->'rusage'->>'max_rss_kib')::bigint FROM "
				    "pgqueuer_log WHERE job_id = %lld AND "
				    "status = 'exception'",
				    bad),
		     0);
}

Test(control, commands_get_their_rlimits)
{
	char sections[1024];
	const char *out = in_dir("limits");
	long long job;

	snprintf(sections, sizeof(sections),
		 "[entrypoint lim]\ncommand = /bin/sh -c 'echo $(ulimit -n) "
		 "$(ulimit -v) $(ulimit -t) > %s'\nrlimit_nofile = 64\n"
		 "rlimit_as = 512M\nrlimit_cpu = 6500ms\n",
		 out);
	suite_start(1, "", sections);
	job = hd_enqueue(db, "lim", NULL, 1, 0);
	cr_assert(wait_rows(job, "successful", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_expect_str_eq(slurp(in_dir("limits")), "64 524288 7\n");
}

Test(control, commands_see_no_secrets_unless_listed)
{
	char sections[1024];
	const char *env;
	long long job;

	/* The master has them all; only what pass_env lists goes on. */
	setenv("PGPASSWORD", "hunter2", 1);
	setenv("PGQUEUER_DSN", "postgresql://leak@nowhere/x", 1);
	setenv("PGDSN", "postgresql://leak@nowhere/y", 1);
	setenv("PGQ_TEST_PASSED", "yes", 1);
	setenv("PGQ_TEST_NOT_PASSED", "no", 1);
	snprintf(sections, sizeof(sections),
		 "[entrypoint env]\ncommand = /bin/sh -c 'env > %s/env'\n"
		 "pass_env = PGQ_TEST_PASSED PGPASSWORD_NOT_SET\n",
		 d.dir);
	suite_start(1, "", sections);
	job = hd_enqueue(db, "env", NULL, 1, 0);
	cr_assert(wait_rows(job, "successful", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	env = slurp(in_dir("env"));
	cr_expect(strstr(env, "PGPASSWORD") == NULL, "%s", env);
	cr_expect(strstr(env, "PGQUEUER_DSN") == NULL, "%s", env);
	cr_expect(strstr(env, "PGDSN") == NULL, "%s", env);
	cr_expect(strstr(env, "PGDATABASE") == NULL, "%s", env);
	cr_expect(strstr(env, "leak@") == NULL, "%s", env);
	cr_expect(strstr(env, dsn) == NULL, "the DSN leaked:\n%s", env);
	cr_expect(strstr(env, "PGQ_TEST_NOT_PASSED") == NULL, "%s", env);
	cr_expect(strstr(env, "\nPGQ_TEST_PASSED=yes\n") != NULL ||
			  strncmp(env, "PGQ_TEST_PASSED=yes\n", 20) == 0,
		  "%s", env);
	cr_expect(strstr(env, "PGQ_JOB_ID=") != NULL, "%s", env);
}

Test(control, commands_inherit_only_their_three_pipes)
{
	int fds[64];
	size_t n;
	long long job, pid;

	suite_start(1, "", "[entrypoint nap]\ncommand = /bin/sleep 30\n");
	job = hd_enqueue(db, "nap", NULL, 1, 0);
	cr_assert(hd_wait_log(&d, "started /bin/sleep pid=", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	pid = hd_log_value(&d, "started /bin/sleep pid=", "pid");
	cr_assert_gt(pid, 0);
	/* The fork is logged before the child has closed and exec'd. */
	for (unsigned long long dl = hd_now_ms() + T_EVENT_MS;;) {
		char exe[64], target[256];
		ssize_t len;

		snprintf(exe, sizeof(exe), "/proc/%lld/exe", pid);
		len = readlink(exe, target, sizeof(target) - 1);
		target[len > 0 ? len : 0] = '\0';
		if (strstr(target, "sleep") != NULL)
			break;
		cr_assert_lt(hd_now_ms(), dl, "never exec'd: %s", target);
		(void)hd_wait_exit(&d, 5);
	}
	/*
	 * sleep may open a locale file for a moment as it starts; an
	 * inherited descriptor would stay.
	 */
	for (unsigned long long dl = hd_now_ms() + 3000;;) {
		n = proc_fds((pid_t)pid, fds, 64);
		if (n <= 3 || hd_now_ms() >= dl)
			break;
		(void)hd_wait_exit(&d, 5);
	}
	cr_expect_eq(n, 3, "the command has %zu descriptors", n);
	for (size_t i = 0; i < n; i++) {
		cr_expect_lt(fds[i], 3, "descriptor %d inherited", fds[i]);
		cr_expect(strncmp(proc_fd_target((pid_t)pid, fds[i]),
				  "pipe:", 5) == 0,
			  "descriptor %d is %s, not a pipe", fds[i],
			  proc_fd_target((pid_t)pid, fds[i]));
	}
	cancel_job(job);
	cr_expect(wait_rows(job, "canceled", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
}

Test(control, a_command_runs_as_its_user)
{
	char sections[1024], dir[600];
	long long job;

	if (geteuid() != 0)
		cr_skip_test("needs root to switch users");
	/* Somewhere nobody may write. */
	snprintf(dir, sizeof(dir), "%s/out", d.dir);
	cr_assert(mkdir(dir, 0777) == 0 && chmod(dir, 01777) == 0);
	cr_assert(chmod(d.dir, 0755) == 0);
	snprintf(sections, sizeof(sections),
		 "[entrypoint who]\ncommand = /bin/sh -c 'echo $(id -u) "
		 "$(id -g) $(id -G) $HOME $USER > %s/id'\nuser = nobody\n",
		 dir);
	suite_start(1, "", sections);
	job = hd_enqueue(db, "who", NULL, 1, 0);
	cr_assert(wait_rows(job, "successful", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	snprintf(sections, sizeof(sections), "%s/id", dir);
	cr_expect_str_eq(slurp(sections), "65534 65534 65534 /nonexistent "
					  "nobody\n");
}

Test(control, a_command_runs_with_its_group_alone)
{
	char sections[1024], dir[600];
	long long job;

	if (geteuid() != 0)
		cr_skip_test("needs root to switch groups");
	snprintf(dir, sizeof(dir), "%s/out", d.dir);
	cr_assert(mkdir(dir, 0777) == 0 && chmod(dir, 01777) == 0);
	snprintf(sections, sizeof(sections),
		 "[entrypoint grp]\ncommand = /bin/sh -c 'echo $(id -u) "
		 "$(id -g) $(id -G) > %s/id'\ngroup = 65534\n",
		 dir);
	suite_start(1, "", sections);
	job = hd_enqueue(db, "grp", NULL, 1, 0);
	cr_assert(wait_rows(job, "successful", 1, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	snprintf(sections, sizeof(sections), "%s/id", dir);
	/* Still root, in that group only. */
	cr_expect_str_eq(slurp(sections), "0 65534 65534\n");
}

/* ---- recycling ---- */

Test(control, a_worker_is_recycled_after_max_jobs_per_worker)
{
	char sections[1024], pids[8][32], *line, *save = NULL;
	unsigned counts[8] = {0}, npids = 0, lines = 0;
	const char *out = in_dir("pids");
	char copy[65536];

	snprintf(sections, sizeof(sections),
		 "[entrypoint rec]\ncommand = /bin/sh -c 'echo $PPID >> %s'\n",
		 out);
	suite_start(1,
		    "max_jobs_per_worker = 5\nrespawn_backoff = 10s\n"
		    "respawn_backoff_max = 10s\n",
		    sections);
	(void)hd_enqueue(db, "rec", NULL, 20, 0);
	cr_assert_eq(hd_wait_scalar(db, 20, 30000,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "status = 'successful'"),
		     20, "%s", hd_read_log(&d));
	cr_assert(wait_lines(in_dir("pids"), 20, T_EVENT_MS));
	snprintf(copy, sizeof(copy), "%s", slurp(in_dir("pids")));
	for (line = strtok_r(copy, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned i;

		lines++;
		for (i = 0; i < npids && strcmp(pids[i], line) != 0; i++)
			;
		if (i == npids) {
			cr_assert_lt(npids, 8, "too many workers");
			snprintf(pids[npids++], sizeof(pids[0]), "%s", line);
		}
		counts[i]++;
	}
	cr_expect_eq(lines, 20);
	cr_expect_eq(npids, 4, "%u distinct workers ran the jobs", npids);
	for (unsigned i = 0; i < npids; i++)
		cr_expect_eq(counts[i], 5, "worker %s ran %u jobs", pids[i],
			     counts[i]);
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer_log "
					"WHERE status = 'queued'"),
		     20, "a job was handed back");
	cr_assert(hd_wait_log(&d, "worker 0: recycling", T_EVENT_MS));
	cr_expect_geq(hd_count_log(&d, "worker 0: recycling"), 4);
	cr_expect_eq(hd_count_log(&d, "respawn in"), 0, "%s", hd_read_log(&d));
	cr_expect_eq(hd_count_log(&d, "died"), 0, "%s", hd_read_log(&d));
}

Test(control, a_worker_over_max_worker_rss_is_recycled)
{
	long long first;

	suite_start(1, "max_worker_rss = 1k\nbatch_size = 1\n",
		    "[entrypoint noop]\nbuiltin = noop\n");
	first = hd_enqueue(db, "noop", NULL, 3, 0);
	cr_assert_eq(hd_wait_scalar(db, 3, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "status = 'successful' AND job_id >= %lld",
				    first),
		     3, "%s", hd_read_log(&d));
	cr_assert(wait_count("max_worker_rss exceeded", 3, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_assert(wait_count("worker 0: started pid=", 4, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_expect_eq(hd_count_log(&d, "respawn in"), 0, "%s", hd_read_log(&d));
}
