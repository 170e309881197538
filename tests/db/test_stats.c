/*
 * Statistics, pruning and the schedules protocol against a real database:
 * `pgq stats` over aggregated and unaggregated rows, `pgq prune` on rows
 * backdated with SQL, `pgq schedules`, the aggregate's advisory lock with
 * two connections, and SQL_SCHEDULE_CLAIM/FIRE in the order of an isolation
 * spec (two claimers, one row).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/common.h"
#include "sql/sql.h"
#include "tests/harness/harness.h"

static char dsn[256];
static PGconn *db;
static struct sql_names names;

static void
setup(void)
{
	struct pgq_error err;

	snprintf(dsn, sizeof(dsn), "%s", harness_db_new(true));
	db = harness_connect(dsn);
	cr_assert_eq(sql_names_init(&names, NULL, NULL, NULL, &err), 0);
}

static void
teardown(void)
{
	if (db != NULL)
		PQfinish(db);
	db = NULL;
}

TestSuite(stats, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(schedule_sql, .init = setup, .fini = teardown, .timeout = 60);

/*
 * Runs the built pgq with --dsn and the NULL-terminated arguments; its
 * stdout and stderr go to out. Returns the exit status.
 */
static int
run_pgq(char *out, size_t outlen, ...)
{
	char *argv[32];
	size_t n = 0, len = 0;
	int fds[2], status;
	va_list ap;
	pid_t pid;

	/* copies: execv wants non-const strings */
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
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == outlen - 1)
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

/* The numbers of the `pgq stats` row of entrypoint ep, in column order. */
static bool
stats_row(const char *out, const char *ep, long long v[7])
{
	size_t n = strlen(ep);

	for (const char *l = out; l != NULL && *l != '\0';) {
		if (strncmp(l, ep, n) == 0 && l[n] == ' ')
			return sscanf(l + n,
				      "%lld %lld %lld %lld %lld %lld %lld",
				      &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
				      &v[6]) == 7;
		l = strchr(l, '\n');
		if (l != NULL)
			l++;
	}
	return false;
}

/* Inserts n log rows of ep with status, created `age` ago. */
static void
log_rows(const char *ep, const char *status, int n, const char *age,
	 bool aggregated)
{
	PQclear(harness_query(
		db,
		"INSERT INTO pgqueuer_log (created, job_id, status, priority, "
		"entrypoint, aggregated) SELECT now() - interval '%s', g, "
		"'%s', 0, '%s', %s FROM generate_series(1, %d) g",
		age, status, ep, aggregated ? "true" : "false", n));
}

static long long
aggregate(PGconn *c)
{
	char *sql = sql_stmt_render(SQL_AGGREGATE, &names);
	PGresult *r = PQexec(c, sql);
	long long n;

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s",
		     PQerrorMessage(c));
	n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	free(sql);
	return n;
}

Test(stats, counts_aggregated_and_new_log_rows_per_entrypoint)
{
	char out[8192];
	long long v[7];

	log_rows("mail", "queued", 4, "1 minute", false);
	log_rows("mail", "picked", 4, "1 minute", false);
	log_rows("mail", "successful", 3, "1 minute", false);
	log_rows("mail", "exception", 1, "1 minute", false);
	cr_assert_eq(aggregate(db), 12);
	/* not yet aggregated: counted from the log */
	log_rows("mail", "successful", 2, "10 seconds", false);
	log_rows("pdf", "failed", 1, "10 seconds", false);
	log_rows("pdf", "canceled", 2, "10 seconds", false);
	log_rows("pdf", "deleted", 1, "10 seconds", false);
	/* outside the default window of 1h */
	PQclear(harness_query(
		db,
		"INSERT INTO pgqueuer_statistics (created, count, "
		"priority, status, entrypoint) VALUES (date_trunc('sec', "
		"now() - interval '2 hours'), 5, 0, 'successful', 'mail')"));

	cr_assert_eq(run_pgq(out, sizeof(out), "stats", NULL), 0, "%s", out);
	cr_assert(stats_row(out, "mail", v), "no mail row:\n%s", out);
	cr_expect(v[0] == 4 && v[1] == 4 && v[2] == 5 && v[3] == 1 &&
			  v[4] == 0 && v[5] == 0 && v[6] == 0,
		  "mail:\n%s", out);
	cr_assert(stats_row(out, "pdf", v), "no pdf row:\n%s", out);
	cr_expect(v[0] == 0 && v[2] == 0 && v[4] == 1 && v[5] == 2 && v[6] == 1,
		  "pdf:\n%s", out);
	cr_assert(stats_row(out, "total", v), "no total:\n%s", out);
	cr_expect_eq(v[2], 5, "%s", out);

	cr_assert_eq(run_pgq(out, sizeof(out), "stats", "--since", "3h", NULL),
		     0, "%s", out);
	cr_assert(stats_row(out, "mail", v), "%s", out);
	cr_expect_eq(v[2], 10, "the 2h old statistics count:\n%s", out);
}

Test(stats, says_so_when_nothing_happened)
{
	char out[4096];

	cr_assert_eq(run_pgq(out, sizeof(out), "stats", "--since", "30m", NULL),
		     0, "%s", out);
	cr_expect_str_eq(out, "no activity in the last 30m\n");
}

Test(stats, a_bad_window_is_a_usage_error)
{
	char out[4096];

	cr_expect_eq(
		run_pgq(out, sizeof(out), "stats", "--since", "soon", NULL), 2);
	cr_expect(strstr(out, "--since: must be a duration above 0") != NULL,
		  "%s", out);
	cr_expect_eq(run_pgq(out, sizeof(out), "stats", "--since", "0", NULL),
		     2);
	cr_expect_eq(run_pgq(out, sizeof(out), "stats", "extra", NULL), 2);
}

/* Two aggregators: the second finds the advisory lock taken and folds
 * nothing; the rows are folded once, by the first. */
Test(stats, one_aggregator_at_a_time)
{
	PGconn *other = harness_connect(dsn);

	log_rows("mail", "successful", 7, "1 second", false);
	PQclear(harness_query(db, "BEGIN"));
	cr_expect_eq(aggregate(db), 7);
	cr_expect_eq(aggregate(other), 0, "lock not held across sessions");
	PQclear(harness_query(db, "COMMIT"));
	cr_expect_eq(aggregate(other), 0, "folded twice");
	cr_expect_eq(harness_scalar(db, "SELECT sum(count) FROM "
					"pgqueuer_statistics WHERE "
					"entrypoint = 'mail'"),
		     7);
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer_log "
					"WHERE NOT aggregated"),
		     0);
	PQfinish(other);
}

Test(stats, prune_removes_rows_older_than_the_age)
{
	char out[4096];

	log_rows("mail", "successful", 3, "8 days", true);
	log_rows("mail", "successful", 2, "8 days", false);
	log_rows("mail", "successful", 1, "6 days", true);
	PQclear(harness_query(
		db, "INSERT INTO pgqueuer_statistics (created, count, "
		    "priority, status, entrypoint) VALUES "
		    "(date_trunc('sec', now() - interval '8 days'), 3, 0, "
		    "'successful', 'mail'), "
		    "(date_trunc('sec', now() - interval '9 days'), 1, 0, "
		    "'exception', 'mail'), "
		    "(date_trunc('sec', now() - interval '1 day'), 1, 0, "
		    "'successful', 'mail')"));

	cr_assert_eq(
		run_pgq(out, sizeof(out), "prune", "--older-than", "7d", NULL),
		0, "%s", out);
	cr_expect_str_eq(out, "deleted 3 log rows (aggregated ones) and 2 "
			      "statistics rows older than 7d\n");
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer_log"),
		     3);
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer_log "
					"WHERE NOT aggregated"),
		     2, "an unaggregated row was pruned");
	cr_expect_eq(
		harness_scalar(db, "SELECT count(*) FROM pgqueuer_statistics"),
		1);

	cr_assert_eq(run_pgq(out, sizeof(out), "prune", "--older-than", "7d",
			     "--all", NULL),
		     0, "%s", out);
	cr_expect_str_eq(out, "deleted 2 log rows and 0 statistics rows "
			      "older than 7d\n");
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer_log"), 1,
		     "the recent row must stay");
}

Test(stats, prune_needs_an_age)
{
	char out[4096];

	cr_expect_eq(run_pgq(out, sizeof(out), "prune", NULL), 2);
	cr_expect(strstr(out, "--older-than DURATION is required") != NULL,
		  "%s", out);
	cr_expect_eq(
		run_pgq(out, sizeof(out), "prune", "--older-than", "-1d", NULL),
		2);
}

Test(stats, schedules_lists_and_removes_rows)
{
	char out[4096];

	cr_assert_eq(run_pgq(out, sizeof(out), "schedules", NULL), 0);
	cr_expect_str_eq(out, "no schedules\n");
	PQclear(harness_query(
		db, "INSERT INTO pgqueuer_schedules (expression, entrypoint, "
		    "next_run) VALUES ('0 3 * * *', 'report', now()), "
		    "('* * * * * */2', 'tick', now()), ('@x', 'gone', now())"));
	cr_assert_eq(run_pgq(out, sizeof(out), "schedules", NULL), 0, "%s",
		     out);
	cr_expect(strstr(out, "report") && strstr(out, "0 3 * * *") &&
			  strstr(out, "tick") && strstr(out, "* * * * * */2") &&
			  strstr(out, "never"),
		  "%s", out);
	cr_assert_eq(run_pgq(out, sizeof(out), "schedules", "--remove", "tick",
			     "gone", NULL),
		     0, "%s", out);
	cr_expect(strstr(out, "removed schedule") != NULL, "%s", out);
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM "
					"pgqueuer_schedules"),
		     1);
	cr_expect_eq(run_pgq(out, sizeof(out), "schedules", "--remove", "99999",
			     NULL),
		     1, "%s", out);
	cr_expect_eq(run_pgq(out, sizeof(out), "schedules", "--remove", NULL),
		     2, "%s", out);
}

/* ---- SQL_SCHEDULE_CLAIM / SQL_SCHEDULE_FIRE ---- */

static PGresult *
stmt(PGconn *c, enum sql_stmt s, int n, const char *const *values)
{
	char *sql = sql_stmt_render(s, &names);
	PGresult *r = PQexecParams(c, sql, n, NULL, values, NULL, NULL, 0);

	cr_assert(PQresultStatus(r) == PGRES_TUPLES_OK ||
			  PQresultStatus(r) == PGRES_COMMAND_OK,
		  "%s: %s", sql_stmt_name(s), PQerrorMessage(c));
	free(sql);
	return r;
}

static PGresult *
claim(PGconn *c)
{
	const char *v[2] = {"{\"* * * * *\"}", "{tick}"};

	return stmt(c, SQL_SCHEDULE_CLAIM, 2, v);
}

Test(schedule_sql, two_claimers_one_row_one_fire)
{
	PGconn *b = harness_connect(dsn);
	const char *up[3] = {"{\"* * * * *\"}", "{tick}", "{0}"};
	PGresult *ra, *rb, *f;
	char token[128], id[32];
	const char *fire[5];

	/* next_run at the epoch: due at once */
	PQclear(stmt(db, SQL_SCHEDULE_UPSERT, 3, up));
	PQclear(stmt(db, SQL_SCHEDULE_UPSERT, 3, up));
	cr_assert_eq(harness_scalar(db, "SELECT count(*) FROM "
					"pgqueuer_schedules"),
		     1, "the upsert must keep one row");

	/* step 1: A claims inside its transaction, holding the row lock */
	PQclear(harness_query(db, "BEGIN"));
	ra = claim(db);
	cr_assert_eq(PQntuples(ra), 1);
	cr_expect_str_eq(PQgetvalue(ra, 0, 3), "t", "A must claim");
	snprintf(id, sizeof(id), "%s", PQgetvalue(ra, 0, 0));
	snprintf(token, sizeof(token), "%s", PQgetvalue(ra, 0, 7));
	/* step 2: B skips the locked row */
	rb = claim(b);
	cr_assert_eq(PQntuples(rb), 1);
	cr_expect_str_eq(PQgetvalue(rb, 0, 3), "f", "B claimed a locked row");
	PQclear(rb);
	/* step 3: A commits; B sees a fresh picked row and leaves it */
	PQclear(harness_query(db, "COMMIT"));
	rb = claim(b);
	cr_expect_str_eq(PQgetvalue(rb, 0, 3), "f", "B took a picked row");
	cr_expect_str_eq(PQgetvalue(rb, 0, 4), "picked");
	PQclear(rb);
	PQclear(ra);

	/* step 4: A fires: one job, the row queued with the next tick */
	fire[0] = id;
	fire[1] = token;
	fire[2] = "4102444800"; /* 2100-01-01 */
	fire[3] = "\\x6869";
	fire[4] = "tick-schedule";
	f = stmt(db, SQL_SCHEDULE_FIRE, 5, fire);
	cr_expect_eq(PQntuples(f), 1, "the fire enqueued nothing");
	PQclear(f);
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer WHERE "
					"entrypoint = 'tick' AND payload = "
					"'hi' AND headers->>'schedule' = "
					"'tick-schedule' AND headers->>"
					"'scheduled_for' IS NOT NULL"),
		     1);
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer_log "
					"WHERE entrypoint = 'tick' AND "
					"status = 'queued'"),
		     1);
	cr_expect_str_eq(harness_text(db, "SELECT status || ' ' || "
					  "extract(epoch FROM next_run) || "
					  "' ' || (last_run IS NOT NULL) FROM "
					  "pgqueuer_schedules"),
			 "queued 4102444800.000000 true");
	/* step 5: the same claim cannot fire twice */
	f = stmt(db, SQL_SCHEDULE_FIRE, 5, fire);
	cr_expect_eq(PQntuples(f), 0, "fired twice");
	PQclear(f);
	/* step 6: not due any more for anyone */
	rb = claim(b);
	cr_expect_str_eq(PQgetvalue(rb, 0, 3), "f");
	PQclear(rb);
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer"), 1);
	PQfinish(b);
}

Test(schedule_sql, a_stale_picked_row_is_taken_over)
{
	PGresult *r;

	PQclear(harness_query(
		db, "INSERT INTO pgqueuer_schedules (expression, entrypoint, "
		    "next_run, status, heartbeat) VALUES ('* * * * *', 'tick', "
		    "now() + interval '1 hour', 'picked', now() - interval "
		    "'29 seconds')"));
	r = claim(db);
	cr_expect_str_eq(PQgetvalue(r, 0, 3), "f", "taken before 30 s");
	PQclear(r);
	PQclear(harness_query(db, "UPDATE pgqueuer_schedules SET heartbeat = "
				  "now() - interval '31 seconds'"));
	r = claim(db);
	cr_expect_str_eq(PQgetvalue(r, 0, 3), "t", "a stale row was left");
	PQclear(r);
}

Test(schedule_sql, a_lost_claim_fires_nothing)
{
	const char *up[3] = {"{\"* * * * *\"}", "{tick}", "{0}"};
	const char *fire[5];
	char id[32], token[128];
	PGresult *r;

	PQclear(stmt(db, SQL_SCHEDULE_UPSERT, 3, up));
	r = claim(db);
	snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
	snprintf(token, sizeof(token), "%s", PQgetvalue(r, 0, 7));
	PQclear(r);
	/* someone else took the row over (its heartbeat changed) */
	PQclear(harness_query(db, "UPDATE pgqueuer_schedules SET heartbeat = "
				  "heartbeat + interval '1 second'"));
	fire[0] = id;
	fire[1] = token;
	fire[2] = "4102444800";
	fire[3] = NULL;
	fire[4] = "tick";
	r = stmt(db, SQL_SCHEDULE_FIRE, 5, fire);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer"), 0);
	cr_expect_str_eq(harness_text(db, "SELECT status FROM "
					  "pgqueuer_schedules"),
			 "picked");
}
