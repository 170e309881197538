/*
 * The verbs of schedules and statistics: `schedules` lists (or removes) the
 * rows of the schedules table, `stats` shows throughput and failures per
 * entrypoint from the statistics table plus the log rows not folded into it
 * yet, and `prune` trims the log and the statistics by age.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/lib.h"

/* Parses a duration option into a PostgreSQL interval literal. */
static int
parse_interval(const struct cli *c, const char *opt, const char *s, char *out,
	       size_t outlen, uint64_t *ms_out)
{
	uint64_t ms;

	if (!parse_duration_ms(s, &ms) || ms == 0)
		return cli_usage_error(c,
				       "--%s: must be a duration above 0 like "
				       "30m, 1h or 7d, got \"%s\"",
				       opt, s);
	snprintf(out, outlen, "%llu milliseconds", (unsigned long long)ms);
	if (ms_out != NULL)
		*ms_out = ms;
	return 0;
}

static int
list_schedules(struct cli *c, struct pgq *q)
{
	static const char *const heads[] = {">ID",	  "ENTRYPOINT",
					    "EXPRESSION", "STATUS",
					    "NEXT_RUN",	  "LAST_RUN"};
	struct pgq_error err;
	struct cli_table t;
	PGresult *r;

	r = sql_exec(lib_session(q), SQL_SCHEDULE_LIST, 0, NULL, &err);
	if (r == NULL)
		return cli_db_error(c, &err);
	if (PQntuples(r) == 0) {
		printf("no schedules\n");
		PQclear(r);
		return CLI_EXIT_OK;
	}
	cli_table_init(&t, heads, PGQ_NELEM(heads));
	for (int i = 0; i < PQntuples(r); i++) {
		char *next = cli_time_short(PQgetvalue(r, i, 4));
		char *last = PQgetisnull(r, i, 5)
				     ? xstrdup("never")
				     : cli_time_short(PQgetvalue(r, i, 5));
		const char *row[6] = {PQgetvalue(r, i, 0),
				      PQgetvalue(r, i, 2),
				      PQgetvalue(r, i, 1),
				      PQgetvalue(r, i, 3),
				      next,
				      last};

		cli_table_add(&t, row);
		free(next);
		free(last);
	}
	PQclear(r);
	cli_table_print(&t);
	cli_table_clear(&t);
	return CLI_EXIT_OK;
}

/* Arguments that are ids remove by id, the others by entrypoint. */
static int
remove_schedules(struct cli *c, struct pgq *q, char **argv, int n)
{
	const char **names = xcalloc((size_t)n, sizeof(*names));
	int64_t *ids = xcalloc((size_t)n, sizeof(*ids));
	size_t nnames = 0, nids = 0;
	char *ids_s = NULL, *names_s = NULL;
	const char *values[2];
	struct pgq_error err;
	PGresult *r;
	int rc = CLI_EXIT_OK;

	for (int i = 0; i < n; i++) {
		if (cli_parse_id(argv[i], &ids[nids]))
			nids++;
		else
			names[nnames++] = argv[i];
	}
	ids_s = int64_array_literal(ids, nids);
	names_s = text_array_literal(names, nnames);
	values[0] = ids_s;
	values[1] = names_s;
	r = sql_exec(lib_session(q), SQL_SCHEDULE_REMOVE, 2, values, &err);
	if (r == NULL) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	for (int i = 0; i < PQntuples(r); i++)
		printf("removed schedule %s: %s %s\n", PQgetvalue(r, i, 0),
		       PQgetvalue(r, i, 2), PQgetvalue(r, i, 1));
	if (PQntuples(r) == 0) {
		cli_warnx(c, "no schedule matched");
		rc = CLI_EXIT_FAIL;
	}
	PQclear(r);
out:
	free(ids_s);
	free(names_s);
	free(ids);
	free(names);
	return rc;
}

static int
run_schedules(struct cli *c, int argc, char **argv)
{
	bool remove = false;
	const struct cli_opt opts[] = {
		{"remove", NULL, &remove},
		{NULL, NULL, NULL},
	};
	struct pgq *q;
	int npos, rc;

	rc = cli_parse(c, &cli_verb_schedules, opts, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (!remove && npos > 0)
		return cli_usage_error(c, "unexpected argument '%s'", argv[0]);
	if (remove && npos == 0)
		return cli_usage_error(c, "--remove: name an ID or ENTRYPOINT");
	rc = cli_connect(c, &q);
	if (rc != 0)
		return rc;
	rc = remove ? remove_schedules(c, q, argv, npos) : list_schedules(c, q);
	pgq_free(q);
	return rc;
}

static long long
num(const PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int
run_stats(struct cli *c, int argc, char **argv)
{
	static const char *const heads[] = {
		"ENTRYPOINT", ">QUEUED", ">PICKED",   ">SUCCESSFUL",
		">EXCEPTION", ">FAILED", ">CANCELED", ">DELETED",
		">DONE/S",    "LAST"};
	const char *since = "1h";
	const struct cli_opt opts[] = {
		{"since", &since, NULL},
		{NULL, NULL, NULL},
	};
	long long total[7] = {0};
	char interval[64];
	const char *values[1];
	struct pgq_error err;
	struct cli_table t;
	uint64_t window_ms = 1;
	struct pgq *q;
	PGresult *r;
	int npos, rc;

	rc = cli_parse(c, &cli_verb_stats, opts, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos > 0)
		return cli_usage_error(c, "unexpected argument '%s'", argv[0]);
	rc = parse_interval(c, "since", since, interval, sizeof(interval),
			    &window_ms);
	if (rc != 0)
		return rc;
	rc = cli_connect(c, &q);
	if (rc != 0)
		return rc;
	values[0] = interval;
	r = sql_exec(lib_session(q), SQL_STATS, 1, values, &err);
	if (r == NULL) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	if (PQntuples(r) == 0) {
		printf("no activity in the last %s\n", since);
		PQclear(r);
		goto out;
	}
	cli_table_init(&t, heads, PGQ_NELEM(heads));
	for (int i = 0; i <= PQntuples(r); i++) {
		bool sum = i == PQntuples(r);
		char cells[8][32];
		const char *row[10];
		long long done = 0;
		char *last = NULL;

		if (sum && PQntuples(r) < 2)
			break;
		for (int k = 0; k < 7; k++) {
			long long v = sum ? total[k] : num(r, i, k + 1);

			if (!sum)
				total[k] += v;
			/* Every transition that ends a run: not queued, not
			 * picked. */
			if (k >= 2)
				done += v;
			snprintf(cells[k], sizeof(cells[k]), "%lld", v);
			row[k + 1] = cells[k];
		}
		snprintf(cells[7], sizeof(cells[7]), "%.2f",
			 (double)done * 1000.0 / (double)window_ms);
		row[0] = sum ? "total" : PQgetvalue(r, i, 0);
		row[8] = cells[7];
		if (!sum)
			last = cli_time_short(PQgetvalue(r, i, 8));
		row[9] = last != NULL ? last : "";
		cli_table_add(&t, row);
		free(last);
	}
	PQclear(r);
	printf("last %s: statistics plus log rows not aggregated yet\n", since);
	cli_table_print(&t);
	cli_table_clear(&t);
out:
	pgq_free(q);
	return rc;
}

static int
run_prune(struct cli *c, int argc, char **argv)
{
	const char *older = NULL;
	bool all = false;
	const struct cli_opt opts[] = {
		{"older-than", &older, NULL},
		{"all", NULL, &all},
		{NULL, NULL, NULL},
	};
	char interval[64];
	const char *values[2];
	struct pgq_error err;
	struct pgq *q;
	PGresult *r;
	int npos, rc;

	rc = cli_parse(c, &cli_verb_prune, opts, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos > 0)
		return cli_usage_error(c, "unexpected argument '%s'", argv[0]);
	if (older == NULL)
		return cli_usage_error(c, "--older-than DURATION is required");
	rc = parse_interval(c, "older-than", older, interval, sizeof(interval),
			    NULL);
	if (rc != 0)
		return rc;
	rc = cli_connect(c, &q);
	if (rc != 0)
		return rc;
	values[0] = interval;
	values[1] = all ? "true" : "false";
	r = sql_exec(lib_session(q), SQL_PRUNE, 2, values, &err);
	if (r == NULL) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	printf("deleted %s log row%s%s and %s statistics row%s older than %s\n",
	       PQgetvalue(r, 0, 0), strcmp(PQgetvalue(r, 0, 0), "1") ? "s" : "",
	       all ? "" : " (aggregated ones)", PQgetvalue(r, 0, 1),
	       strcmp(PQgetvalue(r, 0, 1), "1") ? "s" : "", older);
	PQclear(r);
out:
	pgq_free(q);
	return rc;
}

const struct cli_verb cli_verb_schedules = {
	.name = "schedules",
	.synopsis = "[--remove ID|ENTRYPOINT...]",
	.summary = "list the cron schedules (or remove some)",
	.help = "Options:\n"
		"  --remove  delete the schedules with these ids or "
		"entrypoints\n"
		"\n"
		"pgq-master keeps its [schedule NAME] sections in this table, "
		"as\n"
		"PgQueuer's scheduler does; a running master that still has "
		"the\n"
		"section puts a removed row back within 30 seconds.\n",
	.run = run_schedules,
};

const struct cli_verb cli_verb_stats = {
	.name = "stats",
	.synopsis = "[--since DURATION]",
	.summary = "show throughput and failures per entrypoint",
	.help = "Options:\n"
		"  --since DURATION  the window, ending now (default 1h)\n"
		"\n"
		"Counts of each transition from the statistics table, which "
		"pgq-master\n"
		"fills every stats_interval, plus the log rows not folded in "
		"yet.\n"
		"DONE/S is the jobs that ended (any final status) per second "
		"of the\n"
		"window.\n",
	.run = run_stats,
};

const struct cli_verb cli_verb_prune = {
	.name = "prune",
	.synopsis = "--older-than DURATION [--all]",
	.summary = "delete old log and statistics rows",
	.help = "Options:\n"
		"  --older-than DURATION  rows created longer ago than this "
		"(7d, 12h)\n"
		"  --all                  also log rows not yet aggregated "
		"into the\n"
		"                         statistics (their counts are lost)\n",
	.run = run_prune,
};
