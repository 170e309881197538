/*
 * A handler module whose per-worker init aborts while the file named by
 * PGQ_TEST_FLAKY exists: workers fail at boot until the test removes it,
 * which is how the breaker suite trips the breaker and then lets it heal.
 */
#include <stdlib.h>
#include <unistd.h>

#include "pgq.h"

int pgq_module_init(void **resources, const char *entrypoint, char *errbuf,
		    size_t errlen);
enum pgq_outcome flaky_handler(const struct pgq_job *job, void *resources,
			       struct pgq_result *res);

int
pgq_module_init(void **resources, const char *entrypoint, char *errbuf,
		size_t errlen)
{
	const char *flag = getenv("PGQ_TEST_FLAKY");

	(void)resources;
	(void)entrypoint;
	(void)errbuf;
	(void)errlen;
	if (flag != NULL && access(flag, F_OK) == 0)
		abort();
	return 0;
}

enum pgq_outcome
flaky_handler(const struct pgq_job *job, void *resources,
	      struct pgq_result *res)
{
	(void)job;
	(void)resources;
	(void)res;
	return PGQ_OUTCOME_SUCCESS;
}
