/*
 * Test harness for the database and daemon suites: a fresh database per test
 * on the cluster that run-test started, and small query helpers that fail the
 * test with the server's message.
 */
#ifndef PGQ_HARNESS_H
#define PGQ_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

/*
 * Creates a database of its own for the calling test (schema installed with
 * the default names when with_schema) and returns its conninfo (static
 * storage, valid until the next call). Also sets PGDATABASE to it.
 */
const char *harness_db_new(bool with_schema);
/* Opens a connection or fails the test. */
PGconn *harness_connect(const char *conninfo);
/* Runs sql (printf format) and fails the test unless it succeeds. */
PGresult *harness_query(PGconn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Runs sql and returns the first column of the first row as a number. */
long long harness_scalar(PGconn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Same, as text (static storage, valid until the next call). */
const char *harness_text(PGconn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Makes role a login role that must give password (scram-sha-256 in the
 * cluster's pg_hba.conf; every other role keeps trust) and waits until the
 * server has reloaded it. Skips the test on a cluster the harness did not
 * start, whose pg_hba.conf is not ours to rewrite.
 */
void harness_password_role(const char *role, const char *password);

/* Path of a program built in the tree (e.g. "pgq-master"). */
const char *harness_bin(const char *name);

#endif
