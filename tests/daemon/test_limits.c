/*
 * Limits seen from outside: two pgq-master processes with four workers each
 * share one queue. With concurrency_limit = 2 the picked rows of the
 * entrypoint, sampled every few milliseconds while they drain, never pass
 * 2; with requests_per_second = 10 the claims over a window come within
 * 10 % of the rate, and idle workers wait for their ticket rather than
 * poll. pgq.ini(5) documents the keys and the table pgq adds.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "tests/harness/daemon.h"
#include "tests/harness/harness.h"

#define T_START_MS 20000
#define T_EVENT_MS 15000

static struct hd d1, d2;
static PGconn *db;
static char dsn[256];

static void
setup(void)
{
	hd_init(&d1);
	hd_init(&d2);
	snprintf(dsn, sizeof(dsn), "%s", harness_db_new(true));
	db = harness_connect(dsn);
}

static void
teardown(void)
{
	hd_free(&d1);
	hd_free(&d2);
	if (db != NULL)
		PQfinish(db);
	db = NULL;
}

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 240);

static void
pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Starts master d with workers and sections; waits until all are ready. */
static void
start(struct hd *d, unsigned workers, const char *sections)
{
	char ready[64];

	hd_write_ini(
		d, "%s",
		hd_ini_text(dsn, workers, "poll_interval = 60s\n", sections));
	hd_start(d, NULL);
	cr_assert(hd_wait_log(d, "listening channel=", T_START_MS),
		  "master did not start listening:\n%s", hd_read_log(d));
	for (unsigned i = 0; i < workers; i++) {
		snprintf(ready, sizeof(ready), "worker %u: ready", i);
		cr_assert(hd_count_log(d, ready) > 0 ||
				  hd_wait_log(d, ready, T_START_MS),
			  "worker %u not ready:\n%s", i, hd_read_log(d));
	}
}

/* Stops master d with SIGTERM and waits for its exit. */
static void
stop(struct hd *d)
{
	hd_signal(d, SIGTERM);
	cr_expect_eq(hd_wait_exit(d, T_EVENT_MS), 0, "%s", hd_read_log(d));
}

Test(limits, two_masters_never_run_more_than_the_limit)
{
	static const char sections[] = "[entrypoint lim]\n"
				       "builtin = sleep\n"
				       "sleep = 100ms\n"
				       "concurrency_limit = 2\n";
	unsigned long long deadline;
	long long n, max = 0, done = 0, samples = 0, at_two = 0;

	start(&d1, 4, sections);
	start(&d2, 4, sections);
	(void)hd_enqueue(db, "lim", NULL, 40, 0);
	deadline = hd_now_ms() + 60000;
	while (done < 40 && hd_now_ms() < deadline) {
		n = harness_scalar(db, "SELECT count(*) FROM pgqueuer WHERE "
				       "status = 'picked' AND entrypoint = "
				       "'lim'");
		if (n > max)
			max = n;
		at_two += n == 2;
		samples++;
		done = harness_scalar(db, "SELECT count(*) FROM pgqueuer_log "
					  "WHERE status = 'successful'");
		pause_ms(3);
	}
	cr_assert_eq(done, 40, "not drained:\n%s", hd_read_log(&d1));
	cr_log_info("concurrency_limit = 2: max picked %lld, %lld of %lld "
		    "samples at 2",
		    max, at_two, samples);
	cr_expect_leq(max, 2, "%lld picked at once", max);
	cr_expect_gt(max, 0, "never saw a picked job");
	/*
	 * Both masters claimed: the limit is shared, not per host. (Which
	 * one runs the jobs is up to the claims: a worker that ends a job
	 * claims the next at once, so one master may keep both slots.)
	 */
	cr_expect_gt(hd_count_log(&d1, "limited claim entrypoint=lim"), 0);
	cr_expect_gt(hd_count_log(&d2, "limited claim entrypoint=lim"), 0);
	cr_log_info("jobs run by master 1: %u, master 2: %u",
		    hd_count_log(&d1, "job start"),
		    hd_count_log(&d2, "job start"));
	/* At the limit most of the time: the slots did not sit idle. */
	cr_expect_gt(at_two * 2, samples, "%lld of %lld samples at 2", at_two,
		     samples);
	stop(&d1);
	stop(&d2);
}

Test(limits, two_masters_together_claim_at_the_rate)
{
	static const char sections[] = "[entrypoint rated]\n"
				       "builtin = sleep\n"
				       "sleep = 100ms\n"
				       "requests_per_second = 10\n";
	const char *w = getenv("PGQ_LIMITS_WINDOW_S");
	long window_s = w != NULL ? strtol(w, NULL, 10) : 6;
	unsigned long long deadline;
	long long in_window, claims;
	double rate, first;
	unsigned jobs;

	cr_assert_gt(window_s, 0);
	/* The burst (10), a second to settle, the window, and some left. */
	jobs = (unsigned)(10 + 10 * (window_s + 3));
	start(&d1, 4, sections);
	start(&d2, 4, sections);
	(void)hd_enqueue(db, "rated", NULL, jobs, 0);
	/* The window starts a second after the first claim, past the burst. */
	cr_assert_eq(
		hd_wait_scalar(db, 1, T_EVENT_MS,
			       "SELECT least(count(*), 1) FROM pgqueuer_log "
			       "WHERE status = 'picked'"),
		1);
	first = strtod(harness_text(db, "SELECT extract(epoch FROM "
					"min(created)) FROM pgqueuer_log "
					"WHERE status = 'picked'"),
		       NULL);
	deadline = hd_now_ms() + (unsigned long long)(window_s + 1) * 1000 +
		   T_EVENT_MS;
	while (harness_scalar(db,
			      "SELECT count(*) FROM pgqueuer_log WHERE status "
			      "= 'picked' AND extract(epoch FROM created) >= "
			      "%.6f",
			      first + 1.0 + (double)window_s) == 0) {
		cr_assert_lt(hd_now_ms(), deadline, "claims stopped:\n%s",
			     hd_read_log(&d1));
		pause_ms(50);
	}
	in_window = harness_scalar(db,
				   "SELECT count(*) FROM pgqueuer_log WHERE "
				   "status = 'picked' AND extract(epoch FROM "
				   "created) >= %.6f AND extract(epoch FROM "
				   "created) < %.6f",
				   first + 1.0, first + 1.0 + (double)window_s);
	rate = (double)in_window / (double)window_s;
	claims = hd_count_log(&d1, "limited claim entrypoint=rated") +
		 hd_count_log(&d2, "limited claim entrypoint=rated");
	cr_log_info("requests_per_second = 10 over %lds: %lld claimed, "
		    "%.2f/s; %lld claim transactions in all",
		    window_s, in_window, rate, claims);
	cr_expect(rate >= 9.0 && rate <= 11.0, "%.2f/s, want 10 +- 10%%", rate);
	/* Both masters claimed some of them. */
	cr_expect_gt(hd_count_log(&d1, "job start"), 0);
	cr_expect_gt(hd_count_log(&d2, "job start"), 0);
	/*
	 * No polling: eight idle workers waiting on the bucket come back
	 * with their tickets, a few claims per job, not eight per token.
	 */
	cr_expect_lt(claims, 4 * (10 + 10 * (window_s + 1)) + 40,
		     "%lld claims for about %ld jobs", claims,
		     10 + 10 * (window_s + 1));
	stop(&d1);
	stop(&d2);
}

/* Reads a whole file into a fresh string. */
static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	cr_assert_not_null(fp, "%s: %s", path, strerror(errno));
	cr_assert_eq(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	cr_assert_gt(n, 0);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

Test(limits, the_man_page_documents_the_keys_and_the_table)
{
	static const char *const want[] = {
		".It Ic concurrency_limit Ns = Ns",
		".It Ic requests_per_second Ns = Ns",
		".It Ic burst Ns = Ns",
		".Sh LIMITS",
		".Ss OBJECTS PGQ ADDS",
		"pgqueuer_pgq_limits",
		"run pgq upgrade",
	};
	const char *top = getenv("PGQ_TOP_SRCDIR");
	char path[4096];
	char *man;

	cr_assert_not_null(top, "run through tests/harness/run-test");
	snprintf(path, sizeof(path), "%s/doc/pgq.ini.5", top);
	man = slurp(path);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_expect_not_null(strstr(man, want[i]), "pgq.ini(5) lacks %s",
				   want[i]);
	free(man);
}
