/*
 * max_payload for producers: the master writes each entrypoint's limit into
 * pgq's limits table when the maintenance connection is (re)established and
 * after a reload, clearing the limits of entrypoints that dropped the key or
 * were removed.
 * Enqueues check the table; workers check their own config (consumer.c).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "master/master_int.h"

struct payload_sync {
	struct master *m;
	bool any; /* some entrypoint has a limit: a failure is worth a warning
		   */
};

static void
payload_done(struct driver_async *a, PGresult *res, const struct pgq_error *err,
	     void *arg)
{
	struct payload_sync *ps = arg;

	(void)a;
	if (res != NULL)
		log_debug("max_payload: limits table updated rows=%s",
			  PQcmdTuples(res));
	else if ((err->klass == PGQ_ERR_UNDEFINED_TABLE ||
		  strcmp(err->sqlstate, "42703") == 0) &&
		 !ps->any)
		/* A queue installed by PgQueuer and no limit set: nothing to
		 * write or clear. */
		log_debug("max_payload: no limits table: %s", err->message);
	else if (err->klass == PGQ_ERR_UNDEFINED_TABLE ||
		 strcmp(err->sqlstate, "42703") == 0)
		log_warnx("max_payload: not enforced at enqueue: pgq's limits "
			  "table is missing or old; run pgq upgrade (%s)",
			  err->message);
	else
		log_warnx("max_payload: cannot update the limits table: %s",
			  err->message);
	free(ps);
}

void
payload_sync(struct master *m, const struct conf *old)
{
	const struct conf *cf = m->cf;
	size_t n = 0, cap = cf->nentrypoints + (old ? old->nentrypoints : 0);
	const char **names = xcalloc(cap ? cap : 1, sizeof(*names));
	char *limits, *a_names, *p;
	const char *params[2];
	struct payload_sync *ps = xcalloc(1, sizeof(*ps));

	limits = xmalloc(cap * 22 + 3);
	p = limits;
	*p++ = '{';
	for (size_t i = 0; i < cf->nentrypoints; i++) {
		names[n] = cf->entrypoints[i].name;
		p += sprintf(p, "%s%" PRIu64, n > 0 ? "," : "",
			     cf->entrypoints[i].max_payload);
		ps->any |= cf->entrypoints[i].max_payload > 0;
		n++;
	}
	/* Removed by a reload: its limit goes with it. */
	for (size_t i = 0; old != NULL && i < old->nentrypoints; i++) {
		if (conf_entrypoint_find(cf, old->entrypoints[i].name) != NULL)
			continue;
		names[n] = old->entrypoints[i].name;
		p += sprintf(p, "%s0", n > 0 ? "," : "");
		n++;
	}
	*p++ = '}';
	*p = '\0';
	a_names = text_array_literal(names, n);
	params[0] = a_names;
	params[1] = limits;
	ps->m = m;
	if (maint_query(m, SQL_PAYLOAD_LIMITS, 2, params, payload_done, ps) ==
	    -1)
		free(ps); /* not connected: the next connection syncs again */
	free(a_names);
	free(limits);
	free(names);
}
