/*
 * Worker death: a worker killed mid-job is replaced in its slot and its job
 * is back in the queue at once with the cause in the log row; a crash-looping
 * worker backs off and trips the breaker; exit 78 is not respawned (a module
 * whose init fails stops the master with 78); many respawns leave no zombie;
 * a command handler's timeout kills its whole process group.
 */
#include "config.h"

#include <sys/stat.h>

#include "tests/daemon/suite.h"

TestSuite(recovery, .init = suite_setup, .fini = suite_teardown,
	  .timeout = 120);

Test(recovery, a_worker_killed_mid_job_is_replaced_and_its_job_requeued)
{
	char needle[64];
	long long job, slot;
	unsigned long long t0, back_ms;
	pid_t victim;

	suite_start(2, "heartbeat_timeout = 60s\n",
		    "[entrypoint sleep]\nbuiltin = sleep\nmax_attempts = 5\n");
	job = hd_enqueue(db, "sleep", "3s", 1, 0);
	snprintf(needle, sizeof(needle), "job start job=%lld ", job);
	cr_assert(hd_wait_log(&d, needle, T_EVENT_MS), "%s", hd_read_log(&d));
	/* "worker N: job start job=..." names the slot. */
	{
		char *log = hd_read_log(&d);
		char *hit = strstr(log, needle);

		cr_assert(hit != NULL);
		while (hit > log && strncmp(hit, "worker ", 7) != 0)
			hit--;
		slot = strtoll(hit + 7, NULL, 10);
		free(log);
	}
	victim = suite_worker_pid((unsigned)slot);
	t0 = hd_now_ms();
	cr_assert(kill(victim, SIGKILL) == 0);
	cr_assert_eq(
		hd_wait_scalar(
			db, 1, T_EVENT_MS,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld "
			"AND status = 'queued' AND traceback::text LIKE "
			"'%%SIGKILL%%'",
			job),
		1, "%s", hd_read_log(&d));
	back_ms = hd_now_ms() - t0;
	cr_assert_lt(back_ms, 1000, "job back after %llums", back_ms);
	/* The record reads as PgQueuer's TracebackRecord. */
	cr_expect_eq(
		harness_scalar(db,
			       "SELECT count(*) FROM pgqueuer_log WHERE job_id "
			       "= %lld AND status = 'queued' AND "
			       "traceback->>'exception_type' = 'WorkerDied' "
			       "AND " SUITE_PGQUEUER_TRACEBACK,
			       job),
		1, "%s",
		harness_text(db,
			     "SELECT traceback::text FROM pgqueuer_log WHERE "
			     "job_id = %lld AND status = 'queued' AND "
			     "traceback IS NOT NULL",
			     job));
	cr_assert_eq(
		harness_scalar(db,
			       "SELECT attempts FROM pgqueuer WHERE id = %lld",
			       job),
		1);
	/* Same slot, next generation. */
	snprintf(needle, sizeof(needle), "worker %lld: started", slot);
	cr_assert(hd_wait_log(&d, needle, T_EVENT_MS));
	cr_assert_neq(suite_worker_pid((unsigned)slot), victim);
	cr_assert(hd_count_log(&d, "killed by signal SIGKILL") >= 1);
	/* And the job runs again to the end. */
	cr_assert_eq(
		hd_wait_scalar(
			db, 1, T_EVENT_MS,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld "
			"AND status = 'successful'",
			job),
		1, "%s", hd_read_log(&d));
}

Test(recovery, a_crash_looping_worker_backs_off_and_trips_the_breaker)
{
	char sections[1024];
	long long prev = -1;
	unsigned long long deadline;
	pid_t kids[16];
	char *log, *line;
	unsigned intervals = 0;

	snprintf(sections, sizeof(sections),
		 "[entrypoint crash]\nmodule = %s\nfunction = crash_handler\n",
		 suite_module("mod_crash"));
	hd_write_ini(
		&d, "%s",
		hd_ini_text(
			dsn, 1,
			"respawn_backoff = 50ms\nrespawn_backoff_max = 10s\n"
			"crash_breaker_count = 5\ncrash_breaker_window = 60s\n",
			sections));
	hd_start(&d, NULL);
	cr_assert(hd_wait_log(&d, "crash breaker tripped", 30000), "%s",
		  hd_read_log(&d));
	/* Each wait is longer than the one before. */
	log = hd_read_log(&d);
	for (line = strstr(log, "respawn in "); line != NULL;
	     line = strstr(line + 1, "respawn in ")) {
		long long ms = strtoll(line + 11, NULL, 10);

		cr_expect_gt(ms, prev, "respawn delays do not grow:\n%s", log);
		prev = ms;
		intervals++;
	}
	cr_assert_geq(intervals, 3, "%s", log);
	cr_assert(strstr(log, "SIGABRT") != NULL, "%s", log);
	free(log);
	/* Nothing is respawned after the trip. */
	deadline = hd_now_ms() + T_EVENT_MS;
	while (hd_live_children(d.pid, kids, 16) > 0 && hd_now_ms() < deadline)
		(void)hd_wait_exit(&d, 10);
	cr_assert_eq(hd_live_children(d.pid, kids, 16), 0);
	cr_assert_eq(hd_wait_exit(&d, 300), -1, "the master must stay up");
	cr_assert_eq(hd_count_log(&d, ": started pid="), 5, "%s",
		     hd_read_log(&d));
}

Test(recovery, module_init_failure_exits_78_and_is_not_respawned)
{
	char sections[1024];
	int rc;

	snprintf(sections, sizeof(sections),
		 "[entrypoint refuse]\nmodule = %s\nfunction = "
		 "initfail_handler\n",
		 suite_module("mod_initfail"));
	hd_write_ini(&d, "%s", hd_ini_text(dsn, 2, "", sections));
	hd_start(&d, NULL);
	rc = hd_wait_exit(&d, 30000);
	cr_assert_eq(rc, 78, "exit %d:\n%s", rc, hd_read_log(&d));
	cr_assert(
		hd_count_log(&d, "mod_initfail refuses entrypoint refuse") >= 1,
		"the module's reason is not in the log:\n%s", hd_read_log(&d));
	cr_assert_eq(hd_count_log(&d, ": started pid="), 2, "%s",
		     hd_read_log(&d));
	cr_assert_eq(hd_count_log(&d, "not respawned"), 2);
}

Test(recovery, many_respawns_leave_no_zombie)
{
	unsigned long long deadline;
	pid_t kids[16];
	char needle[64];

	suite_start(2,
		    "respawn_backoff = 10ms\nrespawn_backoff_max = 20ms\n"
		    "crash_breaker_count = 0\n",
		    "[entrypoint noop]\nbuiltin = noop\n");
	for (unsigned i = 0; i < 20; i++) {
		pid_t victim = suite_worker_pid(i % 2);

		cr_assert(kill(victim, SIGKILL) == 0);
		snprintf(needle, sizeof(needle), "worker %u: ready", i % 2);
		cr_assert(hd_wait_log(&d, needle, T_EVENT_MS), "round %u:\n%s",
			  i, hd_read_log(&d));
	}
	deadline = hd_now_ms() + T_EVENT_MS;
	for (;;) {
		size_t n = proc_children(d.pid, kids, 16);
		unsigned zombies = 0;

		for (size_t i = 0; i < n; i++)
			zombies += proc_zombie(kids[i]);
		if ((n == 2 && zombies == 0) || hd_now_ms() > deadline) {
			cr_assert_eq(zombies, 0);
			cr_assert_eq(n, 2);
			break;
		}
		(void)hd_wait_exit(&d, 10);
	}
}

Test(recovery, a_command_timeout_kills_the_whole_process_group)
{
	char text[2048], sections[1024], pidpath[512];
	const char *script;
	long long job;
	long pids[2] = {0, 0};
	FILE *f;

	snprintf(pidpath, sizeof(pidpath), "%s/pids", d.dir);
	/* The handler starts a child that ignores SIGTERM, then waits. */
	snprintf(text, sizeof(text),
		 "#!/bin/sh\n(trap '' TERM; while :; do sleep 0.1; done) &\n"
		 "echo $$ $! > %s.tmp && mv %s.tmp %s\nwait\n",
		 pidpath, pidpath, pidpath);
	script = hd_write_file(&d, "forker.sh", text);
	cr_assert(chmod(script, 0755) == 0);
	snprintf(sections, sizeof(sections),
		 "[entrypoint forker]\ncommand = %s\ntimeout = 1s\n"
		 "kill_grace = 300ms\nmax_attempts = 1\n",
		 script);
	suite_start(1, "", sections);
	job = hd_enqueue(db, "forker", NULL, 1, 0);
	for (unsigned long long dl = hd_now_ms() + T_EVENT_MS;
	     pids[1] == 0 && hd_now_ms() < dl;) {
		f = fopen(pidpath, "r");
		if (f != NULL) {
			if (fscanf(f, "%ld %ld", &pids[0], &pids[1]) != 2)
				pids[1] = 0;
			fclose(f);
		}
		if (pids[1] == 0)
			(void)hd_wait_exit(&d, 10);
	}
	cr_assert(pids[1] > 0, "handler never started:\n%s", hd_read_log(&d));
	cr_assert_eq(
		hd_wait_scalar(
			db, 1, T_EVENT_MS,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld "
			"AND status = 'exception'",
			job),
		1, "%s", hd_read_log(&d));
	for (unsigned long long dl = hd_now_ms() + T_EVENT_MS;
	     (proc_alive((pid_t)pids[0]) || proc_alive((pid_t)pids[1])) &&
	     hd_now_ms() < dl;)
		(void)hd_wait_exit(&d, 10);
	cr_assert(!proc_alive((pid_t)pids[0]), "handler survived");
	cr_assert(!proc_alive((pid_t)pids[1]), "handler's child survived");
}

Test(recovery, heartbeats_keep_a_long_job_from_going_stale)
{
	char needle[64];
	long long job;

	/* Without the master's refresh the job would be stale after 2s and
	 * another worker would claim it a second time. */
	suite_start(2, "heartbeat_timeout = 2s\n",
		    "[entrypoint sleep]\nbuiltin = sleep\n");
	job = hd_enqueue(db, "sleep", "5s", 1, 0);
	snprintf(needle, sizeof(needle), "job start job=%lld ", job);
	cr_assert(hd_wait_log(&d, needle, T_EVENT_MS), "%s", hd_read_log(&d));
	cr_assert_eq(
		hd_wait_scalar(
			db, 1, T_EVENT_MS,
			"SELECT count(*) FROM pgqueuer WHERE id = %lld AND "
			"heartbeat > updated + interval '1500 milliseconds'",
			job),
		1, "heartbeat never refreshed:\n%s", hd_read_log(&d));
	cr_assert_eq(
		hd_wait_scalar(
			db, 1, T_EVENT_MS,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld "
			"AND status = 'successful'",
			job),
		1, "%s", hd_read_log(&d));
	cr_assert_eq(
		harness_scalar(
			db,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld "
			"AND status = 'picked'",
			job),
		1, "claimed twice:\n%s", hd_read_log(&d));
	cr_assert_geq(hd_count_log(&d, "heartbeat refreshed rows=1"), 2);
}
