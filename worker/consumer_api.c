/*
 * The consumer engine's faces: worker_int.h's consumer_* for the daemon's
 * worker, and pgq.h's pgq_consumer_* for libpgq, whose run and drain give
 * the engine a loop of their own. The library's consumer LISTENs on its
 * connection and reads notifications the way the master's listener does.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lib.h"
#include "sql/sql.h"
#include "worker/consumer_int.h"

/* ---- the library's LISTEN ---- */

/*
 * Like the master's listener (master/wake.c): a table_changed_event for our
 * queue table that inserted or updated rows wakes the consumer, one for
 * another table sharing the channel does not, and cancellation_events stop
 * the jobs they name. The channel is checked too: the caller's connection
 * may listen on others.
 */
void
consumer_read_notifies(struct pgq_consumer *c)
{
	const char *table = lib_session(c->q)->names.queue_bare;
	PGnotify *n;

	while ((n = PQnotifies(pgq_conn(c->q))) != NULL) {
		struct driver_event ev;
		char why[128];

		memset(&ev, 0, sizeof(ev));
		if (strcmp(n->relname, pgq_channel(c->q)) != 0 ||
		    driver_event_is_removal(n->extra)) {
			PQfreemem(n);
			continue;
		}
		if (driver_event_parse(n->extra, &ev, why, sizeof(why)) == -1) {
			consumer_log(c, LOG_LEVEL_DEBUG,
				     "ignoring notification: %s", why);
		} else if (ev.type == DRIVER_EVENT_TABLE_CHANGED &&
			   strcmp(ev.table, table) != 0) {
			consumer_log(c, LOG_LEVEL_DEBUG,
				     "notification for another table=%s",
				     ev.table);
		} else if (ev.type == DRIVER_EVENT_TABLE_CHANGED &&
			   (ev.operation == DRIVER_OP_INSERT ||
			    ev.operation == DRIVER_OP_UPDATE)) {
			consumer_wake(c);
		} else if (ev.type == DRIVER_EVENT_CANCELLATION) {
			for (size_t i = 0; i < ev.nids; i++)
				consumer_cancel(c, ev.ids[i]);
		}
		driver_event_clear(&ev);
		PQfreemem(n);
	}
}

static void
consumer_notify_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pgq_consumer *c = w->data;
	struct pgq_error err;

	(void)revents;
	if (PQconsumeInput(pgq_conn(c->q)) == 0 ||
	    PQstatus(pgq_conn(c->q)) == CONNECTION_BAD) {
		/* The socket is dead: stop watching it until reconnected. */
		ev_io_stop(loop, w);
		driver_error_from_result(&err, pgq_conn(c->q), NULL);
		if (c->phase != CONSUMER_BACKOFF && c->running == NULL)
			consumer_db_error(c, "connection lost", &err);
		return;
	}
	consumer_read_notifies(c);
}

static void
consumer_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	consumer_wake(w->data);
}

/* pgq_consumer_run: LISTEN, watch the socket, poll now and then. */
static int
consumer_listen_start(struct pgq_consumer *c, struct pgq_error *err)
{
	if (sql_listen(lib_session(c->q), true, err) == -1)
		return -1;
	c->listening = true;
	ev_io_set(&c->notify_w, PQsocket(pgq_conn(c->q)), EV_READ);
	ev_io_start(c->loop, &c->notify_w);
	if (c->opt.poll_interval_ms > 0) {
		double p = (double)c->opt.poll_interval_ms / 1000.0;

		ev_timer_set(&c->poll_w, p, p);
		ev_timer_start(c->loop, &c->poll_w);
	}
	return 0;
}

/* UNLISTENs and leaves the caller's connection without our leftovers. */
static void
consumer_listen_stop(struct pgq_consumer *c)
{
	struct pgq_error ignored;
	PGnotify *n;

	if (!c->listening)
		return;
	c->listening = false;
	if (PQstatus(pgq_conn(c->q)) == CONNECTION_OK &&
	    sql_listen(lib_session(c->q), false, &ignored) == -1)
		consumer_log(c, LOG_LEVEL_WARN, "unlisten failed: %s",
			     ignored.message);
	while ((n = PQnotifies(pgq_conn(c->q))) != NULL)
		PQfreemem(n);
}

/* ---- the internal interface (worker_int.h) ---- */

struct pgq_consumer *
consumer_new(struct pgq *q, void *resources, const char *queue_manager_id,
	     bool library)
{
	struct pgq_consumer *c = xcalloc(1, sizeof(*c));

	c->q = q;
	c->resources = resources;
	c->library = library;
	c->job_us_avg = -1;
	if (queue_manager_id != NULL)
		snprintf(c->qmid, sizeof(c->qmid), "%s", queue_manager_id);
	else
		uuid_generate_str(c->qmid);
	pgq_consumer_options_init(&c->opt);
	driver_backoff_init(&c->backoff, CONSUMER_BACKOFF_BASE_MS,
			    CONSUMER_BACKOFF_CAP_MS);
	driver_error_clear(&c->fail_err);
	c->ep_array = xstrdup("{}");
	consumer_step_init(c);
	consumer_claim_init(c);
	ev_io_init(&c->notify_w, consumer_notify_cb, -1, EV_READ);
	c->notify_w.data = c;
	ev_timer_init(&c->poll_w, consumer_poll_cb, 0., 0.);
	c->poll_w.data = c;
	return c;
}

static bool
entrypoint_options_valid(const struct pgq_entrypoint_options *o,
			 struct pgq_error *err)
{
	if (o->max_attempts < 0) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "max_attempts must be >= 0, got %d",
				 (int)o->max_attempts);
		return false;
	}
	if (!(o->retry_backoff >= 1.0) || isinf(o->retry_backoff)) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "retry_backoff must be a number >= 1, got %g",
				 o->retry_backoff);
		return false;
	}
	if (o->concurrency_limit < 0) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "concurrency_limit must be >= 0, got %d",
				 (int)o->concurrency_limit);
		return false;
	}
	if (!(o->requests_per_second >= 0.0) ||
	    !(o->requests_per_second <= CONSUMER_RATE_MAX)) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "requests_per_second must be 0 (none) up to "
				 "%g, got %g",
				 CONSUMER_RATE_MAX, o->requests_per_second);
		return false;
	}
	if (!(o->burst == 0.0 ||
	      (o->burst >= 1.0 && o->burst <= CONSUMER_RATE_MAX))) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "burst must be 0 (the rate, rounded up) or "
				 "1 up to %g, got %g",
				 CONSUMER_RATE_MAX, o->burst);
		return false;
	}
	return true;
}

static int
consumer_add(struct pgq_consumer *c, const char *entrypoint, struct handler *h,
	     const struct pgq_entrypoint_options *opt, struct pgq_error *err)
{
	struct pgq_entrypoint_options o;
	const char **names;

	if (opt != NULL)
		o = *opt;
	else
		pgq_entrypoint_options_init(&o);
	if (entrypoint == NULL || entrypoint[0] == '\0') {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "entrypoint name is empty");
		goto fail;
	}
	if (consumer_find_ep(c, entrypoint) != NULL) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "entrypoint %s is already registered",
				 entrypoint);
		goto fail;
	}
	if (c->loop != NULL) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "cannot add entrypoint %s while running",
				 entrypoint);
		goto fail;
	}
	if (!entrypoint_options_valid(&o, err))
		goto fail;
	c->eps = xrealloc(c->eps, c->neps + 1, sizeof(*c->eps));
	c->eps[c->neps].name = xstrdup(entrypoint);
	c->eps[c->neps].h = h;
	c->eps[c->neps].opt = o;
	c->eps[c->neps].retry_jitter = 0.0;
	c->eps[c->neps].limited =
		o.concurrency_limit > 0 || o.requests_per_second > 0.0;
	c->eps[c->neps].ticket = false;
	c->neps++;
	/* Limited entrypoints are claimed on their own (claim_limited). */
	names = xcalloc(c->neps, sizeof(*names));
	c->nfree = 0;
	for (size_t i = 0; i < c->neps; i++)
		if (!c->eps[i].limited)
			names[c->nfree++] = c->eps[i].name;
	free(c->ep_array);
	c->ep_array = text_array_literal(names, c->nfree);
	free(names);
	return 0;
fail:
	handler_free(h);
	return -1;
}

int
consumer_add_handler(struct pgq_consumer *c, const char *entrypoint,
		     struct handler *h,
		     const struct pgq_entrypoint_options *opt)
{
	struct pgq_error err;

	if (consumer_add(c, entrypoint, h, opt, &err) == -1) {
		consumer_log(c, LOG_LEVEL_ERROR, "%s", err.message);
		return -1;
	}
	return 0;
}

void
consumer_set_hooks(struct pgq_consumer *c, const struct consumer_hooks *hooks)
{
	c->hooks = *hooks;
}

void
consumer_attach(struct pgq_consumer *c, struct ev_loop *loop)
{
	c->loop = loop;
	c->phase = CONSUMER_IDLE;
	c->stop = CONSUMER_GO;
	driver_error_clear(&c->fail_err);
	ev_async_start(loop, &c->stop_w);
}

void
consumer_detach(struct pgq_consumer *c)
{
	if (c->loop == NULL)
		return;
	consumer_backoff_cancel(c);
	ev_timer_stop(c->loop, &c->kick_w);
	ev_async_stop(c->loop, &c->stop_w);
	ev_io_stop(c->loop, &c->notify_w);
	ev_timer_stop(c->loop, &c->poll_w);
	ev_timer_stop(c->loop, &c->limit_w);
	c->loop = NULL;
}

const char *
consumer_queue_manager_id(const struct pgq_consumer *c)
{
	return c->qmid;
}

bool
consumer_busy(const struct pgq_consumer *c)
{
	return c->running != NULL || c->next < c->nbatch;
}

uint64_t
consumer_processed(const struct pgq_consumer *c)
{
	return c->processed;
}

void
consumer_set_retry_jitter(struct pgq_consumer *c, const char *entrypoint,
			  double jitter)
{
	struct consumer_ep *ep = consumer_find_ep(c, entrypoint);

	if (ep != NULL)
		ep->retry_jitter = jitter < 0.0	  ? 0.0
				   : jitter > 1.0 ? 1.0
						  : jitter;
}

void
consumer_set_max_payload(struct pgq_consumer *c, const char *entrypoint,
			 uint64_t max_payload)
{
	struct consumer_ep *ep = consumer_find_ep(c, entrypoint);

	if (ep != NULL)
		ep->max_payload = max_payload;
}

void
consumer_set_max_jobs(struct pgq_consumer *c, uint64_t max_jobs)
{
	c->max_jobs = max_jobs;
}

/* ---- the public interface (pgq.h) ---- */

void
pgq_entrypoint_options_init(struct pgq_entrypoint_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->max_attempts = 5;
	opt->retry_delay_ms = 1000;
	opt->retry_backoff = 2.0;
	opt->retry_max_delay_ms = 300000;
	opt->hold_on_failure = false;
}

void
pgq_consumer_options_init(struct pgq_consumer_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->batch_size = 500;
	opt->batch_window_ms = 50;
	opt->poll_interval_ms = 30000;
	opt->heartbeat_timeout_ms = 30000;
}

struct pgq_consumer *
pgq_consumer_new(struct pgq *q, void *resources, struct pgq_error *err)
{
	driver_error_clear(err);
	if (q == NULL) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "pgq_consumer_new: handle is NULL");
		return NULL;
	}
	if (lib_role(q) != PGQ_ROLE_CONSUMER) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "pgq_consumer_new: the handle was opened for "
				 "a producer");
		driver_error_hint(err, "open or wrap the connection with "
				       "PGQ_ROLE_CONSUMER");
		return NULL;
	}
	return consumer_new(q, resources, NULL, true);
}

int
pgq_consumer_set_options(struct pgq_consumer *c,
			 const struct pgq_consumer_options *opt,
			 struct pgq_error *err)
{
	driver_error_clear(err);
	if (opt->batch_size < 1 || opt->batch_size > 10000) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "batch_size must be 1..10000, got %u",
				 (unsigned)opt->batch_size);
		return -1;
	}
	if (opt->heartbeat_timeout_ms == 0) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "heartbeat_timeout_ms must be > 0");
		return -1;
	}
	if (opt->batch_window_ms > 3600000) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "batch_window_ms must be 0..3600000, got %llu",
				 (unsigned long long)opt->batch_window_ms);
		return -1;
	}
	c->opt = *opt;
	if (c->loop != NULL && ev_is_active(&c->poll_w)) {
		ev_timer_stop(c->loop, &c->poll_w);
		if (opt->poll_interval_ms > 0) {
			double p = (double)opt->poll_interval_ms / 1000.0;

			ev_timer_set(&c->poll_w, p, p);
			ev_timer_start(c->loop, &c->poll_w);
		}
	}
	return 0;
}

int
pgq_consumer_add(struct pgq_consumer *c, const char *entrypoint,
		 pgq_handler_fn fn, const struct pgq_entrypoint_options *opt,
		 struct pgq_error *err)
{
	driver_error_clear(err);
	if (fn == NULL) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "pgq_consumer_add: handler is NULL");
		return -1;
	}
	return consumer_add(c, entrypoint, handler_fn_new(fn, c->resources),
			    opt, err);
}

/* What a run leaves behind goes; the next run starts afresh. */
static void
consumer_run_clear(struct pgq_consumer *c)
{
	/* A failed run may leave outcomes: their jobs stay picked. */
	consumer_batch_clear(c);
	consumer_outcomes_drop(c);
	c->running = NULL;
	c->drain = false;
	c->stop_flag = 0;
	/* A ticket's token is lost with the loop: its timer is gone. */
	for (size_t i = 0; i < c->neps; i++)
		c->eps[i].ticket = false;
	c->limit_retry_ms = 0;
}

/* pgq_consumer_run and pgq_consumer_drain: one loop of their own. */
static int
consumer_run_loop(struct pgq_consumer *c, bool drain, struct pgq_error *err)
{
	struct ev_loop *loop;
	int rc = -1;

	driver_error_clear(err);
	if (c->loop != NULL) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "the consumer is already running");
		return -1;
	}
	if (c->neps == 0) {
		driver_error_set(err, PGQ_ERR_INVALID,
				 "no entrypoint registered: call "
				 "pgq_consumer_add first");
		return -1;
	}
	loop = ev_loop_new(EVFLAG_AUTO);
	if (loop == NULL) {
		driver_error_set(err, PGQ_ERR_OTHER,
				 "cannot create an event loop");
		return -1;
	}
	consumer_attach(c, loop);
	c->drain = drain;
	if (!drain && consumer_listen_start(c, err) == -1)
		goto out;
	c->loop_live = 1;
	consumer_wake(c);
	ev_run(loop, 0);
	c->loop_live = 0;
	if (c->fail_err.klass != PGQ_OK) {
		*err = c->fail_err;
		rc = -1;
	} else {
		rc = 0;
	}
out:
	consumer_listen_stop(c);
	consumer_detach(c);
	ev_loop_destroy(loop);
	consumer_run_clear(c);
	return rc;
}

int
pgq_consumer_run(struct pgq_consumer *c, struct pgq_error *err)
{
	return consumer_run_loop(c, false, err);
}

int
pgq_consumer_drain(struct pgq_consumer *c, struct pgq_error *err)
{
	return consumer_run_loop(c, true, err);
}

void
pgq_consumer_stop(struct pgq_consumer *c)
{
	c->stop_flag = 1;
	if (c->loop_live)
		ev_async_send(c->loop, &c->stop_w);
}

void
pgq_consumer_free(struct pgq_consumer *c)
{
	if (c == NULL)
		return;
	consumer_detach(c);
	consumer_batch_clear(c);
	for (size_t i = 0; i < c->neps; i++) {
		handler_free(c->eps[i].h);
		free(c->eps[i].name);
	}
	free(c->eps);
	free(c->ep_array);
	consumer_outcomes_free(c);
	free(c);
}

const char *
pgq_consumer_queue_manager_id(const struct pgq_consumer *c)
{
	return c->qmid;
}

uint64_t
pgq_consumer_processed(const struct pgq_consumer *c)
{
	return c->processed;
}

void
pgq_consumer_set_log(struct pgq_consumer *c, pgq_log_fn fn, void *arg)
{
	c->log_fn = fn;
	c->log_arg = arg;
}
