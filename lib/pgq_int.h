/*
 * The inside of struct pgq, shared by lib/ and the consumer in worker/: the
 * connection, the rendered names and the prepared statements of one handle.
 */
#ifndef PGQ_LIB_INT_H
#define PGQ_LIB_INT_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "driver/driver.h"
#include "pgq.h"
#include "sql/sql.h"

struct pgq {
	PGconn *conn;
	bool owned; /* pgq_connect opened conn: pgq_free closes it */
	enum pgq_role role;
	struct sql_names names;
	struct driver_prepared prep;	 /* slot = enum sql_stmt */
	char *stmt_text[SQL_STMT_COUNT]; /* rendered on first use */
	int payload_check; /* enqueue checks max_payload: 1 yes, 0 no (no
			      limits table or payload function), -1 not
			      looked up yet */
};

/*
 * Runs statement s on q's connection, prepared on first use, with text or
 * binary parameters. Returns the result (caller clears) or NULL with err.
 */
PGresult *pgq_int_exec(struct pgq *q, enum sql_stmt s, int nparams,
		       const char *const *values, const int *lengths,
		       const int *formats, struct pgq_error *err);

/*
 * Runs n statements in one round trip, each in a transaction of its own
 * (driver_exec_pipeline); calls[i].slot is the enum sql_stmt, name and sql
 * are filled in here. Returns the number of statements that failed.
 */
int pgq_int_exec_pipeline(struct pgq *q, struct driver_call *calls, int n);

/* Encodes n values as a PostgreSQL text array literal ("{1,2,3}"); frees
 * with free(). */
char *pgq_int_int64_array(const int64_t *v, size_t n);

#endif
