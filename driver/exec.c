/*
 * Blocking execution for the command line, the enqueue API and the worker:
 * simple queries, parameterised statements, and prepared statements that are
 * prepared on first use of a connection.
 */
#include "config.h"

#include <string.h>

#include "driver/driver.h"

static bool
result_ok(const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);

	return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}

int
driver_exec_simple(PGconn *conn, const char *sql, struct pgq_error *err)
{
	PGresult *r = PQexec(conn, sql);
	int rc = 0;

	if (r == NULL || !result_ok(r)) {
		driver_error_from_result(err, conn, r);
		rc = -1;
	}
	PQclear(r);
	return rc;
}

PGresult *
driver_exec_params(PGconn *conn, const char *sql, int nparams,
		   const char *const *values, const int *lengths,
		   const int *formats, int result_format, struct pgq_error *err)
{
	PGresult *r = PQexecParams(conn, sql, nparams, NULL, values, lengths,
				   formats, result_format);

	if (r == NULL || !result_ok(r)) {
		driver_error_from_result(err, conn, r);
		PQclear(r);
		return NULL;
	}
	return r;
}

void
driver_prepared_reset(struct driver_prepared *p)
{
	memset(p, 0, sizeof(*p));
}

PGresult *
driver_exec_prepared(PGconn *conn, struct driver_prepared *p, int slot,
		     const char *name, const char *sql, int nparams,
		     const char *const *values, const int *lengths,
		     const int *formats, int result_format,
		     struct pgq_error *err)
{
	PGresult *r;

	if (slot < 0 || slot >= DRIVER_MAX_PREPARED) {
		driver_error_set(
			err, PGQ_ERR_INVALID,
			"prepared statement slot out of range: slot=%d", slot);
		return NULL;
	}
	if (!p->ready[slot]) {
		r = PQprepare(conn, name, sql, nparams, NULL);
		if (r == NULL || !result_ok(r)) {
			driver_error_from_result(err, conn, r);
			PQclear(r);
			return NULL;
		}
		PQclear(r);
		p->ready[slot] = true;
	}
	r = PQexecPrepared(conn, name, nparams, values, lengths, formats,
			   result_format);
	if (r == NULL || !result_ok(r)) {
		driver_error_from_result(err, conn, r);
		/* A lost connection loses its prepared statements too. */
		if (PQstatus(conn) != CONNECTION_OK)
			driver_prepared_reset(p);
		PQclear(r);
		return NULL;
	}
	return r;
}
