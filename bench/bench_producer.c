/*
 * bench-producer: the libpgq client of the benchmarks. `enqueue` times the
 * batch enqueue of N jobs, `sustained` enqueues batches as fast as it can for
 * a while (against a running pgq-master), `latency` sends single jobs at a
 * fixed rate with the send time in the payload for bench_handler.so to
 * compare. Uses only the public API of pgq.h and libpq.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgq.h"

struct opts {
	const char *mode;
	const char *dsn;
	const char *entrypoint;
	const char *out;
	long count;
	long batch;
	double seconds;
	double max_seconds;
	double rate;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC is one clock for every process of the host: the
	 * handler reads the same one in the worker. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
usage(FILE *fp)
{
	fputs("usage: bench-producer enqueue --count N --batch B "
	      "[--max-seconds S]\n"
	      "       bench-producer sustained --seconds S --batch B\n"
	      "       bench-producer latency --rate R --seconds S --out FILE\n"
	      "options: --dsn DSN (default: libpq environment), --entrypoint "
	      "NAME\n",
	      fp);
}

static int
parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"dsn", required_argument, NULL, 'd'},
		{"entrypoint", required_argument, NULL, 'e'},
		{"out", required_argument, NULL, 'o'},
		{"count", required_argument, NULL, 'n'},
		{"batch", required_argument, NULL, 'b'},
		{"seconds", required_argument, NULL, 's'},
		{"max-seconds", required_argument, NULL, 'm'},
		{"rate", required_argument, NULL, 'r'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->entrypoint = "noop";
	o->count = 100000;
	o->batch = 10;
	o->seconds = 10;
	o->rate = 50;
	if (argc < 2) {
		usage(stderr);
		return -1;
	}
	o->mode = argv[1];
	if (strcmp(o->mode, "enqueue") != 0 &&
	    strcmp(o->mode, "sustained") != 0 &&
	    strcmp(o->mode, "latency") != 0) {
		usage(stderr);
		return -1;
	}
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o->dsn = optarg;
			break;
		case 'e':
			o->entrypoint = optarg;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'n':
			o->count = strtol(optarg, NULL, 10);
			break;
		case 'b':
			o->batch = strtol(optarg, NULL, 10);
			break;
		case 's':
			o->seconds = strtod(optarg, NULL);
			break;
		case 'm':
			o->max_seconds = strtod(optarg, NULL);
			break;
		case 'r':
			o->rate = strtod(optarg, NULL);
			break;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc || o->count < 1 || o->batch < 1 ||
	    o->batch > 100000 || o->seconds <= 0 || o->rate <= 0) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static void
report(const char *what, const struct pgq_error *err)
{
	fprintf(stderr, "bench-producer: %s: %s [%s]\n", what, err->message,
		err->sqlstate);
}

/* The server's clock as epoch seconds, to compare with log rows. */
static int
db_epoch(struct pgq *q, double *out)
{
	PGresult *res = PQexec(pgq_conn(q), "SELECT extract(epoch FROM "
					    "clock_timestamp())::float8");
	int rc = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		*out = strtod(PQgetvalue(res, 0, 0), NULL);
		rc = 0;
	} else {
		fprintf(stderr, "bench-producer: clock: %s",
			PQerrorMessage(pgq_conn(q)));
	}
	PQclear(res);
	return rc;
}

static int
run_enqueue(struct pgq *q, const struct opts *o)
{
	size_t batch = (size_t)o->batch, done = 0, total = (size_t)o->count;
	struct pgq_job_spec *jobs = calloc(batch, sizeof(*jobs));
	struct pgq_error err;
	uint64_t t0, t1, deadline = 0;
	int rc = -1;

	if (jobs == NULL) {
		fprintf(stderr, "bench-producer: out of memory\n");
		return -1;
	}
	for (size_t i = 0; i < batch; i++)
		jobs[i].entrypoint = o->entrypoint;
	t0 = now_ns();
	if (o->max_seconds > 0)
		deadline = t0 + (uint64_t)(o->max_seconds * 1e9);
	while (done < total) {
		size_t n = total - done < batch ? total - done : batch;

		if (pgq_enqueue_batch(q, jobs, n, PGQ_CONFLICT_RAISE, NULL,
				      NULL, &err) == -1) {
			report("enqueue", &err);
			goto out;
		}
		done += n;
		if (deadline != 0 && now_ns() >= deadline)
			break;
	}
	t1 = now_ns();
	printf("jobs=%zu seconds=%.3f rate=%.0f capped=%d\n", done,
	       (double)(t1 - t0) / 1e9, (double)done * 1e9 / (double)(t1 - t0),
	       done < total);
	rc = 0;
out:
	free(jobs);
	return rc;
}

static int
run_sustained(struct pgq *q, const struct opts *o)
{
	size_t batch = (size_t)o->batch, done = 0;
	struct pgq_job_spec *jobs = calloc(batch, sizeof(*jobs));
	struct pgq_error err;
	int64_t queued, picked;
	double start, end;
	uint64_t t0, deadline;
	int rc = -1;

	if (jobs == NULL) {
		fprintf(stderr, "bench-producer: out of memory\n");
		return -1;
	}
	for (size_t i = 0; i < batch; i++)
		jobs[i].entrypoint = o->entrypoint;
	if (db_epoch(q, &start) == -1)
		goto out;
	t0 = now_ns();
	deadline = t0 + (uint64_t)(o->seconds * 1e9);
	while (now_ns() < deadline) {
		if (pgq_enqueue_batch(q, jobs, batch, PGQ_CONFLICT_RAISE, NULL,
				      NULL, &err) == -1) {
			report("enqueue", &err);
			goto out;
		}
		done += batch;
	}
	if (db_epoch(q, &end) == -1)
		goto out;
	if (pgq_queue_size(q, NULL, &queued, &picked, &err) == -1) {
		report("queue size", &err);
		goto out;
	}
	printf("enqueued=%zu seconds=%.3f rate=%.0f start=%.6f end=%.6f "
	       "queued=%" PRId64 " picked=%" PRId64 "\n",
	       done, end - start, (double)done / (end - start), start, end,
	       queued, picked);
	rc = 0;
out:
	free(jobs);
	return rc;
}

static void
sleep_until(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
			      .tv_nsec = (long)(ns % 1000000000u)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static int
run_latency(struct pgq *q, const struct opts *o)
{
	long n = (long)(o->rate * o->seconds);
	uint64_t t0, step = (uint64_t)(1e9 / o->rate);
	struct pgq_error err;
	FILE *fp;
	int rc = -1;

	if (o->out == NULL) {
		usage(stderr);
		return -1;
	}
	fp = fopen(o->out, "w");
	if (fp == NULL) {
		fprintf(stderr, "bench-producer: %s: %s\n", o->out,
			strerror(errno));
		return -1;
	}
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		char payload[32];
		struct pgq_job_spec job = {.entrypoint = o->entrypoint};
		uint64_t sent, acked;
		int64_t id;
		int len;

		sleep_until(t0 + (uint64_t)i * step);
		sent = now_ns();
		len = snprintf(payload, sizeof(payload), "%" PRIu64, sent);
		job.payload = payload;
		job.payload_len = (size_t)len;
		if (pgq_enqueue(q, &job, &id, &err) == -1) {
			report("enqueue", &err);
			goto out;
		}
		acked = now_ns();
		fprintf(fp, "%" PRId64 " %" PRIu64 " %" PRIu64 "\n", id, sent,
			acked);
	}
	printf("sent=%ld seconds=%.3f\n", n, (double)(now_ns() - t0) / 1e9);
	rc = 0;
out:
	if (fclose(fp) != 0) {
		fprintf(stderr, "bench-producer: %s: %s\n", o->out,
			strerror(errno));
		rc = -1;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	struct pgq_error err;
	struct opts o;
	struct pgq *q;
	int rc;

	if (parse(argc, argv, &o) == -1)
		return 64;
	q = pgq_connect(o.dsn, NULL, PGQ_ROLE_PRODUCER, &err);
	if (q == NULL) {
		report("connect", &err);
		return 1;
	}
	if (strcmp(o.mode, "enqueue") == 0)
		rc = run_enqueue(q, &o);
	else if (strcmp(o.mode, "sustained") == 0)
		rc = run_sustained(q, &o);
	else
		rc = run_latency(q, &o);
	pgq_free(q);
	return rc == 0 ? 0 : 1;
}
