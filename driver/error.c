/*
 * Error classes from SQLSTATE. The class decides what a caller does next
 * (reconnect, retry, tell the operator to install); the server's message and
 * SQLSTATE are kept verbatim for the log.
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
	/* undefined table, undefined object (the enum), undefined function */
	if (strcmp(sqlstate, "42P01") == 0 || strcmp(sqlstate, "42704") == 0 ||
	    strcmp(sqlstate, "42883") == 0 || strcmp(sqlstate, "3F000") == 0)
		return PGQ_ERR_UNDEFINED_TABLE;
	if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0)
		return PGQ_ERR_SERIALIZATION;
	/* program_limit_exceeded: pgq raises it for max_payload */
	if (strcmp(sqlstate, "54000") == 0)
		return PGQ_ERR_LIMIT;
	return PGQ_ERR_OTHER;
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
	if (hint != NULL)
		copy_trimmed(err->hint, sizeof(err->hint), hint);
	else if (err->klass == PGQ_ERR_UNDEFINED_TABLE)
		snprintf(err->hint, sizeof(err->hint),
			 "the queue tables are missing in this database: run "
			 "pgq "
			 "install (or check the prefix and schema)");
	else if (err->klass == PGQ_ERR_CONNECTION)
		snprintf(err->hint, sizeof(err->hint),
			 "check that the server is running and the connection "
			 "settings (dsn, PGHOST, PGPORT) are right");
	else if (err->klass == PGQ_ERR_UNIQUE)
		snprintf(err->hint, sizeof(err->hint),
			 "a job with the same dedupe_key is already queued or "
			 "running; enqueue with on-conflict skip to leave it "
			 "out");
	else if (err->klass == PGQ_ERR_SERIALIZATION)
		snprintf(err->hint, sizeof(err->hint),
			 "a concurrent transaction conflicted: retry");
	else if (err->klass == PGQ_ERR_LIMIT)
		snprintf(err->hint, sizeof(err->hint),
			 "a limit of the queue was exceeded; retrying the same "
			 "request fails again");
}
