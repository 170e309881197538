/*
 * The crash breaker heals: it counts only workers that die before
 * healthy_uptime, so kill -9 of healthy busy workers never trips it and the
 * pool stays at its size; workers that fail at boot trip it, then one held
 * slot is tried every respawn_backoff_max (half-open), and once that worker
 * stays up healthy_uptime the breaker closes and the pool is whole again,
 * without any signal. The state shows in the title, in STATUS and in the log.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include "tests/daemon/suite.h"

#define HEALTHY_MS 500

TestSuite(breaker, .init = suite_setup, .fini = suite_teardown, .timeout = 180);

/* Lines of the whole log holding "worker SLOT: what". */
static unsigned
breaker_count(unsigned slot, const char *what)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "worker %u: %s", slot, what);
	return hd_count_log(&d, needle);
}

/* Waits until there are at least want such lines. */
static bool
breaker_until_count(unsigned slot, const char *what, unsigned want)
{
	unsigned long long dl = hd_now_ms() + T_EVENT_MS;

	while (breaker_count(slot, what) < want) {
		if (hd_now_ms() > dl)
			return false;
		(void)hd_wait_exit(&d, 10);
	}
	return true;
}

Test(breaker, eleven_kills_of_healthy_busy_workers_leave_the_pool_whole)
{
	enum { WORKERS = 4, KILLS = 11 };
	unsigned long long ready_ms[WORKERS], t0;
	unsigned starts[WORKERS], readies;
	pid_t kids[16];

	/* crash_breaker_count and _window keep their defaults: 10 in 60s. */
	suite_start(WORKERS,
		    "healthy_uptime = 500ms\nrespawn_backoff_max = 2s\n"
		    "heartbeat_timeout = 60s\n",
		    "[entrypoint sleep]\nbuiltin = sleep\nmax_attempts = 0\n");
	t0 = hd_now_ms();
	for (unsigned i = 0; i < WORKERS; i++)
		ready_ms[i] = t0;
	(void)hd_enqueue(db, "sleep", "60s", 2 * WORKERS, 0);
	for (unsigned i = 0; i < WORKERS; i++) {
		cr_assert(breaker_until_count(i, "job start", 1),
			  "worker %u not busy:\n%s", i, hd_read_log(&d));
		starts[i] = breaker_count(i, "job start");
	}
	for (unsigned k = 0; k < KILLS; k++) {
		unsigned slot = k % WORKERS;
		pid_t victim = suite_worker_pid(slot);

		/* Healthy: up for longer than healthy_uptime. */
		while (hd_now_ms() < ready_ms[slot] + HEALTHY_MS + 200)
			(void)hd_wait_exit(&d, 10);
		readies = breaker_count(slot, "ready");
		cr_assert(kill(victim, SIGKILL) == 0);
		cr_assert(breaker_until_count(slot, "ready", readies + 1),
			  "kill %u: slot %u not respawned:\n%s", k + 1, slot,
			  hd_read_log(&d));
		ready_ms[slot] = hd_now_ms();
		/* Busy again: it took a job (its own, recovered, or another).
		 */
		cr_assert(breaker_until_count(slot, "job start",
					      starts[slot] + 1),
			  "kill %u: worker %u not busy:\n%s", k + 1, slot,
			  hd_read_log(&d));
		starts[slot] = breaker_count(slot, "job start");
	}
	/* All within crash_breaker_window, or the test proves nothing. */
	cr_assert_lt(hd_now_ms() - t0, 60000);
	cr_assert_eq(hd_count_log(&d, "crash breaker tripped"), 0, "%s",
		     hd_read_log(&d));
	for (unsigned long long dl = hd_now_ms() + T_EVENT_MS;
	     hd_live_children(d.pid, kids, 16) != WORKERS && hd_now_ms() < dl;)
		(void)hd_wait_exit(&d, 10);
	cr_assert_eq(hd_live_children(d.pid, kids, 16), WORKERS, "%s",
		     hd_read_log(&d));
}

/* Lines of log holding needle after the first line holding after. */
static unsigned
breaker_count_after(const char *log, const char *after, const char *needle)
{
	const char *p = strstr(log, after);
	unsigned n = 0;

	while (p != NULL && (p = strchr(p, '\n')) != NULL) {
		const char *end = strchr(++p, '\n');
		const char *hit = strstr(p, needle);

		if (hit != NULL && (end == NULL || hit < end))
			n++;
	}
	return n;
}

/* Waits for a datagram on fd holding want (STATUS lines). */
static bool
breaker_status_wait(int fd, const char *want, unsigned timeout_ms)
{
	unsigned long long deadline = hd_now_ms() + timeout_ms;
	char buf[1024];

	while (hd_now_ms() < deadline) {
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

		if (n > 0) {
			buf[n] = '\0';
			if (strstr(buf, want) != NULL)
				return true;
			continue;
		}
		(void)hd_wait_exit(&d, 5);
	}
	return false;
}

struct title_wait {
	pid_t pid;
	const char *want;
};

static bool
breaker_title_is(void *arg)
{
	const struct title_wait *t = arg;

	return strcmp(proc_cmdline(t->pid), t->want) == 0;
}

Test(breaker, boot_failures_trip_it_a_trial_retries_and_a_healthy_one_closes_it)
{
	struct title_wait t;
	struct sockaddr_un sun;
	char sections[1024], flag[300], needle[64], *log;
	unsigned long long deadline;
	unsigned trials, starts;
	pid_t kids[16];
	int fd;

	snprintf(flag, sizeof(flag), "%s/failing", d.dir);
	(void)hd_write_file(&d, "failing", "");
	snprintf(sections, sizeof(sections),
		 "[entrypoint flaky]\nmodule = %s\nfunction = flaky_handler\n",
		 suite_module("mod_flaky"));
	hd_write_ini(&d, "%s",
		     hd_ini_text(dsn, 2,
				 "respawn_backoff = 50ms\n"
				 "respawn_backoff_max = 1s\n"
				 "crash_breaker_count = 3\n"
				 "crash_breaker_window = 60s\n"
				 "healthy_uptime = 1s\n",
				 sections));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	cr_assert(snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify",
			   d.dir) < (int)sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(fd != -1);
	cr_assert(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0, "%s",
		  strerror(errno));
	setenv("NOTIFY_SOCKET", sun.sun_path, 1);
	setenv("PGQ_TEST_FLAKY", flag, 1);
	hd_start(&d, NULL);
	unsetenv("PGQ_TEST_FLAKY");
	unsetenv("NOTIFY_SOCKET");

	cr_assert(hd_wait_log(&d, "crash breaker tripped", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	t.pid = d.pid;
	t.want = "pgq-master: master breaker=open";
	cr_assert(hd_until(breaker_title_is, &t, T_EVENT_MS), "title \"%s\"",
		  proc_cmdline(d.pid));
	cr_assert(breaker_status_wait(fd, "breaker=open", T_EVENT_MS));
	/* Half-open: one slot is tried, and fails while the file is there. */
	cr_assert(hd_wait_log(&d, "crash breaker half-open", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_assert(hd_wait_log(&d, "trial failed", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	cr_assert(hd_wait_log(&d, "crash breaker half-open", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	/* After the trip, every start is a trial of one slot. */
	log = hd_read_log(&d);
	trials = breaker_count_after(log, "crash breaker tripped",
				     "crash breaker half-open");
	starts = breaker_count_after(log, "crash breaker tripped",
				     ": started pid=");
	cr_assert(trials >= 2 && (starts == trials || starts + 1 == trials),
		  "starts=%u trials=%u:\n%s", starts, trials, log);
	free(log);

	/* The cause goes away: the next trial stays up and closes it. */
	cr_assert(unlink(flag) == 0);
	cr_assert(hd_wait_log(&d, "crash breaker closed", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	for (unsigned i = 0; i < 2; i++) {
		snprintf(needle, sizeof(needle), "worker %u: ready", i);
		cr_assert(hd_count_log(&d, needle) > 0 ||
				  hd_wait_log(&d, needle, T_EVENT_MS),
			  "worker %u never ready:\n%s", i, hd_read_log(&d));
	}
	deadline = hd_now_ms() + T_EVENT_MS;
	while (hd_live_children(d.pid, kids, 16) != 2 && hd_now_ms() < deadline)
		(void)hd_wait_exit(&d, 10);
	cr_assert_eq(hd_live_children(d.pid, kids, 16), 2, "%s",
		     hd_read_log(&d));
	t.want = "pgq-master: master";
	cr_assert(hd_until(breaker_title_is, &t, T_EVENT_MS), "title \"%s\"",
		  proc_cmdline(d.pid));
	cr_assert(breaker_status_wait(fd, "breaker=closed", T_EVENT_MS));
	cr_assert_eq(hd_wait_exit(&d, 100), -1, "the master must stay up");
	close(fd);
}
