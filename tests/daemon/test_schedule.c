/*
 * [schedule NAME] and the statistics fold with pgq-master as a process: two
 * masters on one database fire every tick of a 2-second schedule once in
 * total; a row another scheduler holds is left alone until its heartbeat is
 * 30 s old; a reload adds a schedule; a payload reaches the handler; the
 * log is folded into the statistics while jobs run; `pgq schedules` and
 * `pgq stats` show the result.
 */
#include "config.h"

#include <stdarg.h>
#include <sys/wait.h>

#include "common/common.h"
#include "tests/daemon/suite.h"

/* The second master of the two-master test. */
static struct hd d2;

static void
setup(void)
{
	suite_setup();
	hd_init(&d2);
}

static void
teardown(void)
{
	hd_free(&d2);
	suite_teardown();
}

TestSuite(schedule, .init = setup, .fini = teardown, .timeout = 120);

/* Runs the built pgq with --dsn and the NULL-terminated arguments. */
static int
run_pgq(char *out, size_t outlen, ...)
{
	char *argv[32];
	size_t n = 0, len = 0;
	int fds[2], status;
	va_list ap;
	pid_t pid;

	argv[n++] = xstrdup("pgq");
	argv[n++] = xstrdup("--dsn");
	argv[n++] = xstrdup(dsn);
	va_start(ap, outlen);
	for (const char *a;
	     n < PGQ_NELEM(argv) - 1 && (a = va_arg(ap, const char *)) != NULL;)
		argv[n++] = xstrdup(a);
	va_end(ap);
	argv[n] = NULL;
	cr_assert_eq(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execv(harness_bin("pgq"), argv);
		_exit(127);
	}
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	close(fds[1]);
	for (;;) {
		ssize_t r = read(fds[0], out + len, outlen - 1 - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (len += (size_t)r) == outlen - 1)
			break;
	}
	out[len] = '\0';
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	/* Leaks do not change the exit status (LSAN_OPTIONS): look. */
	cr_expect(strstr(out, "Sanitizer") == NULL &&
			  strstr(out, "runtime error:") == NULL,
		  "sanitizer report from pgq:\n%s", out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct at_least {
	const char *sql;
	long long want;
};

static bool
scalar_at_least(void *arg)
{
	const struct at_least *a = arg;

	return harness_scalar(db, "%s", a->sql) >= a->want;
}

#define TICKS                                                                  \
	"SELECT count(DISTINCT headers->>'scheduled_for') FROM pgqueuer "      \
	"WHERE entrypoint = 'tick'"

Test(schedule, two_masters_fire_each_tick_once)
{
	const char *sections = "[entrypoint other]\nbuiltin = noop\n"
			       "[schedule tick]\ncron = * * * * * */2\n";
	struct at_least ticks = {TICKS, 4};
	unsigned fired;
	char out[8192];

	hd_write_ini(&d, "%s", hd_ini_text(dsn, 1, "", sections));
	hd_write_ini(&d2, "%s", hd_ini_text(dsn, 1, "", sections));
	hd_start(&d, NULL);
	hd_start(&d2, NULL);
	cr_assert(hd_wait_log(&d, "schedules registered", T_START_MS), "%s",
		  hd_read_log(&d));
	cr_assert(hd_wait_log(&d2, "schedules registered", T_START_MS), "%s",
		  hd_read_log(&d2));
	/* four ticks of 2 s: about 7 s of both masters competing */
	cr_assert(hd_until(scalar_at_least, &ticks, 30000),
		  "ticks fired: %lld\n%s", harness_scalar(db, TICKS),
		  hd_read_log(&d));
	/* One after the other: waiting for one master reaps any child that
	 * exited, and the other's status would be lost. */
	hd_signal(&d, SIGTERM);
	cr_assert_eq(hd_wait_exit(&d, T_EVENT_MS), 0, "%s", hd_read_log(&d));
	hd_signal(&d2, SIGTERM);
	cr_assert_eq(hd_wait_exit(&d2, T_EVENT_MS), 0, "%s", hd_read_log(&d2));

	/* every tick once: as many jobs as distinct ticks */
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer WHERE "
					"entrypoint = 'tick'"),
		     harness_scalar(db, TICKS), "a tick fired twice: %s",
		     harness_text(db, "SELECT string_agg(headers->>"
				      "'scheduled_for', ', ' ORDER BY id) "
				      "FROM pgqueuer"));
	/* ticks are the schedule's: even seconds */
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer WHERE "
					"extract(second FROM (headers->>"
					"'scheduled_for')::timestamptz)::int "
					"%% 2 <> 0"),
		     0);
	/* each job was logged as fired by exactly one of the masters */
	fired = hd_count_log(&d, "schedule fired name=tick") +
		hd_count_log(&d2, "schedule fired name=tick");
	cr_log_info("ticks fired by the first master %u, by the second %u",
		    hd_count_log(&d, "schedule fired name=tick"),
		    hd_count_log(&d2, "schedule fired name=tick"));
	cr_expect_eq((long long)fired,
		     harness_scalar(db, "SELECT count(*) FROM pgqueuer"));
	cr_expect_eq(hd_count_log(&d, "claim lost") +
			     hd_count_log(&d2, "claim lost"),
		     0);
	/* one row, back to queued, its next tick after the last fired */
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM "
					"pgqueuer_schedules WHERE status = "
					"'queued' AND next_run > last_run AND "
					"expression = '* * * * * */2' AND "
					"entrypoint = 'tick'"),
		     1);

	cr_assert_eq(run_pgq(out, sizeof(out), "schedules", NULL), 0, "%s",
		     out);
	cr_expect(strstr(out, "tick") != NULL &&
			  strstr(out, "* * * * * */2") != NULL &&
			  strstr(out, "queued") != NULL,
		  "%s", out);
}

struct fresh {
	unsigned long long until;
	long long jobs;
};

/* Keeps the row's heartbeat fresh, as a live scheduler elsewhere does,
 * and watches for jobs; true once the time is over or a job appeared. */
static bool
hold_row(void *arg)
{
	struct fresh *f = arg;

	PQclear(harness_query(db, "UPDATE pgqueuer_schedules SET heartbeat = "
				  "now()"));
	f->jobs = harness_scalar(db, "SELECT count(*) FROM pgqueuer");
	return f->jobs > 0 || hd_now_ms() >= f->until;
}

Test(schedule, a_row_held_elsewhere_waits_for_a_stale_heartbeat)
{
	struct fresh f;
	struct at_least one = {"SELECT count(*) FROM pgqueuer", 1};

	/* a PgQueuer scheduler is running this schedule: picked, alive */
	PQclear(harness_query(
		db, "INSERT INTO pgqueuer_schedules (expression, entrypoint, "
		    "next_run, status, heartbeat) VALUES ('* * * * * *', "
		    "'tick', date_trunc('second', now()) - interval '5 s', "
		    "'picked', now())"));
	suite_start(1, "",
		    "[entrypoint other]\nbuiltin = noop\n"
		    "[schedule tick]\ncron = * * * * * *\n");
	cr_assert(hd_wait_log(&d, "schedules registered count=1 inserted=0",
			      T_EVENT_MS),
		  "%s", hd_read_log(&d));
	f.until = hd_now_ms() + 3000;
	(void)hd_until(hold_row, &f, 10000);
	cr_assert_eq(f.jobs, 0, "fired a row held by another scheduler");

	/* that scheduler died 31 s ago: the row is ours to take */
	PQclear(harness_query(db, "UPDATE pgqueuer_schedules SET heartbeat = "
				  "now() - interval '31 seconds'"));
	cr_assert(hd_until(scalar_at_least, &one, T_EVENT_MS), "%s",
		  hd_read_log(&d));
	/* the first job is the tick the dead scheduler had claimed */
	cr_expect_eq(
		harness_scalar(db, "SELECT count(*) FROM pgqueuer p, "
				   "pgqueuer_schedules s WHERE p.id = (SELECT "
				   "min(id) FROM pgqueuer) AND (p.headers->>"
				   "'scheduled_for')::timestamptz < s.last_run "
				   "- interval '4 s'"),
		1, "%s",
		harness_text(db, "SELECT headers::text FROM pgqueuer "
				 "ORDER BY id LIMIT 1"));
}

Test(schedule, a_reload_adds_a_schedule_and_the_payload_reaches_the_job)
{
	const char *before = "[entrypoint say]\nbuiltin = echo\n";
	char after[512];

	suite_start(1, "", before);
	snprintf(after, sizeof(after),
		 "%s[schedule greet]\nentrypoint = say\ncron = * * * * * *\n"
		 "payload = hello \\x from cron\n",
		 before);
	hd_write_ini(&d, "%s", hd_ini_text(dsn, 1, "", after));
	hd_signal(&d, SIGHUP);
	cr_assert(
		hd_wait_log(&d, "[schedule greet] added: applied", T_EVENT_MS),
		"%s", hd_read_log(&d));
	cr_assert(hd_wait_log(&d, "schedule fired name=greet entrypoint=say",
			      T_EVENT_MS),
		  "%s", hd_read_log(&d));
	/* builtin echo logs the payload (a backslash as \x5c): the bytes
	 * as written, not read as bytea escapes */
	cr_assert(hd_wait_log(&d, "payload=\"hello \\x5cx from cron\"",
			      T_EVENT_MS),
		  "%s", hd_read_log(&d));
}

Test(schedule, jobs_are_folded_into_statistics_while_they_run)
{
	char out[8192];
	long long v[3];
	const char *row;

	suite_start(2, "stats_interval = 200ms\n",
		    "[entrypoint work]\nbuiltin = noop\n"
		    "[entrypoint bad]\nbuiltin = fail\nmax_attempts = 1\n");
	(void)hd_enqueue(db, "work", NULL, 6, 0);
	(void)hd_enqueue(db, "bad", NULL, 2, 0);
	cr_assert_eq(hd_wait_scalar(db, 6, T_EVENT_MS,
				    "SELECT coalesce(sum(count), 0) FROM "
				    "pgqueuer_statistics WHERE entrypoint = "
				    "'work' AND status = 'successful'"),
		     6, "%s", hd_read_log(&d));
	cr_assert_eq(hd_wait_scalar(db, 2, T_EVENT_MS,
				    "SELECT coalesce(sum(count), 0) FROM "
				    "pgqueuer_statistics WHERE entrypoint = "
				    "'bad' AND status = 'exception'"),
		     2, "%s", hd_read_log(&d));
	cr_assert_eq(hd_wait_scalar(db, 0, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "NOT aggregated"),
		     0);

	cr_assert_eq(run_pgq(out, sizeof(out), "stats", NULL), 0, "%s", out);
	row = strstr(out, "\nwork ");
	cr_assert_not_null(row, "%s", out);
	/* queued, picked, successful */
	cr_assert_eq(sscanf(row + 5, "%lld %lld %lld", &v[0], &v[1], &v[2]), 3,
		     "%s", out);
	cr_expect(v[0] == 6 && v[1] == 6 && v[2] == 6, "%s", out);
	row = strstr(out, "\nbad ");
	cr_assert_not_null(row, "%s", out);
	cr_assert_eq(sscanf(row + 4, "%lld %lld %lld %lld", &v[0], &v[1], &v[2],
			    &v[0]),
		     4, "%s", out);
	cr_expect_eq(v[0], 2, "exceptions:\n%s", out);
}
