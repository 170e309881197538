/*
 * The maintenance connection: every statement the master runs besides LISTEN
 * (heartbeats, the due query, recoveries, cancel records, max_payload sync,
 * schedules and the statistics fold) goes here, queued on the loop, one at a
 * time, so none of them holds back the notifications of the LISTEN
 * connection. It is a dbconn on the workers' dsn: reconnected with backoff
 * when it drops; each time it is ready it says so through the callback
 * master.c set (deferred recoveries, the limits table, the due query).
 */
#include "config.h"

#include <string.h>

#include "common/log.h"
#include "master/master_int.h"

static int
maint_connected(struct dbconn *c)
{
	struct master *m = c->m;

	c->ready = true;
	driver_backoff_reset(&c->backoff);
	log_info("maintenance connection: ready backend_pid=%d",
		 PQbackendPID(c->conn));
	m->maint.on_ready(m);
	return 0;
}

/* dsn, else the environment, as for the workers (listen_dsn is LISTEN's). */
static const char *
maint_conninfo(const struct master *m)
{
	return driver_conninfo(m->cf->dsn[0] != '\0' ? m->cf->dsn : NULL, NULL);
}

void
maint_init(struct master *m, maint_ready_fn on_ready)
{
	struct maint *mt = &m->maint;

	memset(mt, 0, sizeof(*mt));
	dbconn_init(&mt->c, m, "maintenance connection",
		    "pgq-master maintenance", maint_conninfo, maint_connected,
		    NULL);
	mt->on_ready = on_ready;
}

void
maint_start(struct master *m)
{
	dbconn_start(&m->maint.c);
}

void
maint_stop(struct master *m)
{
	dbconn_stop(&m->maint.c);
}

bool
maint_ready(const struct master *m)
{
	return m->maint.c.ready && m->maint.c.async != NULL;
}

int
maint_query(struct master *m, enum sql_stmt stmt, int nparams,
	    const char *const *values, driver_async_fn done, void *arg)
{
	return dbconn_query(&m->maint.c, stmt, nparams, values, done, arg);
}

size_t
maint_pending(const struct master *m)
{
	return dbconn_pending(&m->maint.c);
}
