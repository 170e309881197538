/*
 * SIGHUP: a changed `workers` starts or retires workers; a changed handler
 * replaces the workers one slot at a time (the database never sees more
 * worker connections than `workers`); a broken file changes nothing.
 */
#include "config.h"

#include "tests/daemon/suite.h"

TestSuite(reload, .init = suite_setup, .fini = suite_teardown, .timeout = 120);

static const char *noop_section = "[entrypoint noop]\nbuiltin = noop\n";

static size_t
sorted_children(pid_t *out, size_t max)
{
	size_t n = hd_live_children(d.pid, out, max);

	for (size_t i = 1; i < n; i++) {
		for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
			pid_t t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	}
	return n;
}

static size_t
wait_children(size_t want, pid_t *out, size_t max)
{
	unsigned long long deadline = hd_now_ms() + T_EVENT_MS;
	size_t n;

	while ((n = sorted_children(out, max)) != want &&
	       hd_now_ms() < deadline)
		(void)hd_wait_exit(&d, 10);
	return n;
}

Test(reload, a_changed_worker_count_starts_and_retires_workers)
{
	pid_t kids[16];

	suite_start(2, "", noop_section);
	hd_write_ini(&d, "%s", hd_ini_text(dsn, 4, "", noop_section));
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "worker 3: ready", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_assert_eq(wait_children(4, kids, 16), 4);
	/* Workers 0 and 1 were kept: only the count changed. */
	cr_assert_eq(hd_count_log(&d, "worker 0: started"), 1);

	hd_write_ini(&d, "%s", hd_ini_text(dsn, 1, "", noop_section));
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "worker 3: retired", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_assert_eq(wait_children(1, kids, 16), 1, "%s", hd_read_log(&d));
	cr_assert_eq(hd_count_log(&d, "worker 0: started"), 1);
}

struct conn_watch {
	long listen_pid;
	long long max;
};

/* Worker connections: every backend of the database but ours and the
 * master's two (LISTEN, maintenance). */
static long long
worker_connections(long listen_pid)
{
	return harness_scalar(
		db,
		"SELECT count(*) FROM pg_stat_activity WHERE datname = "
		"current_database() AND pid <> pg_backend_pid() AND pid <> %ld "
		"AND application_name <> 'pgq-master maintenance' "
		"AND backend_type = 'client backend'",
		listen_pid);
}

Test(reload, a_changed_handler_replaces_workers_one_at_a_time)
{
	pid_t before[16], after[16];
	unsigned long long deadline;
	long listen_pid;
	long long most = 0;
	size_t n;

	suite_start(3, "", noop_section);
	suite_wait_idle(3);
	listen_pid =
		(long)hd_log_value(&d, "listening channel=", "backend_pid");
	cr_assert_gt(listen_pid, 0);
	cr_assert_eq(hd_wait_scalar(db, 3, T_EVENT_MS, "SELECT %lld",
				    worker_connections(listen_pid)),
		     3);
	cr_assert_eq(sorted_children(before, 16), 3);

	hd_write_ini(
		&d, "%s",
		hd_ini_text(
			dsn, 3, "",
			"[entrypoint noop]\nbuiltin = noop\ntimeout = 5s\n"));
	hd_signal(&d, SIGHUP);
	deadline = hd_now_ms() + 30000;
	while (hd_count_log(&d, "every worker runs the new configuration") ==
		       0 &&
	       hd_now_ms() < deadline) {
		long long c = worker_connections(listen_pid);

		if (c > most)
			most = c;
	}
	cr_assert(hd_count_log(&d, "every worker runs the new configuration") ==
			  1,
		  "%s", hd_read_log(&d));
	cr_assert_leq(most, 3, "%lld worker connections during the reload",
		      most);
	n = wait_children(3, after, 16);
	cr_assert_eq(n, 3);
	for (size_t i = 0; i < 3; i++) {
		for (size_t j = 0; j < 3; j++)
			cr_assert_neq(after[i], before[j],
				      "worker %ld was not replaced",
				      (long)before[j]);
	}
	cr_assert_eq(hd_count_log(&d, "replacing for the new configuration"),
		     3);
	cr_assert_eq(hd_count_log(&d, ": died:"), 0, "%s", hd_read_log(&d));
}

Test(reload, a_broken_file_changes_nothing)
{
	pid_t before[16], after[16];

	suite_start(2, "", noop_section);
	cr_assert_eq(sorted_children(before, 16), 2);
	hd_write_ini(&d,
		     "[pgq]\nworkers = 5\nbogus_key = 1\n[database]\n"
		     "dsn = %s\n%s",
		     dsn, noop_section);
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "reload failed", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_assert(hd_count_log(&d, "pgq.ini:3:") >= 1, "%s", hd_read_log(&d));
	cr_assert_eq(sorted_children(after, 16), 2);
	cr_assert_eq(after[0], before[0]);
	cr_assert_eq(after[1], before[1]);
	/* Still serving. */
	(void)hd_enqueue(db, "noop", NULL, 3, 0);
	cr_assert_eq(hd_wait_scalar(
			     db, 3, T_EVENT_MS,
			     "SELECT count(*) FROM pgqueuer_log WHERE status = "
			     "'successful'"),
		     3, "%s", hd_read_log(&d));
}

Test(reload, a_restart_only_key_is_logged_and_keeps_its_old_value)
{
	pid_t before[16], after[16];

	suite_start(2, "", noop_section);
	cr_assert_eq(sorted_children(before, 16), 2);
	hd_write_ini(
		&d, "%s",
		hd_ini_text(dsn, 2, "channel = ch_elsewhere\n", noop_section));
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "reload: configuration loaded", T_EVENT_MS),
		  "%s", hd_read_log(&d));
	cr_assert(hd_count_log(&d, "needs a restart") >= 1, "%s",
		  hd_read_log(&d));
	/* Still on the old channel: a notification there still wakes. */
	(void)hd_enqueue(db, "noop", NULL, 1, 0);
	cr_assert_eq(hd_wait_scalar(
			     db, 1, T_EVENT_MS,
			     "SELECT count(*) FROM pgqueuer_log WHERE status = "
			     "'successful'"),
		     1, "%s", hd_read_log(&d));
	cr_assert_eq(sorted_children(after, 16), 2);
	cr_assert_eq(after[0], before[0]);
	cr_assert_eq(after[1], before[1]);
}
