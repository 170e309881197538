/*
 * The master's one connection, as transport only: LISTEN on the queue's
 * channel plus the small statements of heartbeat, recovery and the due
 * timer, all driven from the loop so the master never blocks. The connection
 * is opened with PQconnectStartParams/PQconnectPoll and re-established with
 * backoff when it drops; each time LISTEN succeeds it says so through the
 * callback master.c set, which decides what follows.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "master/master_int.h"

#define LISTENER_CONNECT_TIMEOUT_S 15.0
#define LISTENER_BACKOFF_BASE_MS   100
#define LISTENER_BACKOFF_CAP_MS	   10000

static void listener_connect(struct master *m);
static void listener_teardown(struct master *m);

static void
listener_retry(struct master *m)
{
	struct listener *ls = &m->ls;
	uint64_t delay = driver_backoff_next_ms(&ls->backoff);

	listener_teardown(m);
	if (m->shutdown != SHUTDOWN_NONE)
		return;
	log_info("listen connection: retrying in %llums",
		 (unsigned long long)delay);
	ev_timer_stop(m->loop, &ls->conn_timer);
	ev_timer_set(&ls->conn_timer, (double)delay / 1000.0, 0.0);
	ev_timer_start(m->loop, &ls->conn_timer);
}

static void
listener_teardown(struct master *m)
{
	struct listener *ls = &m->ls;

	ev_io_stop(m->loop, &ls->conn_io);
	ev_timer_stop(m->loop, &ls->conn_timer);
	ev_idle_stop(m->loop, &ls->lost_idle);
	ls->listening = false;
	ls->connecting = false;
	if (ls->async != NULL) {
		struct driver_async *a = ls->async;

		/* Its queued statements fail now, through their callbacks. */
		ls->async = NULL;
		driver_async_free(a);
	}
	if (ls->conn != NULL) {
		PQfinish(ls->conn);
		ls->conn = NULL;
	}
}

static void
listener_on_notify(struct driver_async *a, const PGnotify *n, void *arg)
{
	struct master *m = arg;

	(void)a;
	log_debug("notification channel=%s payload=%s", n->relname, n->extra);
	wake_on_notify(m, n->extra);
}

/* Deferred from the driver's callback: the driver may still be on the
 * stack when it reports the loss. */
static void
listener_lost_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct master *m = w->data;

	(void)revents;
	ev_idle_stop(loop, w);
	listener_retry(m);
}

static void
listener_on_lost(struct driver_async *a, void *arg)
{
	struct master *m = arg;
	char msg[512];

	(void)a;
	driver_conn_message(m->ls.conn, msg, sizeof(msg));
	log_warnx("listen connection lost: %s", msg);
	m->ls.listening = false;
	ev_idle_start(m->loop, &m->ls.lost_idle);
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
		if (ls->async != NULL)
			ev_idle_start(m->loop, &ls->lost_idle);
		return;
	}
	ls->listening = true;
	ls->ever_listened = true;
	driver_backoff_reset(&ls->backoff);
	log_info("listening channel=%s backend_pid=%d%s",
		 m->session.names.channel, PQbackendPID(ls->conn),
		 reconnect ? " (reconnected)" : "");
	ls->on_ready(m, reconnect);
}

static void
listener_connected(struct master *m)
{
	struct listener *ls = &m->ls;
	char sql[128];

	ev_io_stop(m->loop, &ls->conn_io);
	ev_timer_stop(m->loop, &ls->conn_timer);
	ls->connecting = false;
	if (PQserverVersion(ls->conn) < DRIVER_MIN_SERVER_VERSION) {
		log_error("listen connection: server version %d is too old: "
			  "PostgreSQL " DRIVER_MIN_SERVER_VERSION_STR
			  " or later is required",
			  PQserverVersion(ls->conn));
		listener_retry(m);
		return;
	}
	ls->async = driver_async_new(m->loop, ls->conn, listener_on_notify,
				     listener_on_lost, m);
	if (ls->async == NULL ||
	    !driver_listen_sql(m->session.names.channel, sql, sizeof(sql)) ||
	    driver_async_query(ls->async, sql, 0, NULL, listener_listen_done,
			       m) == -1) {
		log_warnx("listen connection: cannot start LISTEN");
		listener_retry(m);
	}
}

/* One step of PQconnectPoll; re-arms the watcher for what it wants. */
static void
listener_poll(struct master *m)
{
	struct listener *ls = &m->ls;
	char msg[512];
	int fd;

	ls->poll = PQconnectPoll(ls->conn);
	switch (ls->poll) {
	case PGRES_POLLING_OK:
		listener_connected(m);
		return;
	case PGRES_POLLING_FAILED:
		driver_conn_message(ls->conn, msg, sizeof(msg));
		log_warnx("listen connection failed: %s", msg);
		listener_retry(m);
		return;
	case PGRES_POLLING_READING:
	case PGRES_POLLING_WRITING:
	case PGRES_POLLING_ACTIVE:
		break;
	}
	/* The socket may change between attempts (several hosts, SSL). */
	fd = PQsocket(ls->conn);
	ev_io_stop(m->loop, &ls->conn_io);
	ev_io_set(&ls->conn_io, fd,
		  ls->poll == PGRES_POLLING_READING ? EV_READ : EV_WRITE);
	ev_io_start(m->loop, &ls->conn_io);
}

static void
listener_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	listener_poll(w->data);
}

static void
listener_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct master *m = w->data;

	(void)loop;
	(void)revents;
	if (m->ls.connecting) {
		log_warnx("listen connection: timed out after %.0fs",
			  LISTENER_CONNECT_TIMEOUT_S);
		listener_retry(m);
		return;
	}
	listener_connect(m);
}

/* listen_dsn, else dsn, else the environment as for the workers. */
static const char *
listener_conninfo(const struct master *m)
{
	if (m->cf->listen_dsn[0] != '\0')
		return m->cf->listen_dsn;
	return driver_conninfo(m->cf->dsn[0] != '\0' ? m->cf->dsn : NULL, NULL);
}

static void
listener_connect(struct master *m)
{
	struct listener *ls = &m->ls;
	struct driver_params p;
	char msg[512];

	if (m->shutdown != SHUTDOWN_NONE)
		return;
	/* This connection may sit idle for hours: the driver's keepalives. */
	driver_params_init(&p, listener_conninfo(m), "pgq-master");
	ls->conn = PQconnectStartParams(p.keys, p.values, 1);
	if (ls->conn == NULL)
		fatalx("listen connection: out of memory");
	if (PQstatus(ls->conn) == CONNECTION_BAD) {
		driver_conn_message(ls->conn, msg, sizeof(msg));
		log_warnx("listen connection failed: %s", msg);
		listener_retry(m);
		return;
	}
	ls->connecting = true;
	ev_timer_stop(m->loop, &ls->conn_timer);
	ev_timer_set(&ls->conn_timer, LISTENER_CONNECT_TIMEOUT_S, 0.0);
	ev_timer_start(m->loop, &ls->conn_timer);
	ls->poll = PGRES_POLLING_WRITING;
	ev_io_set(&ls->conn_io, PQsocket(ls->conn), EV_WRITE);
	ev_io_start(m->loop, &ls->conn_io);
}

void
listener_init(struct master *m, listener_ready_fn on_ready)
{
	struct listener *ls = &m->ls;

	memset(ls, 0, sizeof(*ls));
	ls->on_ready = on_ready;
	ev_init(&ls->conn_io, listener_io_cb);
	ls->conn_io.data = m;
	ev_init(&ls->conn_timer, listener_timer_cb);
	ls->conn_timer.data = m;
	ev_idle_init(&ls->lost_idle, listener_lost_idle_cb);
	ls->lost_idle.data = m;
	driver_backoff_init(&ls->backoff, LISTENER_BACKOFF_BASE_MS,
			    LISTENER_BACKOFF_CAP_MS);
}

void
listener_start(struct master *m)
{
	listener_connect(m);
}

void
listener_stop(struct master *m)
{
	listener_teardown(m);
}

bool
listener_ready(const struct master *m)
{
	return m->ls.listening && m->ls.async != NULL;
}

int
listener_query(struct master *m, enum sql_stmt stmt, int nparams,
	       const char *const *values, driver_async_fn done, void *arg)
{
	if (!listener_ready(m))
		return -1;
	if (driver_async_query(m->ls.async, sql_session_text(&m->session, stmt),
			       nparams, values, done, arg) == -1) {
		log_warnx("cannot queue statement %s", sql_stmt_name(stmt));
		return -1;
	}
	return 0;
}

size_t
listener_pending(const struct master *m)
{
	return m->ls.async != NULL ? driver_async_pending(m->ls.async) : 0;
}
