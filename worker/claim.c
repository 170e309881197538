/*
 * Claiming: how many jobs to ask for (adaptive to the jobs' run time), the
 * limited entrypoints' claims in transactions of their own (concurrency
 * slots, rate tokens and tickets, lost slot races), and the fast path that
 * claims the rest in one statement pipelined with the pending completions.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lib.h"
#include "sql/sql.h"
#include "worker/consumer_int.h"

struct consumer_ep *
consumer_find_ep(struct pgq_consumer *c, const char *name)
{
	for (size_t i = 0; i < c->neps; i++)
		if (strcmp(c->eps[i].name, name) == 0)
			return &c->eps[i];
	return NULL;
}

void
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

/* The text parameters of a limited entrypoint's statements. */
struct limited_args {
	char climit[16], rate[40], burst[40], most[24], timeout[48];
};

static void
limited_args_init(const struct pgq_consumer *c, const struct consumer_ep *ep,
		  uint64_t room, struct limited_args *a)
{
	const struct pgq_entrypoint_options *o = &ep->opt;

	snprintf(a->climit, sizeof(a->climit), "%d", (int)o->concurrency_limit);
	snprintf(a->rate, sizeof(a->rate), "%.17g", o->requests_per_second);
	snprintf(a->burst, sizeof(a->burst), "%.17g", consumer_burst(o));
	snprintf(a->most, sizeof(a->most), "%llu", (unsigned long long)room);
	snprintf(a->timeout, sizeof(a->timeout), "%llu milliseconds",
		 (unsigned long long)c->opt.heartbeat_timeout_ms);
}

/* CLAIM_LIMITED's eight values (borrowing a's strings). */
static void
limited_claim_values(const struct pgq_consumer *c, const struct consumer_ep *ep,
		     const struct limited_args *a, bool bring, bool may_ticket,
		     const char **values)
{
	values[0] = ep->name;
	values[1] = a->most;
	values[2] = a->climit;
	values[3] = a->rate;
	values[4] = bring ? "1" : "0";
	values[5] = a->timeout;
	values[6] = c->qmid;
	values[7] = may_ticket ? "true" : "false";
}

/* Ends a limited claim's transaction after an error. */
static void
consumer_rollback(struct pgq_consumer *c)
{
	sql_rollback(lib_session(c->q));
}

/*
 * Explains what a limited claim misses: the limits table (the database was
 * installed by PgQueuer, or an older pgq, and not upgraded since), or the
 * capacity slots of PgQueuer 1.4's layout (a 1.3 queue: 42703, column
 * "slot" does not exist).
 */
static void
consumer_limits_missing(const struct pgq_consumer *c,
			const struct consumer_ep *ep, struct pgq_error *err)
{
	char server[sizeof(err->message)];

	if (err->klass != PGQ_ERR_UNDEFINED_TABLE)
		return;
	if (strcmp(err->sqlstate, "42703") == 0) {
		snprintf(server, sizeof(server), "%s", err->message);
		driver_error_set(err, PGQ_ERR_UNDEFINED_TABLE,
				 "entrypoint %s has limits but queue %s has an "
				 "older layout (%s): run pgq upgrade",
				 ep->name, lib_session(c->q)->names.queue,
				 server);
		snprintf(err->sqlstate, sizeof(err->sqlstate), "42703");
		driver_error_hint(err, "limited claims take PgQueuer 1.4's "
				       "capacity slots; pgq upgrade adds "
				       "them to a PgQueuer 1.3 queue");
		return;
	}
	driver_error_set(err, PGQ_ERR_UNDEFINED_TABLE,
			 "entrypoint %s has limits but table %s_pgq_limits "
			 "is missing: run pgq upgrade",
			 ep->name, lib_session(c->q)->names.queue);
	driver_error_hint(err, "pgq upgrade adds the table pgq needs for "
			       "concurrency and rate limits to a queue "
			       "installed by PgQueuer");
}

/*
 * A lost capacity-slot race: a claim that takes no lock row (PgQueuer's)
 * took the same slot number first and the slot index refused ours (23505),
 * or two such claims deadlocked (40P01). As in PgQueuer, that is an empty
 * claim: the next wake or poll looks again, and so does drain mode (held).
 */
static bool
consumer_lost_slot_race(const struct pgq_error *err)
{
	return strcmp(err->sqlstate, "40P01") == 0 ||
	       (strcmp(err->sqlstate, "23505") == 0 &&
		strstr(err->message, "_picked_slot_idx") != NULL);
}

/* What CLAIM_LIMITED's one row says besides its jobs. */
static void
consumer_limited_result(struct pgq_consumer *c, struct consumer_ep *ep,
			PGresult *res, size_t taken, struct claim_result *cr)
{
	long spare = strtol(PQgetvalue(res, 0, 9), NULL, 10);

	if (taken > 0 && spare > 0)
		cr->help = true;
	if (strcmp(PQgetvalue(res, 0, 10), "t") == 0)
		cr->held = true;
	if (!PQgetisnull(res, 0, 8)) {
		double wait_s = strtod(PQgetvalue(res, 0, 8), NULL);

		ep->ticket = true;
		ep->ticket_due_ms =
			clock_mono_ms() + (uint64_t)ceil(wait_s * 1000.0);
	}
	consumer_log(c, LOG_LEVEL_DEBUG,
		     "limited claim entrypoint=%s jobs=%zu tokens=%s spare=%ld "
		     "ticket=%s",
		     ep->name, taken,
		     PQgetisnull(res, 0, 7) ? "-" : PQgetvalue(res, 0, 7),
		     spare,
		     PQgetisnull(res, 0, 8) ? "-" : PQgetvalue(res, 0, 8));
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
		       uint64_t room, size_t *cap, struct claim_result *cr,
		       struct pgq_error *err)
{
	const struct pgq_entrypoint_options *o = &ep->opt;
	struct sql_session *s = lib_session(c->q);
	struct limited_args a;
	const char *values[8];
	bool bring = ep->ticket && clock_mono_ms() >= ep->ticket_due_ms;
	bool rated = o->requests_per_second > 0.0;
	size_t before = c->nbatch;
	PGresult *res;
	double tokens;

	/*
	 * One job at a time per worker: a second one would keep a slot
	 * taken while it waits its turn behind the first.
	 */
	if (o->concurrency_limit > 0)
		room = 1;
	limited_args_init(c, ep, room, &a);
	if (sql_begin(s, err) == -1)
		return -1;
	values[0] = ep->name;
	values[1] = a.climit;
	values[2] = a.rate;
	values[3] = a.burst;
	res = sql_exec(s, SQL_LIMIT_LOCK, 4, values, err);
	if (res == NULL)
		goto fail;
	tokens = strtod(PQgetvalue(res, 0, 0), NULL);
	PQclear(res);
	if (rated && tokens < 1.0 && ep->ticket && !bring) {
		/* Nothing to pay with, and our turn is booked already. */
		consumer_rollback(c);
		return 0;
	}
	limited_claim_values(c, ep, &a, bring, !ep->ticket, values);
	res = sql_exec(s, SQL_CLAIM_LIMITED, 8, values, err);
	if (res == NULL)
		goto fail;
	if (sql_commit(s, err) == -1) {
		PQclear(res);
		return -1;
	}
	if (bring)
		ep->ticket = false;
	consumer_take_rows(c, res, cap);
	consumer_limited_result(c, ep, res, c->nbatch - before, cr);
	PQclear(res);
	return (int)(c->nbatch - before);
fail:
	if (consumer_lost_slot_race(err)) {
		consumer_log(c, LOG_LEVEL_DEBUG,
			     "limited claim lost a slot race entrypoint=%s: %s",
			     ep->name, err->message);
		consumer_rollback(c);
		driver_error_clear(err);
		cr->held = true;
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
 * The entrypoints without limits, in one CLAIM statement (the fast path: no
 * lock, no transaction), carrying the pending completions when there are
 * some. Returns 0 or -1 with err.
 */
static int
consumer_claim_free(struct pgq_consumer *c, uint64_t room, size_t *cap,
		    struct claim_result *cr, struct pgq_error *err,
		    struct pgq_error *complete_err)
{
	size_t before = c->nbatch;
	char limit[24], timeout[48];
	const char *values[4];
	PGresult *res;

	snprintf(limit, sizeof(limit), "%llu",
		 (unsigned long long)(room - c->nbatch));
	snprintf(timeout, sizeof(timeout), "%llu milliseconds",
		 (unsigned long long)c->opt.heartbeat_timeout_ms);
	values[0] = c->ep_array;
	values[1] = limit;
	values[2] = timeout;
	values[3] = c->qmid;
	if (c->complete.n > 0)
		res = consumer_complete_claim(c, values, err, complete_err);
	else
		res = sql_exec(lib_session(c->q), SQL_CLAIM, 4, values, err);
	if (res == NULL)
		return -1;
	consumer_take_rows(c, res, cap);
	PQclear(res);
	/* Only a full claim suggests more is waiting: a partial one took
	 * all there was, and a chain wake would only cost another worker an
	 * empty claim. */
	if ((uint64_t)(c->nbatch - before) >= room - before)
		cr->help = true;
	return 0;
}

/*
 * Limited entrypoints go first, each in a transaction of its own, starting
 * with another one each time so that none starves: their jobs run first in
 * the batch and hold a slot as briefly as possible. The others share one
 * statement.
 */
int
consumer_claim(struct pgq_consumer *c, struct claim_result *cr,
	       struct pgq_error *err)
{
	uint64_t room = consumer_claim_limit(c);
	size_t cap = room > 0 ? (size_t)room : 1;
	struct pgq_error complete_err; /* klass PGQ_OK: none failed */
	int rc = 0;

	driver_error_clear(&complete_err);
	memset(cr, 0, sizeof(*cr));
	c->batch = xcalloc(cap, sizeof(*c->batch));
	c->nbatch = 0;
	c->next = 0;
	for (size_t k = 0; k < c->neps && c->nbatch < room; k++) {
		struct consumer_ep *ep = &c->eps[(c->limit_next + k) % c->neps];

		if (!ep->limited)
			continue;
		if (consumer_claim_limited(c, ep, room - c->nbatch, &cap, cr,
					   err) == -1) {
			rc = -1;
			break;
		}
	}
	c->limit_next++;
	if (rc == 0 && c->nfree > 0 && c->nbatch < room)
		rc = consumer_claim_free(c, room, &cap, cr, err, &complete_err);
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

/*
 * The probe claims what a claim would, with room for none: the fast path's
 * CLAIM and each limited entrypoint's CLAIM_LIMITED, in one transaction
 * that is rolled back (CLAIM_LIMITED may refill a bucket). Every object,
 * column and privilege is checked when a statement starts, so a claim of
 * nothing meets what a real one would.
 */
int
consumer_probe(struct pgq_consumer *c, struct pgq_error *err)
{
	struct sql_session *s = lib_session(c->q);
	const char *values[8];
	struct limited_args a;
	PGresult *res;

	if (sql_begin(s, err) == -1)
		return -1;
	for (size_t i = 0; i < c->neps; i++) {
		struct consumer_ep *ep = &c->eps[i];

		if (!ep->limited)
			continue;
		limited_args_init(c, ep, 0, &a);
		limited_claim_values(c, ep, &a, false, false, values);
		res = sql_exec(s, SQL_CLAIM_LIMITED, 8, values, err);
		if (res == NULL) {
			consumer_limits_missing(c, ep, err);
			goto fail;
		}
		PQclear(res);
	}
	if (c->nfree > 0) {
		limited_args_init(c, &c->eps[0], 0, &a);
		values[0] = c->ep_array;
		values[1] = a.most;
		values[2] = a.timeout;
		values[3] = c->qmid;
		res = sql_exec(s, SQL_CLAIM, 4, values, err);
		if (res == NULL)
			goto fail;
		PQclear(res);
	}
	consumer_rollback(c);
	return 0;
fail:
	consumer_rollback(c);
	return -1;
}

bool
consumer_limit_arm(struct pgq_consumer *c, bool held)
{
	uint64_t now = clock_mono_ms(), due = UINT64_MAX;

	for (size_t i = 0; i < c->neps; i++)
		if (c->eps[i].ticket && c->eps[i].ticket_due_ms < due)
			due = c->eps[i].ticket_due_ms;
	if (c->drain && held) {
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

void
consumer_claim_init(struct pgq_consumer *c)
{
	ev_timer_init(&c->limit_w, consumer_limit_cb, 0., 0.);
	c->limit_w.data = c;
}

/*
 * Library mode: jobs claimed long ago keep a fresh heartbeat so nobody
 * re-claims them as stale. (The daemon's master does this for its workers.)
 */
void
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
