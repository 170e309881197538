/*
 * bench-sql: writes the pgbench script of the `limit` scenario from pgq's own
 * complete and claim statements (sql/queries.sql, rendered for the queue's
 * names), so that the ceiling pgbench measures is the cost of exactly the SQL
 * a worker sends: the completion of the batch claimed in the client's
 * previous transaction, then the claim of the next, each a transaction of
 * its own. The only change is the claim's final SELECT, folded into one row
 * of arrays because pgbench's \gset needs a single row. (The worker sends
 * the two in one round trip, pipeline mode; pgbench 15 would put a pipeline
 * in one transaction, so it sends them one after the other.)
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "sql/sql.h"

/*
 * The claim's result as one row: the ids in claim order, a 'successful'
 * status and a NULL traceback per id, ready to be bound as the complete
 * statement's $2, $3 and $4 in the client's next transaction. Empty arrays
 * rather than NULLs, so that the next statement binds them as they are.
 * The WHERE keeps the claim's asynchronous commit, which its own final
 * SELECT asks for in the same way.
 */
static const char claim_fold[] =
	"SELECT coalesce(array_agg(id ORDER BY priority DESC, id ASC),\n"
	"                '{}') AS ids,\n"
	"       coalesce(array_agg('successful'::text), '{}') AS sts,\n"
	"       coalesce(array_agg(NULL::text), '{}') AS tbs\n"
	"FROM claimed\n"
	"WHERE (SELECT setting FROM async_commit) IS NOT NULL\n";

/*
 * Writes text to fp with each $N (N = 1..nvars) replaced by a pgbench
 * variable :vars[N-1]. Returns -1 when a parameter has no variable.
 */
static int
put_with_vars(FILE *fp, const char *text, size_t len, const char *const *vars,
	      int nvars)
{
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '$' && i + 1 < len && text[i + 1] >= '1' &&
		    text[i + 1] <= '9') {
			int n = 0;

			while (i + 1 < len && text[i + 1] >= '0' &&
			       text[i + 1] <= '9') {
				n = n * 10 + (text[i + 1] - '0');
				i++;
			}
			if (n > nvars) {
				fprintf(stderr,
					"bench-sql: parameter $%d has no "
					"variable\n",
					n);
				return -1;
			}
			fprintf(fp, ":%s", vars[n - 1]);
			continue;
		}
		fputc(text[i], fp);
	}
	return 0;
}

/* Strips the trailing ";\n" (and blanks) so a \gset can end the command. */
static size_t
trim_end(const char *text, size_t len)
{
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ' ||
			   text[len - 1] == ';'))
		len--;
	return len;
}

/* Start of the last line that begins with "SELECT": the final query. */
static const char *
last_select(const char *text)
{
	const char *p = text, *last = NULL;

	if (strncmp(text, "SELECT", 6) == 0)
		last = text;
	while ((p = strstr(p, "\nSELECT")) != NULL) {
		last = p + 1;
		p++;
	}
	return last;
}

static int
write_script(FILE *fp, const struct sql_names *names)
{
	static const char *const claim_vars[] = {"eps", "batch", "hb", "owner"};
	static const char *const complete_vars[] = {"owner", "ids", "sts",
						    "tbs"};
	char *claim = sql_stmt_render(SQL_CLAIM, names);
	char *complete = sql_stmt_render(SQL_COMPLETE, names);
	const char *sel;
	int rc = -1;

	sel = last_select(claim);
	if (sel == NULL || strstr(sel, "FROM claimed") == NULL ||
	    strstr(sel, "async_commit") == NULL) {
		fprintf(stderr, "bench-sql: the claim statement no longer ends "
				"with a SELECT from claimed that keeps "
				"async_commit\n");
		goto out;
	}
	fprintf(fp, "-- pgq complete (%s) of the previous batch, unchanged\n",
		sql_stmt_name(SQL_COMPLETE));
	if (put_with_vars(fp, complete, trim_end(complete, strlen(complete)),
			  complete_vars, 4) == -1)
		goto out;
	fputs(";\n", fp);
	fprintf(fp, "-- pgq claim (%s), final SELECT folded for \\gset\n",
		sql_stmt_name(SQL_CLAIM));
	if (put_with_vars(fp, claim, (size_t)(sel - claim), claim_vars, 4) ==
	    -1)
		goto out;
	fputs(claim_fold, fp);
	fputs("\\gset\n", fp);
	rc = 0;
out:
	free(claim);
	free(complete);
	return rc;
}

/*
 * The enqueue of n jobs as pgbench sends it: pgq's own statement with its
 * arrays built in the server (array_fill) instead of bound, the same jobs
 * as bench-producer's (entrypoint noop, no payload, priority 0). With
 * floor, the least any queue must do for them instead: the queue rows and
 * their queued log rows, with nothing returned.
 */
static int
write_enqueue(FILE *fp, const struct sql_names *names, long n, bool floor)
{
	char *args[7];
	char *enq;

	if (floor) {
		fprintf(fp,
			"-- the floor: %ld queue rows and their log rows\n"
			"WITH q AS (\n"
			"    INSERT INTO %s (priority, entrypoint, status)\n"
			"    SELECT 0, 'noop', 'queued'\n"
			"    FROM generate_series(1, %ld)\n"
			"    RETURNING id, priority, entrypoint\n"
			")\n"
			"INSERT INTO %s (job_id, status, priority, "
			"entrypoint)\n"
			"SELECT id, 'queued', priority, entrypoint FROM q;\n",
			n, names->queue, n, names->log);
		return 0;
	}
	args[0] = xasprintf("array_fill('noop'::text, ARRAY[%ld])", n);
	args[1] = xasprintf("array_fill(NULL::bytea, ARRAY[%ld])", n);
	args[2] = xasprintf("array_fill(0, ARRAY[%ld])", n);
	args[3] = xasprintf("array_fill(NULL::interval, ARRAY[%ld])", n);
	args[4] = xasprintf("array_fill(NULL::text, ARRAY[%ld])", n);
	args[5] = xasprintf("array_fill(NULL::jsonb, ARRAY[%ld])", n);
	args[6] = xstrdup("false");
	enq = sql_stmt_render(SQL_ENQUEUE, names);
	fprintf(fp, "-- pgq enqueue (%s) of %ld jobs, arrays built in place\n",
		sql_stmt_name(SQL_ENQUEUE), n);
	/* put_with_vars writes ":NAME" for $N: pass the text after the ':' */
	for (const char *t = enq; *t != '\0'; t++) {
		if (t[0] == '$' && t[1] >= '1' && t[1] <= '7' &&
		    (t[2] < '0' || t[2] > '9')) {
			fputs(args[t[1] - '1'], fp);
			t++;
			continue;
		}
		fputc(*t, fp);
	}
	free(enq);
	for (int i = 0; i < 7; i++)
		free(args[i]);
	return 0;
}

/*
 * The floor of a drain: the least any queue writing PgQueuer's log must do
 * per batch, as pgbench sends it. A claim that updates the jobs and writes
 * their picked log rows, and a completion that deletes them and writes
 * their terminal log rows, each its own statement and commit, with none of
 * pgq's extras (stale jobs, ownership checks, tracebacks, the count row).
 * Variables: batch, owner.
 */
static void
write_drain_floor(FILE *fp, const struct sql_names *n)
{
	fprintf(fp,
		"-- the floor of a drain: bare claim and completion\n"
		"WITH c AS (\n"
		"    UPDATE %s SET status = 'picked', "
		"queue_manager_id = :owner::uuid,\n"
		"           updated = now(), heartbeat = now()\n"
		"    WHERE id = ANY(ARRAY(SELECT id FROM %s\n"
		"                         WHERE status = 'queued'\n"
		"                         ORDER BY priority DESC, id\n"
		"                         LIMIT :batch FOR UPDATE SKIP "
		"LOCKED))\n"
		"    RETURNING id, priority, entrypoint\n"
		"), l AS (\n"
		"    INSERT INTO %s (job_id, status, priority, entrypoint)\n"
		"    SELECT id, 'picked', priority, entrypoint FROM c\n"
		")\n"
		"SELECT coalesce(array_agg(id), '{}') AS ids FROM c\n"
		"\\gset\n"
		"WITH d AS (\n"
		"    DELETE FROM %s WHERE id = ANY(:ids::bigint[])\n"
		"    RETURNING id, priority, entrypoint\n"
		")\n"
		"INSERT INTO %s (job_id, status, priority, entrypoint)\n"
		"SELECT id, 'successful', priority, entrypoint FROM d;\n",
		n->queue, n->queue, n->log, n->queue, n->log);
}

int
main(int argc, char **argv)
{
	const char *prefix = NULL, *schema = NULL;
	struct sql_names names;
	struct pgq_error err;
	bool floor = false, drain_floor = false;
	long enqueue = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--drain-floor") == 0)
			drain_floor = true;
		else if ((strcmp(argv[i], "--enqueue") == 0 ||
			  strcmp(argv[i], "--enqueue-floor") == 0) &&
			 i + 1 < argc) {
			floor = strcmp(argv[i], "--enqueue-floor") == 0;
			enqueue = strtol(argv[++i], NULL, 10);
			if (enqueue < 1 || enqueue > 100000) {
				fprintf(stderr, "bench-sql: --enqueue takes "
						"1..100000\n");
				return 64;
			}
		} else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc)
			prefix = argv[++i];
		else if (strcmp(argv[i], "--schema") == 0 && i + 1 < argc)
			schema = argv[++i];
		else {
			fprintf(stderr,
				"usage: bench-sql [--drain-floor | "
				"--enqueue N | --enqueue-floor N] [--prefix P] "
				"[--schema S]\n"
				"writes the worker's complete+claim pgbench "
				"script; variables: eps batch hb owner,\n"
				"and ids sts tbs (start with {})\n");
			return 64;
		}
	}
	if (sql_names_init(&names, prefix, schema, NULL, &err) == -1) {
		fprintf(stderr, "bench-sql: %s\n", err.message);
		return 64;
	}
	if (drain_floor) {
		write_drain_floor(stdout, &names);
		return fflush(stdout) != 0;
	}
	if ((enqueue > 0 ? write_enqueue(stdout, &names, enqueue, floor)
			 : write_script(stdout, &names)) == -1 ||
	    fflush(stdout) != 0)
		return 1;
	return 0;
}
