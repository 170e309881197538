/*
 * A libpq connection the master drives from its loop, never blocking: opened
 * with PQconnectStartParams/PQconnectPoll under a timeout, then handed to a
 * driver/async.c executor; when it drops it is torn down outside the
 * driver's callback and re-established with backoff. The LISTEN connection
 * (listener.c) and the maintenance connection (maint.c) are each one.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "master/master_int.h"

#define DBCONN_CONNECT_TIMEOUT_S 15.0
#define DBCONN_BACKOFF_BASE_MS	 100
#define DBCONN_BACKOFF_CAP_MS	 10000

static void dbconn_connect(struct dbconn *c);

static void
dbconn_teardown(struct dbconn *c)
{
	struct ev_loop *loop = c->m->loop;

	ev_io_stop(loop, &c->conn_io);
	ev_timer_stop(loop, &c->conn_timer);
	ev_idle_stop(loop, &c->lost_idle);
	c->ready = false;
	c->connecting = false;
	if (c->async != NULL) {
		struct driver_async *a = c->async;

		/* Its queued statements fail now, through their callbacks. */
		c->async = NULL;
		driver_async_free(a);
	}
	if (c->conn != NULL) {
		PQfinish(c->conn);
		c->conn = NULL;
	}
}

void
dbconn_retry(struct dbconn *c)
{
	struct master *m = c->m;
	uint64_t delay = driver_backoff_next_ms(&c->backoff);

	dbconn_teardown(c);
	if (m->shutdown != SHUTDOWN_NONE)
		return;
	log_info("%s: retrying in %llums", c->name, (unsigned long long)delay);
	ev_timer_stop(m->loop, &c->conn_timer);
	ev_timer_set(&c->conn_timer, (double)delay / 1000.0, 0.0);
	ev_timer_start(m->loop, &c->conn_timer);
}

/* Deferred from the driver's callback: the driver may still be on the
 * stack when it reports the loss. */
static void
dbconn_lost_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	ev_idle_stop(loop, w);
	dbconn_retry(w->data);
}

void
dbconn_lost(struct dbconn *c)
{
	c->ready = false;
	ev_idle_start(c->m->loop, &c->lost_idle);
}

static void
dbconn_on_lost(struct driver_async *a, void *arg)
{
	struct dbconn *c = arg;
	char msg[512];

	(void)a;
	driver_conn_message(c->conn, msg, sizeof(msg));
	log_warnx("%s lost: %s", c->name, msg);
	dbconn_lost(c);
}

static void
dbconn_on_notify(struct driver_async *a, const PGnotify *n, void *arg)
{
	struct dbconn *c = arg;

	(void)a;
	if (c->on_notify != NULL)
		c->on_notify(c, n);
}

static void
dbconn_connected(struct dbconn *c)
{
	struct master *m = c->m;

	ev_io_stop(m->loop, &c->conn_io);
	ev_timer_stop(m->loop, &c->conn_timer);
	c->connecting = false;
	if (PQserverVersion(c->conn) < DRIVER_MIN_SERVER_VERSION) {
		log_error("%s: server version %d is too old: "
			  "PostgreSQL " DRIVER_MIN_SERVER_VERSION_STR
			  " or later is required",
			  c->name, PQserverVersion(c->conn));
		dbconn_retry(c);
		return;
	}
	c->async = driver_async_new(m->loop, c->conn, dbconn_on_notify,
				    dbconn_on_lost, c);
	if (c->async == NULL) {
		log_warnx("%s: cannot drive the connection", c->name);
		dbconn_retry(c);
		return;
	}
	if (c->on_connected(c) == -1)
		dbconn_retry(c);
}

/* One step of PQconnectPoll; re-arms the watcher for what it wants. */
static void
dbconn_poll(struct dbconn *c)
{
	struct ev_loop *loop = c->m->loop;
	char msg[512];
	int fd;

	c->poll = PQconnectPoll(c->conn);
	switch (c->poll) {
	case PGRES_POLLING_OK:
		dbconn_connected(c);
		return;
	case PGRES_POLLING_FAILED:
		driver_conn_message(c->conn, msg, sizeof(msg));
		log_warnx("%s failed: %s", c->name, msg);
		dbconn_retry(c);
		return;
	case PGRES_POLLING_READING:
	case PGRES_POLLING_WRITING:
	case PGRES_POLLING_ACTIVE:
		break;
	}
	/* The socket may change between attempts (several hosts, SSL). */
	fd = PQsocket(c->conn);
	ev_io_stop(loop, &c->conn_io);
	ev_io_set(&c->conn_io, fd,
		  c->poll == PGRES_POLLING_READING ? EV_READ : EV_WRITE);
	ev_io_start(loop, &c->conn_io);
}

static void
dbconn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	dbconn_poll(w->data);
}

static void
dbconn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dbconn *c = w->data;

	(void)loop;
	(void)revents;
	if (c->connecting) {
		log_warnx("%s: timed out after %.0fs", c->name,
			  DBCONN_CONNECT_TIMEOUT_S);
		dbconn_retry(c);
		return;
	}
	dbconn_connect(c);
}

static void
dbconn_connect(struct dbconn *c)
{
	struct master *m = c->m;
	struct driver_params p;
	char msg[512];

	if (m->shutdown != SHUTDOWN_NONE)
		return;
	/* It may sit idle for hours: the driver's keepalives. */
	driver_params_init(&p, c->conninfo(m), c->app_name);
	c->conn = PQconnectStartParams(p.keys, p.values, 1);
	if (c->conn == NULL)
		fatalx("%s: out of memory", c->name);
	if (PQstatus(c->conn) == CONNECTION_BAD) {
		driver_conn_message(c->conn, msg, sizeof(msg));
		log_warnx("%s failed: %s", c->name, msg);
		dbconn_retry(c);
		return;
	}
	c->connecting = true;
	ev_timer_stop(m->loop, &c->conn_timer);
	ev_timer_set(&c->conn_timer, DBCONN_CONNECT_TIMEOUT_S, 0.0);
	ev_timer_start(m->loop, &c->conn_timer);
	c->poll = PGRES_POLLING_WRITING;
	ev_io_set(&c->conn_io, PQsocket(c->conn), EV_WRITE);
	ev_io_start(m->loop, &c->conn_io);
}

void
dbconn_init(struct dbconn *c, struct master *m, const char *name,
	    const char *app_name, dbconn_conninfo_fn conninfo,
	    dbconn_connected_fn on_connected, dbconn_notify_fn on_notify)
{
	memset(c, 0, sizeof(*c));
	c->m = m;
	c->name = name;
	c->app_name = app_name;
	c->conninfo = conninfo;
	c->on_connected = on_connected;
	c->on_notify = on_notify;
	ev_init(&c->conn_io, dbconn_io_cb);
	c->conn_io.data = c;
	ev_init(&c->conn_timer, dbconn_timer_cb);
	c->conn_timer.data = c;
	ev_idle_init(&c->lost_idle, dbconn_lost_idle_cb);
	c->lost_idle.data = c;
	driver_backoff_init(&c->backoff, DBCONN_BACKOFF_BASE_MS,
			    DBCONN_BACKOFF_CAP_MS);
}

void
dbconn_start(struct dbconn *c)
{
	dbconn_connect(c);
}

void
dbconn_stop(struct dbconn *c)
{
	dbconn_teardown(c);
}

int
dbconn_query(struct dbconn *c, enum sql_stmt stmt, int nparams,
	     const char *const *values, driver_async_fn done, void *arg)
{
	if (!c->ready || c->async == NULL)
		return -1;
	if (driver_async_query(c->async, sql_session_text(&c->m->session, stmt),
			       nparams, values, done, arg) == -1) {
		log_warnx("cannot queue statement %s", sql_stmt_name(stmt));
		return -1;
	}
	return 0;
}

size_t
dbconn_pending(const struct dbconn *c)
{
	return c->async != NULL ? driver_async_pending(c->async) : 0;
}

void
dbconn_close_in_child(const struct dbconn *c)
{
	/*
	 * The master's session must survive a forked child: close its socket,
	 * never PQfinish (that would send a Terminate on the shared socket).
	 */
	if (c->conn != NULL && PQsocket(c->conn) >= 0)
		close(PQsocket(c->conn));
}
