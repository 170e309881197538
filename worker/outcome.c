/*
 * Outcomes: what the database records for a job that ended (successful,
 * retried after a delay, held, an exception with PgQueuer's traceback), kept
 * in three lists and written a statement per list. Completions usually ride
 * on the next claim's round trip (claim.c); retries and holds go at once.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/traceback.h"
#include "lib/lib.h"
#include "sql/sql.h"
#include "worker/consumer_int.h"

const char CONSUMER_RELEASED[] = "released";

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

void
consumer_outcomes_drop(struct pgq_consumer *c)
{
	outcome_clear(&c->complete);
	outcome_clear(&c->retry);
	outcome_clear(&c->hold);
}

void
consumer_outcomes_free(struct pgq_consumer *c)
{
	outcome_free(&c->complete);
	outcome_free(&c->retry);
	outcome_free(&c->hold);
}

/* PgQueuer's traceback object for job j (common/traceback.h). */
static char *
consumer_traceback(const struct consumer_job *j, const char *type,
		   const char *message, const char *traceback,
		   const char *context_json)
{
	return traceback_json(j->job.id, type, message, traceback,
			      context_json);
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
consumer_release(struct pgq_consumer *c, const struct consumer_job *j,
		 const char *why, bool started)
{
	outcome_add(&c->retry, j->job.id, started ? NULL : CONSUMER_RELEASED, 0,
		    consumer_traceback(j, "Released", why, NULL, NULL));
}

void
consumer_release_unstarted(struct pgq_consumer *c, const struct consumer_job *j,
			   const char *why)
{
	consumer_release(c, j, why, false);
}

void
consumer_record_canceled(struct pgq_consumer *c, const struct consumer_job *j)
{
	outcome_add(&c->complete, j->job.id, "canceled", 0, NULL);
}

/*
 * A job over max_payload got in past the enqueue check (another producer,
 * or enqueued before the limit was set): it ends as an exception, never
 * run, never silently dropped, whatever on_failure says.
 */
void
consumer_too_large(struct pgq_consumer *c, const struct consumer_job *j)
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
		c->flush_due = true;
}

enum pgq_outcome
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
	/* A fast stop aborted it (no job starts once one was asked). */
	if (r->outcome != PGQ_OUTCOME_SUCCESS && c->stop == CONSUMER_FAST) {
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

void
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

void
complete_params_free(struct complete_params *cp)
{
	free(cp->ids);
	free(cp->sts);
	free(cp->tbs);
}

void
consumer_completed(struct pgq_consumer *c, int done)
{
	consumer_check_owned(c, "complete", done, c->complete.n);
	outcome_clear(&c->complete);
}

static int
flush_complete(struct pgq_consumer *c, struct pgq_error *err)
{
	struct complete_params cp;
	int n;

	complete_params_init(c, &cp);
	n = consumer_write(c, SQL_COMPLETE, 4, cp.values, err);
	complete_params_free(&cp);
	if (n == -1)
		return -1;
	consumer_completed(c, n);
	return 0;
}

static int
flush_retry(struct pgq_consumer *c, struct pgq_error *err)
{
	struct outcome_list *l = &c->retry;
	char **delays = xcalloc(l->n, sizeof(*delays));
	const char **added = xcalloc(l->n, sizeof(*added));
	char *ids, *arr2, *arr3, *arr5;
	const char *values[5];
	int n;

	for (size_t i = 0; i < l->n; i++) {
		delays[i] = xasprintf("%llu milliseconds",
				      (unsigned long long)l->delay_ms[i]);
		added[i] = l->status[i] == CONSUMER_RELEASED ? "0" : "1";
	}
	ids = int64_array_literal(l->ids, l->n);
	arr2 = text_array_literal((const char *const *)delays, l->n);
	arr3 = text_array_literal((const char *const *)l->traceback, l->n);
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
	return 0;
}

static int
flush_hold(struct pgq_consumer *c, struct pgq_error *err)
{
	struct outcome_list *l = &c->hold;
	char *ids, *arr3;
	const char *values[3];
	int n;

	ids = int64_array_literal(l->ids, l->n);
	arr3 = text_array_literal((const char *const *)l->traceback, l->n);
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
	return 0;
}

int
consumer_flush(struct pgq_consumer *c, bool with_complete,
	       struct pgq_error *err)
{
	if (with_complete && c->complete.n > 0 && flush_complete(c, err) == -1)
		return -1;
	if (c->retry.n > 0 && flush_retry(c, err) == -1)
		return -1;
	if (c->hold.n > 0 && flush_hold(c, err) == -1)
		return -1;
	return 0;
}
