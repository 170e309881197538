/*
 * The check pgq-master --drain makes before it forks its workers: does a
 * worker's first claim meet what waiting cannot cure (no queue tables, an
 * older layout, a read-only database, a refused login or privilege)? A
 * drain then stops at once with the cause instead of retrying for ever.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "driver/driver.h"
#include "worker/worker.h"
#include "worker/worker_int.h"

/* Never called: the probe claims nothing. */
static enum pgq_outcome
probe_handler(const struct pgq_job *job, void *resources,
	      struct pgq_result *res)
{
	(void)job;
	(void)resources;
	(void)res;
	return PGQ_OUTCOME_FAIL;
}

/* An engine with cf's entrypoints and their limits, as a worker has. */
static struct pgq_consumer *
probe_consumer(const struct conf *cf, struct pgq *q, struct pgq_error *err)
{
	struct pgq_consumer *c = consumer_new(q, NULL, NULL, false);

	for (size_t i = 0; i < cf->nentrypoints; i++) {
		const struct conf_entrypoint *ep = &cf->entrypoints[i];
		struct pgq_entrypoint_options o;

		pgq_entrypoint_options_init(&o);
		o.concurrency_limit = (int32_t)ep->concurrency_limit;
		o.requests_per_second = ep->requests_per_second;
		o.burst = (double)ep->burst;
		if (consumer_add_handler(c, ep->name,
					 handler_fn_new(probe_handler, NULL),
					 &o) == -1) {
			driver_error_set(err, PGQ_ERR_INVALID,
					 "entrypoint %s: cannot set it up",
					 ep->name);
			pgq_consumer_free(c);
			return NULL;
		}
	}
	return c;
}

int
worker_drain_check(const struct conf *cf, struct pgq_error *err)
{
	struct pgq_options opt;
	struct pgq_consumer *c;
	struct pgq *q;
	PGconn *listen;
	int rc = -1;

	memset(&opt, 0, sizeof(opt));
	opt.prefix = cf->prefix;
	opt.schema = cf->schema;
	opt.channel = cf->channel;
	q = pgq_connect(cf->dsn[0] != '\0' ? cf->dsn : NULL, &opt,
			PGQ_ROLE_CONSUMER, err);
	if (q == NULL)
		return -1;
	c = probe_consumer(cf, q, err);
	if (c != NULL && consumer_probe(c, err) == 0)
		rc = 0;
	pgq_consumer_free(c);
	pgq_free(q);
	if (rc == -1 || cf->listen_dsn[0] == '\0')
		return rc;
	listen = driver_connect(cf->listen_dsn, err);
	if (listen == NULL)
		return -1;
	PQfinish(listen);
	return 0;
}
