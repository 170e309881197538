/*
 * A handler module whose per-worker init aborts: every worker that loads it
 * dies by SIGABRT at start, which is how the daemon suites make a worker
 * crash-loop.
 */
#include <stdlib.h>

#include "pgq.h"

int pgq_module_init(void **resources, const char *entrypoint, char *errbuf,
		    size_t errlen);
enum pgq_outcome crash_handler(const struct pgq_job *job, void *resources,
			       struct pgq_result *res);

int
pgq_module_init(void **resources, const char *entrypoint, char *errbuf,
		size_t errlen)
{
	(void)resources;
	(void)entrypoint;
	(void)errbuf;
	(void)errlen;
	abort();
}

enum pgq_outcome
crash_handler(const struct pgq_job *job, void *resources,
	      struct pgq_result *res)
{
	(void)job;
	(void)resources;
	(void)res;
	return PGQ_OUTCOME_SUCCESS;
}
