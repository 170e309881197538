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

/* Prepares statement slot unless it is ready. Returns 0 or -1 with err. */
static int
prepare_once(PGconn *conn, struct driver_prepared *p, int slot,
	     const char *name, const char *sql, int nparams,
	     struct pgq_error *err)
{
	PGresult *r;

	if (slot < 0 || slot >= DRIVER_MAX_PREPARED) {
		driver_error_set(
			err, PGQ_ERR_INVALID,
			"prepared statement slot out of range: slot=%d", slot);
		return -1;
	}
	if (p->ready[slot])
		return 0;
	r = PQprepare(conn, name, sql, nparams, NULL);
	if (r == NULL || !result_ok(r)) {
		driver_error_from_result(err, conn, r);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	p->ready[slot] = true;
	return 0;
}

PGresult *
driver_exec_prepared(PGconn *conn, struct driver_prepared *p, int slot,
		     const char *name, const char *sql, int nparams,
		     const char *const *values, const int *lengths,
		     const int *formats, int result_format,
		     struct pgq_error *err)
{
	PGresult *r;

	if (prepare_once(conn, p, slot, name, sql, nparams, err) == -1)
		return NULL;
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

/*
 * Reads what one call of a pipeline returned: its result, the NULL that
 * ends it, then the PGRES_PIPELINE_SYNC of its own sync. The first result
 * or error is kept. Returns -1 when the connection gave out (nothing more
 * can be read).
 */
static int
pipeline_read(PGconn *conn, struct driver_call *call)
{
	PGresult *r;
	bool synced = false, kept = false;
	int nulls = 0;

	while (!synced) {
		r = PQgetResult(conn);
		if (r == NULL) {
			/* One NULL ends the call's results; a second one in a
			 * row means nothing more will come. */
			if (PQstatus(conn) != CONNECTION_OK || ++nulls > 1)
				break;
			continue;
		}
		nulls = 0;
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			synced = true;
		} else if (!kept && result_ok(r)) {
			call->res = r;
			kept = true;
			continue;
		} else if (!kept) {
			driver_error_from_result(&call->err, conn, r);
			kept = true;
		}
		PQclear(r);
	}
	return synced ? 0 : -1;
}

/*
 * Leaves pipeline mode. Results left unread (a send that failed halfway
 * leaves a statement without its sync) are synced and read out first;
 * when even that fails the connection stays in pipeline mode, and the
 * caller must reset it (PQreset leaves pipeline mode).
 */
static void
pipeline_leave(PGconn *conn)
{
	PGresult *r;
	int nulls = 0;

	if (PQexitPipelineMode(conn) == 1 || PQstatus(conn) != CONNECTION_OK ||
	    PQpipelineSync(conn) != 1)
		return;
	while (PQexitPipelineMode(conn) != 1 &&
	       PQstatus(conn) == CONNECTION_OK) {
		r = PQgetResult(conn);
		if (r == NULL) {
			if (++nulls > 2)
				break;
			continue;
		}
		nulls = 0;
		PQclear(r);
	}
}

int
driver_exec_pipeline(PGconn *conn, struct driver_prepared *p,
		     struct driver_call *calls, int n)
{
	int failed = 0, sent = 0;

	for (int i = 0; i < n; i++) {
		calls[i].res = NULL;
		driver_error_clear(&calls[i].err);
	}
	for (int i = 0; i < n; i++)
		if (prepare_once(conn, p, calls[i].slot, calls[i].name,
				 calls[i].sql, calls[i].nparams,
				 &calls[i].err) == -1)
			goto fail_all;
	if (PQenterPipelineMode(conn) != 1) {
		driver_error_from_result(&calls[0].err, conn, NULL);
		goto fail_all;
	}
	for (; sent < n; sent++) {
		struct driver_call *c = &calls[sent];

		if (PQsendQueryPrepared(conn, c->name, c->nparams, c->values,
					NULL, NULL, 0) != 1 ||
		    PQpipelineSync(conn) != 1) {
			driver_error_from_result(&c->err, conn, NULL);
			break;
		}
	}
	/* What was sent is read back, also after a failed send. */
	for (int i = 0; i < sent; i++)
		if (pipeline_read(conn, &calls[i]) == -1)
			break;
	pipeline_leave(conn);
fail_all:
	/* A call with neither result nor error got cut off: the connection
	 * says why. */
	for (int i = 0; i < n; i++) {
		if (calls[i].res != NULL)
			continue;
		if (calls[i].err.klass == PGQ_OK)
			driver_error_from_result(&calls[i].err, conn, NULL);
		failed++;
	}
	/* A lost connection loses its prepared statements too. */
	if (failed > 0 && PQstatus(conn) != CONNECTION_OK)
		driver_prepared_reset(p);
	return failed;
}
