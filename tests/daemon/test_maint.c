/*
 * Maintenance off the LISTEN connection: the master's statements (here the
 * statistics fold, held on a lock the test takes) run on a connection of
 * their own, so one that blocks does not hold back the notifications of the
 * LISTEN connection, and a job enqueued meanwhile starts at once. The
 * maintenance connection reconnects after it is cut.
 */
#include "config.h"

#include "tests/daemon/suite.h"

TestSuite(maint, .init = suite_setup, .fini = suite_teardown, .timeout = 120);

/* Backends of the database waiting on a lock in the statistics fold. */
#define MAINT_FOLDS_WAITING                                                    \
	"SELECT count(*) FROM pg_stat_activity WHERE datname = "               \
	"current_database() AND wait_event_type = 'Lock' AND "                 \
	"query LIKE '%%pg_try_advisory_xact_lock%%'"

Test(maint, a_blocked_statistics_fold_does_not_delay_a_wake)
{
	PGconn *locker = harness_connect(dsn);
	unsigned long long t0;
	long long job, ms;

	suite_start(1, "poll_interval = 60s\nstats_interval = 100ms\n",
		    "[entrypoint noop]\nbuiltin = noop\n");
	suite_wait_idle(1);
	/* The fold's upsert into the statistics table waits for this. */
	PQclear(harness_query(locker, "BEGIN"));
	PQclear(harness_query(locker, "LOCK TABLE pgqueuer_statistics IN "
				      "EXCLUSIVE MODE"));
	cr_assert_eq(hd_wait_scalar(db, 1, T_EVENT_MS, MAINT_FOLDS_WAITING), 1,
		     "the fold never blocked:\n%s", hd_read_log(&d));
	t0 = hd_now_ms();
	job = hd_enqueue(db, "noop", NULL, 1, 0);
	cr_assert_eq(
		hd_wait_scalar(
			db, 1, T_EVENT_MS,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld "
			"AND status = 'successful'",
			job),
		1, "the job did not run while the fold was blocked:\n%s",
		hd_read_log(&d));
	ms = (long long)(hd_now_ms() - t0);
	cr_assert_lt(ms, 2000, "the job took %lldms:\n%s", ms, hd_read_log(&d));
	/* The fold was still blocked all along; now it goes on. */
	cr_assert_eq(harness_scalar(db, MAINT_FOLDS_WAITING), 1);
	PQclear(harness_query(locker, "COMMIT"));
	PQfinish(locker);
	cr_assert_eq(hd_wait_scalar(db, 0, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "NOT aggregated"),
		     0, "%s", hd_read_log(&d));
}

Test(maint, a_cut_maintenance_connection_comes_back)
{
	long long pid, job;

	suite_start(1, "", "[entrypoint noop]\nbuiltin = noop\n");
	if (hd_count_log(&d, "maintenance connection: ready") == 0)
		cr_assert(hd_wait_log(&d, "maintenance connection: ready",
				      T_EVENT_MS),
			  "%s", hd_read_log(&d));
	pid = hd_log_value(&d, "maintenance connection: ready", "backend_pid");
	cr_assert_gt(pid, 0);
	cr_assert_eq(harness_scalar(
			     db, "SELECT pg_terminate_backend(%lld)::int", pid),
		     1);
	cr_assert(hd_wait_log(&d, "maintenance connection lost", T_EVENT_MS),
		  "%s", hd_read_log(&d));
	cr_assert(hd_wait_log(&d, "maintenance connection: ready", T_EVENT_MS),
		  "%s", hd_read_log(&d));
	cr_assert_neq(hd_log_value(&d, "maintenance connection: ready",
				   "backend_pid"),
		      pid);
	job = hd_enqueue(db, "noop", NULL, 1, 0);
	cr_assert_eq(
		hd_wait_scalar(
			db, 1, T_EVENT_MS,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld "
			"AND status = 'successful'",
			job),
		1, "%s", hd_read_log(&d));
}
