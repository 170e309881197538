/*
 * The consumer engine against a real database: libpgq's in-process consumer
 * (drain, retry, hold, stop, cancel, a notification waking an idle consumer,
 * reconnect after its backend is terminated), and the daemon's worker process
 * driven over a real channel the way pgq-master drives it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/channel.h"
#include "common/common.h"
#include "conf/conf.h"
#include "pgq.h"
#include "tests/harness/harness.h"
#include "worker/worker.h"

static const char *conninfo;
static char dbconn[256];

static void
setup(void)
{
	conninfo = harness_db_new(true);
	snprintf(dbconn, sizeof(dbconn), "%s", conninfo);
}

TestSuite(consumer, .init = setup, .timeout = 120);
TestSuite(worker, .init = setup, .timeout = 120);

static struct pgq *
open_q(enum pgq_role role)
{
	struct pgq_error err;
	struct pgq *q = pgq_connect(dbconn, NULL, role, &err);

	cr_assert_not_null(q, "connect: %s", err.message);
	return q;
}

static void
enqueue(struct pgq *q, const char *entrypoint, const char *payload, int n,
	int32_t priority, int64_t *ids)
{
	struct pgq_job_spec *jobs = xcalloc((size_t)n, sizeof(*jobs));
	struct pgq_error err;

	for (int i = 0; i < n; i++) {
		jobs[i].entrypoint = entrypoint;
		jobs[i].payload = payload;
		jobs[i].payload_len = payload != NULL ? strlen(payload) : 0;
		jobs[i].priority = priority;
	}
	cr_assert_eq(pgq_enqueue_batch(q, jobs, (size_t)n, PGQ_CONFLICT_RAISE,
				       ids, NULL, &err),
		     0, "enqueue: %s", err.message);
	free(jobs);
}

static long long
scalar(PGconn *c, const char *sql)
{
	return harness_scalar(c, "%s", sql);
}

/* ---- handlers ---- */

struct counter {
	atomic_int calls;
	int stop_at; /* pgq_consumer_stop after this many calls; 0 = never */
	struct pgq_consumer *c;
	enum pgq_outcome outcome;
};

static enum pgq_outcome
count_handler(const struct pgq_job *job, void *resources,
	      struct pgq_result *res)
{
	struct counter *k = resources;
	int n = atomic_fetch_add(&k->calls, 1) + 1;

	(void)job;
	if (k->stop_at > 0 && n == k->stop_at)
		pgq_consumer_stop(k->c);
	if (k->outcome != PGQ_OUTCOME_SUCCESS) {
		snprintf(res->exception_type, sizeof(res->exception_type),
			 "ValueError");
		snprintf(res->message, sizeof(res->message), "bad \"input\" %s",
			 "\xff\xfe tail");
	}
	return k->outcome;
}

static struct pgq_consumer *
consumer(struct pgq *q, struct counter *k, const char *entrypoint,
	 const struct pgq_entrypoint_options *opt)
{
	struct pgq_error err;
	struct pgq_consumer *c = pgq_consumer_new(q, k, &err);

	cr_assert_not_null(c, "%s", err.message);
	cr_assert_eq(pgq_consumer_add(c, entrypoint, count_handler, opt, &err),
		     0, "%s", err.message);
	k->c = c;
	return c;
}

/* Drains c claiming at most batch jobs at a time; fails the test on error. */
static void
drain_in_batches(struct pgq_consumer *c, uint32_t batch)
{
	struct pgq_consumer_options copt;
	struct pgq_error err;

	pgq_consumer_options_init(&copt);
	copt.batch_size = batch;
	cr_assert_eq(pgq_consumer_set_options(c, &copt, &err), 0, "%s",
		     err.message);
	cr_assert_eq(pgq_consumer_drain(c, &err), 0, "%s", err.message);
}

/* ---- library mode ---- */

Test(consumer, drain_runs_every_job_once)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_consumer *c = consumer(q, &k, "noop", NULL);
	PGconn *db = pgq_conn(p);

	enqueue(p, "noop", "x", 500, 0, NULL);
	enqueue(p, "other", "x", 3, 0, NULL); /* not ours: left alone */
	drain_in_batches(c, 25);
	cr_expect_eq(atomic_load(&k.calls), 500);
	cr_expect_eq(pgq_consumer_processed(c), 500);
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer where "
				"entrypoint = 'noop'"),
		     0);
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer where "
				"entrypoint = 'other' and status = 'queued'"),
		     3);
	cr_expect_eq(scalar(db,
			    "select count(*) from ("
			    " select job_id from pgqueuer_log"
			    " where entrypoint = 'noop'"
			    " group by job_id having"
			    " count(*) filter (where status = 'queued') = 1"
			    " and count(*) filter (where status = 'picked') "
			    "= 1"
			    " and count(*) filter (where status = "
			    "'successful') = 1"
			    " and count(*) = 3) s"),
		     500);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

/* A pgq_log_fn that keeps the warnings, one per line. */
static void
keep_warnings(void *arg, enum pgq_log_level level, const char *message)
{
	char *buf = arg;
	size_t len = strlen(buf);

	if (level <= PGQ_LOG_WARN)
		snprintf(buf + len, 4096 - len, "%s\n", message);
}

/*
 * The completions of a batch go in the claim's round trip, in a
 * transaction of their own: when they fail the claim still runs, and the
 * completions stay pending until a later write gets them in. Nothing is
 * lost and nothing runs twice.
 */
Test(consumer, a_failed_completion_is_kept_and_written_later)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_consumer *c = consumer(q, &k, "noop", NULL);
	PGconn *db = pgq_conn(p);
	char warnings[4096] = "";

	enqueue(p, "noop", "x", 100, 0, NULL);
	/* The first DELETE on the queue fails: a sequence, not a row, counts
	 * the attempts, because the failure rolls back what it wrote. */
	PQclear(harness_query(
		db, "CREATE SEQUENCE fail_once;"
		    "CREATE FUNCTION fail_once() RETURNS trigger AS $$ BEGIN "
		    "IF nextval('fail_once') = 1 THEN "
		    "RAISE EXCEPTION 'injected completion failure'; END IF; "
		    "RETURN NULL; END $$ LANGUAGE plpgsql;"
		    "CREATE TRIGGER fail_once BEFORE DELETE ON pgqueuer "
		    "FOR EACH STATEMENT EXECUTE FUNCTION fail_once()"));
	pgq_consumer_set_log(c, keep_warnings, warnings);
	drain_in_batches(c, 25);
	cr_expect(strstr(warnings, "cannot record outcomes (will retry): "
				   "injected completion failure") != NULL,
		  "warnings: %s", warnings);
	cr_expect_eq(scalar(db, "select nextval('fail_once')") > 2, 1,
		     "the completion was sent again");
	cr_expect_eq(atomic_load(&k.calls), 100);
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer"), 0);
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer_log where "
				"status = 'successful'"),
		     100);
	cr_expect_eq(scalar(db, "select count(distinct job_id) from "
				"pgqueuer_log where status = 'successful'"),
		     100);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

Test(consumer, retry_puts_the_job_back_later_with_attempts_plus_one)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct counter k = {.outcome = PGQ_OUTCOME_RETRY};
	struct pgq_entrypoint_options opt;
	struct pgq_consumer *c;
	struct pgq_error err;
	PGconn *db = pgq_conn(p);
	int64_t id;

	pgq_entrypoint_options_init(&opt);
	opt.retry_delay_ms = 60000;
	opt.retry_backoff = 3.0;
	opt.retry_max_delay_ms = 3600000;
	opt.max_attempts = 4;
	c = consumer(q, &k, "flaky", &opt);
	enqueue(p, "flaky", NULL, 1, 0, &id);
	/* The retried job is not eligible yet: drain ends. */
	cr_assert_eq(pgq_consumer_drain(c, &err), 0, "%s", err.message);
	cr_expect_eq(atomic_load(&k.calls), 1);
	cr_expect_eq(harness_scalar(db,
				    "select count(*) from pgqueuer where id = "
				    "%lld and status = 'queued' and attempts "
				    "= 1 and queue_manager_id is null and "
				    "execute_after between now() + '55 s' "
				    "and now() + '65 s'",
				    (long long)id),
		     1);
	cr_expect_str_eq(harness_text(db,
				      "select string_agg(status::text, ',' "
				      "order by id) from pgqueuer_log where "
				      "job_id = %lld",
				      (long long)id),
			 "queued,picked,queued");
	cr_expect_str_eq(harness_text(db,
				      "select traceback->>'exception_type' "
				      "from pgqueuer_log where job_id = %lld "
				      "and traceback is not null",
				      (long long)id),
			 "ValueError");

	/* The third run waits retry_delay * backoff^2 = 9 minutes. */
	PQclear(harness_query(db,
			      "update pgqueuer set attempts = 2, "
			      "execute_after = now() where id = %lld",
			      (long long)id));
	cr_assert_eq(pgq_consumer_drain(c, &err), 0, "%s", err.message);
	cr_expect_eq(harness_scalar(db,
				    "select count(*) from pgqueuer where id = "
				    "%lld and attempts = 3 and execute_after "
				    "between now() + '535 s' and now() + "
				    "'545 s'",
				    (long long)id),
		     1);

	/* The fourth run is the last: max_attempts = 4. */
	PQclear(harness_query(db,
			      "update pgqueuer set execute_after = now() "
			      "where id = %lld",
			      (long long)id));
	cr_assert_eq(pgq_consumer_drain(c, &err), 0, "%s", err.message);
	cr_expect_eq(harness_scalar(db,
				    "select count(*) from pgqueuer where id = "
				    "%lld",
				    (long long)id),
		     0);
	cr_expect_str_eq(harness_text(db,
				      "select traceback->>'exception_message' "
				      "from pgqueuer_log where job_id = %lld "
				      "and status = 'exception'",
				      (long long)id),
			 "bad \"input\" ?? tail (attempts used up: 4 of 4)");
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

Test(consumer, failure_with_hold_leaves_a_failed_row)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct counter k = {.outcome = PGQ_OUTCOME_FAIL};
	struct pgq_entrypoint_options opt;
	struct pgq_consumer *c;
	struct pgq_error err;
	PGconn *db = pgq_conn(p);
	int64_t id;

	pgq_entrypoint_options_init(&opt);
	opt.hold_on_failure = true;
	c = consumer(q, &k, "fragile", &opt);
	enqueue(p, "fragile", "p", 1, 0, &id);
	cr_assert_eq(pgq_consumer_drain(c, &err), 0, "%s", err.message);
	cr_expect_eq(atomic_load(&k.calls), 1);
	cr_expect_eq(harness_scalar(db,
				    "select count(*) from pgqueuer where id = "
				    "%lld and status = 'failed' and "
				    "queue_manager_id is null and attempts = "
				    "0",
				    (long long)id),
		     1);
	cr_expect_eq(harness_scalar(db,
				    "select count(*) from pgqueuer_log where "
				    "job_id = %lld and status = 'failed' and "
				    "traceback->>'exception_type' = "
				    "'ValueError'",
				    (long long)id),
		     1);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

Test(consumer, failure_logs_pgqueuer_traceback_json)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct counter k = {.outcome = PGQ_OUTCOME_FAIL};
	struct pgq_consumer *c = consumer(q, &k, "broken", NULL);
	struct pgq_error err;
	PGconn *db = pgq_conn(p);
	int64_t id;

	enqueue(p, "broken", "p", 1, 0, &id);
	cr_assert_eq(pgq_consumer_drain(c, &err), 0, "%s", err.message);
	cr_expect_eq(harness_scalar(db,
				    "select count(*) from pgqueuer where id = "
				    "%lld",
				    (long long)id),
		     0);
	cr_expect_eq(
		harness_scalar(
			db,
			"select count(*) from pgqueuer_log where job_id = %lld "
			"and status = 'exception' "
			"and (traceback->>'job_id')::bigint = job_id "
			"and (traceback->>'timestamp')::timestamptz "
			"between now() - '1 min'::interval and now() "
			"and traceback->>'exception_type' = 'ValueError' "
			"and traceback->>'exception_message' = "
			"'bad \"input\" ?? tail' "
			"and traceback->>'traceback' = '' "
			"and jsonb_typeof(traceback->'additional_context') "
			"= 'null' "
			"and (select count(*) from "
			"jsonb_object_keys(traceback)) "
			"= 6",
			(long long)id),
		1);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

Test(consumer, stop_returns_the_unstarted_rest_of_the_batch)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS, .stop_at = 5};
	struct pgq_consumer *c = consumer(q, &k, "part", NULL);
	struct pgq_consumer_options copt;
	struct pgq_error err;
	PGconn *db = pgq_conn(p);

	enqueue(p, "part", NULL, 20, 0, NULL);
	pgq_consumer_options_init(&copt);
	copt.batch_size = 10;
	copt.batch_window_ms = 0;
	cr_assert_eq(pgq_consumer_set_options(c, &copt, &err), 0);
	cr_assert_eq(pgq_consumer_run(c, &err), 0, "%s", err.message);
	cr_expect_eq(atomic_load(&k.calls), 5);
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer_log where "
				"status = 'successful'"),
		     5);
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer where "
				"status = 'picked'"),
		     0);
	/* The 5 released never ran: no attempt used. */
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer where "
				"status = 'queued' and attempts > 0"),
		     0);
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer_log where "
				"status = 'queued' and "
				"traceback->>'exception_type' = 'Released'"),
		     5);
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer where "
				"status = 'queued' and attempts = 0"),
		     15);
	/* run UNLISTENs: the caller's connection is left as it was. */
	cr_expect_eq(harness_scalar(pgq_conn(q), "select count(*) from "
						 "pg_listening_channels()"),
		     0);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

Test(consumer, stop_before_run_returns_at_once)
{
	struct pgq *q = open_q(PGQ_ROLE_CONSUMER);
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_consumer *c = consumer(q, &k, "x", NULL);
	struct pgq_error err;

	pgq_consumer_stop(c);
	cr_expect_eq(pgq_consumer_run(c, &err), 0, "%s", err.message);
	cr_expect_eq(atomic_load(&k.calls), 0);
	pgq_consumer_free(c);
	pgq_free(q);
}

/* The first job cancels the second, which waits in the same batch. */
struct cancel_ctx {
	struct pgq *producer;
	struct pgq_consumer *c;
	PGconn *consumer_conn;
	int64_t ids[3];
	atomic_int ran[3];
};

static enum pgq_outcome
cancel_handler(const struct pgq_job *job, void *resources,
	       struct pgq_result *res)
{
	struct cancel_ctx *x = resources;
	struct pgq_error err;
	struct pollfd pfd;

	(void)res;
	for (int i = 0; i < 3; i++)
		if (job->id == x->ids[i])
			atomic_fetch_add(&x->ran[i], 1);
	if (job->id == x->ids[2])
		pgq_consumer_stop(x->c);
	if (job->id != x->ids[0])
		return PGQ_OUTCOME_SUCCESS;
	cr_assert_eq(pgq_cancel(x->producer, &x->ids[1], 1, NULL, &err), 0,
		     "%s", err.message);
	/* Wait for the cancellation_event to reach the consumer's socket. */
	pfd.fd = PQsocket(x->consumer_conn);
	pfd.events = POLLIN;
	pfd.revents = 0;
	cr_assert_eq(poll(&pfd, 1, 5000), 1, "no notification arrived");
	return PGQ_OUTCOME_SUCCESS;
}

Test(consumer, cancellation_skips_a_waiting_job)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct cancel_ctx x;
	struct pgq_error err;
	PGconn *db = pgq_conn(p);
	int64_t id;

	memset(&x, 0, sizeof(x));
	x.producer = p;
	x.consumer_conn = pgq_conn(q);
	x.c = pgq_consumer_new(q, &x, &err);
	cr_assert_not_null(x.c);
	cr_assert_eq(pgq_consumer_add(x.c, "c", cancel_handler, NULL, &err), 0);
	for (int i = 0; i < 3; i++) {
		enqueue(p, "c", NULL, 1, 10 - i, &id);
		x.ids[i] = id;
	}
	/* run, not drain: only a LISTENing consumer hears cancellations. */
	cr_assert_eq(pgq_consumer_run(x.c, &err), 0, "%s", err.message);
	cr_expect_eq(atomic_load(&x.ran[0]), 1);
	cr_expect_eq(atomic_load(&x.ran[1]), 0, "the canceled job ran");
	cr_expect_eq(atomic_load(&x.ran[2]), 1);
	cr_expect_eq(harness_scalar(db,
				    "select count(*) from pgqueuer_log where "
				    "job_id = %lld and status = 'canceled'",
				    (long long)x.ids[1]),
		     1);
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer"), 0);
	pgq_consumer_free(x.c);
	pgq_free(q);
	pgq_free(p);
}

/* A running job cancels itself, then polls pgq_job_canceled until told. */
struct self_cancel_ctx {
	struct pgq *producer;
	struct pgq_consumer *c;
	atomic_int polls;
	bool seen;
	bool other_job; /* pgq_job_canceled answered for a copy of the job */
};

static enum pgq_outcome
self_cancel_handler(const struct pgq_job *job, void *resources,
		    struct pgq_result *res)
{
	struct self_cancel_ctx *x = resources;
	struct pgq_job copy = *job;
	struct pgq_error err;
	int64_t id = job->id;
	uint64_t end;

	pgq_consumer_stop(x->c);
	cr_assert_eq(pgq_cancel(x->producer, &id, 1, NULL, &err), 0, "%s",
		     err.message);
	x->other_job = pgq_job_canceled(&copy);
	for (end = clock_mono_ms() + 5000; clock_mono_ms() < end;) {
		atomic_fetch_add(&x->polls, 1);
		if (pgq_job_canceled(job)) {
			x->seen = true;
			snprintf(res->message, sizeof(res->message),
				 "stopped early");
			return PGQ_OUTCOME_FAIL;
		}
		usleep(2000);
	}
	return PGQ_OUTCOME_SUCCESS;
}

Test(consumer, a_handler_polls_pgq_job_canceled_and_stops_early)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct self_cancel_ctx x;
	struct pgq_error err;
	struct pgq_job outside;
	int64_t id;

	memset(&x, 0, sizeof(x));
	memset(&outside, 0, sizeof(outside));
	cr_expect(!pgq_job_canceled(&outside), "true outside a handler");
	x.producer = p;
	x.c = pgq_consumer_new(q, &x, &err);
	cr_assert_not_null(x.c);
	cr_assert_eq(
		pgq_consumer_add(x.c, "s", self_cancel_handler, NULL, &err), 0);
	enqueue(p, "s", NULL, 1, 0, &id);
	cr_assert_eq(pgq_consumer_run(x.c, &err), 0, "%s", err.message);
	cr_expect(x.seen, "the cancellation never reached the handler");
	cr_expect(!x.other_job, "answered for a job it does not run");
	cr_expect_geq(atomic_load(&x.polls), 1);
	cr_expect_eq(harness_scalar(pgq_conn(p),
				    "select count(*) from pgqueuer_log where "
				    "job_id = %lld and status = 'canceled'",
				    (long long)id),
		     1);
	cr_expect_eq(scalar(pgq_conn(p), "select count(*) from pgqueuer"), 0);
	pgq_consumer_free(x.c);
	pgq_free(q);
	pgq_free(p);
}

static void *
run_thread(void *arg)
{
	struct pgq_consumer *c = arg;
	struct pgq_error *err = xcalloc(1, sizeof(*err));

	if (pgq_consumer_run(c, err) == -1)
		return err;
	free(err);
	return NULL;
}

/* Waits until the backend named app is idle after a claim; false on timeout. */
static bool
wait_idle_after_claim(PGconn *db, const char *app, int *pid_out)
{
	uint64_t end = clock_mono_ms() + 10000;

	while (clock_mono_ms() < end) {
		PGresult *r = harness_query(
			db,
			"select pid from pg_stat_activity where "
			"application_name = '%s' and state = 'idle' and "
			"query like '%%claimed%%'",
			app);
		bool found = PQntuples(r) == 1;

		if (found && pid_out != NULL)
			*pid_out = atoi(PQgetvalue(r, 0, 0));
		PQclear(r);
		if (found)
			return true;
		usleep(10000);
	}
	return false;
}

static bool
wait_calls(atomic_int *calls, int want, uint64_t ms)
{
	uint64_t end = clock_mono_ms() + ms;

	while (clock_mono_ms() < end) {
		if (atomic_load(calls) >= want)
			return true;
		usleep(5000);
	}
	return atomic_load(calls) >= want;
}

static struct pgq *
open_named(const char *app)
{
	char ci[512];
	struct pgq_error err;
	struct pgq *q;

	snprintf(ci, sizeof(ci), "%s application_name=%s", dbconn, app);
	q = pgq_connect(ci, NULL, PGQ_ROLE_CONSUMER, &err);
	cr_assert_not_null(q, "%s", err.message);
	return q;
}

Test(consumer, notification_wakes_an_idle_consumer)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER);
	struct pgq *q = open_named("pgq_wake_test");
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_consumer *c = consumer(q, &k, "wake", NULL);
	struct pgq_consumer_options copt;
	struct pgq_error err;
	pthread_t t;
	void *ret;
	uint64_t t0;

	pgq_consumer_options_init(&copt);
	copt.poll_interval_ms = 0; /* no polling: only LISTEN can wake it */
	cr_assert_eq(pgq_consumer_set_options(c, &copt, &err), 0);
	cr_assert_eq(pthread_create(&t, NULL, run_thread, c), 0);
	cr_assert(wait_idle_after_claim(pgq_conn(p), "pgq_wake_test", NULL),
		  "the consumer never went idle");
	t0 = clock_mono_ms();
	enqueue(p, "wake", NULL, 1, 0, NULL);
	cr_expect(wait_calls(&k.calls, 1, 5000),
		  "the notification did not wake the consumer");
	cr_expect_lt(clock_mono_ms() - t0, 2000);
	pgq_consumer_stop(c);
	cr_assert_eq(pthread_join(t, &ret), 0);
	cr_expect_null(ret, "run failed: %s",
		       ret != NULL ? ((struct pgq_error *)ret)->message : "");
	free(ret);
	cr_expect_eq(scalar(pgq_conn(p), "select count(*) from pgqueuer_log "
					 "where status = 'successful'"),
		     1);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

/* The consumer's diagnostics, kept for a test that waits on one. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char seen_lines[16384];

static void
keep_log(void *arg, enum pgq_log_level level, const char *message)
{
	(void)arg;
	(void)level;
	pthread_mutex_lock(&seen_lock);
	if (strlen(seen_lines) + strlen(message) + 2 < sizeof(seen_lines)) {
		strcat(seen_lines, message);
		strcat(seen_lines, "\n");
	}
	pthread_mutex_unlock(&seen_lock);
}

static bool
wait_logged(const char *needle, uint64_t ms)
{
	uint64_t end = clock_mono_ms() + ms;
	bool found = false;

	while (!found && clock_mono_ms() < end) {
		pthread_mutex_lock(&seen_lock);
		found = strstr(seen_lines, needle) != NULL;
		pthread_mutex_unlock(&seen_lock);
		if (!found)
			usleep(5000);
	}
	return found;
}

/*
 * Two queues may share a channel: like the master's listener, the library's
 * consumer is woken only by changes to its own table.
 */
Test(consumer, a_notification_for_another_table_does_not_wake_it)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER);
	struct pgq *q = open_named("pgq_table_test");
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_consumer *c = consumer(q, &k, "tbl", NULL);
	struct pgq_consumer_options copt;
	struct pgq_error err;
	PGconn *db = pgq_conn(p);
	pthread_t t;
	void *ret;

	seen_lines[0] = '\0';
	pgq_consumer_set_log(c, keep_log, NULL);
	pgq_consumer_options_init(&copt);
	copt.poll_interval_ms = 0;
	cr_assert_eq(pgq_consumer_set_options(c, &copt, &err), 0);
	cr_assert_eq(pthread_create(&t, NULL, run_thread, c), 0);
	cr_assert(wait_idle_after_claim(db, "pgq_table_test", NULL));
	/* A job the trigger says nothing about. */
	PQclear(harness_query(db, "BEGIN; SET LOCAL session_replication_role "
				  "= replica; INSERT INTO pgqueuer (priority, "
				  "status, entrypoint) VALUES (0, 'queued', "
				  "'tbl'); COMMIT"));
	PQclear(harness_query(
		db, "SELECT pg_notify('ch_pgqueuer', json_build_object("
		    "'channel', 'ch_pgqueuer', 'operation', 'insert', "
		    "'sent_at', now(), 'table', 'other_pgqueuer', "
		    "'type', 'table_changed_event')::text)"));
	cr_assert(wait_logged("notification for another table=other_pgqueuer",
			      5000),
		  "the notification was not told apart: %s", seen_lines);
	cr_expect_eq(atomic_load(&k.calls), 0,
		     "another table's insert woke the consumer");
	PQclear(harness_query(
		db, "SELECT pg_notify('ch_pgqueuer', json_build_object("
		    "'channel', 'ch_pgqueuer', 'operation', 'insert', "
		    "'sent_at', now(), 'table', 'pgqueuer', "
		    "'type', 'table_changed_event')::text)"));
	cr_expect(wait_calls(&k.calls, 1, 5000),
		  "its own table's insert did not wake it");
	pgq_consumer_stop(c);
	cr_assert_eq(pthread_join(t, &ret), 0);
	cr_expect_null(ret);
	free(ret);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

Test(consumer, terminated_backend_is_replaced)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER);
	struct pgq *q = open_named("pgq_reset_test");
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_consumer *c = consumer(q, &k, "again", NULL);
	struct pgq_consumer_options copt;
	struct pgq_error err;
	PGconn *db = pgq_conn(p);
	int old_pid = 0, new_pid = 0;
	pthread_t t;
	void *ret;

	pgq_consumer_options_init(&copt);
	copt.poll_interval_ms = 0;
	cr_assert_eq(pgq_consumer_set_options(c, &copt, &err), 0);
	cr_assert_eq(pthread_create(&t, NULL, run_thread, c), 0);
	cr_assert(wait_idle_after_claim(db, "pgq_reset_test", &old_pid));
	cr_assert_eq(harness_scalar(db, "select pg_terminate_backend(%d)::int",
				    old_pid),
		     1);
	/* A new session LISTENs and claims again by itself. */
	uint64_t end = clock_mono_ms() + 10000;

	while (clock_mono_ms() < end &&
	       (!wait_idle_after_claim(db, "pgq_reset_test", &new_pid) ||
		new_pid == old_pid))
		usleep(10000);
	cr_assert_neq(new_pid, old_pid, "no new backend");
	enqueue(p, "again", NULL, 3, 0, NULL);
	cr_expect(wait_calls(&k.calls, 3, 5000),
		  "jobs enqueued after the reconnect were not run");
	pgq_consumer_stop(c);
	cr_assert_eq(pthread_join(t, &ret), 0);
	cr_expect_null(ret);
	free(ret);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

Test(consumer, missing_schema_is_an_error_not_a_loop)
{
	struct pgq *q;
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_consumer *c;
	struct pgq_error err;

	snprintf(dbconn, sizeof(dbconn), "%s", harness_db_new(false));
	q = open_q(PGQ_ROLE_CONSUMER);
	c = consumer(q, &k, "x", NULL);
	cr_expect_eq(pgq_consumer_drain(c, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_UNDEFINED_TABLE, "%s", err.message);
	pgq_consumer_free(c);
	pgq_free(q);
}

/* ---- errors waiting cannot cure end a drain (the library logs nowhere) */

struct timed_drain {
	struct pgq_consumer *c;
	struct pgq_error err;
	int rc;
	atomic_bool done;
};

static void *
timed_drain_thread(void *arg)
{
	struct timed_drain *t = arg;

	t->rc = pgq_consumer_drain(t->c, &t->err);
	atomic_store(&t->done, true);
	return NULL;
}

/*
 * Drains c in a thread of its own and waits up to 10 s for it to return: a
 * drain still running then is stopped, and the test fails (it would hang).
 * Returns the drain's result, err filled as it left it.
 */
static int
drain_within_10s(struct pgq_consumer *c, struct pgq_error *err)
{
	struct timed_drain t = {.c = c, .rc = 0};
	uint64_t end = clock_mono_ms() + 10000;
	bool in_time;
	pthread_t th;

	atomic_init(&t.done, false);
	cr_assert_eq(pthread_create(&th, NULL, timed_drain_thread, &t), 0);
	while (!atomic_load(&t.done) && clock_mono_ms() < end)
		usleep(5000);
	in_time = atomic_load(&t.done);
	if (!in_time)
		pgq_consumer_stop(c);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert(in_time, "the drain was still retrying after 10 s");
	*err = t.err;
	return t.rc;
}

/* A login role without any privilege on the queue, for dbconn. */
static struct pgq *
open_as(const char *role, const char *extra)
{
	char ci[512];
	struct pgq_error err;
	struct pgq *q;

	snprintf(ci, sizeof(ci), "%s user=%s %s", dbconn, role, extra);
	q = pgq_connect(ci, NULL, PGQ_ROLE_CONSUMER, &err);
	cr_assert_not_null(q, "%s", err.message);
	return q;
}

Test(consumer, a_read_only_session_ends_a_drain)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_consumer *c;
	struct pgq_error err;

	enqueue(p, "ro", NULL, 3, 0, NULL);
	/* Turned read-only after pgq_wrap's check, as by a failover. */
	PQclear(harness_query(pgq_conn(q),
			      "SET default_transaction_read_only = on"));
	c = consumer(q, &k, "ro", NULL);
	cr_expect_eq(drain_within_10s(c, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_READ_ONLY, "%s", err.message);
	cr_expect_str_eq(err.sqlstate, "25006");
	cr_expect_eq(atomic_load(&k.calls), 0);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

Test(consumer, a_role_without_privileges_ends_a_drain)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER), *q;
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_consumer *c;
	struct pgq_error err;

	enqueue(p, "np", NULL, 3, 0, NULL);
	PQclear(harness_query(pgq_conn(p),
			      "DO $$ BEGIN CREATE ROLE pgq_consumer_np LOGIN; "
			      "EXCEPTION WHEN duplicate_object THEN NULL; "
			      "END $$"));
	q = open_as("pgq_consumer_np", "");
	c = consumer(q, &k, "np", NULL);
	cr_expect_eq(drain_within_10s(c, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_PERMISSION, "%s", err.message);
	cr_expect_str_eq(err.sqlstate, "42501");
	cr_expect_eq(atomic_load(&k.calls), 0);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

Test(consumer, a_limited_entrypoint_on_a_1_3_queue_ends_a_drain)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_entrypoint_options opt;
	struct pgq_consumer *c;
	struct pgq_error err;

	enqueue(p, "lim", NULL, 3, 0, NULL);
	/* PgQueuer 1.3's layout: no capacity slots. */
	PQclear(harness_query(pgq_conn(p),
			      "ALTER TABLE pgqueuer DROP COLUMN slot"));
	pgq_entrypoint_options_init(&opt);
	opt.concurrency_limit = 1;
	c = consumer(q, &k, "lim", &opt);
	cr_expect_eq(drain_within_10s(c, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_UNDEFINED_TABLE, "%s", err.message);
	cr_expect_str_eq(err.sqlstate, "42703");
	cr_expect(strstr(err.message, "run pgq upgrade") != NULL, "%s",
		  err.message);
	cr_expect(strstr(err.message, "slot does not exist") != NULL, "%s",
		  err.message);
	cr_expect_eq(atomic_load(&k.calls), 0);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

/* The password changes and the consumer's backend goes during a drain. */
struct relogin {
	struct pgq *producer;
	struct pgq *q;
	atomic_int calls;
};

static enum pgq_outcome
relogin_handler(const struct pgq_job *job, void *resources,
		struct pgq_result *res)
{
	struct relogin *r = resources;

	(void)job;
	(void)res;
	if (atomic_fetch_add(&r->calls, 1) == 0) {
		PGconn *c = pgq_conn(r->producer);

		PQclear(harness_query(c, "ALTER ROLE pgq_consumer_pw PASSWORD "
					 "'Changed-Pass-2'"));
		PQclear(harness_query(c, "SELECT pg_terminate_backend(%d)",
				      PQbackendPID(pgq_conn(r->q))));
	}
	return PGQ_OUTCOME_SUCCESS;
}

Test(consumer, a_login_refused_at_a_reconnect_ends_a_drain)
{
	struct relogin r;
	struct pgq_consumer *c;
	struct pgq_error err;

	memset(&r, 0, sizeof(r));
	r.producer = open_q(PGQ_ROLE_PRODUCER);
	harness_password_role("pgq_consumer_pw", "Right-Pass-1");
	PQclear(harness_query(
		pgq_conn(r.producer),
		"GRANT ALL ON ALL TABLES IN SCHEMA public TO pgq_consumer_pw; "
		"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "
		"pgq_consumer_pw"));
	enqueue(r.producer, "relog", NULL, 3, 0, NULL);
	r.q = open_as("pgq_consumer_pw", "password=Right-Pass-1");
	c = pgq_consumer_new(r.q, &r, &err);
	cr_assert_not_null(c);
	cr_assert_eq(pgq_consumer_add(c, "relog", relogin_handler, NULL, &err),
		     0);
	cr_expect_eq(drain_within_10s(c, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_AUTH, "%s", err.message);
	cr_expect_str_eq(err.sqlstate, "28P01");
	cr_expect(strstr(err.message, "Right-Pass") == NULL, "%s", err.message);
	pgq_consumer_free(c);
	pgq_free(r.q);
	pgq_free(r.producer);
}

Test(consumer, bad_arguments_are_refused)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_entrypoint_options opt;
	struct pgq_consumer_options copt;
	struct pgq_consumer *c;
	struct pgq_error err;

	cr_expect_null(pgq_consumer_new(p, NULL, &err));
	cr_expect_eq(err.klass, PGQ_ERR_INVALID);
	c = pgq_consumer_new(q, &k, &err);
	cr_assert_not_null(c);
	cr_expect_eq(pgq_consumer_drain(c, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_INVALID);
	cr_expect_eq(pgq_consumer_add(c, "a", count_handler, NULL, &err), 0);
	cr_expect_eq(pgq_consumer_add(c, "a", count_handler, NULL, &err), -1);
	cr_expect_eq(pgq_consumer_add(c, "", count_handler, NULL, &err), -1);
	cr_expect_eq(pgq_consumer_add(c, "b", NULL, NULL, &err), -1);
	pgq_entrypoint_options_init(&opt);
	opt.retry_backoff = 0.5;
	cr_expect_eq(pgq_consumer_add(c, "c", count_handler, &opt, &err), -1);
	pgq_consumer_options_init(&copt);
	copt.batch_size = 0;
	cr_expect_eq(pgq_consumer_set_options(c, &copt, &err), -1);
	cr_expect_eq(strlen(pgq_consumer_queue_manager_id(c)), 36);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

/* ---- adaptive claims ---- */

static enum pgq_outcome
slow_handler(const struct pgq_job *job, void *resources, struct pgq_result *res)
{
	struct timespec ts = {0, 30 * 1000 * 1000};

	(void)job;
	(void)resources;
	(void)res;
	nanosleep(&ts, NULL);
	return PGQ_OUTCOME_SUCCESS;
}

/*
 * The claims of one drain, from the picked log rows: the rows of one
 * claim share its transaction's timestamp. "sizes" gets the claim sizes in
 * order, comma-separated.
 */
static const char *
claim_sizes(PGconn *db)
{
	return harness_text(db, "SELECT string_agg(n::text, ',' ORDER BY t) "
				"FROM (SELECT created AS t, count(*) AS n "
				"FROM pgqueuer_log WHERE status = 'picked' "
				"GROUP BY created) s");
}

Test(consumer, claims_grow_for_fast_jobs_and_stay_single_for_slow_ones)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER),
		   *q = open_q(PGQ_ROLE_CONSUMER);
	struct counter k = {.outcome = PGQ_OUTCOME_SUCCESS};
	struct pgq_consumer *c = consumer(q, &k, "fast", NULL);
	struct pgq_consumer_options copt;
	struct pgq_error err;
	PGconn *db = pgq_conn(p);

	/* Fast jobs: one job to time them, then all the rest at once. */
	enqueue(p, "fast", NULL, 300, 0, NULL);
	pgq_consumer_options_init(&copt);
	cr_assert_eq(copt.batch_window_ms, 50);
	cr_assert_eq(copt.batch_size, 500);
	cr_assert_eq(pgq_consumer_drain(c, &err), 0, "%s", err.message);
	cr_expect_eq(atomic_load(&k.calls), 300);
	cr_expect_str_eq(claim_sizes(db), "1,299");
	pgq_consumer_free(c);

	/* Jobs longer than the window: one at a time. */
	PQclear(harness_query(db, "TRUNCATE pgqueuer_log"));
	c = pgq_consumer_new(q, NULL, &err);
	cr_assert_not_null(c, "%s", err.message);
	cr_assert_eq(pgq_consumer_add(c, "slow", slow_handler, NULL, &err), 0);
	copt.batch_window_ms = 10;
	cr_assert_eq(pgq_consumer_set_options(c, &copt, &err), 0);
	enqueue(p, "slow", NULL, 4, 0, NULL);
	cr_assert_eq(pgq_consumer_drain(c, &err), 0, "%s", err.message);
	cr_expect_str_eq(claim_sizes(db), "1,1,1,1");
	pgq_consumer_free(c);

	/* batch_window 0: batch_size every time, whatever the job time. */
	PQclear(harness_query(db, "TRUNCATE pgqueuer_log"));
	c = pgq_consumer_new(q, NULL, &err);
	cr_assert_not_null(c, "%s", err.message);
	cr_assert_eq(pgq_consumer_add(c, "slow", slow_handler, NULL, &err), 0);
	copt.batch_window_ms = 0;
	copt.batch_size = 3;
	cr_assert_eq(pgq_consumer_set_options(c, &copt, &err), 0);
	enqueue(p, "slow", NULL, 4, 0, NULL);
	cr_assert_eq(pgq_consumer_drain(c, &err), 0, "%s", err.message);
	cr_expect_str_eq(claim_sizes(db), "3,1");
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer_log where "
				"status = 'successful'"),
		     4);
	copt.batch_window_ms = 3600001;
	cr_expect_eq(pgq_consumer_set_options(c, &copt, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_INVALID);
	pgq_consumer_free(c);
	pgq_free(q);
	pgq_free(p);
}

/* ---- the daemon's worker process over a real channel ---- */

struct child {
	pid_t pid;
	int fd; /* our end of the channel */
	struct conf *cf;
};

static struct child
worker_start(const char *ini_entrypoints)
{
	/* Fixed batches of 5 (no adaptation): the tests count on them. */
	char *text = xasprintf("[pgq]\nbatch_size = 5\nbatch_window = 0\n"
			       "[database]\n"
			       "dsn = %s\n%s",
			       dbconn, ini_entrypoints);
	struct conf_errors errs;
	struct child ch;
	int fds[2];

	memset(&errs, 0, sizeof(errs));
	cr_assert_eq(
		conf_load_buffer("test.ini", text, strlen(text), &ch.cf, &errs),
		0, "%s", errs.n > 0 ? errs.v[0].text : "?");
	free(text);
	cr_assert_eq(chan_pair(fds), 0);
	ch.pid = fork();
	cr_assert_neq(ch.pid, -1);
	if (ch.pid == 0) {
		int rc;

		close(fds[0]);
		rc = worker_main(ch.cf, 3, fds[1]);
		_exit(rc);
	}
	close(fds[1]);
	ch.fd = fds[0];
	return ch;
}

/* The next message from the worker, within ms; CHAN_NONE on EOF. */
static struct chan_msg
next_msg(struct child *ch, int ms)
{
	struct chan_msg m;
	struct pollfd pfd = {ch->fd, POLLIN, 0};
	int r;

	memset(&m, 0, sizeof(m));
	cr_assert_eq(poll(&pfd, 1, ms), 1, "no message within %dms", ms);
	r = chan_recv(ch->fd, &m);
	cr_assert_neq(r, -1, "recv: %s", strerror(errno));
	if (r == 0)
		m.type = CHAN_NONE;
	return m;
}

static struct chan_msg
expect_msg(struct child *ch, enum chan_type type, int ms)
{
	struct chan_msg m = next_msg(ch, ms);

	cr_assert_eq(m.type, (uint32_t)type, "got %s, want %s",
		     chan_type_name(m.type), chan_type_name(type));
	return m;
}

static void
send_msg(struct child *ch, enum chan_type type, int64_t a)
{
	struct chan_msg m;

	memset(&m, 0, sizeof(m));
	m.type = (uint32_t)type;
	m.a = a;
	cr_assert_eq(chan_send(ch->fd, &m), 0);
}

static int
worker_wait(struct child *ch, int ms)
{
	uint64_t end = clock_mono_ms() + (uint64_t)ms;
	int status;

	while (clock_mono_ms() < end) {
		pid_t r = waitpid(ch->pid, &status, WNOHANG);

		if (r == ch->pid) {
			close(ch->fd);
			conf_free(ch->cf);
			cr_assert(WIFEXITED(status), "worker died of signal %d",
				  WTERMSIG(status));
			return WEXITSTATUS(status);
		}
		usleep(5000);
	}
	kill(ch->pid, SIGKILL);
	waitpid(ch->pid, &status, 0);
	cr_assert_fail("the worker did not exit within %dms", ms);
	return -1;
}

Test(worker, speaks_the_channel_protocol)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER);
	struct child ch = worker_start("[entrypoint w_nap]\nbuiltin = sleep\n"
				       "sleep = 1ms\n"
				       "[entrypoint w_noop]\nbuiltin = noop\n");
	struct chan_msg m;
	int64_t ids[12];
	int ends = 0, starts = 0;
	PGconn *db = pgq_conn(p);

	m = expect_msg(&ch, CHAN_HELLO, 10000);
	cr_expect_eq(strlen(m.uuid), 36);
	cr_expect_gt(m.a, 0, "backend pid");
	char uuid[40];

	snprintf(uuid, sizeof(uuid), "%s", m.uuid);
	enqueue(p, "w_nap", NULL, 12, 0, ids);
	send_msg(&ch, CHAN_WAKE, 0);
	/* One WAKE_MORE per wake, a START/END pair per job, then IDLE. */
	expect_msg(&ch, CHAN_WAKE_MORE, 5000);
	for (;;) {
		m = next_msg(&ch, 5000);
		if (m.type == CHAN_IDLE)
			break;
		if (m.type == CHAN_JOB_START) {
			cr_expect_str_eq(m.text, "w_nap");
			cr_expect_str_eq(m.uuid, uuid);
			starts++;
		} else if (m.type == CHAN_JOB_END) {
			cr_expect_eq(m.b, PGQ_OUTCOME_SUCCESS);
			ends++;
		} else {
			cr_assert_fail("unexpected %s", chan_type_name(m.type));
		}
	}
	cr_expect_eq(starts, 12);
	cr_expect_eq(ends, 12);
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer_log where "
				"status = 'successful'"),
		     12);
	/*
	 * Jobs of an instant builtin are not reported: the master has nothing
	 * to enforce while they run. Only the wake's WAKE_MORE, then IDLE.
	 */
	enqueue(p, "w_noop", NULL, 12, 0, ids);
	send_msg(&ch, CHAN_WAKE, 0);
	expect_msg(&ch, CHAN_WAKE_MORE, 5000);
	expect_msg(&ch, CHAN_IDLE, 5000);
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer_log where "
				"status = 'successful'"),
		     24);
	/* A wake with nothing to do: straight back to idle. */
	send_msg(&ch, CHAN_WAKE, 0);
	expect_msg(&ch, CHAN_IDLE, 5000);
	send_msg(&ch, CHAN_SHUTDOWN, 0);
	cr_expect_eq(worker_wait(&ch, 5000), 0);
	pgq_free(p);
}

/*
 * A shutdown must not wait for the backlog: the worker goes back to its loop
 * between batches, reads the channel and stops claiming.
 */
Test(worker, shutdown_with_a_deep_backlog_stops_claiming)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER);
	struct child ch = worker_start("[entrypoint w_noop]\nbuiltin = noop\n");
	int64_t *ids = xcalloc(20000, sizeof(*ids));
	PGconn *db = pgq_conn(p);

	expect_msg(&ch, CHAN_HELLO, 10000);
	enqueue(p, "w_noop", NULL, 20000, 0, ids);
	send_msg(&ch, CHAN_WAKE, 0);
	/* sent after the first (full) claim */
	expect_msg(&ch, CHAN_WAKE_MORE, 5000);
	send_msg(&ch, CHAN_SHUTDOWN, 0);
	cr_expect_eq(worker_wait(&ch, 10000), 0);
	cr_expect_gt(scalar(db, "select count(*) from pgqueuer where status = "
				"'queued'"),
		     10000, "the worker drained the backlog before stopping");
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer where status = "
				"'picked'"),
		     0);
	free(ids);
	pgq_free(p);
}

Test(worker, graceful_shutdown_finishes_the_running_job)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER);
	struct child ch = worker_start("[entrypoint w_sleep]\nbuiltin = "
				       "sleep\n");
	struct chan_msg m;
	int64_t ids[3];
	PGconn *db = pgq_conn(p);

	expect_msg(&ch, CHAN_HELLO, 10000);
	enqueue(p, "w_sleep", "300ms", 3, 0, ids);
	send_msg(&ch, CHAN_WAKE, 0);
	/* A claim that took all there was asks for no chain wake. */
	m = expect_msg(&ch, CHAN_JOB_START, 5000);
	cr_expect_eq(m.a, ids[0]);
	send_msg(&ch, CHAN_SHUTDOWN, 0);
	m = expect_msg(&ch, CHAN_JOB_END, 5000);
	cr_expect_eq(m.b, PGQ_OUTCOME_SUCCESS);
	cr_expect_eq(worker_wait(&ch, 5000), 0);
	cr_expect_eq(harness_scalar(db,
				    "select count(*) from pgqueuer_log where "
				    "job_id = %lld and status = 'successful'",
				    (long long)ids[0]),
		     1);
	/* The two it had claimed but not started are queued again. */
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer where "
				"status = 'queued' and queue_manager_id is "
				"null"),
		     2);
	pgq_free(p);
}

Test(worker, fast_shutdown_returns_the_running_job)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER);
	struct child ch = worker_start("[entrypoint w_cmd]\n"
				       "command = /bin/sleep 60\n"
				       "kill_grace = 2s\n");
	struct chan_msg m;
	int64_t id;
	PGconn *db = pgq_conn(p);
	uint64_t t0;

	expect_msg(&ch, CHAN_HELLO, 10000);
	enqueue(p, "w_cmd", NULL, 1, 0, &id);
	send_msg(&ch, CHAN_WAKE, 0);
	/* A claim that took all there was asks for no chain wake. */
	m = expect_msg(&ch, CHAN_JOB_START, 5000);
	cr_expect_eq(m.a, id);
	/* The command's process group, for the master to end if we die. */
	m = expect_msg(&ch, CHAN_HANDLER_GROUP, 5000);
	cr_expect_gt(m.a, 0);
	t0 = clock_mono_ms();
	send_msg(&ch, CHAN_FAST, 0);
	m = expect_msg(&ch, CHAN_HANDLER_GROUP, 5000);
	cr_expect_eq(m.a, 0, "the group's end comes before the job's");
	m = expect_msg(&ch, CHAN_JOB_END, 5000);
	cr_expect_eq(m.b, PGQ_OUTCOME_RETRY);
	cr_expect_eq(worker_wait(&ch, 5000), 0);
	cr_expect_lt(clock_mono_ms() - t0, 1500);
	cr_expect_eq(harness_scalar(db,
				    "select count(*) from pgqueuer where id = "
				    "%lld and status = 'queued' and attempts "
				    "= 1 and execute_after <= now()",
				    (long long)id),
		     1);
	pgq_free(p);
}

Test(worker, cancel_stops_the_running_job)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER);
	struct child ch = worker_start("[entrypoint w_long]\nbuiltin = "
				       "sleep\n");
	struct chan_msg m;
	int64_t id;
	PGconn *db = pgq_conn(p);

	expect_msg(&ch, CHAN_HELLO, 10000);
	enqueue(p, "w_long", "60s", 1, 0, &id);
	send_msg(&ch, CHAN_WAKE, 0);
	/* A claim that took all there was asks for no chain wake. */
	expect_msg(&ch, CHAN_JOB_START, 5000);
	send_msg(&ch, CHAN_CANCEL, id);
	m = expect_msg(&ch, CHAN_JOB_END, 5000);
	cr_expect_eq(m.a, id);
	expect_msg(&ch, CHAN_IDLE, 5000);
	cr_expect_eq(harness_scalar(db,
				    "select count(*) from pgqueuer_log where "
				    "job_id = %lld and status = 'canceled'",
				    (long long)id),
		     1);
	send_msg(&ch, CHAN_SHUTDOWN, 0);
	cr_expect_eq(worker_wait(&ch, 5000), 0);
	pgq_free(p);
}

Test(worker, end_of_channel_means_finish_and_exit)
{
	struct child ch = worker_start("[entrypoint w_x]\nbuiltin = noop\n");

	expect_msg(&ch, CHAN_HELLO, 10000);
	shutdown(ch.fd, SHUT_RDWR);
	cr_expect_eq(worker_wait(&ch, 5000), 0);
}

Test(worker, module_init_failure_exits_78)
{
	char *ini = xasprintf("[entrypoint init_fail_here]\nmodule = %s\n"
			      "function = example_handler\n",
			      EXAMPLE_MODULE);
	struct child ch = worker_start(ini);
	struct chan_msg m;

	free(ini);
	/* No HELLO: the worker gives up before connecting. */
	m = next_msg(&ch, 10000);
	cr_expect_eq(m.type, (uint32_t)CHAN_NONE, "got %s",
		     chan_type_name(m.type));
	cr_expect_eq(worker_wait(&ch, 5000), WORKER_EXIT_CONFIG);
}

Test(worker, holds_no_inherited_descriptor)
{
	int leak = open("/dev/null", 0);
	struct child ch = worker_start("[entrypoint w_fd]\nbuiltin = noop\n");
	char path[64];

	expect_msg(&ch, CHAN_HELLO, 10000);
	cr_assert_geq(leak, 3);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)ch.pid, leak);
	cr_expect_eq(access(path, F_OK), -1, "inherited fd %d is open", leak);
	send_msg(&ch, CHAN_SHUTDOWN, 0);
	cr_expect_eq(worker_wait(&ch, 5000), 0);
	close(leak);
}

Test(worker, survives_a_terminated_backend)
{
	struct pgq *p = open_q(PGQ_ROLE_PRODUCER);
	struct child ch = worker_start("[entrypoint w_back]\nbuiltin = noop\n");
	struct chan_msg m;
	PGconn *db = pgq_conn(p);
	int64_t old_pid, ids[4];

	m = expect_msg(&ch, CHAN_HELLO, 10000);
	old_pid = m.a;
	cr_assert_eq(harness_scalar(db,
				    "select pg_terminate_backend(%lld)::int",
				    (long long)old_pid),
		     1);
	enqueue(p, "w_back", NULL, 4, 0, ids);
	/* The claim fails, the worker reconnects and says hello again. */
	send_msg(&ch, CHAN_WAKE, 0);
	m = expect_msg(&ch, CHAN_HELLO, 10000);
	cr_expect_neq(m.a, old_pid);
	for (;;) {
		m = next_msg(&ch, 5000);
		if (m.type == CHAN_IDLE)
			break;
	}
	cr_expect_eq(scalar(db, "select count(*) from pgqueuer_log where "
				"status = 'successful'"),
		     4);
	send_msg(&ch, CHAN_SHUTDOWN, 0);
	cr_expect_eq(worker_wait(&ch, 5000), 0);
	pgq_free(p);
}
