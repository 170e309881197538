/*
 * bench_handler.so: the handler module of the latency benchmark
 * (`module = .../bench_handler.so`, `function = bench_latency`). The first
 * thing each job does is read CLOCK_MONOTONIC and append "id sent start" to
 * $PGQ_BENCH_OUT/latency.PID, where sent is the producer's clock reading
 * carried in the payload; bench/run joins the files afterwards.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgq.h"

int pgq_module_init(void **resources, const char *entrypoint, char *errbuf,
		    size_t errlen);
void pgq_module_fini(void *resources);
enum pgq_outcome bench_latency(const struct pgq_job *job, void *resources,
			       struct pgq_result *res);

struct bench_state {
	int fd;
};

int
pgq_module_init(void **resources, const char *entrypoint, char *errbuf,
		size_t errlen)
{
	const char *dir = getenv("PGQ_BENCH_OUT");
	struct bench_state *st;
	char path[4096];

	(void)entrypoint;
	if (dir == NULL || dir[0] == '\0') {
		snprintf(errbuf, errlen, "PGQ_BENCH_OUT is not set");
		return 1;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		snprintf(errbuf, errlen, "out of memory");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/latency.%ld", dir, (long)getpid());
	st->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (st->fd == -1) {
		snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
		free(st);
		return 1;
	}
	*resources = st;
	return 0;
}

void
pgq_module_fini(void *resources)
{
	struct bench_state *st = resources;

	if (st == NULL)
		return;
	close(st->fd);
	free(st);
}

enum pgq_outcome
bench_latency(const struct pgq_job *job, void *resources,
	      struct pgq_result *res)
{
	struct bench_state *st = resources;
	struct timespec ts;
	uint64_t start, sent = 0;
	char line[96];
	int len;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	start = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (job->payload != NULL && job->payload_len < 32) {
		char buf[32];

		memcpy(buf, job->payload, job->payload_len);
		buf[job->payload_len] = '\0';
		sent = strtoull(buf, NULL, 10);
	}
	len = snprintf(line, sizeof(line),
		       "%" PRId64 " %" PRIu64 " %" PRIu64 "\n", job->id, sent,
		       start);
	/* One write per line: O_APPEND keeps lines whole. */
	if (write(st->fd, line, (size_t)len) != (ssize_t)len) {
		snprintf(res->exception_type, sizeof(res->exception_type),
			 "BenchWriteError");
		snprintf(res->message, sizeof(res->message), "%s",
			 strerror(errno));
		return PGQ_OUTCOME_FAIL;
	}
	return PGQ_OUTCOME_SUCCESS;
}
