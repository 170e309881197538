/*
 * Error classes from SQLSTATE, in one place. The class decides what a caller
 * does next (reconnect, retry, stop a drain and tell the operator to install,
 * upgrade, grant or log in differently); the server's message and SQLSTATE
 * are kept verbatim for the log.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "driver/driver.h"

void
driver_error_clear(struct pgq_error *err)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
	err->klass = PGQ_OK;
}

void
driver_error_set(struct pgq_error *err, enum pgq_error_class klass,
		 const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	driver_error_clear(err);
	err->klass = klass;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

void
driver_error_hint(struct pgq_error *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
	va_end(ap);
}

enum pgq_error_class
driver_error_classify(const char *sqlstate)
{
	if (sqlstate == NULL || sqlstate[0] == '\0')
		return PGQ_ERR_CONNECTION;
	/* class 08: connection exception; 57P01..57P03: shutdown, cannot
	 * connect */
	if (strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
	    strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0)
		return PGQ_ERR_CONNECTION;
	if (strcmp(sqlstate, "23505") == 0)
		return PGQ_ERR_UNIQUE;
	/*
	 * undefined table, undefined object (the enum), undefined function,
	 * no such schema; an undefined column: pgq's statements name only
	 * columns of the queue's layout, so an older layout (PgQueuer 1.3
	 * has no slot column)
	 */
	if (strcmp(sqlstate, "42P01") == 0 || strcmp(sqlstate, "42704") == 0 ||
	    strcmp(sqlstate, "42883") == 0 || strcmp(sqlstate, "3F000") == 0 ||
	    strcmp(sqlstate, "42703") == 0)
		return PGQ_ERR_UNDEFINED_TABLE;
	/* read_only_sql_transaction: a standby, or a read-only default */
	if (strcmp(sqlstate, "25006") == 0)
		return PGQ_ERR_READ_ONLY;
	/* class 28: invalid authorization (28000, 28P01); no such database */
	if (strncmp(sqlstate, "28", 2) == 0 || strcmp(sqlstate, "3D000") == 0)
		return PGQ_ERR_AUTH;
	if (strcmp(sqlstate, "42501") == 0)
		return PGQ_ERR_PERMISSION;
	if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0)
		return PGQ_ERR_SERIALIZATION;
	/* program_limit_exceeded: pgq raises it for max_payload */
	if (strcmp(sqlstate, "54000") == 0)
		return PGQ_ERR_LIMIT;
	return PGQ_ERR_OTHER;
}

bool
driver_error_fatal(const struct pgq_error *err)
{
	switch (err->klass) {
	case PGQ_ERR_UNDEFINED_TABLE:
	case PGQ_ERR_READ_ONLY:
	case PGQ_ERR_AUTH:
	case PGQ_ERR_PERMISSION:
	case PGQ_ERR_CHECK:
	case PGQ_ERR_INVALID:
		return true;
	case PGQ_OK:
	case PGQ_ERR_CONNECTION:
	case PGQ_ERR_UNIQUE:
	case PGQ_ERR_SERIALIZATION:
	case PGQ_ERR_LIMIT:
	case PGQ_ERR_OTHER:
		break;
	}
	return false;
}

const char *
driver_error_cause(const struct pgq_error *err)
{
	switch (err->klass) {
	case PGQ_ERR_UNDEFINED_TABLE:
		return strcmp(err->sqlstate, "42703") == 0
			       ? "the queue has an older layout"
			       : "the queue tables are missing";
	case PGQ_ERR_READ_ONLY:
		return "the database is read-only";
	case PGQ_ERR_AUTH:
		return "the server refused the login";
	case PGQ_ERR_PERMISSION:
		return "permission denied";
	case PGQ_ERR_CHECK:
		return "the connection check failed";
	case PGQ_ERR_INVALID:
		return "invalid settings";
	case PGQ_ERR_CONNECTION:
		return "the database cannot be reached";
	case PGQ_OK:
	case PGQ_ERR_UNIQUE:
	case PGQ_ERR_SERIALIZATION:
	case PGQ_ERR_LIMIT:
	case PGQ_ERR_OTHER:
		break;
	}
	return "a database error";
}

/* The hint that goes with a class when the server gave none. */
static void
class_hint(struct pgq_error *err)
{
	const char *h = NULL;

	switch (err->klass) {
	case PGQ_ERR_UNDEFINED_TABLE:
		h = strcmp(err->sqlstate, "42703") == 0
			    ? "the queue has an older layout than pgq needs "
			      "(PgQueuer 1.3's, say): run pgq upgrade"
			    : "the queue tables are missing in this database: "
			      "run pgq install (or check the prefix and "
			      "schema)";
		break;
	case PGQ_ERR_CONNECTION:
		h = "check that the server is running and the connection "
		    "settings (dsn, PGHOST, PGPORT) are right";
		break;
	case PGQ_ERR_UNIQUE:
		h = "a job with the same dedupe_key is already queued or "
		    "running; enqueue with on-conflict skip to leave it out";
		break;
	case PGQ_ERR_SERIALIZATION:
		h = "a concurrent transaction conflicted: retry";
		break;
	case PGQ_ERR_LIMIT:
		h = "a limit of the queue was exceeded; retrying the same "
		    "request fails again";
		break;
	case PGQ_ERR_READ_ONLY:
		h = "connect to the primary, or turn "
		    "default_transaction_read_only off for this database or "
		    "role";
		break;
	case PGQ_ERR_AUTH:
		h = "check the user, the password (PGPASSWORD, ~/.pgpass), "
		    "the database name and pg_hba.conf";
		break;
	case PGQ_ERR_PERMISSION:
		h = "grant the role SELECT, INSERT, UPDATE and DELETE on the "
		    "queue's tables and USAGE on its sequences, or connect as "
		    "their owner";
		break;
	case PGQ_OK:
	case PGQ_ERR_CHECK:
	case PGQ_ERR_INVALID:
	case PGQ_ERR_OTHER:
		break;
	}
	if (h != NULL)
		snprintf(err->hint, sizeof(err->hint), "%s", h);
}

/* Copies s without its trailing newlines, which libpq messages carry. */
static void
copy_trimmed(char *dst, size_t len, const char *s)
{
	size_t n;

	snprintf(dst, len, "%s", s != NULL ? s : "");
	n = strlen(dst);
	while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' '))
		dst[--n] = '\0';
}

void
driver_error_from_result(struct pgq_error *err, PGconn *conn,
			 const PGresult *res)
{
	const char *state = NULL, *msg = NULL, *hint = NULL;

	if (err == NULL)
		return;
	driver_error_clear(err);
	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		if (msg == NULL)
			msg = PQresultErrorMessage(res);
	}
	if ((msg == NULL || msg[0] == '\0') && conn != NULL)
		msg = PQerrorMessage(conn);
	if ((state == NULL || state[0] == '\0') && conn != NULL &&
	    PQstatus(conn) == CONNECTION_OK && res != NULL &&
	    PQresultStatus(res) != PGRES_FATAL_ERROR)
		state = "XX000";
	err->klass = driver_error_classify(state);
	if (state != NULL)
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state);
	copy_trimmed(err->message, sizeof(err->message),
		     msg != NULL && msg[0] != '\0' ? msg : "unknown error");
	/* A server's hint about a missing relation or column ("perhaps you
	 * meant...") helps less than the pgq command that creates it. */
	if (hint != NULL && err->klass != PGQ_ERR_UNDEFINED_TABLE)
		copy_trimmed(err->hint, sizeof(err->hint), hint);
	else
		class_hint(err);
}

bool
driver_trouble_note(struct driver_trouble *t, const struct pgq_error *err)
{
	bool same = t->klass == err->klass &&
		    strcmp(t->sqlstate, err->sqlstate) == 0;

	if (t->klass == PGQ_OK)
		t->since_ms = clock_mono_ms();
	t->failures++;
	t->klass = err->klass;
	snprintf(t->sqlstate, sizeof(t->sqlstate), "%s", err->sqlstate);
	return !same;
}

bool
driver_trouble_over(struct driver_trouble *t, unsigned *failures,
		    uint64_t *lasted_ms)
{
	if (t->klass == PGQ_OK)
		return false;
	*failures = t->failures;
	*lasted_ms = clock_mono_ms() - t->since_ms;
	memset(t, 0, sizeof(*t));
	t->klass = PGQ_OK;
	return true;
}
