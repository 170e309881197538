/*
 * The LISTEN connection, transport only: it LISTENs on the queue's channel
 * and hands every notification to wake.c; nothing else runs on it, so the
 * server delivers notifications the moment they are sent (a backend holds
 * them while it runs a statement). It is a dbconn: reconnected with backoff
 * when it drops; each time LISTEN succeeds it says so through the callback
 * master.c set, which decides what follows.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "master/master_int.h"

static void
listener_on_notify(struct dbconn *c, const PGnotify *n)
{
	log_debug("notification channel=%s payload=%s", n->relname, n->extra);
	wake_on_notify(c->m, n->extra);
}

static void
listener_listen_done(struct driver_async *a, PGresult *res,
		     const struct pgq_error *err, void *arg)
{
	struct master *m = arg;
	struct listener *ls = &m->ls;
	bool reconnect = ls->ever_listened;

	(void)a;
	if (res == NULL) {
		log_warnx("listen failed: %s",
			  err != NULL ? err->message : "unknown");
		if (ls->c.async != NULL)
			dbconn_lost(&ls->c);
		return;
	}
	ls->c.ready = true;
	ls->ever_listened = true;
	driver_backoff_reset(&ls->c.backoff);
	log_info("listening channel=%s backend_pid=%d%s",
		 m->session.names.channel, PQbackendPID(ls->c.conn),
		 reconnect ? " (reconnected)" : "");
	ls->on_ready(m, reconnect);
}

static int
listener_connected(struct dbconn *c)
{
	struct master *m = c->m;
	char sql[128];

	if (!driver_listen_sql(m->session.names.channel, sql, sizeof(sql)) ||
	    driver_async_query(c->async, sql, 0, NULL, listener_listen_done,
			       m) == -1) {
		log_warnx("listen connection: cannot start LISTEN");
		return -1;
	}
	return 0;
}

/* listen_dsn, else dsn, else the environment as for the workers. */
static const char *
listener_conninfo(const struct master *m)
{
	if (m->cf->listen_dsn[0] != '\0')
		return m->cf->listen_dsn;
	return driver_conninfo(m->cf->dsn[0] != '\0' ? m->cf->dsn : NULL, NULL);
}

void
listener_init(struct master *m, listener_ready_fn on_ready)
{
	struct listener *ls = &m->ls;

	memset(ls, 0, sizeof(*ls));
	dbconn_init(&ls->c, m, "listen connection", "pgq-master",
		    listener_conninfo, listener_connected, listener_on_notify);
	ls->on_ready = on_ready;
}

void
listener_start(struct master *m)
{
	dbconn_start(&m->ls.c);
}

void
listener_stop(struct master *m)
{
	dbconn_stop(&m->ls.c);
}

size_t
listener_pending(const struct master *m)
{
	return dbconn_pending(&m->ls.c);
}
