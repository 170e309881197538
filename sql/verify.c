/*
 * sql_verify: compares the objects in the database with what install
 * creates (tables and their columns with types, the status enum and its
 * values in order, every index by name, the function, the trigger and its
 * shape), one report line per mismatch. A PgQueuer 1.3 catalog (no capacity
 * slots) passes as well as a 1.4 one; sql_layout says which it is.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/driver.h"
#include "sql/sql_int.h"

#define TSTZ "timestamp with time zone"
/* Stands for the status enum in the column tables. */
#define STATUS "status"

struct column {
	const char *name;
	const char *type; /* as format_type prints it, or STATUS */
};

static const struct column queue_columns[] = {
	{"id", "bigint"},
	{"priority", "integer"},
	{"queue_manager_id", "uuid"},
	{"created", TSTZ},
	{"updated", TSTZ},
	{"heartbeat", TSTZ},
	{"execute_after", TSTZ},
	{"status", STATUS},
	{"entrypoint", "text"},
	{"dedupe_key", "text"},
	{"payload", "bytea"},
	{"headers", "jsonb"},
	{"attempts", "integer"},
	{NULL, NULL},
};

static const struct column log_columns[] = {
	{"id", "bigint"},
	{"created", TSTZ},
	{"job_id", "bigint"},
	{"status", STATUS},
	{"priority", "integer"},
	{"entrypoint", "text"},
	{"traceback", "jsonb"},
	{"aggregated", "boolean"},
	{NULL, NULL},
};

static const struct column statistics_columns[] = {
	{"id", "bigint"},    {"created", TSTZ},
	{"count", "bigint"}, {"priority", "integer"},
	{"status", STATUS},  {"entrypoint", "text"},
	{NULL, NULL},
};

static const struct column schedules_columns[] = {
	{"id", "bigint"},    {"expression", "text"}, {"entrypoint", "text"},
	{"heartbeat", TSTZ}, {"created", TSTZ},	     {"updated", TSTZ},
	{"next_run", TSTZ},  {"last_run", TSTZ},     {"status", STATUS},
	{NULL, NULL},
};

static const char *const queue_indexes[] = {"_priority_id_id1_idx",
					    "_updated_id_id1_idx",
					    "_queue_manager_id_idx",
					    "_ep_prio_id_idx",
					    "_ep_ea_idx",
					    "_unique_dedupe_key",
					    NULL};
static const char *const log_indexes[] = {"_not_aggregated", "_created",
					  "_status", "_job_id_status", NULL};
static const char *const statistics_indexes[] = {"_unique_count", NULL};
static const char *const no_indexes[] = {NULL};

static const char *const enum_values =
	"queued,picked,successful,exception,canceled,deleted,failed";

/* Statement-level AFTER INSERT|DELETE|UPDATE|TRUNCATE (see schema.sql). */
#define TRIGGER_TYPE "60"

struct report {
	char *text;
	size_t len;
	unsigned lines;
};

static void report_add(struct report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
report_add(struct report *rep, const char *fmt, ...)
{
	char line[512];
	size_t n;
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (w < 0)
		return;
	n = strlen(line);
	rep->text = xrealloc(rep->text, rep->len + n + 2, 1);
	memcpy(rep->text + rep->len, line, n);
	rep->len += n;
	rep->text[rep->len++] = '\n';
	rep->text[rep->len] = '\0';
	rep->lines++;
}

/* Runs a catalog query; NULL with err on failure. */
static PGresult *
query(PGconn *conn, const char *sql, int nparams, const char *const *params,
      struct pgq_error *err)
{
	return driver_exec_params(conn, sql, nparams, params, NULL, NULL, 0,
				  err);
}

/* 1 when the query returns a row whose first column is "t", 0, -1. */
static int
query_bool(PGconn *conn, const char *sql, int nparams,
	   const char *const *params, struct pgq_error *err)
{
	PGresult *r = query(conn, sql, nparams, params, err);
	int v;

	if (r == NULL)
		return -1;
	v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) &&
	    strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return v;
}

/* A relation (table or index) called qualified name exists. */
static int
rel_exists(PGconn *conn, const char *qual, struct pgq_error *err)
{
	const char *p[1] = {qual};

	return query_bool(conn, "SELECT to_regclass($1) IS NOT NULL", 1, p,
			  err);
}

/* Qualifies bare with n's schema. */
static void
qualify(const struct sql_names *n, const char *bare, char *out, size_t len)
{
	if (n->schema[0] != '\0')
		snprintf(out, len, "%s.%s", n->schema, bare);
	else
		snprintf(out, len, "%s", bare);
}

static int
check_columns(PGconn *conn, const struct sql_names *n, const char *table,
	      const struct column *cols, struct report *rep,
	      struct pgq_error *err)
{
	const char *p[2] = {table, n->status};
	PGresult *r;
	size_t i;
	int j;

	r = query(conn,
		  "SELECT a.attname, CASE WHEN a.atttypid = to_regtype($2) "
		  "THEN 'status' ELSE format_type(a.atttypid, a.atttypmod) END "
		  "FROM pg_catalog.pg_attribute a "
		  "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 "
		  "AND NOT a.attisdropped",
		  2, p, err);
	if (r == NULL)
		return -1;
	for (i = 0; cols[i].name != NULL; i++) {
		const char *found = NULL;

		for (j = 0; j < PQntuples(r); j++)
			if (strcmp(PQgetvalue(r, j, 0), cols[i].name) == 0)
				found = PQgetvalue(r, j, 1);
		if (found == NULL)
			report_add(rep, "column %s.%s: missing", table,
				   cols[i].name);
		else if (strcmp(found, cols[i].type) != 0)
			report_add(rep, "column %s.%s: type %s, expected %s",
				   table, cols[i].name,
				   strcmp(found, STATUS) == 0 ? n->status
							      : found,
				   strcmp(cols[i].type, STATUS) == 0
					   ? n->status
					   : cols[i].type);
	}
	PQclear(r);
	return 0;
}

static int
check_table(PGconn *conn, const struct sql_names *n, const char *bare,
	    const struct column *cols, const char *const *indexes, bool present,
	    struct report *rep, struct pgq_error *err)
{
	char qual[2 * SQL_IDENT_MAX + 2], idx[SQL_IDENT_MAX * 2];
	char qidx[SQL_IDENT_MAX * 4];
	size_t i;
	int e;

	qualify(n, bare, qual, sizeof(qual));
	if ((e = rel_exists(conn, qual, err)) < 0)
		return -1;
	if (e && !present)
		report_add(rep, "table %s: present, expected absent", qual);
	if (!e && present) {
		report_add(rep, "table %s: missing", qual);
		return 0;
	}
	if (e && present && check_columns(conn, n, qual, cols, rep, err) != 0)
		return -1;
	for (i = 0; indexes[i] != NULL; i++) {
		snprintf(idx, sizeof(idx), "%s%s", bare, indexes[i]);
		qualify(n, idx, qidx, sizeof(qidx));
		if ((e = rel_exists(conn, qidx, err)) < 0)
			return -1;
		if (e && !present)
			report_add(rep, "index %s: present, expected absent",
				   qidx);
		else if (!e && present)
			report_add(rep, "index %s: missing", qidx);
	}
	return 0;
}

/*
 * The slot column, and whether its unique index exists and is valid (a
 * failed CREATE INDEX CONCURRENTLY leaves an invalid one behind): one row,
 * or none when the queue table is missing.
 */
static PGresult *
query_slots(PGconn *conn, const struct sql_names *n, struct pgq_error *err)
{
	char idx[SQL_IDENT_MAX * 2], qidx[SQL_IDENT_MAX * 4];
	const char *p[2] = {n->queue, qidx};

	snprintf(idx, sizeof(idx), "%s_picked_slot_idx", n->queue_bare);
	qualify(n, idx, qidx, sizeof(qidx));
	return query(conn,
		     "SELECT (SELECT format_type(a.atttypid, a.atttypmod) "
		     "FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid "
		     "AND a.attname = 'slot' AND NOT a.attisdropped), "
		     "(SELECT i.indisvalid AND i.indisunique FROM "
		     "pg_catalog.pg_index i WHERE i.indexrelid = "
		     "to_regclass($2) AND i.indrelid = c.oid) "
		     "FROM pg_catalog.pg_class c WHERE c.oid = to_regclass($1)",
		     2, p, err);
}

/*
 * PgQueuer 1.4's slot column and index. Both missing is a 1.3 catalog,
 * which passes; a column without a usable index is an upgrade that did not
 * finish. Absent, the index is reported like the others.
 */
static int
check_slots(PGconn *conn, const struct sql_names *n, bool present,
	    struct report *rep, struct pgq_error *err)
{
	PGresult *r = query_slots(conn, n, err);
	const char *type;

	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	type = PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0);
	if (!present) {
		if (!PQgetisnull(r, 0, 1))
			report_add(
				rep,
				"index %s_picked_slot_idx: present, expected "
				"absent",
				n->queue);
	} else if (type != NULL && strcmp(type, "bigint") != 0) {
		report_add(rep, "column %s.slot: type %s, expected bigint",
			   n->queue, type);
	} else if (type != NULL && PQgetisnull(r, 0, 1)) {
		report_add(rep,
			   "index %s_picked_slot_idx: missing (the slot column "
			   "is there: pgq upgrade builds it)",
			   n->queue);
	} else if (!PQgetisnull(r, 0, 1) &&
		   strcmp(PQgetvalue(r, 0, 1), "t") != 0) {
		report_add(rep,
			   "index %s_picked_slot_idx: invalid or not unique "
			   "(drop it and run pgq upgrade)",
			   n->queue);
	}
	PQclear(r);
	return 0;
}

int
sql_layout(PGconn *conn, const struct sql_names *n, enum sql_layout *out,
	   struct pgq_error *err)
{
	PGresult *r;

	driver_error_clear(err);
	r = query_slots(conn, n, err);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0)
		*out = SQL_LAYOUT_NONE;
	else if (PQgetisnull(r, 0, 0) && PQgetisnull(r, 0, 1))
		*out = SQL_LAYOUT_1_3;
	else if (!PQgetisnull(r, 0, 1) && strcmp(PQgetvalue(r, 0, 1), "t") == 0)
		*out = SQL_LAYOUT_1_4;
	else
		*out = SQL_LAYOUT_PARTIAL;
	PQclear(r);
	return 0;
}

const char *
sql_layout_name(enum sql_layout l)
{
	switch (l) {
	case SQL_LAYOUT_NONE:
		return "none";
	case SQL_LAYOUT_1_3:
		return "PgQueuer 1.3";
	case SQL_LAYOUT_1_4:
		return "PgQueuer 1.4";
	case SQL_LAYOUT_PARTIAL:
		return "PgQueuer 1.3 with an unfinished upgrade to 1.4";
	}
	return "unknown";
}

static int
check_enum(PGconn *conn, const struct sql_names *n, bool present,
	   struct report *rep, struct pgq_error *err)
{
	const char *p[1] = {n->status};
	PGresult *r;

	r = query(conn,
		  "SELECT to_regtype($1) IS NOT NULL, (SELECT "
		  "string_agg(enumlabel, "
		  "',' ORDER BY enumsortorder) FROM pg_catalog.pg_enum "
		  "WHERE enumtypid = to_regtype($1))",
		  1, p, err);
	if (r == NULL)
		return -1;
	if (strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
		if (!present)
			report_add(rep, "type %s: present, expected absent",
				   n->status);
		else if (strcmp(PQgetvalue(r, 0, 1), enum_values) != 0)
			report_add(rep, "type %s: values %s, expected %s",
				   n->status, PQgetvalue(r, 0, 1), enum_values);
	} else if (present) {
		report_add(rep, "type %s: missing", n->status);
	}
	PQclear(r);
	return 0;
}

/* 1 when function name() exists, 0 when not, -1 on error. */
static int
function_exists(PGconn *conn, const char *name, struct pgq_error *err)
{
	char sig[2 * SQL_IDENT_MAX + 4];
	const char *p[1] = {sig};

	snprintf(sig, sizeof(sig), "%s()", name);
	return query_bool(conn, "SELECT to_regprocedure($1) IS NOT NULL", 1, p,
			  err);
}

/*
 * The notify function under PgQueuer's name; with a prefix, also the name
 * older pgq gave it (n->legacy_function), which upgrade renames and
 * uninstall drops.
 */
static int
check_function(PGconn *conn, const struct sql_names *n, bool present,
	       struct report *rep, struct pgq_error *err)
{
	bool legacy = strcmp(n->legacy_function, n->function) != 0;
	int e, old = 0;

	if ((e = function_exists(conn, n->function, err)) < 0 ||
	    (legacy &&
	     (old = function_exists(conn, n->legacy_function, err)) < 0))
		return -1;
	if (e && !present)
		report_add(rep, "function %s: present, expected absent",
			   n->function);
	else if (!e && present && old)
		report_add(rep,
			   "function %s: missing (found %s, the name older "
			   "pgq gave it: pgq upgrade renames it)",
			   n->function, n->legacy_function);
	else if (!e && present)
		report_add(rep, "function %s: missing", n->function);
	if (old && !present)
		report_add(rep, "function %s: present, expected absent",
			   n->legacy_function);
	return 0;
}

/* The tgtype of trigger name on the queue table: one row, or none. */
static PGresult *
query_trigger(PGconn *conn, const struct sql_names *n, const char *name,
	      struct pgq_error *err)
{
	const char *p[2] = {n->queue, name};

	return query(conn,
		     "SELECT t.tgtype FROM pg_catalog.pg_trigger t "
		     "WHERE t.tgrelid = to_regclass($1) AND t.tgname = $2 "
		     "AND NOT t.tgisinternal",
		     2, p, err);
}

static int
check_trigger(PGconn *conn, const struct sql_names *n, bool present,
	      struct report *rep, struct pgq_error *err)
{
	bool legacy = strcmp(n->legacy_trigger, n->trigger) != 0;
	PGresult *r, *old = NULL;
	int rc = -1;

	if ((r = query_trigger(conn, n, n->trigger, err)) == NULL ||
	    (legacy &&
	     (old = query_trigger(conn, n, n->legacy_trigger, err)) == NULL))
		goto out;
	if (PQntuples(r) > 0 && !present)
		report_add(rep, "trigger %s on %s: present, expected absent",
			   n->trigger, n->queue);
	else if (PQntuples(r) == 0 && present && old != NULL &&
		 PQntuples(old) > 0)
		report_add(rep,
			   "trigger %s on %s: missing (found %s, the name "
			   "older pgq gave it: pgq upgrade renames it)",
			   n->trigger, n->queue, n->legacy_trigger);
	else if (PQntuples(r) == 0 && present)
		report_add(rep, "trigger %s on %s: missing", n->trigger,
			   n->queue);
	else if (PQntuples(r) > 0 &&
		 strcmp(PQgetvalue(r, 0, 0), TRIGGER_TYPE) != 0)
		report_add(rep,
			   "trigger %s on %s: not AFTER INSERT OR UPDATE OR "
			   "DELETE "
			   "OR TRUNCATE FOR EACH STATEMENT (tgtype %s)",
			   n->trigger, n->queue, PQgetvalue(r, 0, 0));
	if (old != NULL && PQntuples(old) > 0 && (!present || PQntuples(r) > 0))
		/* Beside PgQueuer's, it notifies every change twice. */
		report_add(rep,
			   "trigger %s on %s: present, expected absent (the "
			   "name older pgq gave it: pgq upgrade drops it)",
			   n->legacy_trigger, n->queue);
	rc = 0;
out:
	PQclear(r);
	PQclear(old);
	return rc;
}

int
sql_verify(PGconn *conn, const struct sql_names *n, bool expect_present,
	   char **report, struct pgq_error *err)
{
	struct report rep = {NULL, 0, 0};
	int rc = -1;

	*report = NULL;
	driver_error_clear(err);
	if (check_enum(conn, n, expect_present, &rep, err) != 0 ||
	    check_table(conn, n, n->queue_bare, queue_columns, queue_indexes,
			expect_present, &rep, err) != 0 ||
	    check_table(conn, n, n->log_bare, log_columns, log_indexes,
			expect_present, &rep, err) != 0 ||
	    check_table(conn, n, n->statistics_bare, statistics_columns,
			statistics_indexes, expect_present, &rep, err) != 0 ||
	    check_table(conn, n, n->schedules_bare, schedules_columns,
			no_indexes, expect_present, &rep, err) != 0 ||
	    check_slots(conn, n, expect_present, &rep, err) != 0 ||
	    check_function(conn, n, expect_present, &rep, err) != 0 ||
	    check_trigger(conn, n, expect_present, &rep, err) != 0)
		goto out;
	rc = rep.lines > 0 ? 1 : 0;
	*report = rep.text;
	rep.text = NULL;
out:
	free(rep.text);
	return rc;
}
