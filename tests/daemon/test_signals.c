/*
 * Shutdown and scaling by signal against real jobs: TERM lets a running job
 * finish, a second TERM escalates, INT returns the running job, QUIT kills and
 * the master returns the jobs, a handler that ignores SIGTERM is killed at the
 * deadline, and TTIN/TTOU add and retire workers within the bounds.
 */
#include "config.h"

#include <sys/stat.h>

#include "tests/daemon/suite.h"

TestSuite(signals, .init = suite_setup, .fini = suite_teardown, .timeout = 120);

static const char *sleep_section = "[entrypoint sleep]\nbuiltin = sleep\n";

/* Waits until job is picked and its worker said so. */
static void
wait_running(long long job)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "job start job=%lld ", job);
	cr_assert(hd_wait_log(&d, needle, T_EVENT_MS),
		  "job %lld never started:\n%s", job, hd_read_log(&d));
}

static long long
job_log_count(long long job, const char *status)
{
	return harness_scalar(
		db,
		"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld AND "
		"status = '%s'",
		job, status);
}

Test(signals, term_lets_the_running_job_finish_then_exits_0)
{
	long long job;
	unsigned long long t0;
	int rc;

	suite_start(2, "shutdown_timeout = 20s\n", sleep_section);
	job = hd_enqueue(db, "sleep", "1500ms", 1, 0);
	wait_running(job);
	t0 = hd_now_ms();
	hd_signal(&d, SIGTERM);
	rc = hd_wait_exit(&d, T_EVENT_MS);
	cr_assert_eq(rc, 0, "exit %d:\n%s", rc, hd_read_log(&d));
	cr_assert_lt(hd_now_ms() - t0, 10000);
	cr_assert_eq(job_log_count(job, "successful"), 1, "%s",
		     hd_read_log(&d));
	cr_assert_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer"), 0);
}

Test(signals, a_second_term_escalates_to_fast)
{
	long long job;
	int rc;

	suite_start(1, "shutdown_timeout = 60s\nfast_shutdown_timeout = 20s\n",
		    sleep_section);
	job = hd_enqueue(db, "sleep", "60s", 1, 0);
	wait_running(job);
	hd_signal(&d, SIGTERM);
	cr_assert(hd_wait_log(&d, "shutdown: graceful", T_EVENT_MS));
	hd_signal(&d, SIGTERM);
	cr_assert(hd_wait_log(&d, "shutdown: fast", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	rc = hd_wait_exit(&d, T_EVENT_MS);
	cr_assert_eq(rc, 0, "exit %d:\n%s", rc, hd_read_log(&d));
	/* The stopped job is back in the queue, not lost and not finished. */
	cr_assert_eq(
		harness_scalar(
			db,
			"SELECT count(*) FROM pgqueuer WHERE id = %lld AND "
			"status = 'queued'",
			job),
		1, "%s", hd_read_log(&d));
	cr_assert_eq(job_log_count(job, "successful"), 0);
}

Test(signals, int_returns_the_running_job_to_the_queue)
{
	long long job;
	unsigned long long t0;
	int rc;

	suite_start(2, "fast_shutdown_timeout = 10s\n", sleep_section);
	job = hd_enqueue(db, "sleep", "60s", 1, 0);
	wait_running(job);
	t0 = hd_now_ms();
	hd_signal(&d, SIGINT);
	rc = hd_wait_exit(&d, T_EVENT_MS);
	cr_assert_eq(rc, 0, "exit %d:\n%s", rc, hd_read_log(&d));
	cr_assert_lt(hd_now_ms() - t0, 12000);
	cr_assert_eq(
		harness_scalar(
			db,
			"SELECT count(*) FROM pgqueuer WHERE id = %lld AND "
			"status = 'queued' AND queue_manager_id IS NULL",
			job),
		1, "%s", hd_read_log(&d));
}

Test(signals, quit_kills_the_workers_and_the_master_requeues_their_jobs)
{
	long long job;
	int rc;

	suite_start(2, "", sleep_section);
	job = hd_enqueue(db, "sleep", "60s", 1, 0);
	wait_running(job);
	hd_signal(&d, SIGQUIT);
	rc = hd_wait_exit(&d, T_EVENT_MS);
	cr_assert_eq(rc, 0, "exit %d:\n%s", rc, hd_read_log(&d));
	cr_assert_eq(
		harness_scalar(
			db,
			"SELECT count(*) FROM pgqueuer WHERE id = %lld AND "
			"status = 'queued' AND attempts = 1",
			job),
		1, "%s", hd_read_log(&d));
	/* The log row says why the job came back. */
	cr_assert_eq(
		harness_scalar(
			db,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld "
			"AND status = 'queued' AND traceback::text LIKE "
			"'%%SIGKILL%%'",
			job),
		1, "%s", hd_read_log(&d));
}

Test(signals, a_handler_that_ignores_term_is_killed_and_the_master_exits)
{
	char sections[1024], pidpath[512];
	const char *script;
	long long job;
	long hpid = 0;
	FILE *f;
	int rc;

	snprintf(pidpath, sizeof(pidpath), "%s/handler.pid", d.dir);
	{
		char text[1024];

		snprintf(text, sizeof(text),
			 "#!/bin/sh\ntrap '' TERM\necho $$ > %s\n"
			 "while :; do sleep 0.1; done\n",
			 pidpath);
		script = hd_write_file(&d, "stubborn.sh", text);
	}
	cr_assert(chmod(script, 0755) == 0);
	snprintf(sections, sizeof(sections),
		 "[entrypoint stubborn]\ncommand = %s\nkill_grace = 500ms\n",
		 script);
	suite_start(1, "shutdown_timeout = 1s\nfast_shutdown_timeout = 3s\n",
		    sections);
	job = hd_enqueue(db, "stubborn", NULL, 1, 0);
	wait_running(job);
	cr_assert(hd_wait_scalar(db, 1, T_EVENT_MS,
				 "SELECT count(*) FROM pgqueuer WHERE status = "
				 "'picked'") == 1);
	/* The script writes its pid once it runs. */
	for (unsigned long long dl = hd_now_ms() + T_EVENT_MS;
	     hpid == 0 && hd_now_ms() < dl;) {
		f = fopen(pidpath, "r");
		if (f != NULL) {
			if (fscanf(f, "%ld", &hpid) != 1)
				hpid = 0;
			fclose(f);
		}
		if (hpid == 0)
			(void)hd_wait_exit(&d, 10);
	}
	cr_assert(hpid > 0, "handler never started");
	hd_signal(&d, SIGTERM);
	rc = hd_wait_exit(&d, 10000);
	cr_assert_eq(rc, 0, "exit %d:\n%s", rc, hd_read_log(&d));
	for (unsigned long long dl = hd_now_ms() + T_EVENT_MS;
	     proc_alive((pid_t)hpid) && hd_now_ms() < dl;)
		(void)hd_wait_exit(&d, 10);
	cr_assert(!proc_alive((pid_t)hpid), "the handler survived");
	/* It was stopped, not lost: back in the queue or ended. */
	cr_assert_eq(
		harness_scalar(
			db,
			"SELECT count(*) FROM pgqueuer WHERE id = %lld AND "
			"status = 'picked'",
			job),
		0, "%s", hd_read_log(&d));
}

Test(signals, ttin_twice_then_ttou_retires_the_busy_highest_slot_gracefully)
{
	long long first;
	unsigned long long deadline;
	pid_t kids[16];

	suite_start(2, "batch_size = 1\nmax_workers = 4\nmin_workers = 1\n",
		    sleep_section);
	hd_signal(&d, SIGTTIN);
	cr_assert(hd_wait_log(&d, "worker 2: ready", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	hd_signal(&d, SIGTTIN);
	cr_assert(hd_wait_log(&d, "worker 3: ready", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	suite_wait_idle(4);
	/* One slow job per worker; chain wakes spread them to every slot. */
	first = hd_enqueue(db, "sleep", "2s", 4, 0);
	cr_assert(hd_wait_log(&d, "worker 3: job start", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	hd_signal(&d, SIGTTOU);
	cr_assert(hd_wait_log(&d, "worker 3: retiring", T_EVENT_MS));
	cr_assert(hd_wait_log(&d, "worker 3: retired", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	/* Its job completed rather than being cut short. */
	cr_assert_eq(
		hd_wait_scalar(
			db, 4, T_EVENT_MS,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id >= "
			"%lld AND status = 'successful'",
			first),
		4, "%s", hd_read_log(&d));
	cr_assert_eq(hd_count_log(&d, "worker 3: died"), 0);
	deadline = hd_now_ms() + T_EVENT_MS;
	while (hd_live_children(d.pid, kids, 16) != 3 && hd_now_ms() < deadline)
		(void)hd_wait_exit(&d, 10);
	cr_assert_eq(hd_live_children(d.pid, kids, 16), 3);
	/*
	 * Bounds hold: down to min_workers and no further. One signal at a
	 * time: the kernel merges a pending signal with a second one.
	 */
	hd_signal(&d, SIGTTOU);
	cr_assert(hd_wait_log(&d, "scale down: workers=2", T_EVENT_MS));
	hd_signal(&d, SIGTTOU);
	cr_assert(hd_wait_log(&d, "scale down: workers=1", T_EVENT_MS));
	hd_signal(&d, SIGTTOU);
	cr_assert(hd_wait_log(&d, "scale down refused", T_EVENT_MS), "%s",
		  hd_read_log(&d));
}
