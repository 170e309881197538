/*
 * A handler module for the job-control suite: hang_handler runs for a minute
 * (for module timeouts and cancel = replace, where the master must kill the
 * worker), poll_handler runs until pgq_job_canceled() says stop (cancel =
 * flag). pgq_job_canceled comes from pgq-master itself at dlopen.
 */
#include <stdio.h>
#include <time.h>

#include "pgq.h"

enum pgq_outcome hang_handler(const struct pgq_job *job, void *resources,
			      struct pgq_result *res);
enum pgq_outcome poll_handler(const struct pgq_job *job, void *resources,
			      struct pgq_result *res);

static void
nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1)
		;
}

enum pgq_outcome
hang_handler(const struct pgq_job *job, void *resources, struct pgq_result *res)
{
	(void)job;
	(void)resources;
	(void)res;
	for (int i = 0; i < 600; i++)
		nap_ms(100);
	return PGQ_OUTCOME_SUCCESS;
}

enum pgq_outcome
poll_handler(const struct pgq_job *job, void *resources, struct pgq_result *res)
{
	(void)resources;
	for (int i = 0; i < 6000; i++) {
		if (pgq_job_canceled(job)) {
			snprintf(res->exception_type,
				 sizeof(res->exception_type), "Stopped");
			snprintf(res->message, sizeof(res->message),
				 "poll_handler saw the cancellation");
			return PGQ_OUTCOME_FAIL;
		}
		nap_ms(10);
	}
	return PGQ_OUTCOME_SUCCESS;
}
