/*
 * The consumer engine's run loop, one code path for libpgq's in-process
 * consumer and the daemon's workers: claim a batch, run each job through its
 * handler, record the outcomes, claim again until nothing is left. The step
 * machine (enum consumer_phase) is driven by a libev loop so asynchronous
 * handlers (commands, builtin sleep) run while wake-ups and control messages
 * still arrive; database trouble backs off and reconnects here.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/lib.h"
#include "sql/sql.h"
#include "worker/consumer_int.h"

/*
 * The consumer whose handler runs in this thread's stack right now, for
 * pgq_job_canceled: a synchronous handler has no other way back to it.
 */
static _Thread_local struct pgq_consumer *consumer_in_handler;

/* ---- diagnostics ---- */

void
consumer_log(const struct pgq_consumer *c, enum log_level level,
	     const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (c->library && c->log_fn == NULL)
		return;
	/* Per-job debug lines are frequent: format only what is written. */
	if (!c->library && level > log_get_level())
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* libpq's messages span lines; a log line must not. */
	for (char *r = buf, *w = buf;; r++) {
		if (*r == '\n' || *r == '\t' || *r == '\r') {
			if (w > buf && w[-1] != ' ')
				*w++ = ' ';
			continue;
		}
		*w++ = *r;
		if (*r == '\0')
			break;
	}
	if (c->library) {
		c->log_fn(c->log_arg, (enum pgq_log_level)level, buf);
		return;
	}
	switch (level) {
	case LOG_LEVEL_ERROR:
		log_error("%s", buf);
		break;
	case LOG_LEVEL_WARN:
		log_warnx("%s", buf);
		break;
	case LOG_LEVEL_INFO:
		log_info("%s", buf);
		break;
	case LOG_LEVEL_DEBUG:
		log_debug("%s", buf);
		break;
	}
}

/* ---- database trouble ---- */

static void
consumer_stopped(struct pgq_consumer *c)
{
	c->phase = CONSUMER_STOPPED;
	if (c->library && c->loop != NULL)
		ev_break(c->loop, EVBREAK_ALL);
	if (c->hooks.stopped != NULL)
		c->hooks.stopped(c->hooks.arg);
}

/*
 * A worker never dies of a database error, and says once what it waits
 * for: an outage, or an operator (missing tables, a read-only database, a
 * refused login or privilege); its retries go to the debug level. A library
 * consumer returns on errors that waiting cannot cure, since nobody may read
 * its log.
 */
void
consumer_db_error(struct pgq_consumer *c, const char *what,
		  const struct pgq_error *err)
{
	uint64_t delay;
	bool first;

	if (c->library && driver_error_fatal(err)) {
		consumer_log(c, LOG_LEVEL_ERROR, "%s: %s", what, err->message);
		c->fail_err = *err;
		consumer_stopped(c);
		return;
	}
	delay = driver_backoff_next_ms(&c->backoff);
	first = driver_trouble_note(&c->trouble, err);
	consumer_log(c, first ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG,
		     "%s: %s sqlstate=%s class=%s retry_in=%llums%s%s%s%s",
		     what, err->message,
		     err->sqlstate[0] != '\0' ? err->sqlstate : "-",
		     pgq_error_class_name(err->klass),
		     (unsigned long long)delay, first ? "; waiting: " : "",
		     first ? driver_error_cause(err) : "",
		     first && err->hint[0] != '\0' ? " - " : "",
		     first ? err->hint : "");
	if (c->phase != CONSUMER_BACKOFF)
		c->resume = c->phase;
	c->phase = CONSUMER_BACKOFF;
	ev_timer_set(&c->backoff_w, (double)delay / 1000.0, 0.);
	ev_timer_start(c->loop, &c->backoff_w);
}

void
consumer_db_ok(struct pgq_consumer *c)
{
	unsigned failures;
	uint64_t lasted_ms;
	char lasted[32];

	driver_backoff_reset(&c->backoff);
	if (!driver_trouble_over(&c->trouble, &failures, &lasted_ms))
		return;
	format_duration_ms(lasted_ms, lasted, sizeof(lasted));
	consumer_log(c, LOG_LEVEL_INFO,
		     "claims work again after %u failed attempts in %s",
		     failures, lasted);
}

void
consumer_backoff_cancel(struct pgq_consumer *c)
{
	if (c->phase != CONSUMER_BACKOFF)
		return;
	if (c->loop != NULL)
		ev_timer_stop(c->loop, &c->backoff_w);
	c->phase = c->resume;
}

static int
consumer_reconnect(struct pgq_consumer *c, struct pgq_error *err)
{
	PGconn *conn = pgq_conn(c->q);
	PGVerbosity verbosity;

	if (c->listening)
		ev_io_stop(c->loop, &c->notify_w);
	/* Verbose for the reset only: the server's SQLSTATE tells a refused
	 * login from an outage. The connection may be the caller's. */
	verbosity = PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
	PQreset(conn);
	(void)PQsetErrorVerbosity(conn, verbosity);
	if (PQstatus(conn) != CONNECTION_OK) {
		driver_error_from_connect(err, conn);
		return -1;
	}
	if (driver_check(conn, PGQ_ROLE_CONSUMER, NULL, 0, err) == -1)
		return -1;
	/* The new session has none of our prepared statements. */
	sql_session_reset(lib_session(c->q));
	if (c->listening) {
		if (sql_listen(lib_session(c->q), true, err) == -1)
			return -1;
		ev_io_set(&c->notify_w, PQsocket(conn), EV_READ);
		ev_io_start(c->loop, &c->notify_w);
	}
	consumer_log(c, LOG_LEVEL_INFO, "reconnected backend_pid=%d",
		     PQbackendPID(conn));
	/* Notifications sent while we were away are lost: look anyway. */
	if (c->resume == CONSUMER_IDLE)
		c->resume = CONSUMER_CLAIM;
	if (c->hooks.reconnected != NULL)
		c->hooks.reconnected(c->hooks.arg);
	return 0;
}

static void
consumer_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pgq_consumer *c = w->data;
	struct pgq_error err;

	(void)loop;
	(void)revents;
	/* A connection stuck in pipeline mode (a pipeline that could not
	 * be read out) serves nothing more: a new session mends it. */
	if ((PQstatus(pgq_conn(c->q)) != CONNECTION_OK ||
	     PQpipelineStatus(pgq_conn(c->q)) != PQ_PIPELINE_OFF) &&
	    consumer_reconnect(c, &err) == -1) {
		consumer_db_error(c, "reconnect failed", &err);
		return;
	}
	c->phase = c->resume;
	consumer_kick(c);
}

/* ---- running jobs ---- */

/* Folds the run time of the job that just ended into the average that
 * sizes the next claim (weight 1/4: a few jobs change it, one does not). */
static void
consumer_time_job(struct pgq_consumer *c)
{
	double us = (double)(clock_mono_us() - c->job_t0_us);

	c->job_us_avg =
		c->job_us_avg < 0 ? us : 0.75 * c->job_us_avg + 0.25 * us;
}

static void
consumer_job_done(const struct handler_result *r, void *arg)
{
	struct pgq_consumer *c = arg;
	struct consumer_job *j = c->running;
	bool nested = c->phase == CONSUMER_STARTING;
	enum pgq_outcome outcome;

	consumer_time_job(c);
	outcome = consumer_record(c, j, r);
	if (j->ep->limited)
		c->flush_due = true;
	c->running = NULL;
	c->phase = CONSUMER_BATCH;
	c->processed++;
	consumer_log(c, LOG_LEVEL_DEBUG, "job=%lld entrypoint=%s ended: %s%s%s",
		     (long long)j->job.id, j->job.entrypoint,
		     outcome == PGQ_OUTCOME_SUCCESS ? "successful"
		     : outcome == PGQ_OUTCOME_RETRY ? "retry"
						    : "failed",
		     r->res.message[0] != '\0' ? ": " : "", r->res.message);
	if (c->hooks.job_end != NULL)
		c->hooks.job_end(c->hooks.arg, &j->job, outcome);
	/* Inside start, the step that called it goes on by itself. */
	if (!nested)
		consumer_kick(c);
}

static void
consumer_run_next(struct pgq_consumer *c)
{
	struct consumer_job *j;
	struct handler *h;

	/*
	 * Synchronous handlers keep the loop away until the batch is done:
	 * look for cancellations of the jobs still waiting in it now.
	 */
	if (c->listening && PQconsumeInput(pgq_conn(c->q)) == 1)
		consumer_read_notifies(c);
	j = &c->batch[c->next++];
	if (j->canceled) {
		consumer_record_canceled(c, j);
		return;
	}
	if (j->ep->max_payload > 0 && j->job.payload_len > j->ep->max_payload) {
		consumer_too_large(c, j);
		return;
	}
	consumer_heartbeat(c);
	h = j->ep->h;
	if (c->hooks.job_start != NULL)
		c->hooks.job_start(c->hooks.arg, &j->job, h->timeout_ms);
	c->running = j;
	c->job_t0_us = clock_mono_us();
	c->phase = CONSUMER_STARTING;
	consumer_in_handler = c;
	h->ops->start(h, c->loop, &j->job, consumer_job_done, c);
	consumer_in_handler = NULL;
	if (c->phase == CONSUMER_STARTING)
		c->phase = CONSUMER_RUNNING;
}

/* Stopping: release what was not started, write outcomes, report. */
static void
consumer_finish(struct pgq_consumer *c)
{
	struct pgq_error err;

	for (; c->next < c->nbatch; c->next++) {
		struct consumer_job *j = &c->batch[c->next];

		if (j->canceled)
			consumer_record_canceled(c, j);
		else
			consumer_release_unstarted(
				c, j,
				"claimed but not started before the consumer "
				"stopped");
	}
	consumer_batch_clear(c);
	if (consumer_flush(c, true, &err) == -1) {
		/* Not retried: the jobs stay picked until recovered. */
		consumer_log(c, LOG_LEVEL_WARN,
			     "cannot record outcomes while stopping: %s "
			     "sqlstate=%s",
			     err.message,
			     err.sqlstate[0] != '\0' ? err.sqlstate : "-");
		consumer_outcomes_drop(c);
	}
	consumer_stopped(c);
}

/*
 * A limited job ended while more of the batch waits: record it now, so that
 * its slot is free while we run the rest, and let one more worker look for
 * it. Returns -1 when the write failed (backing off).
 */
static int
consumer_flush_limited(struct pgq_consumer *c)
{
	struct pgq_error err;

	if (consumer_flush(c, true, &err) == -1) {
		consumer_db_error(c, "cannot record outcomes", &err);
		return -1;
	}
	c->flush_due = false;
	if (c->hooks.found_work != NULL)
		c->hooks.found_work(c->hooks.arg);
	return 0;
}

/* The claims after a wake ran dry: the wake is answered. */
static void
consumer_report_idle(struct pgq_consumer *c)
{
	if (c->wake != CONSUMER_WAKE_OPEN && c->wake != CONSUMER_WAKE_HELPED)
		return;
	c->wake = c->wake == CONSUMER_WAKE_HELPED ? CONSUMER_WAKE_SPENT
						  : CONSUMER_WAKE_NONE;
	if (c->hooks.idle != NULL)
		c->hooks.idle(c->hooks.arg);
}

/* A claim left work for one more worker: ask for it, once per wake. */
static void
consumer_ask_help(struct pgq_consumer *c)
{
	if (c->wake == CONSUMER_WAKE_HELPED || c->wake == CONSUMER_WAKE_SPENT)
		return;
	c->wake = c->wake == CONSUMER_WAKE_OPEN ? CONSUMER_WAKE_HELPED
						: CONSUMER_WAKE_SPENT;
	if (c->hooks.found_work != NULL)
		c->hooks.found_work(c->hooks.arg);
}

/*
 * CLAIM: claims and moves to BATCH when it found jobs, to IDLE when not (a
 * notification read meanwhile moves to CLAIM again). Returns -1 when the
 * claim failed (backing off).
 */
static int
consumer_step_claim(struct pgq_consumer *c)
{
	struct claim_result cr;
	struct pgq_error err;
	int n;

	c->phase = CONSUMER_IDLE;
	n = consumer_claim(c, &cr, &err);
	if (n == -1) {
		c->phase = CONSUMER_CLAIM;
		consumer_db_error(c, "claim failed", &err);
		return -1;
	}
	consumer_db_ok(c);
	if (c->listening)
		consumer_read_notifies(c);
	if (n > 0) {
		c->phase = CONSUMER_BATCH;
		if (cr.help)
			consumer_ask_help(c);
	}
	/* A ticket or (drain) jobs held back bring us back later. */
	if (!consumer_limit_arm(c, cr.held) && n == 0 && c->drain &&
	    c->stop < CONSUMER_GRACEFUL)
		c->stop = CONSUMER_GRACEFUL;
	return 0;
}

/* Everything that happens between two handler runs. */
static void
consumer_step(struct pgq_consumer *c)
{
	struct pgq_error err;

	for (;;) {
		if (c->phase != CONSUMER_IDLE && c->phase != CONSUMER_CLAIM &&
		    c->phase != CONSUMER_BATCH)
			return;
		if (c->stop_flag && c->stop < CONSUMER_GRACEFUL)
			c->stop = CONSUMER_GRACEFUL;
		if (c->stop >= CONSUMER_GRACEFUL) {
			consumer_finish(c);
			return;
		}
		if (c->next < c->nbatch) {
			if (c->flush_due && consumer_flush_limited(c) == -1)
				return;
			consumer_run_next(c);
			continue;
		}
		consumer_batch_clear(c);
		if (c->max_jobs > 0 && c->processed >= c->max_jobs)
			c->stop = CONSUMER_RETIRE;
		/*
		 * When another claim follows (now or after the yield below),
		 * the completions go in its round trip, as a transaction of
		 * their own. Limited entrypoints count their running jobs,
		 * so with those the completions go first, on their own.
		 */
		if (consumer_flush(c,
				   c->phase == CONSUMER_IDLE ||
					   c->stop == CONSUMER_RETIRE ||
					   c->nfree < c->neps,
				   &err) == -1) {
			consumer_db_error(c, "cannot record outcomes", &err);
			return;
		}
		c->flush_due = false;
		if (c->stop == CONSUMER_RETIRE) {
			c->stop = CONSUMER_GRACEFUL;
			continue;
		}
		if (c->phase == CONSUMER_IDLE) {
			consumer_report_idle(c);
			return;
		}
		/*
		 * Between batches, let the loop read the channel: a
		 * shutdown, fast stop or cancel must not wait until the
		 * whole backlog is drained.
		 */
		if (c->phase == CONSUMER_BATCH) {
			c->phase = CONSUMER_CLAIM;
			consumer_kick(c);
			return;
		}
		if (consumer_step_claim(c) == -1)
			return;
	}
}

static void
consumer_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	consumer_step(w->data);
}

void
consumer_kick(struct pgq_consumer *c)
{
	if (c->loop == NULL || ev_is_active(&c->kick_w))
		return;
	ev_timer_set(&c->kick_w, 0., 0.);
	ev_timer_start(c->loop, &c->kick_w);
}

static void
consumer_stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct pgq_consumer *c = w->data;

	(void)loop;
	(void)revents;
	/* A stop does not wait for the database to come back. */
	if (c->stop_flag)
		consumer_backoff_cancel(c);
	consumer_kick(c);
}

void
consumer_step_init(struct pgq_consumer *c)
{
	ev_timer_init(&c->kick_w, consumer_kick_cb, 0., 0.);
	c->kick_w.data = c;
	ev_timer_init(&c->backoff_w, consumer_backoff_cb, 0., 0.);
	c->backoff_w.data = c;
	ev_async_init(&c->stop_w, consumer_stop_cb);
	c->stop_w.data = c;
}

/* ---- what the daemon's worker and the library call ---- */

void
consumer_wake(struct pgq_consumer *c)
{
	c->wake = CONSUMER_WAKE_OPEN;
	if (c->phase == CONSUMER_IDLE)
		c->phase = CONSUMER_CLAIM;
	else if (c->phase == CONSUMER_BACKOFF && c->resume == CONSUMER_IDLE)
		c->resume = CONSUMER_CLAIM;
	consumer_kick(c);
}

void
consumer_shutdown(struct pgq_consumer *c, bool fast)
{
	enum consumer_stop want = fast ? CONSUMER_FAST : CONSUMER_GRACEFUL;

	if (want <= c->stop || c->phase == CONSUMER_STOPPED)
		return;
	c->stop = want;
	consumer_backoff_cancel(c);
	if (fast && c->running != NULL)
		c->running->ep->h->ops->abort(c->running->ep->h);
	consumer_kick(c);
}

void
consumer_retire(struct pgq_consumer *c)
{
	if (c->stop < CONSUMER_RETIRE)
		c->stop = CONSUMER_RETIRE;
	/* A claim may be what it waits for: the kick stops it instead. */
	consumer_backoff_cancel(c);
	consumer_kick(c);
}

void
consumer_cancel(struct pgq_consumer *c, int64_t id)
{
	if (c->running != NULL && c->running->job.id == id) {
		consumer_log(c, LOG_LEVEL_INFO,
			     "job=%lld canceled: stopping it", (long long)id);
		c->running->canceled = true;
		c->running->ep->h->ops->abort(c->running->ep->h);
		return;
	}
	for (size_t i = c->next; i < c->nbatch; i++) {
		if (c->batch[i].job.id != id)
			continue;
		consumer_log(c, LOG_LEVEL_INFO,
			     "job=%lld canceled before it started",
			     (long long)id);
		c->batch[i].canceled = true;
	}
}

bool
pgq_job_canceled(const struct pgq_job *job)
{
	struct pgq_consumer *c = consumer_in_handler;

	if (c == NULL || c->running == NULL || &c->running->job != job)
		return false;
	if (!c->running->canceled) {
		/* Whatever carries cancellations: the worker's channel, or
		 * the notifications of a library consumer's connection. */
		if (c->hooks.poll != NULL)
			c->hooks.poll(c->hooks.arg);
		if (c->listening && PQconsumeInput(pgq_conn(c->q)) == 1)
			consumer_read_notifies(c);
	}
	return c->running != NULL && c->running->canceled;
}
