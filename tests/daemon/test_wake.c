/*
 * The wake strategy seen from outside: one notification wakes one worker; a
 * burst in one transaction spreads over several; a deferred job starts on
 * time with no notification at its due time; a terminated LISTEN backend is
 * replaced and jobs inserted meanwhile run; --drain exits 0 once the queue
 * is empty with one terminal log row per job.
 */
#include "config.h"

#include "tests/daemon/suite.h"

TestSuite(wake, .init = suite_setup, .fini = suite_teardown, .timeout = 180);

static const char *noop_section = "[entrypoint noop]\nbuiltin = noop\n";

Test(wake, one_notification_wakes_one_idle_worker)
{
	unsigned before, insert_wakes, chain_wakes, all_wakes;
	long long job;

	suite_start(3, "poll_interval = 60s\n", noop_section);
	suite_wait_idle(3);
	before = hd_count_log(&d, "wake worker=");
	job = hd_enqueue(db, "noop", NULL, 1, 0);
	cr_assert_eq(
		hd_wait_scalar(
			db, 1, T_EVENT_MS,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld "
			"AND status = 'successful'",
			job),
		1, "%s", hd_read_log(&d));
	cr_assert(hd_wait_log(&d, "reason=insert", T_EVENT_MS));
	/*
	 * A chain wake would be sent before the woken worker's idle (the
	 * channel keeps order), so once it is idle every wake is counted.
	 */
	cr_assert(hd_wait_log(&d, ": idle", T_EVENT_MS));
	insert_wakes = hd_count_log(&d, "reason=insert");
	chain_wakes = hd_count_log(&d, "reason=chain");
	all_wakes = hd_count_log(&d, "wake worker=") - before;
	/* The notification itself wakes exactly one of the idle workers. */
	cr_assert_eq(insert_wakes, 1, "%s", hd_read_log(&d));
	/*
	 * Anything more is the chain wake the woken worker asked for because
	 * it found work (at most one per wake); the master adds nothing.
	 */
	cr_assert_leq(chain_wakes, 1, "%s", hd_read_log(&d));
	cr_assert_eq(all_wakes, insert_wakes + chain_wakes,
		     "unexpected wake-ups:\n%s", hd_read_log(&d));
}

Test(wake, a_burst_in_one_transaction_is_shared_by_several_workers)
{
	unsigned busy = 0;
	char needle[64];

	suite_start(4, "batch_size = 2\npoll_interval = 60s\n",
		    "[entrypoint sleep]\nbuiltin = sleep\n");
	suite_wait_idle(4);
	(void)hd_enqueue(db, "sleep", "50ms", 40, 0);
	cr_assert_eq(hd_wait_scalar(
			     db, 40, 30000,
			     "SELECT count(*) FROM pgqueuer_log WHERE status = "
			     "'successful'"),
		     40, "%s", hd_read_log(&d));
	for (unsigned i = 0; i < 4; i++) {
		snprintf(needle, sizeof(needle), "worker %u: job start", i);
		busy += hd_count_log(&d, needle) > 0;
	}
	cr_assert_geq(busy, 2, "one worker did everything:\n%s",
		      hd_read_log(&d));
	cr_assert_geq(hd_count_log(&d, "reason=chain"), 1);
}

Test(wake, a_deferred_job_runs_on_time_without_polling)
{
	long long job, late_ms;

	suite_start(2, "poll_interval = 60s\n", noop_section);
	suite_wait_idle(2);
	job = hd_enqueue(db, "noop", NULL, 1, 1500);
	cr_assert_eq(
		hd_wait_scalar(
			db, 1, 10000,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld "
			"AND status = 'successful'",
			job),
		1, "%s", hd_read_log(&d));
	late_ms = harness_scalar(
		db,
		"SELECT (extract(epoch FROM l.created - q.created) * "
		"1000)::bigint "
		"FROM pgqueuer_log l, pgqueuer_log q WHERE l.job_id = %lld AND "
		"q.job_id = l.job_id AND l.status = 'picked' AND q.status = "
		"'queued'",
		job);
	cr_assert_geq(late_ms, 1450, "ran early: %lldms", late_ms);
	cr_assert_lt(late_ms, 2500, "ran late: %lldms", late_ms);
	cr_assert_geq(hd_count_log(&d, "reason=due"), 1, "%s", hd_read_log(&d));
}

Test(wake, a_terminated_listen_backend_is_replaced_and_nothing_is_lost)
{
	long listen_pid;

	suite_start(2, "poll_interval = 60s\n", noop_section);
	suite_wait_idle(2);
	listen_pid =
		(long)hd_log_value(&d, "listening channel=", "backend_pid");
	cr_assert_gt(listen_pid, 0);
	cr_assert_eq(harness_scalar(db, "SELECT pg_terminate_backend(%ld)::int",
				    listen_pid),
		     1);
	(void)hd_enqueue(db, "noop", NULL, 5, 0);
	cr_assert(hd_wait_log(&d, "(reconnected)", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_assert_eq(hd_wait_scalar(
			     db, 5, T_EVENT_MS,
			     "SELECT count(*) FROM pgqueuer_log WHERE status = "
			     "'successful'"),
		     5, "%s", hd_read_log(&d));
	cr_assert_neq(hd_log_value(&d, "listening channel=", "backend_pid"),
		      listen_pid);
}

Test(wake, drain_exits_0_when_the_queue_is_empty)
{
	int rc;

	(void)hd_enqueue(db, "noop", NULL, 2000, 0);
	hd_write_ini(&d, "%s", hd_ini_text(dsn, 4, "", noop_section));
	hd_start(&d, "--drain", NULL);
	rc = hd_wait_exit(&d, 60000);
	cr_assert_eq(rc, 0, "exit %d:\n%s", rc, hd_read_log(&d));
	cr_assert_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer"), 0);
	cr_assert_eq(
		harness_scalar(
			db,
			"SELECT count(*) FROM (SELECT job_id FROM pgqueuer_log "
			"WHERE status IN ('successful', 'exception', "
			"'canceled', 'deleted', 'failed') GROUP BY job_id "
			"HAVING count(*) = 1) t"),
		2000);
	cr_assert(hd_count_log(&d, "drain: no eligible job left") == 1);
}
