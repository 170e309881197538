/*
 * The public face of libpgq: checked connections, enqueue (one statement for
 * any number of jobs), queue size, cancel and requeue. Values travel as bind
 * parameters; arrays as text array literals built here.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "driver/driver.h"
#include "lib/lib.h"
#include "sql/sql.h"

/* A libpgq handle: the statement session of one checked connection. */
struct pgq {
	struct sql_session session;
	bool owned; /* pgq_connect opened the connection: pgq_free closes it */
	enum pgq_role role;
};

const char *
pgq_error_class_name(enum pgq_error_class klass)
{
	switch (klass) {
	case PGQ_OK:
		return "ok";
	case PGQ_ERR_CONNECTION:
		return "connection";
	case PGQ_ERR_UNIQUE:
		return "unique_violation";
	case PGQ_ERR_UNDEFINED_TABLE:
		return "undefined_table";
	case PGQ_ERR_SERIALIZATION:
		return "serialization_failure";
	case PGQ_ERR_CHECK:
		return "connection_check";
	case PGQ_ERR_INVALID:
		return "invalid_argument";
	case PGQ_ERR_LIMIT:
		return "program_limit_exceeded";
	case PGQ_ERR_READ_ONLY:
		return "read_only";
	case PGQ_ERR_AUTH:
		return "authentication";
	case PGQ_ERR_PERMISSION:
		return "insufficient_privilege";
	case PGQ_ERR_OTHER:
		break;
	}
	return "other";
}

static struct pgq *
pgq_new(PGconn *conn, bool owned, const struct pgq_options *opt,
	enum pgq_role role, struct pgq_error *err)
{
	struct pgq *q = xcalloc(1, sizeof(*q));

	if (sql_session_init(&q->session, conn,
			     opt != NULL ? opt->prefix : NULL,
			     opt != NULL ? opt->schema : NULL,
			     opt != NULL ? opt->channel : NULL, err) == -1) {
		free(q);
		return NULL;
	}
	q->owned = owned;
	q->role = role;
	return q;
}

struct pgq *
pgq_connect(const char *conninfo, const struct pgq_options *opt,
	    enum pgq_role role, struct pgq_error *err)
{
	struct pgq *q;
	PGconn *conn;

	driver_error_clear(err);
	conn = driver_connect(conninfo, err);
	if (conn == NULL)
		return NULL;
	if (driver_check(conn, role, NULL, 0, err) == -1) {
		PQfinish(conn);
		return NULL;
	}
	q = pgq_new(conn, true, opt, role, err);
	if (q == NULL)
		PQfinish(conn);
	return q;
}

struct pgq *
pgq_wrap(PGconn *conn, const struct pgq_options *opt, enum pgq_role role,
	 struct pgq_error *err)
{
	driver_error_clear(err);
	if (conn == NULL) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "pgq_wrap: connection is NULL");
		return NULL;
	}
	if (driver_check(conn, role, NULL, 0, err) == -1)
		return NULL;
	return pgq_new(conn, false, opt, role, err);
}

void
pgq_free(struct pgq *q)
{
	if (q == NULL)
		return;
	if (q->owned)
		PQfinish(q->session.conn);
	else
		/* The caller keeps the connection: leave it without our
		 * prepared statements so names cannot clash later. */
		sql_session_deallocate(&q->session);
	sql_session_clear(&q->session);
	free(q);
}

PGconn *
pgq_conn(struct pgq *q)
{
	return q->session.conn;
}

const char *
pgq_channel(const struct pgq *q)
{
	return q->session.names.channel;
}

struct sql_session *
lib_session(struct pgq *q)
{
	return &q->session;
}

enum pgq_role
lib_role(const struct pgq *q)
{
	return q->role;
}

/* Appends a bytea element in hex form, "\\x0a0b", or NULL. */
static void
strbuf_bytea(struct strbuf *b, const void *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *d = data;
	char pair[2];

	if (data == NULL) {
		strbuf_str(b, "NULL");
		return;
	}
	strbuf_str(b, "\"\\\\x");
	for (size_t i = 0; i < len; i++) {
		pair[0] = hex[d[i] >> 4];
		pair[1] = hex[d[i] & 0xf];
		strbuf_add(b, pair, 2);
	}
	strbuf_add(b, "\"", 1);
}

int
pgq_enqueue(struct pgq *q, const struct pgq_job_spec *job, int64_t *id_out,
	    struct pgq_error *err)
{
	size_t added = 0;
	int64_t id = 0;

	if (pgq_enqueue_batch(q, job, 1, PGQ_CONFLICT_RAISE, &id, &added,
			      err) == -1)
		return -1;
	if (id_out != NULL)
		*id_out = id;
	return 0;
}

int
pgq_enqueue_batch(struct pgq *q, const struct pgq_job_spec *jobs, size_t n,
		  enum pgq_on_conflict on_conflict, int64_t *ids_out,
		  size_t *added_out, struct pgq_error *err)
{
	struct strbuf ep = {0}, pl = {0}, pr = {0}, dl = {0}, dk = {0},
		      hd = {0};
	const char *values[7];
	PGresult *r = NULL;
	char num[64];
	int rc = -1;

	driver_error_clear(err);
	if (added_out != NULL)
		*added_out = 0;
	if (ids_out != NULL)
		memset(ids_out, 0, n * sizeof(*ids_out));
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].entrypoint == NULL ||
		    jobs[i].entrypoint[0] == '\0') {
			driver_error_set(err, PGQ_ERR_INVALID,
					 "job %zu has no entrypoint", i);
			return -1;
		}
		if (jobs[i].delay_ms < 0) {
			driver_error_set(
				err, PGQ_ERR_INVALID,
				"job %zu has a negative delay: delay_ms=%lld",
				i, (long long)jobs[i].delay_ms);
			return -1;
		}
	}
	strbuf_str(&ep, "{");
	strbuf_str(&pl, "{");
	strbuf_str(&pr, "{");
	strbuf_str(&dl, "{");
	strbuf_str(&dk, "{");
	strbuf_str(&hd, "{");
	for (size_t i = 0; i < n; i++) {
		const char *sep = i > 0 ? "," : "";

		strbuf_str(&ep, sep);
		strbuf_array_elem(&ep, jobs[i].entrypoint);
		strbuf_str(&pl, sep);
		strbuf_bytea(&pl, jobs[i].payload, jobs[i].payload_len);
		snprintf(num, sizeof(num), "%s%d", sep, (int)jobs[i].priority);
		strbuf_str(&pr, num);
		if (jobs[i].delay_ms > 0)
			snprintf(num, sizeof(num), "%s\"%lld milliseconds\"",
				 sep, (long long)jobs[i].delay_ms);
		else
			snprintf(num, sizeof(num), "%sNULL", sep);
		strbuf_str(&dl, num);
		strbuf_str(&dk, sep);
		strbuf_array_elem(&dk, jobs[i].dedupe_key);
		strbuf_str(&hd, sep);
		strbuf_array_elem(&hd, jobs[i].headers_json);
	}
	strbuf_str(&ep, "}");
	strbuf_str(&pl, "}");
	strbuf_str(&pr, "}");
	strbuf_str(&dl, "}");
	strbuf_str(&dk, "}");
	strbuf_str(&hd, "}");
	values[0] = ep.p;
	values[1] = pl.p;
	values[2] = pr.p;
	values[3] = dl.p;
	values[4] = dk.p;
	values[5] = hd.p;
	values[6] = on_conflict == PGQ_CONFLICT_SKIP ? "true" : "false";
	r = sql_exec_enqueue(&q->session, values, err);
	if (r == NULL)
		goto out;
	for (int row = 0; row < PQntuples(r); row++) {
		long long ord = strtoll(PQgetvalue(r, row, 0), NULL, 10);

		if (ord >= 1 && (size_t)ord <= n && ids_out != NULL)
			ids_out[ord - 1] =
				strtoll(PQgetvalue(r, row, 1), NULL, 10);
	}
	if (added_out != NULL)
		*added_out = (size_t)PQntuples(r);
	rc = 0;
out:
	PQclear(r);
	free(ep.p);
	free(pl.p);
	free(pr.p);
	free(dl.p);
	free(dk.p);
	free(hd.p);
	return rc;
}

int
pgq_queue_size(struct pgq *q, const char *entrypoint, int64_t *queued_out,
	       int64_t *picked_out, struct pgq_error *err)
{
	const char *values[1] = {entrypoint};
	int64_t queued = 0, picked = 0;
	PGresult *r;

	driver_error_clear(err);
	r = sql_exec(&q->session, SQL_QUEUE_SIZE, 1, values, err);
	if (r == NULL)
		return -1;
	for (int row = 0; row < PQntuples(r); row++) {
		const char *status = PQgetvalue(r, row, 2);
		int64_t count = strtoll(PQgetvalue(r, row, 3), NULL, 10);

		if (strcmp(status, "queued") == 0)
			queued += count;
		else if (strcmp(status, "picked") == 0)
			picked += count;
	}
	PQclear(r);
	if (queued_out != NULL)
		*queued_out = queued;
	if (picked_out != NULL)
		*picked_out = picked;
	return 0;
}

/* Runs a statement whose only parameter is an id array (NULL = all). */
static int
exec_ids(struct pgq *q, enum sql_stmt s, const int64_t *ids, size_t n,
	 size_t *count_out, struct pgq_error *err)
{
	char *arr = ids != NULL && n > 0 ? int64_array_literal(ids, n) : NULL;
	const char *values[1] = {arr};
	PGresult *r;

	driver_error_clear(err);
	r = sql_exec(&q->session, s, 1, values, err);
	free(arr);
	if (r == NULL)
		return -1;
	if (count_out != NULL)
		*count_out = (size_t)PQntuples(r);
	PQclear(r);
	return 0;
}

int
pgq_cancel(struct pgq *q, const int64_t *ids, size_t n, size_t *canceled_out,
	   struct pgq_error *err)
{
	if (n == 0 || ids == NULL) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "pgq_cancel: no job ids given");
		return -1;
	}
	return exec_ids(q, SQL_CANCEL, ids, n, canceled_out, err);
}

int
pgq_requeue(struct pgq *q, const int64_t *ids, size_t n, size_t *requeued_out,
	    struct pgq_error *err)
{
	return exec_ids(q, SQL_REQUEUE, ids, n, requeued_out, err);
}
