/*
 * No orphaned handlers: when a worker dies with a command handler running
 * (kill -9 here), or the master gets QUIT, the master ends the handler's
 * whole process group (TERM, then KILL after kill_grace) before the job is
 * claimable again, so the retry never runs beside the old handler.
 */
#include "config.h"

#include <sys/stat.h>

#include "tests/daemon/suite.h"

#define KILL_GRACE_MS 1000

/* The handler's process and its child, from the first run's pids file. */
static long orphan_pids[2];

static void
orphans_teardown(void)
{
	/* A failed test leaves them running (they ignore TERM): end them. */
	for (int i = 0; i < 2; i++)
		if (orphan_pids[i] > 0 && proc_alive((pid_t)orphan_pids[i]))
			(void)kill((pid_t)orphan_pids[i], SIGKILL);
	if (orphan_pids[0] > 0)
		(void)killpg((pid_t)orphan_pids[0], SIGKILL);
	orphan_pids[0] = orphan_pids[1] = 0;
	suite_teardown();
}

TestSuite(orphans, .init = suite_setup, .fini = orphans_teardown,
	  .timeout = 120);

/*
 * Writes the handler: its first run ignores TERM, starts a child that does
 * too, writes both pids and waits for ever; a later run (the retry) writes
 * to "overlap" every process of the first run still alive, then succeeds.
 */
static const char *
orphans_script(void)
{
	char text[2048];
	const char *script;

	snprintf(text, sizeof(text),
		 "#!/bin/sh\n"
		 "d=%s\n"
		 "if [ -s $d/pids ]; then\n"
		 "  for p in $(cat $d/pids); do\n"
		 "    s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -c1)\n"
		 "    if [ -n \"$s\" ] && [ \"$s\" != Z ]; then\n"
		 "      echo \"$p $s\" >> $d/overlap\n"
		 "    fi\n"
		 "  done\n"
		 "  echo retry >> $d/runs\n"
		 "  exit 0\n"
		 "fi\n"
		 "trap '' TERM\n"
		 "(while :; do sleep 0.1; done) &\n"
		 "echo $$ $! > $d/pids.tmp && mv $d/pids.tmp $d/pids\n"
		 "wait\n",
		 d.dir);
	script = hd_write_file(&d, "orphan.sh", text);
	cr_assert(chmod(script, 0755) == 0);
	return script;
}

/* Starts the master with the handler and runs one job into it. */
static long long
orphans_start_job(void)
{
	char sections[1024], path[512];
	long long job;
	FILE *f;

	snprintf(sections, sizeof(sections),
		 "[entrypoint orphan]\ncommand = %s\nkill_grace = %ums\n"
		 "max_attempts = 3\n",
		 orphans_script(), KILL_GRACE_MS);
	suite_start(1, "heartbeat_timeout = 60s\n", sections);
	job = hd_enqueue(db, "orphan", NULL, 1, 0);
	snprintf(path, sizeof(path), "%s/pids", d.dir);
	for (unsigned long long dl = hd_now_ms() + T_EVENT_MS;
	     orphan_pids[1] == 0 && hd_now_ms() < dl;) {
		f = fopen(path, "r");
		if (f != NULL) {
			if (fscanf(f, "%ld %ld", &orphan_pids[0],
				   &orphan_pids[1]) != 2)
				orphan_pids[0] = orphan_pids[1] = 0;
			fclose(f);
		}
		if (orphan_pids[1] == 0)
			(void)hd_wait_exit(&d, 10);
	}
	cr_assert(orphan_pids[1] > 0, "handler never started:\n%s",
		  hd_read_log(&d));
	return job;
}

/* Samples until neither process lives or until deadline_ms (monotonic). */
static bool
orphans_gone_by(unsigned long long deadline_ms)
{
	for (;;) {
		bool alive = proc_alive((pid_t)orphan_pids[0]) ||
			     proc_alive((pid_t)orphan_pids[1]);

		if (!alive)
			return true;
		if (hd_now_ms() > deadline_ms)
			return false;
		(void)hd_wait_exit(&d, 10);
	}
}

static bool
orphans_file_exists(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", d.dir, name);
	return access(path, F_OK) == 0;
}

Test(orphans, a_killed_workers_handler_group_ends_before_its_retry)
{
	unsigned long long t0;
	long long job;
	pid_t worker;

	job = orphans_start_job();
	worker = suite_worker_pid(0);
	cr_assert(kill(worker, SIGKILL) == 0);
	t0 = hd_now_ms();
	cr_assert(orphans_gone_by(t0 + KILL_GRACE_MS + 1000),
		  "the handler outlived its worker by more than kill_grace "
		  "+ 1s: handler %s, its child %s\n%s",
		  proc_alive((pid_t)orphan_pids[0]) ? "alive" : "gone",
		  proc_alive((pid_t)orphan_pids[1]) ? "alive" : "gone",
		  hd_read_log(&d));
	/* The retry runs in the new worker once the old group is gone. */
	cr_assert_eq(
		hd_wait_scalar(
			db, 1, T_EVENT_MS,
			"SELECT count(*) FROM pgqueuer_log WHERE job_id = %lld "
			"AND status = 'successful'",
			job),
		1, "%s", hd_read_log(&d));
	cr_assert(orphans_file_exists("runs"), "the retry did not run");
	cr_assert(!orphans_file_exists("overlap"),
		  "the retry ran while the old handler was alive:\n%s",
		  hd_read_log(&d));
}

Test(orphans, quit_leaves_no_handler_behind)
{
	unsigned long long t0;
	long long job;
	int rc;

	job = orphans_start_job();
	hd_signal(&d, SIGQUIT);
	t0 = hd_now_ms();
	cr_assert(orphans_gone_by(t0 + KILL_GRACE_MS + 1000),
		  "the handler outlived QUIT by more than kill_grace + 1s: "
		  "handler %s, its child %s\n%s",
		  proc_alive((pid_t)orphan_pids[0]) ? "alive" : "gone",
		  proc_alive((pid_t)orphan_pids[1]) ? "alive" : "gone",
		  hd_read_log(&d));
	rc = hd_wait_exit(&d, T_EVENT_MS);
	cr_assert_eq(rc, 0, "master exit %d:\n%s", rc, hd_read_log(&d));
	cr_assert(!proc_alive((pid_t)orphan_pids[0]) &&
			  !proc_alive((pid_t)orphan_pids[1]),
		  "a handler process outlived the master");
	/* The job is back in the queue for the next master. */
	cr_assert_eq(hd_wait_scalar(db, 1, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer WHERE id = "
				    "%lld AND status = 'queued'",
				    job),
		     1, "%s", hd_read_log(&d));
	cr_assert(!orphans_file_exists("runs"), "the job ran again");
}
