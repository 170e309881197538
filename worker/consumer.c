/*
 * The consumer engine, one code path for libpgq's in-process consumer and the
 * daemon's workers: claim a batch, run each job through its handler, record
 * the outcomes in a few statements, claim again until nothing is left. It is
 * driven by a libev loop so asynchronous handlers (commands, builtin sleep)
 * run while wake-ups and control messages still arrive.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "common/log.h"
#include "common/traceback.h"
#include "driver/driver.h"
#include "lib/lib.h"
#include "sql/sql.h"
#include "worker/worker_int.h"

/* Reconnect and retry backoff after a database error. */
#define CONSUMER_BACKOFF_BASE_MS 100
#define CONSUMER_BACKOFF_CAP_MS	 10000
/* The RETRY status of a job put back without using an attempt. */
static const char CONSUMER_RELEASED[] = "released";
/* Largest requests_per_second and burst. */
#define CONSUMER_RATE_MAX 1e6
/* Drain mode: first and longest delay before looking again at jobs that
 * only the limits hold back (there are no notifications to wait for). */
#define CONSUMER_HELD_RETRY_MIN_MS 10
#define CONSUMER_HELD_RETRY_MAX_MS 1000

struct consumer_ep {
	char *name;
	struct handler *h;
	struct pgq_entrypoint_options opt;
	double retry_jitter;	/* share of the delay, 0..1 (daemon only) */
	uint64_t max_payload;	/* larger payloads are not run; 0 = none
				   (daemon only) */
	bool limited;		/* a concurrency or rate limit applies */
	bool ticket;		/* holds a token a claim reserved for it */
	uint64_t ticket_due_ms; /* when that token may be spent (monotonic) */
};

/* One claimed job and the storage its struct pgq_job points into. */
struct consumer_job {
	struct pgq_job job;
	struct consumer_ep *ep;
	char *entrypoint;
	unsigned char *payload; /* from PQunescapeBytea: PQfreemem */
	char *headers;
	char *dedupe_key;
	bool canceled; /* a cancellation arrived for it */
};

/* Outcomes waiting to be written by one statement. */
struct outcome_list {
	int64_t *ids;
	const char **status; /* COMPLETE: terminal status per id; RETRY:
				CONSUMER_RELEASED for a job put back without
				using an attempt, else NULL */
	uint64_t *delay_ms;  /* RETRY: delay per id */
	char **traceback;    /* JSON per id, or NULL */
	size_t n, cap;
};

enum consumer_stop {
	CONSUMER_RUNNING = 0, /* claiming and running */
	CONSUMER_GRACEFUL,    /* finish the running job, release the rest */
	CONSUMER_FAST,	      /* abort the running job, release everything */
};

struct pgq_consumer {
	struct pgq *q;
	void *resources;
	bool library; /* pgq_consumer_*: never logs, heartbeats itself */
	struct ev_loop *loop;
	struct consumer_ep *eps;
	size_t neps;
	char *ep_array; /* text[] literal of the names without limits */
	size_t nfree;	/* entrypoints without limits */
	char qmid[UUID_STR_LEN];
	struct pgq_consumer_options opt;
	struct consumer_hooks hooks;
	pgq_log_fn log_fn;
	void *log_arg;

	/* the claimed batch */
	struct consumer_job *batch;
	size_t nbatch, next;
	struct consumer_job *running;
	bool in_start;	       /* inside a handler's start */
	bool abort_requested;  /* the running job was aborted for a stop */
	uint64_t heartbeat_ms; /* when our jobs' heartbeat was last set */
	/* limited entrypoints (concurrency_limit, requests_per_second) */
	size_t limit_next;	 /* the limited entrypoint claimed first */
	bool claim_help;	 /* the last claim left work for one more */
	bool yield;		 /* go back to the loop before claiming again */
	bool limit_held;	 /* ... and jobs only the limits hold back */
	bool flush_soon;	 /* a limited job ended: record it at once */
	uint64_t limit_retry_ms; /* drain: delay before looking again */
	ev_timer limit_w;	 /* a ticket falls due, or drain looks again */
	struct outcome_list complete, retry, hold;
	/* adaptive claims (batch_window_ms) */
	uint64_t job_t0_us; /* when the running job started */
	double job_us_avg;  /* moving average of a job's run time; < 0 =
			       none measured yet */

	bool want_claim; /* there may be work: claim (again) */
	bool woken;	 /* between a wake and the idle that ends it */
	bool more_sent;	 /* found_work reported for this wake */
	enum consumer_stop stop;
	bool stopped;
	bool drain;	   /* stop once a claim finds nothing */
	bool retiring;	   /* run what is claimed, claim no more, stop */
	uint64_t max_jobs; /* retire after this many jobs; 0 = never */
	bool failed;	   /* library: an error retrying cannot cure */
	struct pgq_error fail_err;
	uint64_t processed;

	volatile sig_atomic_t stop_flag; /* pgq_consumer_stop */
	volatile sig_atomic_t loop_live; /* stop_w may be sent */
	ev_async stop_w;
	ev_timer kick_w; /* run a step outside the caller's stack */
	ev_timer backoff_w;
	struct driver_backoff backoff;
	bool in_backoff;

	/* library mode: LISTEN on q's connection */
	bool listening;
	ev_io notify_w;
	ev_timer poll_w;
};

static void consumer_kick(struct pgq_consumer *c);
static void consumer_read_notifies(struct pgq_consumer *c);

/*
 * The consumer whose handler runs in this thread's stack right now, for
 * pgq_job_canceled: a synchronous handler has no other way back to it.
 */
static _Thread_local struct pgq_consumer *consumer_in_handler;

/* ---- diagnostics ---- */

static void consumer_log(const struct pgq_consumer *c, enum log_level level,
			 const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
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

/* ---- text helpers ---- */

/* PgQueuer's traceback object for job j (common/traceback.h). */
static char *
consumer_traceback(const struct consumer_job *j, const char *type,
		   const char *message, const char *traceback,
		   const char *context_json)
{
	return traceback_json(j->job.id, type, message, traceback,
			      context_json);
}

/* ---- outcomes ---- */

static void
outcome_add(struct outcome_list *l, int64_t id, const char *status,
	    uint64_t delay_ms, char *traceback)
{
	if (l->n == l->cap) {
		size_t cap = l->cap == 0 ? 16 : 2 * l->cap;

		l->ids = xrealloc(l->ids, cap, sizeof(*l->ids));
		l->status = xrealloc(l->status, cap, sizeof(*l->status));
		l->delay_ms = xrealloc(l->delay_ms, cap, sizeof(*l->delay_ms));
		l->traceback =
			xrealloc(l->traceback, cap, sizeof(*l->traceback));
		l->cap = cap;
	}
	l->ids[l->n] = id;
	l->status[l->n] = status;
	l->delay_ms[l->n] = delay_ms;
	l->traceback[l->n] = traceback;
	l->n++;
}

static void
outcome_clear(struct outcome_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->traceback[i]);
	l->n = 0;
}

static void
outcome_free(struct outcome_list *l)
{
	outcome_clear(l);
	free(l->ids);
	free(l->status);
	free(l->delay_ms);
	free(l->traceback);
	memset(l, 0, sizeof(*l));
}

/*
 * retry_delay * retry_backoff^attempts, times a random factor in
 * [1 - jitter, 1 + jitter] so that jobs that failed together do not all
 * come back at the same moment, capped.
 */
static uint64_t
retry_delay_ms(const struct consumer_ep *ep, int32_t attempts)
{
	const struct pgq_entrypoint_options *o = &ep->opt;
	double d = (double)o->retry_delay_ms *
		   pow(o->retry_backoff, attempts > 0 ? attempts : 0);

	if (ep->retry_jitter > 0.0) {
		double u = (double)random_below(1000001) / 1000000.0;

		d *= 1.0 + ep->retry_jitter * (2.0 * u - 1.0);
	}

	if (!(d < (double)o->retry_max_delay_ms))
		return o->retry_max_delay_ms;
	return (uint64_t)d;
}

/*
 * Puts a job back for someone else. One that never started keeps its
 * attempts (a stopping consumer may hold a whole batch); one interrupted
 * while running (a fast shutdown) has used one.
 */
static void
consumer_release(struct pgq_consumer *c, struct consumer_job *j,
		 const char *why, bool started)
{
	outcome_add(&c->retry, j->job.id, started ? NULL : CONSUMER_RELEASED, 0,
		    consumer_traceback(j, "Released", why, NULL, NULL));
}

/*
 * Decides what the database records for a finished job; returns the outcome
 * reported to the hooks.
 */
static enum pgq_outcome
consumer_record(struct pgq_consumer *c, struct consumer_job *j,
		const struct handler_result *r)
{
	const struct pgq_entrypoint_options *o = &j->ep->opt;
	char msg[sizeof(r->res.message) + 96];
	const char *type = r->res.exception_type;
	bool attempts_left;

	if (r->outcome != PGQ_OUTCOME_SUCCESS && j->canceled) {
		outcome_add(&c->complete, j->job.id, "canceled", 0,
			    consumer_traceback(j, "Canceled",
					       "canceled while running",
					       r->traceback, r->context_json));
		return PGQ_OUTCOME_FAIL;
	}
	if (r->outcome != PGQ_OUTCOME_SUCCESS && c->abort_requested) {
		consumer_release(c, j, "stopped by a fast shutdown", true);
		return PGQ_OUTCOME_RETRY;
	}
	switch (r->outcome) {
	case PGQ_OUTCOME_SUCCESS:
		/*
		 * PgQueuer leaves a success's traceback NULL; a command's
		 * accounting (exit status, rusage) is kept there anyway, in
		 * the same object with empty exception fields.
		 */
		outcome_add(&c->complete, j->job.id, "successful", 0,
			    r->context_json == NULL
				    ? NULL
				    : consumer_traceback(j, "", "", "",
							 r->context_json));
		return PGQ_OUTCOME_SUCCESS;
	case PGQ_OUTCOME_RETRY:
		attempts_left = o->max_attempts == 0 ||
				j->job.attempts + 1 < o->max_attempts;
		if (attempts_left) {
			outcome_add(&c->retry, j->job.id, NULL,
				    retry_delay_ms(j->ep, j->job.attempts),
				    consumer_traceback(
					    j,
					    type[0] != '\0' ? type
							    : "RetryRequested",
					    r->res.message, r->traceback,
					    r->context_json));
			return PGQ_OUTCOME_RETRY;
		}
		snprintf(msg, sizeof(msg), "%s%s(attempts used up: %d of %d)",
			 r->res.message, r->res.message[0] != '\0' ? " " : "",
			 (int)j->job.attempts + 1, (int)o->max_attempts);
		if (type[0] == '\0')
			type = "RetryRequested";
		break;
	case PGQ_OUTCOME_FAIL:
	default:
		snprintf(msg, sizeof(msg), "%s", r->res.message);
		if (type[0] == '\0')
			type = "HandlerFailed";
		break;
	}
	if (o->hold_on_failure)
		outcome_add(&c->hold, j->job.id, NULL, 0,
			    consumer_traceback(j, type, msg, r->traceback,
					       r->context_json));
	else
		outcome_add(&c->complete, j->job.id, "exception", 0,
			    consumer_traceback(j, type, msg, r->traceback,
					       r->context_json));
	return PGQ_OUTCOME_FAIL;
}

/* Runs one outcome statement; returns the rows it touched or -1. */
static int
consumer_write(struct pgq_consumer *c, enum sql_stmt s, int nparams,
	       const char *const *values, struct pgq_error *err)
{
	PGresult *res = sql_exec(lib_session(c->q), s, nparams, values, err);
	int n;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	PQclear(res);
	return n;
}

static void
consumer_check_owned(struct pgq_consumer *c, const char *what, int done,
		     size_t sent)
{
	if ((size_t)done < sent)
		consumer_log(c, LOG_LEVEL_WARN,
			     "%s: %zu of %zu jobs were no longer ours "
			     "(re-claimed after a heartbeat timeout?)",
			     what, sent - (size_t)done, sent);
}

/* The parameters of SQL_COMPLETE for the pending completions; the three
 * arrays are freed with complete_params_free. */
struct complete_params {
	const char *values[4];
	char *ids, *sts, *tbs;
};

static void
complete_params_init(struct pgq_consumer *c, struct complete_params *cp)
{
	struct outcome_list *l = &c->complete;

	cp->ids = int64_array_literal(l->ids, l->n);
	cp->sts = text_array_literal(l->status, l->n);
	cp->tbs = text_array_literal((const char *const *)l->traceback, l->n);
	cp->values[0] = c->qmid;
	cp->values[1] = cp->ids;
	cp->values[2] = cp->sts;
	cp->values[3] = cp->tbs;
}

static void
complete_params_free(struct complete_params *cp)
{
	free(cp->ids);
	free(cp->sts);
	free(cp->tbs);
}

/*
 * SQL_COMPLETE completed done jobs: warns about those that were no longer
 * ours; the completions are forgotten.
 */
static void
consumer_completed(struct pgq_consumer *c, int done)
{
	consumer_check_owned(c, "complete", done, c->complete.n);
	outcome_clear(&c->complete);
}

/*
 * Writes the pending outcomes; what was written is forgotten. Completions
 * are left pending when !with_complete: the next claim sends them in its
 * round trip (consumer_complete_claim).
 */
static int
consumer_flush(struct pgq_consumer *c, bool with_complete,
	       struct pgq_error *err)
{
	struct outcome_list *l;
	char *ids, *arr2, *arr3;
	const char *values[5];
	int n;

	l = &c->complete;
	if (with_complete && l->n > 0) {
		struct complete_params cp;

		complete_params_init(c, &cp);
		n = consumer_write(c, SQL_COMPLETE, 4, cp.values, err);
		complete_params_free(&cp);
		if (n == -1)
			return -1;
		consumer_completed(c, n);
	}
	l = &c->retry;
	if (l->n > 0) {
		char **delays = xcalloc(l->n, sizeof(*delays));
		const char **added = xcalloc(l->n, sizeof(*added));
		char *arr5;

		for (size_t i = 0; i < l->n; i++) {
			delays[i] =
				xasprintf("%llu milliseconds",
					  (unsigned long long)l->delay_ms[i]);
			added[i] =
				l->status[i] == CONSUMER_RELEASED ? "0" : "1";
		}
		ids = int64_array_literal(l->ids, l->n);
		arr2 = text_array_literal((const char *const *)delays, l->n);
		arr3 = text_array_literal((const char *const *)l->traceback,
					  l->n);
		arr5 = text_array_literal(added, l->n);
		for (size_t i = 0; i < l->n; i++)
			free(delays[i]);
		free(delays);
		free(added);
		values[0] = c->qmid;
		values[1] = ids;
		values[2] = arr2;
		values[3] = arr3;
		values[4] = arr5;
		n = consumer_write(c, SQL_RETRY, 5, values, err);
		free(ids);
		free(arr2);
		free(arr3);
		free(arr5);
		if (n == -1)
			return -1;
		consumer_check_owned(c, "retry", n, l->n);
		outcome_clear(l);
	}
	l = &c->hold;
	if (l->n > 0) {
		ids = int64_array_literal(l->ids, l->n);
		arr3 = text_array_literal((const char *const *)l->traceback,
					  l->n);
		values[0] = c->qmid;
		values[1] = ids;
		values[2] = arr3;
		n = consumer_write(c, SQL_HOLD, 3, values, err);
		free(ids);
		free(arr3);
		if (n == -1)
			return -1;
		consumer_check_owned(c, "hold", n, l->n);
		outcome_clear(l);
	}
	return 0;
}

/* ---- claiming ---- */

static struct consumer_ep *
consumer_find_ep(struct pgq_consumer *c, const char *name)
{
	for (size_t i = 0; i < c->neps; i++)
		if (strcmp(c->eps[i].name, name) == 0)
			return &c->eps[i];
	return NULL;
}

static void
consumer_batch_clear(struct pgq_consumer *c)
{
	for (size_t i = 0; i < c->nbatch; i++) {
		struct consumer_job *j = &c->batch[i];

		free(j->entrypoint);
		if (j->payload != NULL)
			PQfreemem(j->payload);
		free(j->headers);
		free(j->dedupe_key);
	}
	free(c->batch);
	c->batch = NULL;
	c->nbatch = c->next = 0;
}

static char *
field(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL
					  : xstrdup(PQgetvalue(res, row, col));
}

/*
 * How many jobs the next claim asks for. With a batch window, as many as
 * the average job time says will run within it (between 1 and
 * batch_size): fast jobs come in large batches, slow ones one at a time so
 * that a worker never sits on jobs an idle worker could run. Before any
 * job has been timed, one. Never past max_jobs (nothing claimed is handed
 * back by a worker that retires).
 */
static uint64_t
consumer_claim_limit(const struct pgq_consumer *c)
{
	uint64_t n = c->opt.batch_size;

	if (c->opt.batch_window_ms > 0) {
		double fit;

		if (c->job_us_avg < 0)
			fit = 1;
		else
			fit = (double)c->opt.batch_window_ms * 1000.0 /
			      (c->job_us_avg < 1 ? 1 : c->job_us_avg);
		if (fit < (double)n)
			n = fit < 1 ? 1 : (uint64_t)fit;
	}

	if (c->max_jobs > 0 && c->max_jobs - c->processed < n)
		n = c->max_jobs - c->processed;
	return n;
}

/*
 * Appends the jobs of a claim result to the batch (growing it as needed);
 * rows whose id is NULL (a limited claim that took nothing) are skipped.
 */
static void
consumer_take_rows(struct pgq_consumer *c, PGresult *res, size_t *cap)
{
	int n = PQntuples(res);

	for (int row = 0; row < n; row++) {
		struct consumer_job *j;
		size_t len = 0;

		if (PQgetisnull(res, row, 0))
			continue;
		if (c->nbatch == *cap) {
			*cap = *cap == 0 ? 16 : 2 * *cap;
			c->batch = xrealloc(c->batch, *cap, sizeof(*c->batch));
		}
		j = &c->batch[c->nbatch];
		memset(j, 0, sizeof(*j));
		j->entrypoint = xstrdup(PQgetvalue(res, row, 3));
		j->ep = consumer_find_ep(c, j->entrypoint);
		if (!PQgetisnull(res, row, 4)) {
			j->payload = PQunescapeBytea(
				(const unsigned char *)PQgetvalue(res, row, 4),
				&len);
			if (j->payload == NULL)
				fatalx("cannot decode a payload: out of "
				       "memory");
		}
		j->headers = field(res, row, 5);
		j->dedupe_key = field(res, row, 6);
		j->job.id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
		j->job.priority =
			(int32_t)strtol(PQgetvalue(res, row, 1), NULL, 10);
		j->job.attempts =
			(int32_t)strtol(PQgetvalue(res, row, 2), NULL, 10);
		j->job.entrypoint = j->entrypoint;
		j->job.payload = j->payload;
		j->job.payload_len = len;
		j->job.headers_json = j->headers;
		j->job.dedupe_key = j->dedupe_key;
		j->job.queue_manager_id = c->qmid;
		c->nbatch++;
		if (j->ep == NULL) {
			/* Cannot happen: the claim filters on our names. */
			consumer_log(c, LOG_LEVEL_ERROR,
				     "claimed job=%lld of unknown entrypoint "
				     "%s",
				     (long long)j->job.id, j->entrypoint);
			j->canceled = true;
		}
	}
}

/* The bucket size: burst, or the rate rounded up. */
static double
consumer_burst(const struct pgq_entrypoint_options *o)
{
	if (o->burst >= 1.0)
		return o->burst;
	return o->requests_per_second > 0.0 ? ceil(o->requests_per_second)
					    : 0.0;
}

/* Ends a limited claim's transaction after an error. */
static void
consumer_rollback(struct pgq_consumer *c)
{
	sql_rollback(lib_session(c->q));
}

/* Explains a missing limits table: the database was installed by PgQueuer
 * (or an older pgq) and not upgraded since. */
static void
consumer_limits_missing(const struct pgq_consumer *c,
			const struct consumer_ep *ep, struct pgq_error *err)
{
	if (err->klass != PGQ_ERR_UNDEFINED_TABLE)
		return;
	driver_error_set(err, PGQ_ERR_UNDEFINED_TABLE,
			 "entrypoint %s has limits but table %s_pgq_limits "
			 "is missing: run pgq upgrade",
			 ep->name, lib_session(c->q)->names.queue);
	driver_error_hint(err, "pgq upgrade adds the table pgq needs for "
			       "concurrency and rate limits to a queue "
			       "installed by PgQueuer");
}

/*
 * Claims up to room jobs of limited entrypoint ep in a transaction of its
 * own: LIMIT_LOCK takes the entrypoint's row lock and refills its bucket,
 * CLAIM_LIMITED (a new statement, so a snapshot taken after the lock) takes
 * what the limits allow, and may hand out a ticket. Returns the jobs added
 * to the batch, or -1 with err.
 */
static int
consumer_claim_limited(struct pgq_consumer *c, struct consumer_ep *ep,
		       uint64_t room, size_t *cap, struct pgq_error *err)
{
	const struct pgq_entrypoint_options *o = &ep->opt;
	char climit[16], rate[40], burst[40], most[24], timeout[48];
	const char *values[8];
	bool bring = ep->ticket && clock_mono_ms() >= ep->ticket_due_ms;
	bool rated = o->requests_per_second > 0.0;
	size_t before = c->nbatch;
	PGresult *res;
	double tokens;
	long spare;

	/*
	 * One job at a time per worker: a second one would keep a slot
	 * taken while it waits its turn behind the first.
	 */
	if (o->concurrency_limit > 0)
		room = 1;
	snprintf(climit, sizeof(climit), "%d", (int)o->concurrency_limit);
	snprintf(rate, sizeof(rate), "%.17g", o->requests_per_second);
	snprintf(burst, sizeof(burst), "%.17g", consumer_burst(o));
	snprintf(most, sizeof(most), "%llu", (unsigned long long)room);
	snprintf(timeout, sizeof(timeout), "%llu milliseconds",
		 (unsigned long long)c->opt.heartbeat_timeout_ms);
	if (sql_begin(lib_session(c->q), err) == -1)
		return -1;
	values[0] = ep->name;
	values[1] = climit;
	values[2] = rate;
	values[3] = burst;
	res = sql_exec(lib_session(c->q), SQL_LIMIT_LOCK, 4, values, err);
	if (res == NULL)
		goto fail;
	tokens = strtod(PQgetvalue(res, 0, 0), NULL);
	PQclear(res);
	if (rated && tokens < 1.0 && ep->ticket && !bring) {
		/* Nothing to pay with, and our turn is booked already. */
		consumer_rollback(c);
		return 0;
	}
	values[1] = most;
	values[2] = climit;
	values[3] = rate;
	values[4] = bring ? "1" : "0";
	values[5] = timeout;
	values[6] = c->qmid;
	values[7] = ep->ticket ? "false" : "true";
	res = sql_exec(lib_session(c->q), SQL_CLAIM_LIMITED, 8, values, err);
	if (res == NULL)
		goto fail;
	if (sql_commit(lib_session(c->q), err) == -1) {
		PQclear(res);
		return -1;
	}
	if (bring)
		ep->ticket = false;
	consumer_take_rows(c, res, cap);
	spare = strtol(PQgetvalue(res, 0, 9), NULL, 10);
	if (c->nbatch > before && spare > 0)
		c->claim_help = true;
	if (strcmp(PQgetvalue(res, 0, 10), "t") == 0)
		c->limit_held = true;
	if (!PQgetisnull(res, 0, 8)) {
		double wait_s = strtod(PQgetvalue(res, 0, 8), NULL);

		ep->ticket = true;
		ep->ticket_due_ms =
			clock_mono_ms() + (uint64_t)ceil(wait_s * 1000.0);
	}
	consumer_log(c, LOG_LEVEL_DEBUG,
		     "limited claim entrypoint=%s jobs=%zu tokens=%s spare=%ld "
		     "ticket=%s",
		     ep->name, c->nbatch - before,
		     PQgetisnull(res, 0, 7) ? "-" : PQgetvalue(res, 0, 7),
		     spare,
		     PQgetisnull(res, 0, 8) ? "-" : PQgetvalue(res, 0, 8));
	PQclear(res);
	return (int)(c->nbatch - before);
fail:
	/*
	 * A lost capacity-slot race: a claim that takes no lock row
	 * (PgQueuer's) took the same slot number first and the slot index
	 * refused ours (23505), or two such claims deadlocked (40P01). As in
	 * PgQueuer, that is an empty claim: the next wake or poll looks
	 * again, and so does drain mode (limit_held).
	 */
	if (strcmp(err->sqlstate, "40P01") == 0 ||
	    (strcmp(err->sqlstate, "23505") == 0 &&
	     strstr(err->message, "_picked_slot_idx") != NULL)) {
		consumer_log(c, LOG_LEVEL_DEBUG,
			     "limited claim lost a slot race entrypoint=%s: %s",
			     ep->name, err->message);
		consumer_rollback(c);
		driver_error_clear(err);
		c->limit_held = true;
		return 0;
	}
	consumer_limits_missing(c, ep, err);
	consumer_rollback(c);
	return -1;
}

/*
 * The pending completions and the claim in one round trip, each in a
 * transaction of its own (pipeline mode): the completion commits durably
 * while the claim commits asynchronously, and neither holds the other's
 * row locks. Returns the claim's result, or NULL with err; a failed
 * completion stays pending for the next write and sets complete_err.
 */
static PGresult *
consumer_complete_claim(struct pgq_consumer *c, const char *const *claim,
			struct pgq_error *err, struct pgq_error *complete_err)
{
	struct complete_params cp;
	struct driver_call calls[2] = {
		{.slot = SQL_COMPLETE, .nparams = 4},
		{.slot = SQL_CLAIM, .nparams = 4, .values = claim},
	};

	complete_params_init(c, &cp);
	calls[0].values = cp.values;
	(void)sql_exec_pipeline(lib_session(c->q), calls, 2);
	complete_params_free(&cp);
	if (calls[0].res != NULL) {
		consumer_completed(c, PQntuples(calls[0].res));
		PQclear(calls[0].res);
	} else
		*complete_err = calls[0].err;
	if (calls[1].res == NULL)
		*err = calls[1].err;
	return calls[1].res;
}

/*
 * Claims a batch; returns the number of jobs or -1. Limited entrypoints go
 * first, each in a transaction of its own, starting with another one each
 * time so that none starves: their jobs run first in the batch and hold a
 * slot as briefly as possible. The others share one CLAIM statement (the
 * fast path: no lock, no transaction).
 */
static int
consumer_claim(struct pgq_consumer *c, struct pgq_error *err)
{
	uint64_t room = consumer_claim_limit(c);
	char limit[24], timeout[48];
	const char *values[4];
	size_t cap = room > 0 ? (size_t)room : 1;
	struct pgq_error complete_err; /* klass PGQ_OK: none failed */
	PGresult *res;
	int rc = 0;

	driver_error_clear(&complete_err);
	c->claim_help = false;
	c->limit_held = false;
	c->batch = xcalloc(cap, sizeof(*c->batch));
	c->nbatch = 0;
	c->next = 0;
	for (size_t k = 0; k < c->neps && c->nbatch < room; k++) {
		struct consumer_ep *ep = &c->eps[(c->limit_next + k) % c->neps];

		if (!ep->limited)
			continue;
		if (consumer_claim_limited(c, ep, room - c->nbatch, &cap,
					   err) == -1) {
			rc = -1;
			break;
		}
	}
	c->limit_next++;
	if (rc == 0 && c->nfree > 0 && c->nbatch < room) {
		size_t before = c->nbatch;

		snprintf(limit, sizeof(limit), "%llu",
			 (unsigned long long)(room - c->nbatch));
		snprintf(timeout, sizeof(timeout), "%llu milliseconds",
			 (unsigned long long)c->opt.heartbeat_timeout_ms);
		values[0] = c->ep_array;
		values[1] = limit;
		values[2] = timeout;
		values[3] = c->qmid;
		if (c->complete.n > 0)
			res = consumer_complete_claim(c, values, err,
						      &complete_err);
		else
			res = sql_exec(lib_session(c->q), SQL_CLAIM, 4, values,
				       err);
		if (res == NULL) {
			rc = -1;
		} else {
			consumer_take_rows(c, res, &cap);
			PQclear(res);
			/* Only a full claim suggests more is waiting: a
			 * partial one took all there was, and a chain wake
			 * would only cost another worker an empty claim. */
			if ((uint64_t)(c->nbatch - before) >= room - before)
				c->claim_help = true;
		}
	}
	c->heartbeat_ms = clock_mono_ms();
	if (complete_err.klass != PGQ_OK) {
		/* The completions stay pending: the next write sends them
		 * again. With nothing claimed, the error is the claim's. */
		if (rc == 0 && c->nbatch == 0) {
			*err = complete_err;
			return -1;
		}
		if (rc == 0)
			consumer_log(c, LOG_LEVEL_WARN,
				     "cannot record outcomes (will retry): %s",
				     complete_err.message);
	}
	if (rc == -1 && c->nbatch == 0)
		return -1;
	if (rc == -1)
		/* Run what we have; the next claim meets the error again. */
		consumer_log(c, LOG_LEVEL_WARN,
			     "claim failed after %zu jobs were claimed: %s",
			     c->nbatch, err->message);
	consumer_log(c, LOG_LEVEL_DEBUG, "claimed %zu jobs", c->nbatch);
	return (int)c->nbatch;
}

static void consumer_db_error(struct pgq_consumer *c, const char *what,
			      const struct pgq_error *err);

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
	c->flush_soon = false;
	if (c->hooks.found_work != NULL)
		c->hooks.found_work(c->hooks.arg);
	return 0;
}

/*
 * Arms limit_w for the earliest ticket, and in drain mode (which has no
 * notifications to wait for) for another look at jobs that only the limits
 * hold back, backing off. Returns true when armed.
 */
static bool
consumer_limit_arm(struct pgq_consumer *c)
{
	uint64_t now = clock_mono_ms(), due = UINT64_MAX;

	for (size_t i = 0; i < c->neps; i++)
		if (c->eps[i].ticket && c->eps[i].ticket_due_ms < due)
			due = c->eps[i].ticket_due_ms;
	if (c->drain && c->limit_held) {
		if (c->limit_retry_ms == 0)
			c->limit_retry_ms = CONSUMER_HELD_RETRY_MIN_MS;
		else if (c->limit_retry_ms < CONSUMER_HELD_RETRY_MAX_MS)
			c->limit_retry_ms *= 2;
		if (now + c->limit_retry_ms < due)
			due = now + c->limit_retry_ms;
	} else {
		c->limit_retry_ms = 0;
	}
	if (c->loop == NULL)
		return false;
	ev_timer_stop(c->loop, &c->limit_w);
	if (due == UINT64_MAX)
		return false;
	ev_timer_set(&c->limit_w,
		     due > now ? (double)(due - now) / 1000.0 : 0.0, 0.0);
	ev_timer_start(c->loop, &c->limit_w);
	return true;
}

static void
consumer_limit_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	consumer_wake(w->data);
}

/*
 * Library mode: jobs claimed long ago keep a fresh heartbeat so nobody
 * re-claims them as stale. (The daemon's master does this for its workers.)
 */
static void
consumer_heartbeat(struct pgq_consumer *c)
{
	struct pgq_error err;
	char owners[UUID_STR_LEN + 4];
	const char *values[1] = {owners};
	PGresult *res;

	if (!c->library ||
	    clock_mono_ms() - c->heartbeat_ms < c->opt.heartbeat_timeout_ms / 2)
		return;
	snprintf(owners, sizeof(owners), "{%s}", c->qmid);
	res = sql_exec(lib_session(c->q), SQL_HEARTBEAT, 1, values, &err);
	if (res == NULL) {
		consumer_log(c, LOG_LEVEL_WARN, "heartbeat failed: %s",
			     err.message);
		return;
	}
	PQclear(res);
	c->heartbeat_ms = clock_mono_ms();
}

/* ---- database trouble ---- */

static void
consumer_stopped(struct pgq_consumer *c)
{
	c->stopped = true;
	if (c->library && c->loop != NULL)
		ev_break(c->loop, EVBREAK_ALL);
	if (c->hooks.stopped != NULL)
		c->hooks.stopped(c->hooks.arg);
}

static bool
consumer_error_is_fatal(const struct pgq_error *err)
{
	return err->klass == PGQ_ERR_UNDEFINED_TABLE ||
	       err->klass == PGQ_ERR_CHECK || err->klass == PGQ_ERR_INVALID;
}

/*
 * A statement failed: wait, reconnect if the connection is gone, and try
 * again. A worker never dies of it; a library consumer returns on errors
 * that waiting cannot cure.
 */
static void
consumer_db_error(struct pgq_consumer *c, const char *what,
		  const struct pgq_error *err)
{
	uint64_t delay;

	if (c->library && consumer_error_is_fatal(err)) {
		consumer_log(c, LOG_LEVEL_ERROR, "%s: %s", what, err->message);
		c->failed = true;
		c->fail_err = *err;
		consumer_stopped(c);
		return;
	}
	delay = driver_backoff_next_ms(&c->backoff);
	consumer_log(
		c, LOG_LEVEL_WARN,
		"%s: %s sqlstate=%s class=%s retry_in=%llums", what,
		err->message, err->sqlstate[0] != '\0' ? err->sqlstate : "-",
		pgq_error_class_name(err->klass), (unsigned long long)delay);
	c->in_backoff = true;
	ev_timer_set(&c->backoff_w, (double)delay / 1000.0, 0.);
	ev_timer_start(c->loop, &c->backoff_w);
}

static int
consumer_listen(struct pgq_consumer *c, bool on, struct pgq_error *err)
{
	return sql_listen(lib_session(c->q), on, err);
}

static void consumer_notify_cb(struct ev_loop *loop, ev_io *w, int revents);

static int
consumer_reconnect(struct pgq_consumer *c, struct pgq_error *err)
{
	PGconn *conn = pgq_conn(c->q);

	if (c->listening)
		ev_io_stop(c->loop, &c->notify_w);
	PQreset(conn);
	if (PQstatus(conn) != CONNECTION_OK) {
		driver_error_from_result(err, conn, NULL);
		return -1;
	}
	if (driver_check(conn, PGQ_ROLE_CONSUMER, NULL, 0, err) == -1)
		return -1;
	/* The new session has none of our prepared statements. */
	sql_session_reset(lib_session(c->q));
	if (c->listening) {
		if (consumer_listen(c, true, err) == -1)
			return -1;
		ev_io_set(&c->notify_w, PQsocket(conn), EV_READ);
		ev_io_start(c->loop, &c->notify_w);
	}
	consumer_log(c, LOG_LEVEL_INFO, "reconnected backend_pid=%d",
		     PQbackendPID(conn));
	/* Notifications sent while we were away are lost: look anyway. */
	c->want_claim = true;
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
	c->in_backoff = false;
	/* A connection stuck in pipeline mode (a pipeline that could not
	 * be read out) serves nothing more: a new session mends it. */
	if ((PQstatus(pgq_conn(c->q)) != CONNECTION_OK ||
	     PQpipelineStatus(pgq_conn(c->q)) != PQ_PIPELINE_OFF) &&
	    consumer_reconnect(c, &err) == -1) {
		consumer_db_error(c, "reconnect failed", &err);
		return;
	}
	consumer_kick(c);
}

/* ---- the step: everything that happens between two handler runs ---- */

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
	enum pgq_outcome outcome;

	consumer_time_job(c);
	outcome = consumer_record(c, j, r);
	if (j->ep->limited)
		c->flush_soon = true;
	c->running = NULL;
	c->processed++;
	consumer_log(c, LOG_LEVEL_DEBUG, "job=%lld entrypoint=%s ended: %s%s%s",
		     (long long)j->job.id, j->job.entrypoint,
		     outcome == PGQ_OUTCOME_SUCCESS ? "successful"
		     : outcome == PGQ_OUTCOME_RETRY ? "retry"
						    : "failed",
		     r->res.message[0] != '\0' ? ": " : "", r->res.message);
	if (c->hooks.job_end != NULL)
		c->hooks.job_end(c->hooks.arg, &j->job, outcome);
	if (!c->in_start)
		consumer_kick(c);
}

/*
 * A job over max_payload got in past the enqueue check (another producer,
 * or enqueued before the limit was set): it ends as an exception, never
 * run, never silently dropped, whatever on_failure says.
 */
static void
consumer_too_large(struct pgq_consumer *c, struct consumer_job *j)
{
	char msg[160];

	snprintf(msg, sizeof(msg),
		 "payload of %zu bytes exceeds max_payload %llu of entrypoint "
		 "\"%s\"",
		 j->job.payload_len, (unsigned long long)j->ep->max_payload,
		 j->job.entrypoint);
	consumer_log(c, LOG_LEVEL_WARN, "job=%lld: not run: %s",
		     (long long)j->job.id, msg);
	outcome_add(&c->complete, j->job.id, "exception", 0,
		    consumer_traceback(j, "PayloadTooLarge", msg, NULL, NULL));
	if (j->ep->limited)
		c->flush_soon = true;
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
		outcome_add(&c->complete, j->job.id, "canceled", 0, NULL);
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
	c->in_start = true;
	consumer_in_handler = c;
	h->ops->start(h, c->loop, &j->job, consumer_job_done, c);
	consumer_in_handler = NULL;
	c->in_start = false;
}

/* Stopping: release what was not started, write outcomes, report. */
static void
consumer_finish(struct pgq_consumer *c)
{
	struct pgq_error err;

	for (; c->next < c->nbatch; c->next++) {
		struct consumer_job *j = &c->batch[c->next];

		if (j->canceled)
			outcome_add(&c->complete, j->job.id, "canceled", 0,
				    NULL);
		else
			consumer_release(c, j,
					 "claimed but not started before the "
					 "consumer stopped",
					 false);
	}
	consumer_batch_clear(c);
	if (consumer_flush(c, true, &err) == -1) {
		/* Not retried: the jobs stay picked until recovered. */
		consumer_log(c, LOG_LEVEL_WARN,
			     "cannot record outcomes while stopping: %s "
			     "sqlstate=%s",
			     err.message,
			     err.sqlstate[0] != '\0' ? err.sqlstate : "-");
		outcome_clear(&c->complete);
		outcome_clear(&c->retry);
		outcome_clear(&c->hold);
	}
	consumer_stopped(c);
}

/* Reads notifications libpq has buffered (library mode). */
static void
consumer_read_notifies(struct pgq_consumer *c)
{
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
consumer_step(struct pgq_consumer *c)
{
	struct pgq_error err;
	int n;

	for (;;) {
		if (c->stopped || c->running != NULL || c->in_backoff)
			return;
		if (c->stop_flag && c->stop == CONSUMER_RUNNING)
			c->stop = CONSUMER_GRACEFUL;
		if (c->stop != CONSUMER_RUNNING) {
			consumer_finish(c);
			return;
		}
		if (c->next < c->nbatch) {
			if (c->flush_soon && consumer_flush_limited(c) == -1)
				return;
			consumer_run_next(c);
			continue;
		}
		consumer_batch_clear(c);
		if (c->max_jobs > 0 && c->processed >= c->max_jobs)
			c->retiring = true;
		/*
		 * When another claim follows (now or after the yield below),
		 * the completions go in its round trip, as a transaction of
		 * their own. Limited entrypoints count their running jobs,
		 * so with those the completions go first, on their own.
		 */
		if (consumer_flush(c,
				   !c->want_claim || c->retiring ||
					   c->nfree < c->neps,
				   &err) == -1) {
			consumer_db_error(c, "cannot record outcomes", &err);
			return;
		}
		c->flush_soon = false;
		if (c->retiring) {
			c->stop = CONSUMER_GRACEFUL;
			continue;
		}
		if (!c->want_claim) {
			if (c->woken) {
				c->woken = false;
				if (c->hooks.idle != NULL)
					c->hooks.idle(c->hooks.arg);
			}
			return;
		}
		/*
		 * Between batches, let the loop read the channel: a
		 * shutdown, fast stop or cancel must not wait until the
		 * whole backlog is drained.
		 */
		if (c->yield) {
			c->yield = false;
			consumer_kick(c);
			return;
		}
		/* A notification read during the claim sets it again. */
		c->want_claim = false;
		n = consumer_claim(c, &err);
		if (n == -1) {
			c->want_claim = true;
			consumer_db_error(c, "claim failed", &err);
			return;
		}
		driver_backoff_reset(&c->backoff);
		if (c->listening)
			consumer_read_notifies(c);
		if (n > 0) {
			c->want_claim = true;
			c->yield = true;
			if (!c->more_sent && c->claim_help) {
				c->more_sent = true;
				if (c->hooks.found_work != NULL)
					c->hooks.found_work(c->hooks.arg);
			}
		}
		/* A ticket or (drain) jobs held back bring us back later. */
		if (!consumer_limit_arm(c) && n == 0 && c->drain)
			c->stop = CONSUMER_GRACEFUL;
	}
}

static void
consumer_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	consumer_step(w->data);
}

static void
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

	(void)revents;
	/* A stop does not wait for the database to come back. */
	if (c->stop_flag && c->in_backoff) {
		ev_timer_stop(loop, &c->backoff_w);
		c->in_backoff = false;
	}
	consumer_kick(c);
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
		if (!c->in_backoff && c->running == NULL)
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
	c->ep_array = xstrdup("{}");
	ev_timer_init(&c->kick_w, consumer_kick_cb, 0., 0.);
	c->kick_w.data = c;
	ev_timer_init(&c->backoff_w, consumer_backoff_cb, 0., 0.);
	c->backoff_w.data = c;
	ev_async_init(&c->stop_w, consumer_stop_cb);
	c->stop_w.data = c;
	ev_io_init(&c->notify_w, consumer_notify_cb, -1, EV_READ);
	c->notify_w.data = c;
	ev_timer_init(&c->poll_w, consumer_poll_cb, 0., 0.);
	c->poll_w.data = c;
	ev_timer_init(&c->limit_w, consumer_limit_cb, 0., 0.);
	c->limit_w.data = c;
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
	c->stop = CONSUMER_RUNNING;
	c->stopped = false;
	c->failed = false;
	c->abort_requested = false;
	ev_async_start(loop, &c->stop_w);
}

void
consumer_detach(struct pgq_consumer *c)
{
	if (c->loop == NULL)
		return;
	ev_timer_stop(c->loop, &c->kick_w);
	ev_timer_stop(c->loop, &c->backoff_w);
	ev_async_stop(c->loop, &c->stop_w);
	ev_io_stop(c->loop, &c->notify_w);
	ev_timer_stop(c->loop, &c->poll_w);
	ev_timer_stop(c->loop, &c->limit_w);
	c->in_backoff = false;
	c->loop = NULL;
}

void
consumer_wake(struct pgq_consumer *c)
{
	c->want_claim = true;
	c->woken = true;
	c->more_sent = false;
	consumer_kick(c);
}

void
consumer_shutdown(struct pgq_consumer *c, bool fast)
{
	enum consumer_stop want = fast ? CONSUMER_FAST : CONSUMER_GRACEFUL;

	if (want <= c->stop || c->stopped)
		return;
	c->stop = want;
	if (c->in_backoff) {
		ev_timer_stop(c->loop, &c->backoff_w);
		c->in_backoff = false;
	}
	if (fast && c->running != NULL) {
		c->abort_requested = true;
		c->running->ep->h->ops->abort(c->running->ep->h);
	}
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

void
consumer_retire(struct pgq_consumer *c)
{
	c->retiring = true;
	/* A claim may be what it waits for: the kick stops it instead. */
	if (c->in_backoff) {
		ev_timer_stop(c->loop, &c->backoff_w);
		c->in_backoff = false;
	}
	consumer_kick(c);
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

/* pgq_consumer_run and pgq_consumer_drain: one loop of their own. */
static int
consumer_run_loop(struct pgq_consumer *c, bool drain, struct pgq_error *err)
{
	struct ev_loop *loop;
	PGnotify *n;
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
	if (!drain) {
		if (consumer_listen(c, true, err) == -1)
			goto out;
		c->listening = true;
		ev_io_set(&c->notify_w, PQsocket(pgq_conn(c->q)), EV_READ);
		ev_io_start(loop, &c->notify_w);
		if (c->opt.poll_interval_ms > 0) {
			double p = (double)c->opt.poll_interval_ms / 1000.0;

			ev_timer_set(&c->poll_w, p, p);
			ev_timer_start(loop, &c->poll_w);
		}
	}
	c->loop_live = 1;
	consumer_wake(c);
	ev_run(loop, 0);
	c->loop_live = 0;
	if (c->failed) {
		*err = c->fail_err;
		rc = -1;
	} else {
		rc = 0;
	}
out:
	if (c->listening) {
		struct pgq_error ignored;

		c->listening = false;
		if (PQstatus(pgq_conn(c->q)) == CONNECTION_OK &&
		    consumer_listen(c, false, &ignored) == -1)
			consumer_log(c, LOG_LEVEL_WARN, "unlisten failed: %s",
				     ignored.message);
		/* Leave the caller's connection without our leftovers. */
		while ((n = PQnotifies(pgq_conn(c->q))) != NULL)
			PQfreemem(n);
	}
	consumer_detach(c);
	ev_loop_destroy(loop);
	/* A failed run may leave outcomes: their jobs stay picked. */
	consumer_batch_clear(c);
	outcome_clear(&c->complete);
	outcome_clear(&c->retry);
	outcome_clear(&c->hold);
	c->running = NULL;
	c->drain = false;
	c->stop_flag = 0;
	/* A ticket's token is lost with the loop: its timer is gone. */
	for (size_t i = 0; i < c->neps; i++)
		c->eps[i].ticket = false;
	c->limit_retry_ms = 0;
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
	outcome_free(&c->complete);
	outcome_free(&c->retry);
	outcome_free(&c->hold);
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

void
pgq_consumer_set_log(struct pgq_consumer *c, pgq_log_fn fn, void *arg)
{
	c->log_fn = fn;
	c->log_arg = arg;
}
