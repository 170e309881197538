/*
 * A PostgreSQL restart under a running master: each test has a private
 * cluster (the suite's shared one cannot be restarted under the other tests),
 * restarts it on the same port, and checks that the master's LISTEN
 * connection and the workers come back and that jobs inserted afterwards run.
 */
#include "config.h"

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

static void
outage_setup(void)
{
	const char *env, *p;

	snprintf(pgdir, sizeof(pgdir), "/tmp/pgq-outage.XXXXXX");
	cr_assert(mkdtemp(pgdir) != NULL);
	env = pg_script("start", NULL);
	p = strstr(env, "PGPORT=");
	cr_assert(p != NULL, "%s", env);
	snprintf(pgport, sizeof(pgport), "%.*s", (int)strcspn(p + 7, "\n"),
		 p + 7);
	setenv("PGHOST", pgdir, 1);
	setenv("PGPORT", pgport, 1);
	suite_setup();
}

static void
outage_teardown(void)
{
	suite_teardown();
	if (pgdir[0] != '\0') {
		(void)pg_script("stop", NULL);
		hd_rmtree_path(pgdir);
	}
}

TestSuite(outage, .init = outage_setup, .fini = outage_teardown,
	  .timeout = 180);

Test(outage, a_server_restart_is_survived_and_later_jobs_run)
{
	PGconn *fresh;
	long long ok;

	suite_start(2, "poll_interval = 60s\n",
		    "[entrypoint noop]\nbuiltin = noop\n");
	suite_wait_idle(2);
	PQfinish(db);
	db = NULL;
	(void)pg_script("stop", NULL);
	cr_assert(hd_wait_log(&d, "listen connection lost", T_EVENT_MS), "%s",
		  hd_read_log(&d));
	(void)pg_script("start", pgport);
	cr_assert(hd_wait_log(&d, "(reconnected)", 30000), "%s",
		  hd_read_log(&d));
	fresh = harness_connect(dsn);
	db = fresh;
	(void)hd_enqueue(db, "noop", NULL, 5, 0);
	ok = hd_wait_scalar(db, 5, 30000,
			    "SELECT count(*) FROM pgqueuer_log WHERE status = "
			    "'successful'");
	cr_assert_eq(ok, 5, "%s", hd_read_log(&d));
	/* Nothing crashed on the way: the same workers, no respawn. */
	cr_assert_eq(hd_count_log(&d, ": died:"), 0, "%s", hd_read_log(&d));
	hd_signal(&d, SIGTERM);
	cr_assert_eq(hd_wait_exit(&d, T_EVENT_MS), 0, "%s", hd_read_log(&d));
}
