/*
 * Shared by the daemon suites: one master, one database and one connection
 * per test, set up in .init and always torn down in .fini (also after a
 * failed assertion, so no master outlives its test).
 */
#ifndef PGQ_TESTS_DAEMON_SUITE_H
#define PGQ_TESTS_DAEMON_SUITE_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/harness/daemon.h"
#include "tests/harness/harness.h"

/* Deadlines: generous for a loaded 2-core machine and sanitizer builds. */
#define T_START_MS 20000
#define T_EVENT_MS 15000

/*
 * A WHERE condition on pgqueuer_log: the row's traceback reads as PgQueuer's
 * TracebackRecord (its six keys, its job's id, pydantic's UTC timestamp, an
 * object as additional_context).
 */
#define SUITE_PGQUEUER_TRACEBACK                                               \
	"(SELECT array_agg(k ORDER BY k) "                                     \
	"FROM jsonb_object_keys(traceback) k) "                                \
	"= ARRAY['additional_context', 'exception_message', "                  \
	"'exception_type', 'job_id', 'timestamp', 'traceback'] "               \
	"AND (traceback->>'job_id')::bigint = job_id "                         \
	"AND traceback->>'timestamp' ~ "                                       \
	"'^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{6})?Z$' "          \
	"AND jsonb_typeof(traceback->'additional_context') = 'object'"

static struct hd d;
static PGconn *db;
static char dsn[256];

static void
suite_setup(void)
{
	hd_init(&d);
	snprintf(dsn, sizeof(dsn), "%s", harness_db_new(true));
	db = harness_connect(dsn);
}

static void
suite_teardown(void)
{
	hd_free(&d);
	if (db != NULL)
		PQfinish(db);
	db = NULL;
}

/* Writes the INI and starts the master; waits for n workers and LISTEN. */
static inline void
suite_start(unsigned workers, const char *pgq_extra, const char *sections)
{
	char ready[64];

	hd_write_ini(&d, "%s", hd_ini_text(dsn, workers, pgq_extra, sections));
	hd_start(&d, NULL);
	cr_assert(hd_wait_log(&d, "listening channel=", T_START_MS),
		  "master did not start listening:\n%s", hd_read_log(&d));
	for (unsigned i = 0; i < workers; i++) {
		snprintf(ready, sizeof(ready), "worker %u: ready", i);
		cr_assert(hd_count_log(&d, ready) > 0 ||
				  hd_wait_log(&d, ready, T_START_MS),
			  "worker %u not ready:\n%s", i, hd_read_log(&d));
	}
}

/* Waits until every worker said idle at least once after the cursor. */
static inline void
suite_wait_idle(unsigned workers)
{
	char idle[64];

	for (unsigned i = 0; i < workers; i++) {
		snprintf(idle, sizeof(idle), "worker %u: idle", i);
		cr_assert(hd_count_log(&d, idle) > 0 ||
				  hd_wait_log(&d, idle, T_EVENT_MS),
			  "worker %u never idle:\n%s", i, hd_read_log(&d));
	}
}

/* The pid of the latest process started in slot. */
static inline pid_t
suite_worker_pid(unsigned slot)
{
	char needle[64];
	long long pid;

	snprintf(needle, sizeof(needle), "worker %u: started", slot);
	pid = hd_log_value(&d, needle, "pid");
	cr_assert(pid > 0, "no pid for worker %u:\n%s", slot, hd_read_log(&d));
	return (pid_t)pid;
}

static inline const char *
suite_module(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s", harness_bin("tests/daemon/.libs/"));
	snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s.so",
		 name);
	return path;
}

#endif
