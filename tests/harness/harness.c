/*
 * The per-test database: CREATE DATABASE on the suite's throwaway cluster,
 * named after the test process so parallel tests never share one.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "sql/sql.h"
#include "tests/harness/harness.h"

static char harness_conninfo[256];
static char harness_textbuf[4096];
static unsigned harness_counter;

PGconn *
harness_connect(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	cr_assert(PQstatus(c) == CONNECTION_OK, "connect %s: %s", conninfo,
		  PQerrorMessage(c));
	return c;
}

static PGresult *harness_vquery(PGconn *conn, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static PGresult *
harness_vquery(PGconn *conn, const char *fmt, va_list ap)
{
	char sql[8192];
	PGresult *r;

	vsnprintf(sql, sizeof(sql), fmt, ap);
	r = PQexec(conn, sql);
	cr_assert(PQresultStatus(r) == PGRES_TUPLES_OK ||
			  PQresultStatus(r) == PGRES_COMMAND_OK,
		  "query failed: %s: %s", sql, PQerrorMessage(conn));
	return r;
}

PGresult *
harness_query(PGconn *conn, const char *fmt, ...)
{
	va_list ap;
	PGresult *r;

	va_start(ap, fmt);
	r = harness_vquery(conn, fmt, ap);
	va_end(ap);
	return r;
}

long long
harness_scalar(PGconn *conn, const char *fmt, ...)
{
	va_list ap;
	PGresult *r;
	long long v;

	va_start(ap, fmt);
	r = harness_vquery(conn, fmt, ap);
	va_end(ap);
	cr_assert(PQntuples(r) >= 1, "no row");
	v = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

const char *
harness_text(PGconn *conn, const char *fmt, ...)
{
	va_list ap;
	PGresult *r;

	va_start(ap, fmt);
	r = harness_vquery(conn, fmt, ap);
	va_end(ap);
	cr_assert(PQntuples(r) >= 1, "no row");
	snprintf(harness_textbuf, sizeof(harness_textbuf), "%s",
		 PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return harness_textbuf;
}

const char *
harness_db_new(bool with_schema)
{
	char name[64];
	PGconn *admin, *c;

	cr_assert(getenv("PGHOST") != NULL, "PGHOST unset: run database suites "
					    "through tests/harness/run-test");
	snprintf(name, sizeof(name), "t_%ld_%u", (long)getpid(),
		 harness_counter++);
	admin = harness_connect(
		"dbname=postgres options=-cclient_min_messages=warning");
	PQclear(harness_query(admin, "DROP DATABASE IF EXISTS %s", name));
	PQclear(harness_query(admin, "CREATE DATABASE %s", name));
	PQfinish(admin);
	snprintf(harness_conninfo, sizeof(harness_conninfo), "dbname=%s", name);
	setenv("PGDATABASE", name, 1);
	if (with_schema) {
		struct sql_names n;
		struct pgq_error err;

		cr_assert(sql_names_init(&n, NULL, NULL, NULL, &err) == 0);
		c = harness_connect(harness_conninfo);
		cr_assert(sql_install(c, &n, SQL_DURABLE, &err) == 0,
			  "install: %s", err.message);
		PQfinish(c);
	}
	return harness_conninfo;
}

/* True once a login as role without a password is refused. */
static bool
harness_password_asked(const char *role)
{
	char ci[256];
	PGconn *c;
	bool asked;

	snprintf(ci, sizeof(ci), "dbname=postgres user=%s password=''", role);
	c = PQconnectdb(ci);
	asked = PQstatus(c) != CONNECTION_OK;
	PQfinish(c);
	return asked;
}

void
harness_password_role(const char *role, const char *password)
{
	PGconn *admin;
	int tries;

	if (getenv("PGQ_TEST_PGDIR") == NULL)
		cr_skip_test("the cluster was not started by run-test: its "
			     "pg_hba.conf is left alone");
	admin = harness_connect(
		"dbname=postgres options=-cclient_min_messages=warning");
	/* One writer at a time: several tests may add their roles. */
	PQclear(harness_query(admin, "SELECT pg_advisory_lock(20261201)"));
	PQclear(harness_query(admin,
			      "DO $$ BEGIN CREATE ROLE %s LOGIN PASSWORD '%s'; "
			      "EXCEPTION WHEN duplicate_object THEN "
			      "ALTER ROLE %s LOGIN PASSWORD '%s'; END $$",
			      role, password, role, password));
	/*
	 * The password roles' lines first, then the file's own rules (tabs
	 * made spaces: COPY would escape them), without comments. Read before
	 * COPY opens the file, which empties it.
	 */
	PQclear(harness_query(
		admin,
		"CREATE TEMP TABLE hba AS "
		"SELECT 'local all %s scram-sha-256' AS l, 0 AS o "
		"UNION ALL SELECT regexp_replace(l, '\\t', ' ', 'g'), "
		"row_number() OVER () "
		"FROM regexp_split_to_table("
		"pg_read_file(current_setting('hba_file')), '\\n') l "
		"WHERE l !~ '^\\s*(#|$)' AND l <> 'local all %s scram-sha-256'",
		role, role));
	PQclear(harness_query(admin,
			      "COPY (SELECT l FROM hba ORDER BY o) TO '%s'",
			      harness_text(admin, "SHOW hba_file")));
	PQclear(harness_query(admin, "SELECT pg_reload_conf()"));
	for (tries = 0; tries < 1000 && !harness_password_asked(role); tries++)
		usleep(10000);
	PQclear(harness_query(admin, "SELECT pg_advisory_unlock(20261201)"));
	PQfinish(admin);
	cr_assert(tries < 1000, "the server never asked %s for a password",
		  role);
}

const char *
harness_bin(const char *name)
{
	static char path[4096];
	const char *top = getenv("PGQ_TOP_BUILDDIR");

	snprintf(path, sizeof(path), "%s/%s", top != NULL ? top : ".", name);
	return path;
}
