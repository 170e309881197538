/*
 * Non-blocking execution on a libev loop, for the master's one connection:
 * LISTEN, heartbeat refreshes and recovery statements run one at a time from
 * a FIFO while notifications are drained on every read, and nothing here
 * ever waits on the socket.
 *
 * Callbacks may call driver_async_query and driver_async_free on the
 * executor that called them: the memory is released once the outermost
 * callback has returned, and nothing touches the connection after a
 * callback asked for the executor to be freed (the owner may PQfinish it).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/driver.h"

struct async_query {
	struct async_query *next;
	char *sql;
	int nparams;
	char **values; /* copies; NULL entries are SQL NULLs */
	driver_async_fn done;
	void *arg;
};

struct driver_async {
	struct ev_loop *loop;
	PGconn *conn;
	ev_io rio;     /* always on: results and notifications */
	ev_io wio;     /* on while libpq has unsent output */
	ev_timer kick; /* next step from the loop, not from the caller */
	driver_notify_fn on_notify;
	driver_lost_fn on_lost;
	void *arg;

	struct async_query *head, *tail;
	size_t npending;
	bool sent;	      /* head was handed to libpq */
	PGresult *result;     /* result kept for head until the final NULL */
	bool lost;	      /* connection found broken; nothing more runs */
	const char *why_lost; /* our own reason, when libpq has none */
	bool closing;	      /* driver_async_free was called */
	unsigned depth;	      /* callbacks of ours on the stack */
	struct pgq_error ok;  /* handed to callbacks on success */
};

static void async_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void async_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void async_kick_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void
query_free(struct async_query *q)
{
	if (q == NULL)
		return;
	for (int i = 0; i < q->nparams; i++)
		free(q->values[i]);
	free(q->values);
	free(q->sql);
	free(q);
}

/* Unlinks the head query (the caller holds it) and forgets its result. */
static void
queue_unlink(struct driver_async *a, struct async_query *q)
{
	a->head = q->next;
	if (a->head == NULL)
		a->tail = NULL;
	a->npending--;
	a->sent = false;
	PQclear(a->result);
	a->result = NULL;
}

static void
stop_watchers(struct driver_async *a)
{
	ev_io_stop(a->loop, &a->rio);
	ev_io_stop(a->loop, &a->wio);
	ev_timer_stop(a->loop, &a->kick);
}

/*
 * Calls done for every queued query with err. A callback may free the
 * executor, which fails the rest itself: each query is unlinked before its
 * callback runs.
 */
static void
fail_all(struct driver_async *a, const struct pgq_error *err)
{
	struct async_query *q;

	while ((q = a->head) != NULL) {
		queue_unlink(a, q);
		if (q->done != NULL)
			q->done(a, NULL, err, q->arg);
		query_free(q);
	}
}

static void
lost_error(struct driver_async *a, struct pgq_error *err)
{
	char msg[sizeof(err->message) - 32];
	size_t n;

	snprintf(msg, sizeof(msg), "%s",
		 a->why_lost != NULL ? a->why_lost : PQerrorMessage(a->conn));
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	for (char *p = msg; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	driver_error_set(err, PGQ_ERR_CONNECTION, "connection lost: %s",
			 msg[0] != '\0' ? msg : "server closed the connection");
	driver_error_hint(err, "the owner reconnects and queues the query "
			       "again");
}

/*
 * The connection is broken: stop, fail every query, then tell the owner
 * (unless a failed query's callback already freed the executor).
 */
static void
handle_lost(struct driver_async *a)
{
	struct pgq_error err;

	if (a->lost || a->closing)
		return;
	a->lost = true;
	stop_watchers(a);
	lost_error(a, &err);
	fail_all(a, &err);
	if (!a->closing && a->on_lost != NULL)
		a->on_lost(a, a->arg);
}

static void
release(struct driver_async *a)
{
	PQclear(a->result);
	free(a);
}

/* Callback frames: the last one out releases a closed executor. */
static void
enter(struct driver_async *a)
{
	a->depth++;
}

static void
leave(struct driver_async *a)
{
	if (--a->depth == 0 && a->closing)
		release(a);
}

/* Flushes output; the write watcher runs while libpq still holds some. */
static int
flush(struct driver_async *a)
{
	switch (PQflush(a->conn)) {
	case 0:
		ev_io_stop(a->loop, &a->wio);
		return 0;
	case 1:
		ev_io_start(a->loop, &a->wio);
		return 0;
	default:
		return -1;
	}
}

static void
kick(struct driver_async *a)
{
	if (!a->lost && !a->closing && !ev_is_active(&a->kick))
		ev_timer_start(a->loop, &a->kick);
}

/*
 * Hands the head query to libpq. A query libpq refuses on a good connection
 * (too many parameters, say) fails alone; the next one gets its turn.
 * Returns -1 when the connection is broken.
 */
static int
send_head(struct driver_async *a)
{
	struct async_query *q;
	struct pgq_error err;

	while (!a->sent && (q = a->head) != NULL && !a->closing) {
		if (PQsendQueryParams(a->conn, q->sql, q->nparams, NULL,
				      (const char *const *)q->values, NULL,
				      NULL, 0) == 1) {
			a->sent = true;
			return flush(a);
		}
		if (PQstatus(a->conn) != CONNECTION_OK)
			return -1;
		driver_error_from_result(&err, a->conn, NULL);
		if (err.klass == PGQ_ERR_CONNECTION)
			err.klass = PGQ_ERR_OTHER;
		queue_unlink(a, q);
		if (q->done != NULL)
			q->done(a, NULL, &err, q->arg);
		query_free(q);
	}
	return 0;
}

/*
 * Collects the results libpq has complete; a NULL result ends a query.
 * Should a query yield several results, the first error wins, else the
 * last one. Returns -1 when the connection broke.
 */
static int
collect_results(struct driver_async *a)
{
	struct async_query *q;
	struct pgq_error err;
	PGresult *r;
	ExecStatusType st;

	while (a->sent && !a->closing && !PQisBusy(a->conn)) {
		r = PQgetResult(a->conn);
		if (r != NULL) {
			st = PQresultStatus(r);
			if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT ||
			    st == PGRES_COPY_BOTH) {
				/*
				 * The protocol cannot leave COPY without
				 * streaming data, which this executor does
				 * not do: the owner has to reconnect.
				 */
				PQclear(r);
				a->why_lost = "COPY is not supported by the "
					      "non-blocking executor";
				return -1;
			}
			if (a->result != NULL &&
			    PQresultStatus(a->result) == PGRES_FATAL_ERROR)
				PQclear(r);
			else {
				PQclear(a->result);
				a->result = r;
			}
			continue;
		}
		/* NULL: the query is complete. */
		r = a->result;
		a->result = NULL;
		q = a->head;
		queue_unlink(a, q);
		st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
			if (q->done != NULL)
				q->done(a, r, &a->ok, q->arg);
		} else {
			driver_error_from_result(&err, a->conn, r);
			if (q->done != NULL)
				q->done(a, NULL, &err, q->arg);
		}
		PQclear(r);
		query_free(q);
		if (a->closing)
			return 0;
		if (PQstatus(a->conn) != CONNECTION_OK)
			return -1;
		if (send_head(a) == -1)
			return -1;
	}
	return 0;
}

/* Delivers every notification libpq has buffered. */
static void
drain_notifies(struct driver_async *a)
{
	PGnotify *n;

	while (!a->closing && (n = PQnotifies(a->conn)) != NULL) {
		if (a->on_notify != NULL)
			a->on_notify(a, n, a->arg);
		PQfreemem(n);
	}
}

static void
async_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct driver_async *a = w->data;

	(void)loop;
	(void)revents;
	enter(a);
	if (PQconsumeInput(a->conn) == 0 ||
	    PQstatus(a->conn) != CONNECTION_OK) {
		/* Results read before the break are not worth delivering. */
		drain_notifies(a);
		handle_lost(a);
		goto out;
	}
	/* libpq wants its output flushed again once input was read. */
	if (ev_is_active(&a->wio) && flush(a) == -1) {
		handle_lost(a);
		goto out;
	}
	if (collect_results(a) == -1) {
		handle_lost(a);
		goto out;
	}
	drain_notifies(a);
out:
	leave(a);
}

static void
async_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct driver_async *a = w->data;

	(void)loop;
	(void)revents;
	enter(a);
	if (flush(a) == -1)
		handle_lost(a);
	leave(a);
}

static void
async_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct driver_async *a = w->data;

	(void)loop;
	(void)revents;
	enter(a);
	if (PQstatus(a->conn) != CONNECTION_OK) {
		handle_lost(a);
		goto out;
	}
	/* Notifications read by an earlier blocking call wait in libpq. */
	drain_notifies(a);
	if (send_head(a) == -1)
		handle_lost(a);
out:
	leave(a);
}

struct driver_async *
driver_async_new(struct ev_loop *loop, PGconn *conn, driver_notify_fn on_notify,
		 driver_lost_fn on_lost, void *arg)
{
	struct driver_async *a;
	int fd;

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK ||
	    (fd = PQsocket(conn)) < 0 || PQsetnonblocking(conn, 1) != 0)
		return NULL;
	a = xcalloc(1, sizeof(*a));
	a->loop = loop;
	a->conn = conn;
	a->on_notify = on_notify;
	a->on_lost = on_lost;
	a->arg = arg;
	driver_error_clear(&a->ok);
	ev_io_init(&a->rio, async_read_cb, fd, EV_READ);
	ev_io_init(&a->wio, async_write_cb, fd, EV_WRITE);
	ev_timer_init(&a->kick, async_kick_cb, 0., 0.);
	a->rio.data = a;
	a->wio.data = a;
	a->kick.data = a;
	ev_io_start(loop, &a->rio);
	ev_timer_start(loop, &a->kick);
	return a;
}

void
driver_async_free(struct driver_async *a)
{
	struct pgq_error err;

	if (a == NULL || a->closing)
		return;
	a->closing = true;
	stop_watchers(a);
	/*
	 * A query still running is abandoned: the next blocking call on the
	 * connection discards its results. The connection goes back to
	 * blocking mode for its owner.
	 */
	if (!a->lost && PQstatus(a->conn) == CONNECTION_OK)
		(void)PQsetnonblocking(a->conn, 0);
	driver_error_set(&err, PGQ_ERR_CONNECTION,
			 "query abandoned: the executor was closed");
	enter(a);
	fail_all(a, &err);
	leave(a);
}

int
driver_async_query(struct driver_async *a, const char *sql, int nparams,
		   const char *const *values, driver_async_fn done, void *arg)
{
	struct async_query *q;

	if (a == NULL || sql == NULL || nparams < 0 || a->lost || a->closing)
		return -1;
	q = xcalloc(1, sizeof(*q));
	q->sql = xstrdup(sql);
	q->nparams = nparams;
	if (nparams > 0) {
		q->values = xcalloc((size_t)nparams, sizeof(*q->values));
		for (int i = 0; i < nparams; i++)
			if (values != NULL && values[i] != NULL)
				q->values[i] = xstrdup(values[i]);
	}
	q->done = done;
	q->arg = arg;
	if (a->tail != NULL)
		a->tail->next = q;
	else
		a->head = q;
	a->tail = q;
	a->npending++;
	/* Sent from the loop, so done never runs inside this call. */
	if (!a->sent)
		kick(a);
	return 0;
}

size_t
driver_async_pending(const struct driver_async *a)
{
	return a != NULL ? a->npending : 0;
}
