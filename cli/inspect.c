/*
 * The reading verbs: `status` (queue size by entrypoint, priority and
 * status), `failed` (held jobs) and `log` (one job's history). Each runs one
 * statement of sql/ and prints a table for people.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/lib.h"

/* Widest error summary in a table row: keeps rows on one terminal line. */
#define ERROR_WIDTH 60

static int
run_status(struct cli *c, int argc, char **argv)
{
	static const char *const heads[] = {"ENTRYPOINT", ">PRIORITY", "STATUS",
					    ">COUNT"};
	const char *entrypoint = NULL;
	const struct cli_opt opts[] = {
		{"entrypoint", &entrypoint, NULL},
		{NULL, NULL, NULL},
	};
	const char *values[1];
	struct cli_table t;
	struct pgq_error err;
	struct pgq *q;
	PGresult *r;
	long long total = 0;
	int npos, rc;

	rc = cli_parse(c, &cli_verb_status, opts, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos > 0)
		return cli_usage_error(c, "unexpected argument '%s'", argv[0]);
	rc = cli_connect(c, &q);
	if (rc != 0)
		return rc;
	values[0] = entrypoint;
	r = sql_exec(lib_session(q), SQL_QUEUE_SIZE, 1, values, &err);
	if (r == NULL) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	if (PQntuples(r) == 0) {
		if (entrypoint != NULL)
			printf("no jobs for entrypoint %s\n", entrypoint);
		else
			printf("no jobs\n");
		PQclear(r);
		goto out;
	}
	cli_table_init(&t, heads, PGQ_NELEM(heads));
	for (int i = 0; i < PQntuples(r); i++) {
		const char *row[4] = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
				      PQgetvalue(r, i, 2), PQgetvalue(r, i, 3)};

		total += strtoll(row[3], NULL, 10);
		cli_table_add(&t, row);
	}
	if (PQntuples(r) > 1) {
		char num[32];
		const char *row[4] = {"total", "", "", num};

		snprintf(num, sizeof(num), "%lld", total);
		cli_table_add(&t, row);
	}
	PQclear(r);
	cli_table_print(&t);
	cli_table_clear(&t);
out:
	pgq_free(q);
	return rc;
}

static int
run_failed(struct cli *c, int argc, char **argv)
{
	static const char *const heads[] = {">ID",	 "ENTRYPOINT",
					    ">PRIORITY", ">ATTEMPTS",
					    "UPDATED",	 "ERROR"};
	const char *limit_s = NULL;
	const struct cli_opt opts[] = {
		{"limit", &limit_s, NULL},
		{NULL, NULL, NULL},
	};
	const char *values[1];
	struct cli_table t;
	struct pgq_error err;
	long long limit = 100;
	char num[32];
	struct pgq *q;
	PGresult *r;
	int npos, rc;

	rc = cli_parse(c, &cli_verb_failed, opts, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos > 0)
		return cli_usage_error(c, "unexpected argument '%s'", argv[0]);
	if (limit_s != NULL && !parse_int_range(limit_s, 1, INT32_MAX, &limit))
		return cli_usage_error(c,
				       "--limit: must be a positive whole "
				       "number, got \"%s\"",
				       limit_s);
	rc = cli_connect(c, &q);
	if (rc != 0)
		return rc;
	snprintf(num, sizeof(num), "%lld", limit);
	values[0] = num;
	r = sql_exec(lib_session(q), SQL_FAILED, 1, values, &err);
	if (r == NULL) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	if (PQntuples(r) == 0) {
		printf("no held jobs\n");
		PQclear(r);
		goto out;
	}
	cli_table_init(&t, heads, PGQ_NELEM(heads));
	for (int i = 0; i < PQntuples(r); i++) {
		char *summary = cli_traceback_summary(
			PQgetisnull(r, i, 5) ? NULL : PQgetvalue(r, i, 5),
			ERROR_WIDTH);
		char *updated = cli_time_short(PQgetvalue(r, i, 4));
		const char *row[6] = {PQgetvalue(r, i, 0),
				      PQgetvalue(r, i, 1),
				      PQgetvalue(r, i, 2),
				      PQgetvalue(r, i, 3),
				      updated,
				      summary};

		cli_table_add(&t, row);
		free(updated);
		free(summary);
	}
	PQclear(r);
	cli_table_print(&t);
	cli_table_clear(&t);
out:
	pgq_free(q);
	return rc;
}

static int
run_log(struct cli *c, int argc, char **argv)
{
	static const char *const heads[] = {"CREATED", "STATUS", ">PRIORITY",
					    "ENTRYPOINT", "ERROR"};
	const char *values[1];
	struct cli_table t;
	struct pgq_error err;
	struct pgq *q;
	PGresult *r;
	int64_t id;
	int npos, rc;

	rc = cli_parse(c, &cli_verb_log, NULL, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos != 1)
		return cli_usage_error(c, npos == 0 ? "missing job ID"
						    : "log takes one job ID");
	if (!cli_parse_id(argv[0], &id))
		return cli_usage_error(c, "not a job id: \"%s\"", argv[0]);
	rc = cli_connect(c, &q);
	if (rc != 0)
		return rc;
	values[0] = argv[0];
	r = sql_exec(lib_session(q), SQL_JOB_LOG, 1, values, &err);
	if (r == NULL) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	if (PQntuples(r) == 0) {
		cli_warnx(c, "no history for job %lld", (long long)id);
		PQclear(r);
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	cli_table_init(&t, heads, PGQ_NELEM(heads));
	for (int i = 0; i < PQntuples(r); i++) {
		char *summary = cli_traceback_summary(
			PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4),
			ERROR_WIDTH);
		char *created = cli_time_short(PQgetvalue(r, i, 0));
		const char *row[5] = {created, PQgetvalue(r, i, 1),
				      PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
				      summary};

		cli_table_add(&t, row);
		free(created);
		free(summary);
	}
	PQclear(r);
	cli_table_print(&t);
	cli_table_clear(&t);
out:
	pgq_free(q);
	return rc;
}

const struct cli_verb cli_verb_status = {
	.name = "status",
	.synopsis = "[--entrypoint NAME]",
	.summary = "show the queue size by entrypoint, priority and status",
	.help = "Options:\n"
		"  --entrypoint NAME  only the jobs of this entrypoint\n",
	.run = run_status,
};

const struct cli_verb cli_verb_failed = {
	.name = "failed",
	.synopsis = "[--limit N]",
	.summary = "list held jobs (status failed) with their last error",
	.help = "Options:\n"
		"  --limit N  show at most N jobs (default 100)\n"
		"\n"
		"Put them back with pgq requeue ID... or pgq requeue --all.\n",
	.run = run_failed,
};

const struct cli_verb cli_verb_log = {
	.name = "log",
	.synopsis = "ID",
	.summary = "show a job's history from the log table",
	.help = "Exits 1 when the log holds no row for the job.\n",
	.run = run_log,
};
