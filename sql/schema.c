/*
 * Schema operations on a blocking connection: install, uninstall, upgrade,
 * autovacuum settings and durability. Each runs the steps of its script one
 * statement at a time so that an error names the step; install, uninstall,
 * autovac and durability are all-or-nothing, upgrade commits step by step.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/driver.h"
#include "sql/sql_int.h"

/* Prefixes err's message with the failing step's label. */
static void
error_in_step(struct pgq_error *err, const char *label)
{
	char msg[sizeof(err->message)];

	if (err == NULL)
		return;
	memcpy(msg, err->message, sizeof(msg));
	/* Cutting a long server message short is acceptable here. */
	if (snprintf(err->message, sizeof(err->message), "%s: %s", label, msg) <
	    0)
		err->message[0] = '\0';
}

/* Fails with a clear message when schema n->schema does not exist. */
static int
check_schema(PGconn *conn, const struct sql_names *n, struct pgq_error *err)
{
	const char *params[1] = {n->schema};
	PGresult *r;
	int rc = 0;

	if (n->schema[0] == '\0')
		return 0;
	r = driver_exec_params(
		conn,
		"SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", 1,
		params, NULL, NULL, 0, err);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		driver_error_set(err, PGQ_ERR_OTHER,
				 "schema \"%s\" does not exist", n->schema);
		driver_error_hint(err,
				  "create it first (CREATE SCHEMA %s), pgq "
				  "does not create "
				  "schemas",
				  n->schema);
		rc = -1;
	}
	PQclear(r);
	return rc;
}

/*
 * Quiets the NOTICEs of IF NOT EXISTS steps ("already exists, skipping")
 * for the session, returning the old client_min_messages (caller frees) or
 * NULL when it could not be read.
 */
static char *
notices_off(PGconn *conn)
{
	PGresult *r = PQexec(
		conn, "SELECT current_setting('client_min_messages'), "
		      "set_config('client_min_messages', 'warning', false)");
	char *old = NULL;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		old = xstrdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return old;
}

/* Puts client_min_messages back; failures only leave it quieter. */
static void
notices_restore(PGconn *conn, char *old)
{
	const char *params[1] = {old};
	PGresult *r;

	if (old == NULL)
		return;
	r = PQexecParams(conn,
			 "SELECT set_config('client_min_messages', $1, false)",
			 1, NULL, params, NULL, NULL, 0);
	PQclear(r);
	free(old);
}

/*
 * Runs the steps of script s. With atomic, inside one transaction (opened
 * here unless the caller already has one, which then stays the caller's).
 */
static int
run_script(PGconn *conn, enum sql_script s, const struct sql_names *n,
	   enum sql_durability d, bool atomic, struct pgq_error *err)
{
	struct sql_script_text t;
	char *old_level = NULL;
	bool own_tx = false;
	size_t i;
	int rc = -1;

	driver_error_clear(err);
	sql_script_render(s, n, d, &t);
	if (atomic && PQtransactionStatus(conn) == PQTRANS_IDLE) {
		if (driver_exec_simple(conn, "BEGIN", err) != 0)
			goto out;
		own_tx = true;
	}
	old_level = notices_off(conn);
	for (i = 0; i < t.n; i++) {
		if (driver_exec_simple(conn, t.steps[i], err) != 0) {
			error_in_step(err, t.labels[i]);
			goto out;
		}
	}
	if (own_tx) {
		own_tx = false;
		if (driver_exec_simple(conn, "COMMIT", err) != 0)
			goto out;
	}
	rc = 0;
out:
	if (own_tx) {
		/* The error already in err is the one worth reporting. */
		PGresult *r = PQexec(conn, "ROLLBACK");

		PQclear(r);
	}
	notices_restore(conn, old_level);
	sql_script_clear(&t);
	return rc;
}

int
sql_install(PGconn *conn, const struct sql_names *n, enum sql_durability d,
	    struct pgq_error *err)
{
	driver_error_clear(err);
	if (check_schema(conn, n, err) != 0)
		return -1;
	return run_script(conn, SQL_SCRIPT_INSTALL, n, d, true, err);
}

int
sql_uninstall(PGconn *conn, const struct sql_names *n, struct pgq_error *err)
{
	return run_script(conn, SQL_SCRIPT_UNINSTALL, n, SQL_DURABLE, true,
			  err);
}

int
sql_upgrade(PGconn *conn, const struct sql_names *n, struct pgq_error *err)
{
	enum sql_layout l;

	driver_error_clear(err);
	if (check_schema(conn, n, err) != 0)
		return -1;
	/* Not atomic: a new enum value must commit before it can be used. */
	if (run_script(conn, SQL_SCRIPT_UPGRADE, n, SQL_DURABLE, false, err) !=
		    0 ||
	    sql_layout(conn, n, &l, err) != 0)
		return -1;
	/* IF NOT EXISTS keeps an index that a failed concurrent build left
	 * invalid: the upgrade did not reach 1.4 then. */
	if (l != SQL_LAYOUT_1_4) {
		driver_error_set(err, PGQ_ERR_OTHER,
				 "upgrade.queue_slot_idx: index "
				 "%s_picked_slot_idx exists but is invalid or "
				 "not unique",
				 n->queue);
		driver_error_hint(err,
				  "drop it (DROP INDEX %s_picked_slot_idx) "
				  "and run the upgrade again",
				  n->queue);
		return -1;
	}
	return 0;
}

int
sql_autovac(PGconn *conn, const struct sql_names *n, struct pgq_error *err)
{
	return run_script(conn, SQL_SCRIPT_AUTOVAC, n, SQL_DURABLE, true, err);
}

int
sql_set_durability(PGconn *conn, const struct sql_names *n,
		   enum sql_durability d, struct pgq_error *err)
{
	return run_script(conn, SQL_SCRIPT_DURABILITY, n, d, true, err);
}

int
sql_payload_check_exists(PGconn *conn, const struct sql_names *n,
			 struct pgq_error *err)
{
	char fn[sizeof(n->queue) + 64], tbl[sizeof(n->queue) + 16];
	const char *params[2] = {fn, tbl};
	PGresult *r;
	int rc;

	snprintf(fn, sizeof(fn), "%s_pgq_payload_check(text,bigint,bigint)",
		 n->queue);
	snprintf(tbl, sizeof(tbl), "%s_pgq_limits", n->queue);
	/* The function comes after the column in install and upgrade; the
	 * column is checked too, for a hand-made schema. */
	r = driver_exec_params(
		conn,
		"SELECT to_regprocedure($1) IS NOT NULL AND EXISTS ("
		"SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = "
		"to_regclass($2) AND attname = 'max_payload' AND NOT "
		"attisdropped)",
		2, params, NULL, NULL, 0, err);
	if (r == NULL)
		return -1;
	rc = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return rc;
}
