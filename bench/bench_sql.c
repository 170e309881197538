/*
 * bench-sql: writes the pgbench script of the `limit` scenario from pgq's own
 * claim and complete statements (sql/queries.sql, rendered for the queue's
 * names), so that the ceiling pgbench measures is the cost of exactly the SQL
 * a worker sends. The only change is the claim's final SELECT, folded into
 * one row of arrays because pgbench's \gset needs a single row.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql.h"

/*
 * The claim's result as one row: the ids in claim order, a 'successful'
 * status and a NULL traceback per id, ready to be bound as the complete
 * statement's $2, $3 and $4 (an empty claim gives NULL arrays, which
 * complete turns into no rows).
 */
static const char claim_fold[] =
	"SELECT array_agg(id ORDER BY priority DESC, id ASC) AS ids,\n"
	"       array_agg('successful'::text) AS sts,\n"
	"       array_agg(NULL::text) AS tbs\n"
	"FROM claimed\n";

/*
 * The same fold for the combined statement, which passes the arrays on to
 * the next transaction of the same client: empty arrays rather than NULLs,
 * so that the next statement binds them as they are.
 */
static const char combined_fold[] =
	"SELECT coalesce(array_agg(id ORDER BY priority DESC, id ASC),\n"
	"                '{}') AS ids,\n"
	"       coalesce(array_agg('successful'::text), '{}') AS sts,\n"
	"       coalesce(array_agg(NULL::text), '{}') AS tbs\n"
	"FROM claimed\n";

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
	if (sel == NULL || strstr(sel, "FROM claimed") == NULL) {
		fprintf(stderr, "bench-sql: the claim statement no longer ends "
				"with a SELECT from claimed\n");
		goto out;
	}
	fprintf(fp, "-- pgq claim (%s), final SELECT folded for \\gset\n",
		sql_stmt_name(SQL_CLAIM));
	if (put_with_vars(fp, claim, (size_t)(sel - claim), claim_vars, 4) ==
	    -1)
		goto out;
	fputs(claim_fold, fp);
	fputs("\\gset\n", fp);
	fprintf(fp, "-- pgq complete (%s), unchanged\n",
		sql_stmt_name(SQL_COMPLETE));
	if (put_with_vars(fp, complete, trim_end(complete, strlen(complete)),
			  complete_vars, 4) == -1)
		goto out;
	fputs(";\n", fp);
	rc = 0;
out:
	free(claim);
	free(complete);
	return rc;
}

/*
 * The worker's steady state: one statement completes the previous batch
 * and claims the next. Each client carries its batch from one transaction
 * to the next in its variables (start with -D ids={} sts={} tbs={}).
 */
static int
write_combined(FILE *fp, const struct sql_names *names)
{
	static const char *const vars[] = {"owner", "ids",   "sts", "tbs",
					   "eps",   "batch", "hb"};
	char *cc = sql_stmt_render(SQL_COMPLETE_CLAIM, names);
	const char *sel;
	int rc = -1;

	sel = last_select(cc);
	if (sel == NULL || strstr(sel, "FROM claimed") == NULL) {
		fprintf(stderr, "bench-sql: the combined statement no longer "
				"ends with a SELECT from claimed\n");
		goto out;
	}
	fprintf(fp, "-- pgq complete + claim (%s), final SELECT folded\n",
		sql_stmt_name(SQL_COMPLETE_CLAIM));
	if (put_with_vars(fp, cc, (size_t)(sel - cc), vars, 7) == -1)
		goto out;
	fputs(combined_fold, fp);
	fputs("\\gset\n", fp);
	rc = 0;
out:
	free(cc);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *prefix = NULL, *schema = NULL;
	struct sql_names names;
	struct pgq_error err;
	bool combined = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--combined") == 0)
			combined = true;
		else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc)
			prefix = argv[++i];
		else if (strcmp(argv[i], "--schema") == 0 && i + 1 < argc)
			schema = argv[++i];
		else {
			fprintf(stderr,
				"usage: bench-sql [--combined] [--prefix P] "
				"[--schema S]\n"
				"writes the claim+complete pgbench script; "
				"variables: eps batch hb owner\n"
				"(--combined: the complete_claim statement; "
				"also ids sts tbs)\n");
			return 64;
		}
	}
	if (sql_names_init(&names, prefix, schema, NULL, &err) == -1) {
		fprintf(stderr, "bench-sql: %s\n", err.message);
		return 64;
	}
	if ((combined ? write_combined(stdout, &names)
		      : write_script(stdout, &names)) == -1 ||
	    fflush(stdout) != 0)
		return 1;
	return 0;
}
