/*
 * An example handler module for pgq-master (`module = .../handler_module.so`,
 * `function = example_handler`), also used by the tests. Each worker calls
 * pgq_module_init once per entrypoint: the state it returns is handed to every
 * call, and pgq_module_fini releases it when the worker exits.
 *
 * What a job's payload makes it do: "fail" fails (exception ExampleError),
 * "retry" asks for a retry, "crash" aborts the worker (for crash-recovery
 * tests); anything else succeeds. An entrypoint whose name starts with
 * "init_fail" makes pgq_module_init fail, so the worker exits 78.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgq.h"

/* Counters a test can read with dlsym; one process = one worker. */
int example_module_inits;
int example_module_finis;
long example_module_calls;

struct example_state {
	char entrypoint[64];
	long calls; /* jobs this entrypoint ran in this worker */
};

int pgq_module_init(void **resources, const char *entrypoint, char *errbuf,
		    size_t errlen);
void pgq_module_fini(void *resources);
enum pgq_outcome example_handler(const struct pgq_job *job, void *resources,
				 struct pgq_result *res);

int
pgq_module_init(void **resources, const char *entrypoint, char *errbuf,
		size_t errlen)
{
	struct example_state *st;

	if (strncmp(entrypoint, "init_fail", 9) == 0) {
		snprintf(errbuf, errlen,
			 "entrypoint %s asks the example module to fail",
			 entrypoint);
		return 1;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		snprintf(errbuf, errlen, "out of memory");
		return 1;
	}
	snprintf(st->entrypoint, sizeof(st->entrypoint), "%s", entrypoint);
	*resources = st;
	example_module_inits++;
	return 0;
}

void
pgq_module_fini(void *resources)
{
	free(resources);
	example_module_finis++;
}

static int
payload_is(const struct pgq_job *job, const char *word)
{
	size_t n = strlen(word);

	return job->payload != NULL && job->payload_len == n &&
	       memcmp(job->payload, word, n) == 0;
}

enum pgq_outcome
example_handler(const struct pgq_job *job, void *resources,
		struct pgq_result *res)
{
	struct example_state *st = resources;

	example_module_calls++;
	if (st != NULL)
		st->calls++;
	if (payload_is(job, "fail")) {
		snprintf(res->exception_type, sizeof(res->exception_type),
			 "ExampleError");
		snprintf(res->message, sizeof(res->message),
			 "job %lld asked to fail (call %ld of entrypoint %s)",
			 (long long)job->id, st != NULL ? st->calls : 0L,
			 job->entrypoint);
		return PGQ_OUTCOME_FAIL;
	}
	if (payload_is(job, "retry")) {
		snprintf(res->message, sizeof(res->message),
			 "job %lld asked to be retried", (long long)job->id);
		return PGQ_OUTCOME_RETRY;
	}
	if (payload_is(job, "crash"))
		abort();
	return PGQ_OUTCOME_SUCCESS;
}
