/*
 * A handler module whose per-worker init fails with a message: the worker
 * must report it and exit 78, and a master whose workers all do so exits 78.
 */
#include <stdio.h>

#include "pgq.h"

int pgq_module_init(void **resources, const char *entrypoint, char *errbuf,
		    size_t errlen);
enum pgq_outcome initfail_handler(const struct pgq_job *job, void *resources,
				  struct pgq_result *res);

int
pgq_module_init(void **resources, const char *entrypoint, char *errbuf,
		size_t errlen)
{
	(void)resources;
	snprintf(errbuf, errlen, "mod_initfail refuses entrypoint %s",
		 entrypoint);
	return -1;
}

enum pgq_outcome
initfail_handler(const struct pgq_job *job, void *resources,
		 struct pgq_result *res)
{
	(void)job;
	(void)resources;
	(void)res;
	return PGQ_OUTCOME_SUCCESS;
}
