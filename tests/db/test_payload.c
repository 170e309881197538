/*
 * max_payload at enqueue against a real database: the checked enqueue
 * rejects a batch with one oversize job as a whole (54000, nothing
 * inserted), accepts a payload at the limit, leaves entrypoints without a
 * limit alone, and a queue without pgq's limits table (PgQueuer's own, or
 * one from before max_payload) still enqueues; upgrade adds what is missing;
 * the master's PAYLOAD_LIMITS statement sets and clears; `pgq queue` reports.
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
#include "pgq.h"
#include "sql/sql.h"
#include "tests/harness/harness.h"

static char dsn[256];
static PGconn *db;

static void
setup(void)
{
	snprintf(dsn, sizeof(dsn), "%s", harness_db_new(true));
	db = harness_connect(dsn);
}

static void
teardown(void)
{
	if (db != NULL)
		PQfinish(db);
	db = NULL;
}

TestSuite(payload, .init = setup, .fini = teardown, .timeout = 120);

static void
set_limit(const char *entrypoint, long long max_payload)
{
	PQclear(harness_query(db,
			      "INSERT INTO pgqueuer_pgq_limits (entrypoint, "
			      "max_payload) VALUES ('%s', %lld) ON CONFLICT "
			      "(entrypoint) DO UPDATE SET max_payload = "
			      "excluded.max_payload",
			      entrypoint, max_payload));
}

static struct pgq *
producer(void)
{
	struct pgq_error err;
	struct pgq *q = pgq_connect(dsn, NULL, PGQ_ROLE_PRODUCER, &err);

	cr_assert_not_null(q, "%s", err.message);
	return q;
}

static struct pgq_job_spec
spec(const char *entrypoint, const char *payload, size_t len)
{
	struct pgq_job_spec s;

	memset(&s, 0, sizeof(s));
	s.entrypoint = entrypoint;
	s.payload = payload;
	s.payload_len = len;
	return s;
}

static long long
queued(void)
{
	return harness_scalar(db, "SELECT count(*) FROM pgqueuer");
}

Test(payload, an_oversize_job_fails_the_whole_batch_with_54000)
{
	static char big[2048], ok[1024];
	struct pgq_job_spec jobs[3];
	struct pgq_error err;
	struct pgq *q = producer();
	size_t added = 99;

	memset(big, 'x', sizeof(big));
	memset(ok, 'y', sizeof(ok));
	set_limit("resize", 1024);
	jobs[0] = spec("resize", ok, sizeof(ok));
	jobs[1] = spec("other", big, sizeof(big));
	jobs[2] = spec("resize", big, sizeof(big));
	cr_assert_eq(pgq_enqueue_batch(q, jobs, 3, PGQ_CONFLICT_RAISE, NULL,
				       &added, &err),
		     -1);
	cr_expect_eq(err.klass, PGQ_ERR_LIMIT, "class %s: %s",
		     pgq_error_class_name(err.klass), err.message);
	cr_expect_str_eq(err.sqlstate, "54000");
	cr_expect(strstr(err.message, "payload of 2048 bytes exceeds "
				      "max_payload 1024 of entrypoint "
				      "\"resize\"") != NULL,
		  "%s", err.message);
	cr_expect(err.hint[0] != '\0', "no hint");
	cr_expect_eq(added, 0);
	cr_assert_eq(queued(), 0, "a job of the failed batch was inserted");
	cr_assert_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer_log"),
		     0);

	/* At the limit, and any size for an entrypoint without one. */
	jobs[2] = spec("resize", NULL, 0);
	cr_assert_eq(pgq_enqueue_batch(q, jobs, 3, PGQ_CONFLICT_RAISE, NULL,
				       &added, &err),
		     0, "%s", err.message);
	cr_assert_eq(added, 3);
	cr_assert_eq(queued(), 3);
	pgq_free(q);
}

Test(payload, a_limit_set_after_connecting_applies_to_the_next_enqueue)
{
	static char big[100];
	struct pgq_job_spec s = spec("mail", big, sizeof(big));
	struct pgq_error err;
	struct pgq *q = producer();

	cr_assert_eq(pgq_enqueue(q, &s, NULL, &err), 0, "%s", err.message);
	set_limit("mail", 99);
	cr_assert_eq(pgq_enqueue(q, &s, NULL, &err), -1);
	cr_assert_eq(err.klass, PGQ_ERR_LIMIT, "%s", err.message);
	/* NULL clears the limit. */
	PQclear(harness_query(db, "UPDATE pgqueuer_pgq_limits SET max_payload "
				  "= NULL"));
	cr_assert_eq(pgq_enqueue(q, &s, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(queued(), 2);
	pgq_free(q);
}

Test(payload, a_queue_without_pgq_tables_still_enqueues)
{
	static char big[4096];
	struct pgq_job_spec s = spec("resize", big, sizeof(big));
	struct pgq_error err;
	struct pgq *q;

	/* What PgQueuer installs: no limits table, no payload function. */
	PQclear(harness_query(db, "DROP TABLE pgqueuer_pgq_limits"));
	PQclear(harness_query(db, "DROP FUNCTION pgqueuer_pgq_payload_check("
				  "text, bigint, bigint)"));
	q = producer();
	cr_assert_eq(pgq_enqueue(q, &s, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(queued(), 1);
	pgq_free(q);
}

Test(payload, upgrade_adds_the_column_and_function_to_an_older_limits_table)
{
	static char big[64];
	struct pgq_job_spec s = spec("resize", big, sizeof(big));
	struct sql_names names;
	struct pgq_error err;
	struct pgq *q;

	PQclear(harness_query(db, "ALTER TABLE pgqueuer_pgq_limits DROP "
				  "COLUMN max_payload"));
	PQclear(harness_query(db, "DROP FUNCTION pgqueuer_pgq_payload_check("
				  "text, bigint, bigint)"));
	cr_assert_eq(sql_names_init(&names, NULL, NULL, NULL, &err), 0);
	cr_assert_eq(sql_payload_check_exists(db, &names, &err), 0);
	q = producer();
	cr_assert_eq(pgq_enqueue(q, &s, NULL, &err), 0, "%s", err.message);
	pgq_free(q);

	cr_assert_eq(sql_upgrade(db, &names, &err), 0, "%s", err.message);
	cr_assert_eq(sql_payload_check_exists(db, &names, &err), 1);
	set_limit("resize", 10);
	q = producer();
	cr_assert_eq(pgq_enqueue(q, &s, NULL, &err), -1);
	cr_assert_eq(err.klass, PGQ_ERR_LIMIT, "%s", err.message);
	pgq_free(q);
	cr_assert_eq(queued(), 1);
}

Test(payload, payload_limits_sets_and_clears_without_creating_empty_rows)
{
	struct sql_names names;
	struct pgq_error err;
	char *sql;
	const char *v[2];
	PGresult *r;

	cr_assert_eq(sql_names_init(&names, NULL, NULL, NULL, &err), 0);
	sql = sql_stmt_render(SQL_PAYLOAD_LIMITS, &names);
	v[0] = "{a,b,c}";
	v[1] = "{100,0,200}";
	r = PQexecParams(db, sql, 2, NULL, v, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s",
		     PQresultErrorMessage(r));
	PQclear(r);
	cr_assert_eq(harness_scalar(db, "SELECT count(*) FROM "
					"pgqueuer_pgq_limits"),
		     2, "a row without a limit was created");
	cr_assert_eq(harness_scalar(db, "SELECT max_payload FROM "
					"pgqueuer_pgq_limits WHERE "
					"entrypoint = 'c'"),
		     200);
	v[0] = "{a,c}";
	v[1] = "{0,300}";
	r = PQexecParams(db, sql, 2, NULL, v, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s",
		     PQresultErrorMessage(r));
	PQclear(r);
	cr_assert_eq(harness_scalar(db, "SELECT count(*) FROM "
					"pgqueuer_pgq_limits WHERE "
					"entrypoint = 'a' AND max_payload IS "
					"NULL"),
		     1);
	cr_assert_eq(harness_scalar(db, "SELECT max_payload FROM "
					"pgqueuer_pgq_limits WHERE "
					"entrypoint = 'c'"),
		     300);
	free(sql);
}

/* Runs the pgq binary with --dsn; output (stdout and stderr) into out. */
static int
run_pgq(char *out, size_t outlen, ...)
{
	const char *argv[16];
	size_t n = 0;
	int fds[2], status;
	ssize_t got, len = 0;
	va_list ap;
	pid_t pid;

	argv[n++] = "pgq";
	argv[n++] = "--dsn";
	argv[n++] = dsn;
	va_start(ap, outlen);
	for (const char *a;
	     n < PGQ_NELEM(argv) - 1 && (a = va_arg(ap, const char *)) != NULL;)
		argv[n++] = a;
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
		execv(harness_bin("pgq"), (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	close(fds[1]);
	while ((got = read(fds[0], out + len, outlen - 1 - (size_t)len)) > 0)
		len += got;
	out[len] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) == -1)
		cr_assert_eq(errno, EINTR);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

Test(payload, pgq_queue_reports_the_limit)
{
	char out[4096];
	int rc;

	set_limit("resize", 4);
	rc = run_pgq(out, sizeof(out), "queue", "resize", "12345", NULL);
	cr_assert_neq(rc, 0, "%s", out);
	cr_assert(strstr(out, "payload of 5 bytes exceeds max_payload 4 of "
			      "entrypoint \"resize\"") != NULL,
		  "%s", out);
	rc = run_pgq(out, sizeof(out), "queue", "resize", "1234", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	rc = run_pgq(out, sizeof(out), "queue", "resize", "12345", "--count",
		     "3", NULL);
	cr_assert_neq(rc, 0, "%s", out);
	cr_assert_eq(queued(), 1);
}
