/*
 * PostgreSQL failures beyond a restart: a server that is down when the master
 * starts, max_connections exhausted, notifications that never arrive, and a
 * handler flooding its output. Each test runs a private cluster so it can
 * stop it or start it with its own settings.
 */
#include "config.h"

#include <sys/stat.h>

#include "tests/daemon/suite.h"

static char pgdir[256];
static char pgport[16];

/* Runs scripts/pg VERB pgdir [port]; returns its output (static). */
static const char *
pg_script(const char *verb, const char *port)
{
	static char out[1024];
	char cmd[1024];
	const char *src = getenv("PGQ_TOP_SRCDIR");
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "'%s/scripts/pg' %s '%s' %s 2>&1",
		 src != NULL ? src : "..", verb, pgdir,
		 port != NULL ? port : "");
	p = popen(cmd, "r");
	cr_assert(p != NULL, "popen: %s", strerror(errno));
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	cr_assert_eq(pclose(p), 0, "%s failed:\n%s", cmd, out);
	return out;
}

/* Starts a private cluster (options in PG_OPTS) and points libpq at it. */
static void
private_cluster(const char *opts)
{
	const char *env, *p;

	snprintf(pgdir, sizeof(pgdir), "/tmp/pgq-pgfail.XXXXXX");
	cr_assert(mkdtemp(pgdir) != NULL);
	cr_assert(chmod(pgdir, 0755) == 0);
	setenv("PG_OPTS", opts, 1);
	env = pg_script("start", NULL);
	unsetenv("PG_OPTS");
	p = strstr(env, "PGPORT=");
	cr_assert(p != NULL, "%s", env);
	snprintf(pgport, sizeof(pgport), "%.*s", (int)strcspn(p + 7, "\n"),
		 p + 7);
	setenv("PGHOST", pgdir, 1);
	setenv("PGPORT", pgport, 1);
	suite_setup();
}

static void
pgfail_teardown(void)
{
	suite_teardown();
	if (pgdir[0] != '\0') {
		(void)pg_script("stop", NULL);
		hd_rmtree_path(pgdir);
	}
}

/* The delay of the latest "retrying in Nms" line of the master; -1. */
static long long
last_retry_ms(void)
{
	static const char needle[] = "listen connection: retrying in ";
	char *log = hd_read_log(&d);
	const char *p = log, *hit = NULL;
	long long v = -1;

	while (p != NULL && (p = strstr(p, needle)) != NULL) {
		hit = p + sizeof(needle) - 1;
		p = hit;
	}
	if (hit != NULL)
		v = strtoll(hit, NULL, 10);
	free(log);
	return v;
}

TestSuite(pgfail, .fini = pgfail_teardown, .timeout = 180);

Test(pgfail, a_server_down_at_start_is_waited_for_with_backoff)
{
	long long first, later;

	private_cluster("");
	PQfinish(db);
	db = NULL;
	(void)pg_script("stop", NULL);
	hd_write_ini(
		&d, "%s",
		hd_ini_text(dsn, 1, "", "[entrypoint noop]\nbuiltin = noop\n"));
	hd_start(&d, NULL);
	/* A clear status, and the delay between attempts grows. */
	cr_assert(hd_wait_log(&d, "listen connection: retrying in", T_EVENT_MS),
		  "%s", hd_read_log(&d));
	first = last_retry_ms();
	cr_assert(hd_wait_log(&d, "listen connection: retrying in", T_EVENT_MS),
		  "%s", hd_read_log(&d));
	cr_assert(hd_wait_log(&d, "listen connection: retrying in", T_EVENT_MS),
		  "%s", hd_read_log(&d));
	later = last_retry_ms();
	cr_expect(first > 0 && later > first,
		  "no growing backoff: %lldms then %lldms", first, later);
	cr_assert(hd_count_log(&d, "cannot connect") > 0 ||
			  hd_wait_log(&d, "cannot connect", T_EVENT_MS),
		  "the worker did not say why it waits:\n%s", hd_read_log(&d));
	cr_assert(proc_alive(d.pid), "master gave up:\n%s", hd_read_log(&d));
	(void)pg_script("start", pgport);
	cr_assert(hd_wait_log(&d, "listening channel=", 60000), "%s",
		  hd_read_log(&d));
	cr_assert(hd_count_log(&d, "worker 0: ready") > 0 ||
			  hd_wait_log(&d, "worker 0: ready", 60000),
		  "%s", hd_read_log(&d));
	db = harness_connect(dsn);
	(void)hd_enqueue(db, "noop", NULL, 5, 0);
	cr_assert_eq(hd_wait_scalar(db, 5, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "status = 'successful'"),
		     5, "%s", hd_read_log(&d));
	hd_signal(&d, SIGTERM);
	cr_assert_eq(hd_wait_exit(&d, T_EVENT_MS), 0, "%s", hd_read_log(&d));
}

Test(pgfail, exhausted_connections_make_a_worker_back_off_without_a_storm)
{
	PGconn *hold[64];
	size_t nhold = 0;

	private_cluster("-c max_connections=8 "
			"-c superuser_reserved_connections=0");
	suite_start(2, "", "[entrypoint noop]\nbuiltin = noop\n");
	suite_wait_idle(2);
	/* Take every free connection slot. */
	while (nhold < 64) {
		PGconn *c = PQconnectdb(dsn);

		if (PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			break;
		}
		hold[nhold++] = c;
	}
	cr_assert(nhold > 0 && nhold < 64, "held %zu connections", nhold);
	/* A worker more: it finds no free connection slot. */
	hd_signal(&d, SIGTTIN);
	/* The new worker 2 retries with a clear line, three times... */
	for (int i = 0; i < 3; i++)
		cr_assert(hd_wait_log(&d, "cannot connect", T_EVENT_MS),
			  "no back-off line:\n%s", hd_read_log(&d));
	cr_expect(hd_count_log(&d, "too many clients") > 0,
		  "the line does not name too_many_connections:\n%s",
		  hd_read_log(&d));
	/* ...in one process: the master did not fork a storm. */
	cr_expect_eq(hd_count_log(&d, "worker 2: started"), 1, "%s",
		     hd_read_log(&d));
	while (nhold > 0)
		PQfinish(hold[--nhold]);
	cr_assert(hd_wait_log(&d, "worker 2: ready", 30000), "%s",
		  hd_read_log(&d));
	(void)hd_enqueue(db, "noop", NULL, 10, 0);
	cr_assert_eq(hd_wait_scalar(db, 10, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "status = 'successful'"),
		     10, "%s", hd_read_log(&d));
	cr_expect_eq(hd_count_log(&d, "worker 2: started"), 1, "%s",
		     hd_read_log(&d));
}

Test(pgfail, jobs_without_a_notification_run_by_the_safety_net_poll)
{
	PGconn *longtx;

	private_cluster("");
	suite_start(2, "poll_interval = 1s\n",
		    "[entrypoint noop]\nbuiltin = noop\n");
	suite_wait_idle(2);
	/* A session holding a transaction open, listening on the channel:
	 * the notification queue cannot advance past it. */
	longtx = harness_connect(dsn);
	PQclear(harness_query(longtx, "LISTEN ch_pgqueuer"));
	PQclear(harness_query(longtx, "BEGIN"));
	PQclear(harness_query(longtx, "SELECT txid_current()"));
	/* And no notification at all for these jobs. */
	PQclear(harness_query(db, "ALTER TABLE pgqueuer DISABLE TRIGGER "
				  "tg_pgqueuer_changed"));
	(void)hd_enqueue(db, "noop", NULL, 7, 0);
	cr_assert_eq(hd_wait_scalar(db, 7, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "status = 'successful'"),
		     7, "%s", hd_read_log(&d));
	PQclear(harness_query(longtx, "COMMIT"));
	PQfinish(longtx);
}

/* The latest worker's resident set, sampled while its job runs. */
static long max_rss_kb;
static pid_t rss_pid;

static bool
job_done_sampling_rss(void *arg)
{
	char path[64], line[256];
	long kb;
	FILE *f;

	(void)arg;
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)rss_pid);
	f = fopen(path, "r");
	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "VmRSS: %ld", &kb) == 1 &&
			    kb > max_rss_kb)
				max_rss_kb = kb;
		fclose(f);
	}
	return harness_scalar(db, "SELECT count(*) FROM pgqueuer_log WHERE "
				  "status IN ('successful','exception')") > 0;
}

Test(pgfail, a_handler_flooding_its_output_neither_blocks_nor_bloats)
{
	char sections[1024];
	const char *script;
	long base;

	private_cluster("");
	script = hd_write_file(&d, "flood.sh",
			       "#!/bin/sh\nhead -c 40000000 /dev/zero\n"
			       "head -c 40000000 /dev/zero >&2\nexit 0\n");
	cr_assert(chmod(script, 0755) == 0);
	snprintf(sections, sizeof(sections),
		 "[entrypoint flood]\ncommand = %s\ntimeout = 60s\n", script);
	suite_start(1, "", sections);
	suite_wait_idle(1);
	rss_pid = suite_worker_pid(0);
	max_rss_kb = 0;
	(void)job_done_sampling_rss(NULL);
	base = max_rss_kb;
	(void)hd_enqueue(db, "flood", NULL, 1, 0);
	cr_assert(hd_until(job_done_sampling_rss, NULL, 60000),
		  "the flooding job did not finish:\n%s", hd_read_log(&d));
	cr_expect_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer_log "
					"WHERE status = 'successful'"),
		     1, "%s", hd_read_log(&d));
	/* 80 MB went through the pipes; the worker kept only a tail. */
	cr_expect(max_rss_kb - base < 16 * 1024,
		  "worker RSS grew from %ld to %ld kB", base, max_rss_kb);
	cr_assert(proc_alive(rss_pid), "the worker died");
}

Test(pgfail, the_dsn_password_never_reaches_the_log)
{
	char secret_dsn[512];

	private_cluster("");
	/* Trust authentication: the password is accepted and ignored. */
	snprintf(secret_dsn, sizeof(secret_dsn), "%s password=secret123", dsn);
	hd_write_ini(&d, "%s",
		     hd_ini_text(secret_dsn, 1, "",
				 "[entrypoint noop]\nbuiltin = noop\n"));
	hd_start(&d, NULL);
	cr_assert(hd_wait_log(&d, "listening channel=", T_START_MS), "%s",
		  hd_read_log(&d));
	(void)hd_enqueue(db, "noop", NULL, 3, 0);
	cr_assert_eq(hd_wait_scalar(db, 3, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "status = 'successful'"),
		     3, "%s", hd_read_log(&d));
	/* Also in errors: the LISTEN connection is cut and reconnects. */
	PQclear(harness_query(db, "SELECT pg_terminate_backend(pid) FROM "
				  "pg_stat_activity WHERE application_name = "
				  "'pgq-master'"));
	cr_assert(hd_wait_log(&d, "listen connection lost", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	hd_signal(&d, SIGTERM);
	cr_assert_eq(hd_wait_exit(&d, T_EVENT_MS), 0, "%s", hd_read_log(&d));
	cr_expect_eq(hd_count_log(&d, "secret123"), 0,
		     "the password is in the log:\n%s", hd_read_log(&d));
}
