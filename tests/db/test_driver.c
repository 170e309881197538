/*
 * The driver against a real server: connecting from the environment, the
 * role checks (transaction state, isolation), error classes of real server
 * errors, prepared statements, pipelines, and the libev executor (order,
 * NOTIFY, a terminated backend).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/driver.h"
#include "tests/harness/harness.h"

struct deadline {
	ev_timer timer;
	bool expired;
};

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct deadline *d = (struct deadline *)w;

	(void)revents;
	d->expired = true;
	ev_break(loop, EVBREAK_ONE);
}

/* Runs loop until *count reaches want or secs pass; true when it did. */
static bool
run_until_count(struct ev_loop *loop, const int *count, int want, double secs)
{
	struct deadline d = {.expired = false};

	ev_timer_init(&d.timer, deadline_cb, secs, 0.);
	ev_timer_start(loop, &d.timer);
	while (*count < want && !d.expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &d.timer);
	return *count >= want;
}

/* Runs loop until *flag is set or secs pass; returns *flag. */
static bool
run_until(struct ev_loop *loop, const bool *flag, double secs)
{
	struct deadline d = {.expired = false};

	ev_timer_init(&d.timer, deadline_cb, secs, 0.);
	ev_timer_start(loop, &d.timer);
	while (!*flag && !d.expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &d.timer);
	return *flag;
}

static PGconn *
connect_ok(void)
{
	struct pgq_error err;
	PGconn *c = driver_connect(NULL, &err);

	cr_assert_not_null(c, "connect: %s (%s)", err.message, err.hint);
	return c;
}

/* Ends c's backend from another session, as an administrator would. */
static void
terminate_backend(PGconn *c)
{
	PGconn *killer = connect_ok();

	PQclear(harness_query(killer, "SELECT pg_terminate_backend(%d)",
			      PQbackendPID(c)));
	PQfinish(killer);
}

Test(driver_db, connects_from_the_environment_as_pgq)
{
	const char *ci = harness_db_new(false);
	PGconn *c;

	unsetenv("PGQUEUER_DSN");
	unsetenv("PGDSN");
	unsetenv("PGAPPNAME");
	c = connect_ok();
	cr_expect_str_eq(PQdb(c), ci + strlen("dbname="));
	cr_expect_str_eq(harness_text(c, "SHOW application_name"), "pgq");
	PQfinish(c);
}

Test(driver_db, dsn_variables_are_used_in_order)
{
	const char *ci = harness_db_new(false);
	char dsn[300];
	PGconn *c;

	/* PGDSN alone. */
	snprintf(dsn, sizeof(dsn), "%s application_name=from_pgdsn", ci);
	unsetenv("PGQUEUER_DSN");
	setenv("PGDSN", dsn, 1);
	c = connect_ok();
	cr_expect_str_eq(harness_text(c, "SHOW application_name"),
			 "from_pgdsn");
	PQfinish(c);

	/* PGQUEUER_DSN wins over PGDSN. */
	snprintf(dsn, sizeof(dsn), "%s application_name=from_pgqueuer", ci);
	setenv("PGQUEUER_DSN", dsn, 1);
	c = connect_ok();
	cr_expect_str_eq(harness_text(c, "SHOW application_name"),
			 "from_pgqueuer");
	PQfinish(c);

	/* An explicit conninfo wins over both; "" is the plain environment. */
	c = driver_connect("", NULL);
	cr_assert_not_null(c);
	cr_expect_str_eq(harness_text(c, "SHOW application_name"), "pgq");
	PQfinish(c);
}

Test(driver_db, failures_never_show_the_password)
{
	struct pgq_error err;
	PGconn *c;

	harness_db_new(false);
	c = driver_connect("host=/nonexistent/dir port=5 "
			   "password=Sekrit_Pw_123 connect_timeout=2",
			   &err);
	cr_expect_null(c);
	cr_expect_eq(err.klass, PGQ_ERR_CONNECTION);
	cr_expect(strstr(err.message, "Sekrit") == NULL, "%s", err.message);
	cr_expect(strstr(err.message, "host=/nonexistent/dir") != NULL, "%s",
		  err.message);
	cr_expect(strstr(err.message, "port=5") != NULL, "%s", err.message);
	cr_expect(err.hint[0] != '\0');

	/* A string libpq cannot parse would be quoted back by libpq. */
	c = driver_connect("password=Sekrit_Pw_123 junk", &err);
	cr_expect_null(c);
	cr_expect_eq(err.klass, PGQ_ERR_CONNECTION);
	cr_expect(strstr(err.message, "Sekrit") == NULL, "%s", err.message);
	cr_expect(strstr(err.message, "junk") == NULL, "%s", err.message);
	c = driver_connect("postgresql://u:Sekrit_Pw_123@/db?bogus=%zz", &err);
	cr_expect_null(c);
	cr_expect(strstr(err.message, "Sekrit") == NULL, "%s", err.message);

	/* A bad password for a role that needs one (auth may be trust). */
	setenv("PGPASSWORD", "Sekrit_Pw_123", 1);
	c = driver_connect("dbname=no_such_database_here", &err);
	cr_expect_null(c);
	cr_expect(strstr(err.message, "Sekrit") == NULL, "%s", err.message);
	cr_expect(strstr(err.message, "no_such_database_here") != NULL, "%s",
		  err.message);
	unsetenv("PGPASSWORD");
}

Test(driver_db, a_consumer_is_refused_inside_begin_and_a_producer_accepted)
{
	struct pgq_error err;
	char warn[256];
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	cr_expect_eq(
		driver_check(c, PGQ_ROLE_CONSUMER, warn, sizeof(warn), &err), 0,
		"%s", err.message);
	cr_expect_str_eq(warn, "");
	PQclear(harness_query(c, "BEGIN"));
	cr_expect_eq(
		driver_check(c, PGQ_ROLE_CONSUMER, warn, sizeof(warn), &err),
		-1);
	cr_expect_eq(err.klass, PGQ_ERR_CHECK);
	cr_expect(strstr(err.message, "inside a transaction block") != NULL,
		  "%s", err.message);
	cr_expect(strstr(err.message, "autocommit") != NULL, "%s", err.message);
	cr_expect(err.hint[0] != '\0');

	cr_expect_eq(
		driver_check(c, PGQ_ROLE_PRODUCER, warn, sizeof(warn), &err), 0,
		"%s", err.message);
	cr_expect_str_eq(warn, "");
	/* The check left the caller's transaction open and healthy. */
	cr_expect_eq(PQtransactionStatus(c), PQTRANS_INTRANS);
	PQclear(harness_query(c, "COMMIT"));
	PQfinish(c);
}

Test(driver_db, an_aborted_transaction_is_refused_for_both_roles)
{
	struct pgq_error err;
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	PQclear(harness_query(c, "BEGIN"));
	PQclear(PQexec(c, "SELECT 1/0"));
	cr_assert_eq(PQtransactionStatus(c), PQTRANS_INERROR);
	cr_expect_eq(driver_check(c, PGQ_ROLE_PRODUCER, NULL, 0, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_CHECK);
	cr_expect(strstr(err.message, "aborted transaction: roll back first") !=
			  NULL,
		  "%s", err.message);
	cr_expect_eq(driver_check(c, PGQ_ROLE_CONSUMER, NULL, 0, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_CHECK);
	PQclear(harness_query(c, "ROLLBACK"));
	cr_expect_eq(driver_check(c, PGQ_ROLE_CONSUMER, NULL, 0, &err), 0, "%s",
		     err.message);
	PQfinish(c);
}

Test(driver_db, serializable_default_refuses_consumers_and_warns_producers)
{
	const char *ci = harness_db_new(false);
	struct pgq_error err;
	char warn[256], hint[sizeof(err.hint)];
	PGconn *c;

	c = connect_ok();
	PQclear(harness_query(
		c,
		"ALTER DATABASE %s SET default_transaction_isolation = "
		"'serializable'",
		ci + strlen("dbname=")));
	PQfinish(c);

	/* The setting applies to sessions started after it. */
	c = connect_ok();
	cr_expect_eq(
		driver_check(c, PGQ_ROLE_CONSUMER, warn, sizeof(warn), &err),
		-1);
	cr_expect_eq(err.klass, PGQ_ERR_CHECK);
	cr_expect(strstr(err.message, "serializable") != NULL, "%s",
		  err.message);
	cr_expect(strstr(err.message, "read committed") != NULL, "%s",
		  err.message);
	cr_expect(strstr(err.hint, "default_transaction_isolation") != NULL,
		  "%s", err.hint);
	cr_expect(strstr(err.hint, "ALTER ROLE") != NULL, "%s", err.hint);
	snprintf(hint, sizeof(hint), "%s", err.hint);

	cr_expect_eq(
		driver_check(c, PGQ_ROLE_PRODUCER, warn, sizeof(warn), &err), 0,
		"%s", err.message);
	cr_expect(strstr(warn, "serializable") != NULL, "warning: %s", warn);
	PQfinish(c);

	/* The fix the hint gives works as written: a session option. */
	cr_assert_not_null(strstr(hint, "connect with "), "%s", hint);
	c = driver_connect(
		strstr(hint, "connect with ") + strlen("connect with "), &err);
	cr_assert_not_null(c, "%s", err.message);
	cr_expect_eq(driver_check(c, PGQ_ROLE_CONSUMER, NULL, 0, &err), 0, "%s",
		     err.message);
	PQfinish(c);
}

Test(driver_db, a_producer_in_a_repeatable_read_transaction_is_warned)
{
	struct pgq_error err;
	char warn[256];
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	PQclear(harness_query(c, "BEGIN ISOLATION LEVEL REPEATABLE READ"));
	cr_expect_eq(
		driver_check(c, PGQ_ROLE_PRODUCER, warn, sizeof(warn), &err), 0,
		"%s", err.message);
	cr_expect(strstr(warn, "repeatable read") != NULL, "warning: %s", warn);
	PQclear(harness_query(c, "ROLLBACK"));
	PQfinish(c);
}

Test(driver_db, a_broken_connection_is_a_connection_error)
{
	struct pgq_error err;
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	terminate_backend(c);
	/* The next statement notices the loss. */
	PQclear(PQexec(c, "SELECT 1"));
	cr_assert_neq(PQstatus(c), CONNECTION_OK);
	cr_expect_eq(driver_check(c, PGQ_ROLE_PRODUCER, NULL, 0, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_CONNECTION);
	cr_expect_eq(driver_check(NULL, PGQ_ROLE_PRODUCER, NULL, 0, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_CONNECTION);
	PQfinish(c);
}

Test(driver_db, missing_table_carries_42P01_and_the_install_hint)
{
	struct pgq_error err;
	PGresult *r;
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	r = driver_exec_params(c, "SELECT id FROM pgqueuer WHERE id = $1", 1,
			       (const char *const[]){"1"}, NULL, NULL, 0, &err);
	cr_expect_null(r);
	cr_expect_eq(err.klass, PGQ_ERR_UNDEFINED_TABLE);
	cr_expect_str_eq(err.sqlstate, "42P01");
	cr_expect(strstr(err.message, "pgqueuer") != NULL, "%s", err.message);
	cr_expect(strstr(err.hint, "pgq install") != NULL, "%s", err.hint);
	PQfinish(c);
}

Test(driver_db, unique_violation_and_other_errors_are_classified)
{
	struct pgq_error err;
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	cr_assert_eq(driver_exec_simple(c,
					"CREATE TABLE t (k int PRIMARY KEY);"
					"INSERT INTO t VALUES (1)",
					&err),
		     0, "%s", err.message);
	cr_expect_eq(driver_exec_simple(c, "INSERT INTO t VALUES (1)", &err),
		     -1);
	cr_expect_eq(err.klass, PGQ_ERR_UNIQUE);
	cr_expect_str_eq(err.sqlstate, "23505");
	cr_expect(strstr(err.message, "duplicate key") != NULL, "%s",
		  err.message);

	cr_expect_eq(driver_exec_simple(c, "SELECT 'x'::int", &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_OTHER);
	cr_expect_str_eq(err.sqlstate, "22P02");
	PQfinish(c);
}

/*
 * The errors a drain cannot wait out, from real server errors: a write in a
 * read-only session, an older layout's missing column, a missing privilege.
 */
Test(driver_db, read_only_old_layout_and_privilege_errors_are_fatal)
{
	struct pgq_error err;
	PGconn *c, *np;
	char ci[512];

	snprintf(ci, sizeof(ci), "%s", harness_db_new(false));
	c = connect_ok();
	cr_assert_eq(driver_exec_simple(c, "CREATE TABLE t (k int)", &err), 0,
		     "%s", err.message);
	cr_expect_eq(driver_exec_simple(c,
					"BEGIN READ ONLY; "
					"INSERT INTO t VALUES (1)",
					&err),
		     -1);
	cr_expect_eq(err.klass, PGQ_ERR_READ_ONLY);
	cr_expect_str_eq(err.sqlstate, "25006");
	cr_expect(driver_error_fatal(&err));
	cr_expect(err.hint[0] != '\0');
	PQclear(harness_query(c, "ROLLBACK"));

	cr_expect_eq(driver_exec_simple(c, "SELECT slot FROM t", &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_UNDEFINED_TABLE);
	cr_expect_str_eq(err.sqlstate, "42703");
	cr_expect(strstr(err.hint, "pgq upgrade") != NULL, "%s", err.hint);
	cr_expect(driver_error_fatal(&err));

	PQclear(harness_query(c, "DO $$ BEGIN CREATE ROLE pgq_driver_np LOGIN; "
				 "EXCEPTION WHEN duplicate_object THEN NULL; "
				 "END $$"));
	strncat(ci, " user=pgq_driver_np", sizeof(ci) - strlen(ci) - 1);
	np = harness_connect(ci);
	cr_expect_eq(driver_exec_simple(np, "SELECT k FROM t", &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_PERMISSION);
	cr_expect_str_eq(err.sqlstate, "42501");
	cr_expect(driver_error_fatal(&err));
	PQfinish(np);
	PQfinish(c);
}

Test(driver_db, a_read_only_session_is_refused_for_consumers_only)
{
	struct pgq_error err;
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	PQclear(harness_query(c, "SET default_transaction_read_only = on"));
	cr_expect_eq(driver_check(c, PGQ_ROLE_CONSUMER, NULL, 0, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_READ_ONLY);
	cr_expect(strstr(err.message, "default_transaction_read_only is on") !=
			  NULL,
		  "%s", err.message);
	cr_expect(err.hint[0] != '\0');
	/* A producer may only read (pgq_queue_size on a standby). */
	cr_expect_eq(driver_check(c, PGQ_ROLE_PRODUCER, NULL, 0, &err), 0, "%s",
		     err.message);
	PQfinish(c);

	/* A database set read-only: every new session is. */
	c = connect_ok();
	PQclear(harness_query(c,
			      "ALTER DATABASE %s SET "
			      "default_transaction_read_only = on",
			      PQdb(c)));
	PQfinish(c);
	c = connect_ok();
	cr_expect_eq(driver_check(c, PGQ_ROLE_CONSUMER, NULL, 0, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_READ_ONLY);
	PQfinish(c);
}

/*
 * A refused login says so with the server's SQLSTATE (a wrong password is
 * not an outage to wait out), in the default verbosity's words and without
 * the password; the connection that opens is back to the default verbosity.
 */
Test(driver_db, a_refused_login_is_an_auth_error_with_its_sqlstate)
{
	struct pgq_error err;
	PGconn *c;

	harness_db_new(false);
	harness_password_role("pgq_driver_pw", "Right-Pass-1");
	c = driver_connect("user=pgq_driver_pw password=Wr0ng-Pass-9", &err);
	cr_expect_null(c);
	cr_expect_eq(err.klass, PGQ_ERR_AUTH, "%s", err.message);
	cr_expect_str_eq(err.sqlstate, "28P01");
	cr_expect(driver_error_fatal(&err));
	cr_expect(strstr(err.message, "password authentication failed for "
				      "user \"pgq_driver_pw\"") != NULL,
		  "%s", err.message);
	cr_expect(strstr(err.message, "Wr0ng") == NULL, "%s", err.message);
	cr_expect(strstr(err.message, "28P01") == NULL, "%s", err.message);
	cr_expect(strstr(err.message, "LOCATION") == NULL, "%s", err.message);
	cr_expect(strstr(err.hint, "pg_hba.conf") != NULL, "%s", err.hint);

	c = driver_connect("user=pgq_no_such_role_here", &err);
	cr_expect_null(c);
	cr_expect_eq(err.klass, PGQ_ERR_AUTH, "%s", err.message);
	cr_expect_str_eq(err.sqlstate, "28000");
	c = driver_connect("dbname=pgq_no_such_db_here", &err);
	cr_expect_null(c);
	cr_expect_eq(err.klass, PGQ_ERR_AUTH, "%s", err.message);
	cr_expect_str_eq(err.sqlstate, "3D000");

	c = driver_connect("user=pgq_driver_pw password=Right-Pass-1", &err);
	cr_assert_not_null(c, "%s", err.message);
	PQclear(PQexec(c, "SELECT nosuchcolumn"));
	cr_expect(strstr(PQerrorMessage(c), "LOCATION") == NULL, "%s",
		  PQerrorMessage(c));
	PQfinish(c);
}

Test(driver_db, prepared_statements_are_prepared_once_and_reused)
{
	struct driver_prepared p;
	struct pgq_error err;
	PGresult *r;
	PGconn *c;
	char v[16];

	harness_db_new(false);
	c = connect_ok();
	driver_prepared_reset(&p);
	for (int i = 0; i < 3; i++) {
		snprintf(v, sizeof(v), "%d", i);
		r = driver_exec_prepared(
			c, &p, 5, "pgq_t_double", "SELECT $1::int * 2", 1,
			(const char *const[]){v}, NULL, NULL, 0, &err);
		cr_assert_not_null(r, "%s", err.message);
		cr_expect_eq(atoi(PQgetvalue(r, 0, 0)), i * 2);
		PQclear(r);
	}
	cr_expect_eq(
		harness_scalar(c, "SELECT count(*) FROM pg_prepared_statements "
				  "WHERE name = 'pgq_t_double'"),
		1);
	cr_expect(p.ready[5]);

	/* After a reset (a reconnect) the statement is prepared again. */
	PQclear(harness_query(c, "DEALLOCATE ALL"));
	driver_prepared_reset(&p);
	r = driver_exec_prepared(c, &p, 5, "pgq_t_double", "SELECT $1::int * 2",
				 1, (const char *const[]){"21"}, NULL, NULL, 0,
				 &err);
	cr_assert_not_null(r, "%s", err.message);
	cr_expect_str_eq(PQgetvalue(r, 0, 0), "42");
	PQclear(r);

	r = driver_exec_prepared(c, &p, DRIVER_MAX_PREPARED, "x", "SELECT 1", 0,
				 NULL, NULL, NULL, 0, &err);
	cr_expect_null(r);
	cr_expect_eq(err.klass, PGQ_ERR_INVALID);
	PQfinish(c);
}

/* ---- the libev executor ---- */

struct async_state {
	int order[8];
	int norder;
	char values[8][32];
	struct pgq_error errs[8];
	bool listened;
	bool notified;
	char channel[64];
	char payload[128];
	int notify_pid;
	bool lost;
	int lost_calls;
	bool free_in_lost;
	struct driver_async *a;
};

struct async_tag {
	struct async_state *st;
	int id;
};

static void
record_done(struct driver_async *a, PGresult *res, const struct pgq_error *err,
	    void *arg)
{
	struct async_tag *t = arg;
	struct async_state *st = t->st;
	int i = st->norder++;

	(void)a;
	cr_assert_lt(i, 8);
	st->order[i] = t->id;
	cr_assert_not_null(err);
	st->errs[i] = *err;
	if (res != NULL && PQntuples(res) > 0)
		snprintf(st->values[i], sizeof(st->values[i]), "%s",
			 PQgetvalue(res, 0, 0));
	else
		st->values[i][0] = '\0';
	cr_expect((res == NULL) == (err->klass != PGQ_OK));
}

static void
listen_done(struct driver_async *a, PGresult *res, const struct pgq_error *err,
	    void *arg)
{
	struct async_state *st = arg;

	(void)a;
	cr_expect_not_null(res, "LISTEN: %s", err->message);
	st->listened = true;
}

static void
on_notify(struct driver_async *a, const PGnotify *n, void *arg)
{
	struct async_state *st = arg;

	(void)a;
	snprintf(st->channel, sizeof(st->channel), "%s", n->relname);
	snprintf(st->payload, sizeof(st->payload), "%s", n->extra);
	st->notify_pid = n->be_pid;
	st->notified = true;
}

static void
on_lost(struct driver_async *a, void *arg)
{
	struct async_state *st = arg;

	st->lost = true;
	st->lost_calls++;
	if (st->free_in_lost) {
		/* The owner's usual move: free from inside the callback. */
		cr_expect_eq(a, st->a);
		driver_async_free(a);
		st->a = NULL;
	}
}

/*
 * A pipeline sends its statements in one round trip, each in a transaction
 * of its own: the first one failing leaves the second committed.
 */
Test(driver_db, pipeline_statements_commit_and_fail_on_their_own)
{
	struct driver_prepared p;
	struct driver_call calls[3] = {
		{.slot = 1,
		 .name = "pgq_t_ins",
		 .nparams = 1,
		 .sql = "INSERT INTO t VALUES ($1::int) RETURNING k"},
		{.slot = 2,
		 .name = "pgq_t_div",
		 .nparams = 1,
		 .sql = "SELECT 1 / $1::int"},
		{.slot = 1,
		 .name = "pgq_t_ins",
		 .nparams = 1,
		 .sql = "INSERT INTO t VALUES ($1::int) RETURNING k"},
	};
	struct pgq_error err;
	PGconn *c, *other;

	harness_db_new(false);
	c = connect_ok();
	other = connect_ok();
	cr_assert_eq(driver_exec_simple(c, "CREATE TABLE t (k int PRIMARY KEY)",
					&err),
		     0, "%s", err.message);
	driver_prepared_reset(&p);
	calls[0].values = (const char *const[]){"1"};
	calls[1].values = (const char *const[]){"0"};
	calls[2].values = (const char *const[]){"2"};
	cr_expect_eq(driver_exec_pipeline(c, &p, calls, 3), 1);
	cr_assert_not_null(calls[0].res, "%s", calls[0].err.message);
	cr_expect_str_eq(PQgetvalue(calls[0].res, 0, 0), "1");
	cr_expect_null(calls[1].res);
	cr_expect_str_eq(calls[1].err.sqlstate, "22012");
	cr_expect(strstr(calls[1].err.message, "division by zero") != NULL,
		  "%s", calls[1].err.message);
	cr_assert_not_null(calls[2].res, "%s", calls[2].err.message);
	cr_expect_str_eq(PQgetvalue(calls[2].res, 0, 0), "2");
	PQclear(calls[0].res);
	PQclear(calls[2].res);
	/* both inserts committed, seen from another session */
	cr_expect_str_eq(harness_text(other, "SELECT string_agg(k::text, ',' "
					     "ORDER BY k) FROM t"),
			 "1,2");
	cr_expect_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	cr_expect_eq(PQpipelineStatus(c), PQ_PIPELINE_OFF);

	/* The connection goes on as before; a conflict fails alone too. */
	calls[1].values = (const char *const[]){"1"};
	cr_expect_eq(driver_exec_pipeline(c, &p, calls, 3), 2);
	cr_expect_eq(calls[0].err.klass, PGQ_ERR_UNIQUE);
	cr_assert_not_null(calls[1].res, "%s", calls[1].err.message);
	cr_expect_str_eq(PQgetvalue(calls[1].res, 0, 0), "1");
	cr_expect_eq(calls[2].err.klass, PGQ_ERR_UNIQUE);
	PQclear(calls[1].res);
	cr_expect_eq(
		harness_scalar(c, "SELECT count(*) FROM pg_prepared_statements "
				  "WHERE name LIKE 'pgq_t_%%'"),
		2, "each statement prepared once");
	PQfinish(other);
	PQfinish(c);
}

Test(driver_db, pipeline_on_a_lost_connection_fails_every_statement)
{
	struct driver_prepared p;
	struct driver_call calls[2] = {
		{.slot = 0, .name = "pgq_t_one", .sql = "SELECT 1"},
		{.slot = 1, .name = "pgq_t_two", .sql = "SELECT 2"},
	};
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	driver_prepared_reset(&p);
	cr_assert_eq(driver_exec_pipeline(c, &p, calls, 2), 0);
	PQclear(calls[0].res);
	PQclear(calls[1].res);
	cr_expect(p.ready[0] && p.ready[1]);
	terminate_backend(c);
	cr_expect_eq(driver_exec_pipeline(c, &p, calls, 2), 2);
	cr_expect_null(calls[0].res);
	cr_expect_null(calls[1].res);
	cr_expect_eq(calls[0].err.klass, PGQ_ERR_CONNECTION);
	cr_expect_eq(calls[1].err.klass, PGQ_ERR_CONNECTION);
	cr_expect(!p.ready[0] && !p.ready[1],
		  "a lost connection loses its prepared statements");
	PQfinish(c);
}

Test(driver_db, async_runs_queued_queries_in_order)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct async_state st = {0};
	struct async_tag tags[4];
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	st.a = driver_async_new(loop, c, on_notify, on_lost, &st);
	cr_assert_not_null(st.a);
	for (int i = 0; i < 4; i++)
		tags[i] = (struct async_tag){&st, i};
	/*
	 * The first query is the slowest: if the FIFO were not one at a time,
	 * the others would finish before it.
	 */
	cr_assert_eq(driver_async_query(st.a,
					"SELECT $1::text FROM pg_sleep(0.2)", 1,
					(const char *const[]){"first"},
					record_done, &tags[0]),
		     0);
	cr_assert_eq(driver_async_query(st.a, "SELECT $1::int + $2::int", 2,
					(const char *const[]){"40", "2"},
					record_done, &tags[1]),
		     0);
	/* A failing query in the middle fails alone. */
	cr_assert_eq(driver_async_query(st.a, "SELECT * FROM no_such_table", 0,
					NULL, record_done, &tags[2]),
		     0);
	cr_assert_eq(driver_async_query(st.a, "SELECT $1::text IS NULL", 1,
					(const char *const[]){NULL},
					record_done, &tags[3]),
		     0);
	cr_expect_eq(driver_async_pending(st.a), 4);
	/* Nothing completes inside the calls: only from the loop. */
	cr_expect_eq(st.norder, 0);

	cr_assert(run_until_count(loop, &st.norder, 4, 10.),
		  "only %d of 4 queries finished", st.norder);
	for (int i = 0; i < 4; i++)
		cr_expect_eq(st.order[i], i, "position %d ran query %d", i,
			     st.order[i]);
	cr_expect_str_eq(st.values[0], "first");
	cr_expect_str_eq(st.values[1], "42");
	cr_expect_eq(st.errs[2].klass, PGQ_ERR_UNDEFINED_TABLE);
	cr_expect_str_eq(st.errs[2].sqlstate, "42P01");
	cr_expect_str_eq(st.values[3], "t");
	cr_expect_eq(driver_async_pending(st.a), 0);
	cr_expect_not(st.lost);

	driver_async_free(st.a);
	/* The connection is the owner's again, in blocking mode. */
	cr_expect_eq(PQisnonblocking(c), 0);
	cr_expect_eq(harness_scalar(c, "SELECT 7"), 7);
	PQfinish(c);
	ev_loop_destroy(loop);
}

Test(driver_db, async_delivers_a_notify_from_another_connection)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct async_state st = {0};
	char sql[128];
	PGconn *c, *other;

	harness_db_new(false);
	c = connect_ok();
	other = connect_ok();
	st.a = driver_async_new(loop, c, on_notify, on_lost, &st);
	cr_assert_not_null(st.a);
	cr_assert(driver_listen_sql("ch_pgqueuer", sql, sizeof(sql)));
	cr_assert_eq(driver_async_query(st.a, sql, 0, NULL, listen_done, &st),
		     0);
	cr_assert(run_until(loop, &st.listened, 10.), "LISTEN did not finish");
	cr_expect_not(st.notified);

	PQclear(harness_query(other,
			      "SELECT pg_notify('ch_pgqueuer', '{\"type\": "
			      "\"table_changed_event\"}')"));
	cr_assert(run_until(loop, &st.notified, 10.),
		  "no notification within 10 s");
	cr_expect_str_eq(st.channel, "ch_pgqueuer");
	cr_expect_str_eq(st.payload, "{\"type\": \"table_changed_event\"}");
	cr_expect_eq(st.notify_pid, PQbackendPID(other));
	cr_expect_not(st.lost);

	driver_async_free(st.a);
	PQfinish(other);
	PQfinish(c);
	ev_loop_destroy(loop);
}

Test(driver_db, async_notifications_buffered_before_start_are_delivered)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct async_state st = {0};
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	/* A blocking NOTIFY to itself leaves the message inside libpq. */
	PQclear(harness_query(c, "LISTEN \"ch_self\""));
	PQclear(harness_query(c, "NOTIFY \"ch_self\", 'early'"));
	st.a = driver_async_new(loop, c, on_notify, on_lost, &st);
	cr_assert_not_null(st.a);
	cr_assert(run_until(loop, &st.notified, 10.),
		  "buffered notification not delivered");
	cr_expect_str_eq(st.payload, "early");
	driver_async_free(st.a);
	PQfinish(c);
	ev_loop_destroy(loop);
}

Test(driver_db, async_reports_a_terminated_backend_and_fails_queries)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct async_state st = {0};
	struct async_tag tags[2];
	bool running = false;
	PGconn *c, *killer;
	int pid;

	harness_db_new(false);
	c = connect_ok();
	killer = connect_ok();
	pid = PQbackendPID(c);
	st.a = driver_async_new(loop, c, on_notify, on_lost, &st);
	cr_assert_not_null(st.a);
	tags[0] = (struct async_tag){&st, 0};
	tags[1] = (struct async_tag){&st, 1};
	cr_assert_eq(driver_async_query(st.a, "SELECT pg_sleep(60)", 0, NULL,
					record_done, &tags[0]),
		     0);
	cr_assert_eq(driver_async_query(st.a, "SELECT 1", 0, NULL, record_done,
					&tags[1]),
		     0);

	/* Wait until the sleep runs, so the kill hits a busy backend. */
	for (int i = 0; i < 1000 && !running; i++) {
		ev_run(loop, EVRUN_NOWAIT);
		running = harness_scalar(
				  killer,
				  "SELECT count(*) FROM pg_stat_activity WHERE "
				  "pid = %d AND query LIKE '%%pg_sleep(60)%%' "
				  "AND state = 'active'",
				  pid) == 1;
	}
	cr_assert(running, "the query never started");
	cr_expect_eq(harness_scalar(killer,
				    "SELECT pg_terminate_backend(%d)::int",
				    pid),
		     1);
	cr_assert(run_until(loop, &st.lost, 10.), "on_lost not called in 10 s");
	cr_expect_eq(st.lost_calls, 1);
	/* Both queries failed with a connection error, in order. */
	cr_assert_eq(st.norder, 2);
	cr_expect_eq(st.order[0], 0);
	cr_expect_eq(st.order[1], 1);
	cr_expect_eq(st.errs[0].klass, PGQ_ERR_CONNECTION, "%s",
		     st.errs[0].message);
	cr_expect_eq(st.errs[1].klass, PGQ_ERR_CONNECTION);
	cr_expect_eq(driver_async_pending(st.a), 0);
	/* Nothing more is accepted. */
	cr_expect_eq(driver_async_query(st.a, "SELECT 1", 0, NULL, record_done,
					&tags[0]),
		     -1);
	driver_async_free(st.a);
	PQfinish(c);
	PQfinish(killer);
	ev_loop_destroy(loop);
}

Test(driver_db, async_idle_connection_loss_is_reported_and_free_in_lost_works)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct async_state st = {0};
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	st.free_in_lost = true;
	st.a = driver_async_new(loop, c, on_notify, on_lost, &st);
	cr_assert_not_null(st.a);
	terminate_backend(c);
	cr_assert(run_until(loop, &st.lost, 10.), "on_lost not called in 10 s");
	cr_expect_null(st.a);
	/* The loop holds no watcher of the freed executor any more. */
	ev_run(loop, EVRUN_NOWAIT);
	cr_expect_eq(st.lost_calls, 1);
	PQfinish(c);
	ev_loop_destroy(loop);
}

static void
free_from_done(struct driver_async *a, PGresult *res,
	       const struct pgq_error *err, void *arg)
{
	struct async_state *st = arg;

	(void)res;
	(void)err;
	st->norder++;
	if (st->norder == 1) {
		/* Freeing here fails the query still queued behind us. */
		driver_async_free(a);
		st->a = NULL;
		cr_expect_eq(st->norder, 2);
	} else {
		cr_expect_null(res);
		cr_expect_eq(err->klass, PGQ_ERR_CONNECTION);
	}
}

Test(driver_db, async_free_from_a_query_callback_is_safe)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct async_state st = {0};
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	st.a = driver_async_new(loop, c, on_notify, on_lost, &st);
	cr_assert_not_null(st.a);
	cr_assert_eq(driver_async_query(st.a, "SELECT 1", 0, NULL,
					free_from_done, &st),
		     0);
	cr_assert_eq(driver_async_query(st.a, "SELECT 2", 0, NULL,
					free_from_done, &st),
		     0);
	cr_assert(run_until_count(loop, &st.norder, 2, 10.));
	cr_expect_null(st.a);
	cr_expect_eq(st.norder, 2);
	ev_run(loop, EVRUN_NOWAIT);
	cr_expect_not(st.lost);
	/* The connection still works for its owner. */
	cr_expect_eq(harness_scalar(c, "SELECT 3"), 3);
	PQfinish(c);
	ev_loop_destroy(loop);
}

Test(driver_db, async_large_parameters_are_flushed_without_blocking)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct async_state st = {0};
	struct async_tag tag = {&st, 0};
	size_t n = (size_t)8 * 1024 * 1024;
	char *big = malloc(n + 1);
	char expect[32];
	PGconn *c;

	cr_assert_not_null(big);
	memset(big, 'x', n);
	big[n] = '\0';
	harness_db_new(false);
	c = connect_ok();
	st.a = driver_async_new(loop, c, on_notify, on_lost, &st);
	cr_assert_not_null(st.a);
	cr_assert_eq(driver_async_query(st.a, "SELECT length($1::text)", 1,
					(const char *const[]){big}, record_done,
					&tag),
		     0);
	free(big); /* copied by the call */
	cr_assert(run_until_count(loop, &st.norder, 1, 20.));
	snprintf(expect, sizeof(expect), "%zu", n);
	cr_expect_str_eq(st.values[0], expect, "%s", st.errs[0].message);
	driver_async_free(st.a);
	PQfinish(c);
	ev_loop_destroy(loop);
}

Test(driver_db, async_copy_is_refused_as_a_lost_connection)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct async_state st = {0};
	struct async_tag tag = {&st, 0};
	PGconn *c;

	harness_db_new(false);
	c = connect_ok();
	st.a = driver_async_new(loop, c, on_notify, on_lost, &st);
	cr_assert_not_null(st.a);
	cr_assert_eq(driver_async_query(st.a, "COPY (SELECT 1) TO STDOUT", 0,
					NULL, record_done, &tag),
		     0);
	cr_assert(run_until(loop, &st.lost, 10.), "on_lost not called");
	cr_assert_eq(st.norder, 1);
	cr_expect_eq(st.errs[0].klass, PGQ_ERR_CONNECTION);
	cr_expect(strstr(st.errs[0].message, "COPY is not supported") != NULL,
		  "%s", st.errs[0].message);
	driver_async_free(st.a);
	PQfinish(c);
	ev_loop_destroy(loop);
}
