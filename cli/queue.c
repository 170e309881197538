/*
 * `pgq queue`: enqueue one job, or N copies for a bulk load. Copies go in
 * statements of BATCH jobs inside one transaction, so a load is all or
 * nothing and the trigger's notifications arrive together at commit.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "driver/driver.h"

/* Jobs per statement in a bulk load: big enough to amortise round trips,
 * small enough to keep each statement's arrays a few hundred kilobytes. */
#define BATCH	    1000
#define MAX_COUNT   100000000LL
#define PAYLOAD_MAX ((size_t)1 << 30)

/* Reads all of standard input. Returns 0, or -1 after reporting. */
static int
read_stdin(const struct cli *c, char **buf_out, size_t *len_out)
{
	size_t len = 0, cap = 4096;
	char *buf = xmalloc(cap);

	for (;;) {
		size_t n;

		if (len == cap) {
			if (cap >= PAYLOAD_MAX) {
				cli_warnx(c, "payload: standard input is "
					     "larger than 1 GiB");
				free(buf);
				return -1;
			}
			cap *= 2;
			buf = xrealloc(buf, cap, 1);
		}
		n = fread(buf + len, 1, cap - len, stdin);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(stdin)) {
		cli_warnx(c, "payload: cannot read standard input");
		free(buf);
		return -1;
	}
	*buf_out = buf;
	*len_out = len;
	return 0;
}

/* Loads count copies of spec in one transaction; prints the count. */
static int
queue_bulk(const struct cli *c, struct pgq *q, const struct pgq_job_spec *spec,
	   long long count, enum pgq_on_conflict conflict)
{
	struct pgq_job_spec *specs = xcalloc(BATCH, sizeof(*specs));
	PGconn *conn = pgq_conn(q);
	struct pgq_error err;
	long long done = 0, added_total = 0;
	int rc = CLI_EXIT_OK;

	for (size_t i = 0; i < BATCH; i++)
		specs[i] = *spec;
	if (driver_exec_simple(conn, "BEGIN", &err) == -1) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	while (done < count) {
		size_t n =
			count - done > BATCH ? BATCH : (size_t)(count - done);
		size_t added = 0;

		if (pgq_enqueue_batch(q, specs, n, conflict, NULL, &added,
				      &err) == -1) {
			rc = cli_db_error(c, &err);
			/* the connection closes with pgq_free: it rolls back */
			goto out;
		}
		done += (long long)n;
		added_total += (long long)added;
	}
	if (driver_exec_simple(conn, "COMMIT", &err) == -1) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	printf("enqueued %lld job%s\n", added_total,
	       added_total == 1 ? "" : "s");
	if (added_total == 0)
		rc = CLI_EXIT_FAIL;
out:
	free(specs);
	return rc;
}

static int
run_queue(struct cli *c, int argc, char **argv)
{
	const char *priority = NULL, *delay = NULL, *dedupe = NULL;
	const char *conflict_s = NULL, *headers = NULL, *count_s = NULL;
	const struct cli_opt opts[] = {
		{"priority", &priority, NULL},
		{"delay", &delay, NULL},
		{"dedupe-key", &dedupe, NULL},
		{"on-conflict", &conflict_s, NULL},
		{"headers", &headers, NULL},
		{"count", &count_s, NULL},
		{NULL, NULL, NULL},
	};
	enum pgq_on_conflict conflict = PGQ_CONFLICT_RAISE;
	struct pgq_job_spec spec;
	struct pgq_error err;
	struct pgq *q = NULL;
	char *input = NULL;
	long long count = 1, prio = 0;
	int npos, rc;

	memset(&spec, 0, sizeof(spec));
	rc = cli_parse(c, &cli_verb_queue, opts, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos == 0)
		return cli_usage_error(c, "missing ENTRYPOINT");
	if (npos > 2)
		return cli_usage_error(c, "unexpected argument '%s'", argv[2]);
	if (argv[0][0] == '\0')
		return cli_usage_error(c, "ENTRYPOINT must not be empty");
	spec.entrypoint = argv[0];
	if (priority != NULL) {
		if (!parse_int_range(priority, INT32_MIN, INT32_MAX, &prio))
			return cli_usage_error(c,
					       "--priority: must be a whole "
					       "number in 32 bits, got \"%s\"",
					       priority);
		spec.priority = (int32_t)prio;
	}
	if (delay != NULL) {
		uint64_t ms;

		if (!parse_duration_ms(delay, &ms))
			return cli_usage_error(c,
					       "--delay: must be a duration "
					       "like 500ms, 30s, 5m, 2h, got "
					       "\"%s\"",
					       delay);
		spec.delay_ms = (int64_t)ms;
	}
	if (dedupe != NULL) {
		if (dedupe[0] == '\0')
			return cli_usage_error(
				c, "--dedupe-key must not be empty");
		spec.dedupe_key = dedupe;
	}
	if (conflict_s != NULL) {
		if (strcmp(conflict_s, "skip") == 0)
			conflict = PGQ_CONFLICT_SKIP;
		else if (strcmp(conflict_s, "raise") != 0)
			return cli_usage_error(c,
					       "--on-conflict: must be raise "
					       "or skip, got \"%s\"",
					       conflict_s);
	}
	if (headers != NULL) {
		json_error_t jerr;
		json_t *h = json_loads(headers, JSON_REJECT_DUPLICATES, &jerr);
		bool object = json_is_object(h);

		json_decref(h);
		if (h == NULL)
			return cli_usage_error(c,
					       "--headers: not valid JSON: %s "
					       "(column %d)",
					       jerr.text, jerr.column);
		if (!object)
			return cli_usage_error(
				c, "--headers: must be a JSON "
				   "object like {\"key\": \"value\"}");
		spec.headers_json = headers;
	}
	if (count_s != NULL) {
		if (!parse_int_range(count_s, 1, MAX_COUNT, &count))
			return cli_usage_error(c,
					       "--count: must be 1..%lld, got "
					       "\"%s\"",
					       MAX_COUNT, count_s);
		if (dedupe != NULL && count > 1)
			return cli_usage_error(c, "--dedupe-key cannot be used "
						  "with --count above 1: the "
						  "copies would share one key");
	}
	if (npos == 2 && strcmp(argv[1], "-") == 0) {
		if (read_stdin(c, &input, &spec.payload_len) == -1)
			return CLI_EXIT_FAIL;
		spec.payload = input;
	} else if (npos == 2) {
		spec.payload = argv[1];
		spec.payload_len = strlen(argv[1]);
	}

	rc = cli_connect(c, &q);
	if (rc != 0)
		goto out;
	if (count_s != NULL) {
		rc = queue_bulk(c, q, &spec, count, conflict);
	} else {
		int64_t id = 0;
		size_t added = 0;

		if (pgq_enqueue_batch(q, &spec, 1, conflict, &id, &added,
				      &err) == -1) {
			rc = cli_db_error(c, &err);
		} else if (added == 0) {
			cli_warnx(c,
				  "skipped: a job with dedupe_key \"%s\" is "
				  "already queued or picked",
				  dedupe != NULL ? dedupe : "");
			rc = CLI_EXIT_FAIL;
		} else {
			printf("%lld\n", (long long)id);
		}
	}
out:
	pgq_free(q);
	free(input);
	return rc;
}

const struct cli_verb cli_verb_queue = {
	.name = "queue",
	.synopsis = "[options] ENTRYPOINT [PAYLOAD|-]",
	.summary = "enqueue a job (or --count N copies) and print its id",
	.help = "PAYLOAD is stored as bytes; '-' reads it from standard input; "
		"without it\n"
		"the payload is NULL.\n"
		"\n"
		"Options:\n"
		"  --priority N            higher runs first (default 0)\n"
		"  --delay DURATION        run no earlier than now + DURATION "
		"(500ms, 30s, 5m)\n"
		"  --dedupe-key KEY        at most one queued or running job "
		"per KEY\n"
		"  --on-conflict raise|skip  a duplicate KEY fails (raise, "
		"exit "
		"3) or is\n"
		"                          left out (skip, exit 1)\n"
		"  --headers JSON          a JSON object stored with the job\n"
		"  --count N               enqueue N copies in one "
		"transaction, "
		"in\n"
		"                          statements of 1000; prints "
		"\"enqueued "
		"N jobs\"\n",
	.run = run_queue,
};
