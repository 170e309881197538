/*
 * The verbs that change jobs: `cancel` removes queued jobs and tells the
 * holders of running ones, `requeue` puts held jobs back in the queue. Both
 * go through libpgq so that they notify as the library does.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/lib.h"

/* Parses argv[0 .. n) as job ids into a fresh array. Returns 0 or exit code. */
static int
parse_ids(const struct cli *c, char **argv, int n, int64_t **ids_out)
{
	int64_t *ids = xcalloc((size_t)n, sizeof(*ids));

	for (int i = 0; i < n; i++) {
		if (!cli_parse_id(argv[i], &ids[i])) {
			free(ids);
			return cli_usage_error(c, "not a job id: \"%s\"",
					       argv[i]);
		}
	}
	*ids_out = ids;
	return 0;
}

/*
 * How many of ids are picked now, by their last log row: running in a
 * worker or waiting in its batch. pgq_cancel's cancellation_event reaches
 * them; it removed only the queued ones. -1 on a database error.
 */
static int
count_running(struct pgq *q, const int64_t *ids, int n, struct pgq_error *err)
{
	int running = 0;

	for (int i = 0; i < n; i++) {
		char id[24];
		const char *values[1] = {id};
		PGresult *r;
		int rows;

		snprintf(id, sizeof(id), "%lld", (long long)ids[i]);
		r = sql_exec(lib_session(q), SQL_JOB_LOG, 1, values, err);
		if (r == NULL)
			return -1;
		rows = PQntuples(r);
		if (rows > 0 &&
		    strcmp(PQgetvalue(r, rows - 1, 1), "picked") == 0)
			running++;
		PQclear(r);
	}
	return running;
}

static int
run_cancel(struct cli *c, int argc, char **argv)
{
	struct pgq_error err;
	int64_t *ids = NULL;
	struct pgq *q = NULL;
	size_t canceled = 0;
	int npos, rc;

	rc = cli_parse(c, &cli_verb_cancel, NULL, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos == 0)
		return cli_usage_error(c, "missing job ID");
	if ((rc = parse_ids(c, argv, npos, &ids)) != 0)
		return rc;
	rc = cli_connect(c, &q);
	if (rc != 0)
		goto out;
	if (pgq_cancel(q, ids, (size_t)npos, &canceled, &err) == -1) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	printf("canceled %zu queued job%s\n", canceled,
	       canceled == 1 ? "" : "s");
	if (canceled < (size_t)npos) {
		int running = count_running(q, ids, npos, &err);

		if (running < 0) {
			rc = cli_db_error(c, &err);
			goto out;
		}
		if (running > 0)
			printf("sent a cancellation to %d running job%s\n",
			       running, running == 1 ? "" : "s");
		if (canceled + (size_t)running < (size_t)npos) {
			cli_warnx(c,
				  "%zu of the ids are neither queued nor "
				  "running (finished, or no such job)",
				  (size_t)npos - canceled - (size_t)running);
			rc = CLI_EXIT_FAIL;
		}
	}
out:
	pgq_free(q);
	free(ids);
	return rc;
}

static int
run_requeue(struct cli *c, int argc, char **argv)
{
	bool all = false;
	const struct cli_opt opts[] = {
		{"all", NULL, &all},
		{NULL, NULL, NULL},
	};
	struct pgq_error err;
	int64_t *ids = NULL;
	struct pgq *q = NULL;
	size_t requeued = 0;
	int npos, rc;

	rc = cli_parse(c, &cli_verb_requeue, opts, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos == 0 && !all)
		return cli_usage_error(c, "missing job ID (or --all)");
	if (npos > 0 && all)
		return cli_usage_error(c, "give job IDs or --all, not both");
	if (npos > 0 && (rc = parse_ids(c, argv, npos, &ids)) != 0)
		return rc;
	rc = cli_connect(c, &q);
	if (rc != 0)
		goto out;
	/* n = 0 is the library's "every held job" */
	if (pgq_requeue(q, ids, all ? 0 : (size_t)npos, &requeued, &err) ==
	    -1) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	printf("requeued %zu job%s\n", requeued, requeued == 1 ? "" : "s");
	if (requeued == 0) {
		cli_warnx(c, all ? "no held jobs"
				 : "none of the ids is a held (failed) job");
		rc = CLI_EXIT_FAIL;
	}
out:
	pgq_free(q);
	free(ids);
	return rc;
}

const struct cli_verb cli_verb_cancel = {
	.name = "cancel",
	.synopsis = "ID...",
	.summary =
		"remove queued jobs; ask the holders of running ones to stop",
	.help = "Queued jobs are deleted with a 'canceled' log row; a "
		"cancellation_event\n"
		"naming every ID is sent on the channel. Exits 1 when no "
		"queued "
		"job was\n"
		"among the IDs.\n",
	.run = run_cancel,
};

const struct cli_verb cli_verb_requeue = {
	.name = "requeue",
	.synopsis = "ID...|--all",
	.summary = "put held (failed) jobs back in the queue",
	.help = "Options:\n"
		"  --all  every held job\n"
		"\n"
		"The jobs get status queued, attempts 0 and run at once; "
		"workers are\n"
		"notified. Exits 1 when no held job was found.\n",
	.run = run_requeue,
};
