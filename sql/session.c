/*
 * The statement session of one connection: pgq's statements rendered for the
 * queue's names and prepared on first use, the transactions and the LISTEN
 * that go with them. libpgq's handle embeds one; the consumer and the CLI
 * run every statement through it, so one set of prepared names per backend.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "sql/sql.h"

int
sql_session_init(struct sql_session *s, PGconn *conn, const char *prefix,
		 const char *schema, const char *channel, struct pgq_error *err)
{
	if (sql_names_init(&s->names, prefix, schema, channel, err) == -1)
		return -1;
	s->conn = conn;
	driver_prepared_reset(&s->prep);
	for (int i = 0; i < SQL_STMT_COUNT; i++)
		s->text[i] = NULL;
	s->payload_check = -1;
	return 0;
}

void
sql_session_clear(struct sql_session *s)
{
	for (int i = 0; i < SQL_STMT_COUNT; i++) {
		free(s->text[i]);
		s->text[i] = NULL;
	}
}

void
sql_session_deallocate(struct sql_session *s)
{
	if (PQstatus(s->conn) != CONNECTION_OK)
		return;
	for (int i = 0; i < SQL_STMT_COUNT; i++) {
		char sql[96];

		if (!s->prep.ready[i])
			continue;
		snprintf(sql, sizeof(sql), "DEALLOCATE %s",
			 sql_stmt_name((enum sql_stmt)i));
		/* A failure leaves a name behind on a connection that is
		 * failing anyway: nothing to report to a freeing caller. */
		PQclear(PQexec(s->conn, sql));
	}
	driver_prepared_reset(&s->prep);
}

void
sql_session_reset(struct sql_session *s)
{
	driver_prepared_reset(&s->prep);
}

const char *
sql_session_text(struct sql_session *s, enum sql_stmt st)
{
	if (s->text[st] == NULL)
		s->text[st] = sql_stmt_render(st, &s->names);
	return s->text[st];
}

PGresult *
sql_exec(struct sql_session *s, enum sql_stmt st, int nparams,
	 const char *const *values, struct pgq_error *err)
{
	return driver_exec_prepared(s->conn, &s->prep, (int)st,
				    sql_stmt_name(st), sql_session_text(s, st),
				    nparams, values, NULL, NULL, 0, err);
}

int
sql_exec_pipeline(struct sql_session *s, struct driver_call *calls, int n)
{
	for (int i = 0; i < n; i++) {
		enum sql_stmt st = (enum sql_stmt)calls[i].slot;

		calls[i].name = sql_stmt_name(st);
		calls[i].sql = sql_session_text(s, st);
	}
	return driver_exec_pipeline(s->conn, &s->prep, calls, n);
}

PGresult *
sql_exec_enqueue(struct sql_session *s, const char *const *values,
		 struct pgq_error *err)
{
	/* Once per session: a queue without pgq's limits table (installed by
	 * PgQueuer) keeps the plain statement. */
	if (s->payload_check < 0) {
		s->payload_check =
			sql_payload_check_exists(s->conn, &s->names, err);
		if (s->payload_check < 0)
			return NULL;
	}
	return sql_exec(s, s->payload_check ? SQL_ENQUEUE_CHECKED : SQL_ENQUEUE,
			7, values, err);
}

int
sql_begin(struct sql_session *s, struct pgq_error *err)
{
	return driver_exec_simple(s->conn, "BEGIN", err);
}

int
sql_commit(struct sql_session *s, struct pgq_error *err)
{
	return driver_exec_simple(s->conn, "COMMIT", err);
}

void
sql_rollback(struct sql_session *s)
{
	/* A failure means the connection is gone, and with it the
	 * transaction: the caller's reconnect is the cure. */
	PQclear(PQexec(s->conn, "ROLLBACK"));
}

int
sql_listen(struct sql_session *s, bool on, struct pgq_error *err)
{
	char listen[SQL_IDENT_MAX + 16], unlisten[SQL_IDENT_MAX + 18];

	if (!driver_listen_sql(s->names.channel, listen, sizeof(listen))) {
		driver_error_set(err, PGQ_ERR_INVALID, "invalid channel %s",
				 s->names.channel);
		return -1;
	}
	if (on)
		return driver_exec_simple(s->conn, listen, err);
	snprintf(unlisten, sizeof(unlisten), "UN%s", listen);
	return driver_exec_simple(s->conn, unlisten, err);
}
