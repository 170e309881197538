/*
 * What waiting cannot cure: pgq-master --drain against a database without
 * the schema, a read-only one, a wrong password, a role without privileges
 * and a PgQueuer 1.3 queue with a limited entrypoint exits 69 within 10 s
 * naming the cause; without --drain a worker that finds the tables missing
 * says so once, waits without dying, and says when claims work again.
 */
#include "config.h"

#include "sql/sql.h"
#include "tests/daemon/suite.h"

TestSuite(drain, .init = suite_setup, .fini = suite_teardown, .timeout = 120);

/* The bound for a drain that cannot run. */
#define T_DRAIN_MS 10000

static const char *noop_section = "[entrypoint noop]\nbuiltin = noop\n";

/* Starts --drain on conninfo and expects exit 69 with every needle logged. */
static void
expect_drain_refused(const char *conninfo, const char *sections,
		     const char *const *needles)
{
	int rc;

	hd_write_ini(&d, "%s", hd_ini_text(conninfo, 2, "", sections));
	hd_start(&d, "--drain", NULL);
	rc = hd_wait_exit(&d, T_DRAIN_MS);
	cr_assert_eq(rc, 69, "exit %d, want 69 within %dms:\n%s", rc,
		     T_DRAIN_MS, hd_read_log(&d));
	for (; *needles != NULL; needles++)
		cr_expect_geq(hd_count_log(&d, *needles), 1,
			      "\"%s\" not logged:\n%s", *needles,
			      hd_read_log(&d));
	/* It stopped before forking anything. */
	cr_expect_eq(hd_count_log(&d, "worker 0: started"), 0, "%s",
		     hd_read_log(&d));
}

Test(drain, without_the_schema_it_exits_69_saying_run_pgq_install)
{
	static const char *const needles[] = {
		"drain: cannot run: the queue tables are missing",
		"relation \"pgqueuer\" does not exist", "run pgq install",
		NULL};

	expect_drain_refused(harness_db_new(false), noop_section, needles);
}

Test(drain, on_a_read_only_database_it_exits_69_naming_it)
{
	static const char *const needles[] = {
		"drain: cannot run: the database is read-only",
		"default_transaction_read_only is on", NULL};

	PQclear(harness_query(db,
			      "ALTER DATABASE %s SET "
			      "default_transaction_read_only = on",
			      PQdb(db)));
	expect_drain_refused(dsn, noop_section, needles);
}

Test(drain, with_a_wrong_password_it_exits_69_without_showing_it)
{
	static const char *const needles[] = {
		"drain: cannot run: the server refused the login",
		"password authentication failed for user \"pgq_drain_pw\"",
		"sqlstate=28P01", NULL};
	char ci[512];
	char *log;

	harness_password_role("pgq_drain_pw", "Right-Pass-1");
	snprintf(ci, sizeof(ci), "%s user=pgq_drain_pw password=Wr0ng-Pass-9",
		 dsn);
	expect_drain_refused(ci, noop_section, needles);
	log = hd_read_log(&d);
	cr_expect_null(strstr(log, "Wr0ng-Pass-9"), "%s", log);
	free(log);
}

Test(drain, without_privileges_it_exits_69_saying_permission_denied)
{
	static const char *const needles[] = {
		"drain: cannot run: permission denied",
		"permission denied for table pgqueuer", "sqlstate=42501", NULL};
	char ci[512];

	PQclear(harness_query(db, "DO $$ BEGIN CREATE ROLE pgq_drain_np "
				  "LOGIN; EXCEPTION WHEN duplicate_object "
				  "THEN NULL; END $$"));
	snprintf(ci, sizeof(ci), "%s user=pgq_drain_np", dsn);
	expect_drain_refused(ci, noop_section, needles);
}

Test(drain, a_limited_entrypoint_on_a_1_3_queue_says_run_pgq_upgrade)
{
	static const char *const needles[] = {
		"drain: cannot run: the queue has an older layout",
		"entrypoint noop has limits", "column", "run pgq upgrade",
		NULL};

	/* PgQueuer 1.3's layout: no capacity slots. */
	PQclear(harness_query(db, "ALTER TABLE pgqueuer DROP COLUMN slot"));
	expect_drain_refused(dsn,
			     "[entrypoint noop]\nbuiltin = noop\n"
			     "concurrency_limit = 2\n",
			     needles);
}

Test(drain, a_good_database_still_drains_and_exits_0)
{
	int rc;

	(void)hd_enqueue(db, "noop", NULL, 20, 0);
	hd_write_ini(&d, "%s", hd_ini_text(dsn, 2, "", noop_section));
	hd_start(&d, "--drain", NULL);
	rc = hd_wait_exit(&d, T_EVENT_MS);
	cr_assert_eq(rc, 0, "exit %d:\n%s", rc, hd_read_log(&d));
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer_log "
					"WHERE status = 'successful'"),
		     20);
}

/*
 * Without --drain nobody is there to read an exit: the worker warns once
 * that the tables are missing, retries at the debug level without dying,
 * and says when claims work again once they are installed.
 */
Test(drain, a_daemon_waits_for_missing_tables_quietly_and_recovers)
{
	const char *ci = harness_db_new(false);
	PGconn *c = harness_connect(ci);
	struct sql_names names;
	struct pgq_error err;
	unsigned warnings;

	hd_write_ini(&d, "%s", hd_ini_text(ci, 1, "", noop_section));
	hd_start(&d, NULL);
	cr_assert(
		hd_wait_log(&d, "worker 0: warning: claim failed", T_START_MS),
		"%s", hd_read_log(&d));
	cr_expect(hd_count_log(&d, "waiting: the queue tables are missing") ==
			  1,
		  "%s", hd_read_log(&d));
	/* Two more failures, said at the debug level only (no prefix). */
	cr_assert(hd_wait_log(&d, "worker 0: claim failed", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_assert(hd_wait_log(&d, "worker 0: claim failed", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_assert(sql_names_init(&names, NULL, NULL, NULL, &err) == 0);
	cr_assert(sql_install(c, &names, SQL_DURABLE, &err) == 0, "%s",
		  err.message);
	cr_assert(hd_wait_log(&d, "worker 0: claims work again after",
			      T_EVENT_MS),
		  "%s", hd_read_log(&d));
	warnings = hd_count_log(&d, "worker 0: warning: claim failed");
	cr_expect_eq(warnings, 1, "warned %u times:\n%s", warnings,
		     hd_read_log(&d));
	cr_expect_eq(hd_count_log(&d, "worker 0: started"), 1,
		     "the worker was restarted:\n%s", hd_read_log(&d));
	(void)hd_enqueue(c, "noop", NULL, 1, 0);
	cr_expect_eq(hd_wait_scalar(c, 1, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "status = 'successful'"),
		     1, "%s", hd_read_log(&d));
	PQfinish(c);
}
