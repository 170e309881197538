/*
 * Heartbeats: every heartbeat_timeout/2 the master refreshes `heartbeat` of
 * every job held by its live workers in one statement, so a job goes stale
 * (claimable by another host) only when this whole host is gone, and a worker
 * busy in a long handler never has to interrupt it to say it lives.
 */
#include "config.h"

#include <stdlib.h>

#include "common/log.h"
#include "master/master_int.h"

static void
heartbeat_done(struct driver_async *a, PGresult *res,
	       const struct pgq_error *err, void *arg)
{
	(void)a;
	(void)arg;
	if (res == NULL)
		log_warnx("heartbeat failed: %s",
			  err != NULL ? err->message : "unknown");
	else
		log_debug("heartbeat refreshed rows=%s", PQcmdTuples(res));
}

static void
heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct master *m = w->data;
	const char *owners[1024];
	const char *params[1];
	size_t n = 0;
	char *array;

	(void)loop;
	(void)revents;
	for (unsigned i = 0; i < m->nslots && n < PGQ_NELEM(owners); i++) {
		const struct slot *s = m->slots[i];

		/* Idle workers hold nothing; busy and stopping ones may. */
		if (s->pid != 0 && s->queue_manager_id[0] != '\0' &&
		    (s->state == SLOT_BUSY || s->state == SLOT_STOPPING))
			owners[n++] = s->queue_manager_id;
	}
	/* A dead worker's job stays its own until its handler is gone. */
	n += orphans_owners(m, owners + n, PGQ_NELEM(owners) - n);
	if (n == 0)
		return;
	array = text_array_literal(owners, n);
	params[0] = array;
	if (maint_query(m, SQL_HEARTBEAT, 1, params, heartbeat_done, NULL) ==
	    -1)
		log_debug("heartbeat skipped: not connected");
	free(array);
}

void
heartbeat_start(struct master *m)
{
	ev_init(&m->heartbeat_timer, heartbeat_cb);
	m->heartbeat_timer.data = m;
	heartbeat_reconfigure(m);
}

void
heartbeat_reconfigure(struct master *m)
{
	double every = (double)m->cf->heartbeat_timeout_ms / 2000.0;

	ev_timer_stop(m->loop, &m->heartbeat_timer);
	ev_timer_set(&m->heartbeat_timer, every, every);
	ev_timer_start(m->loop, &m->heartbeat_timer);
}

void
heartbeat_stop(struct master *m)
{
	ev_timer_stop(m->loop, &m->heartbeat_timer);
}
