/*
 * libpgq's public API against a real database: wrap and checks, single and
 * batch enqueue, dedupe modes, enqueue inside the caller's transaction, queue
 * size, cancel and requeue.
 */
#include "config.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/common.h"
#include "pgq.h"
#include "tests/harness/harness.h"

static const char *conninfo;

static void
setup(void)
{
	conninfo = harness_db_new(true);
}

TestSuite(lib, .init = setup, .timeout = 60);

static struct pgq *
producer(PGconn *conn)
{
	struct pgq_error err;
	struct pgq *q = pgq_wrap(conn, NULL, PGQ_ROLE_PRODUCER, &err);

	cr_assert_not_null(q, "wrap: %s", err.message);
	return q;
}

Test(lib, enqueue_one_job_stores_payload_priority_and_log_row)
{
	PGconn *c = harness_connect(conninfo);
	struct pgq *q = producer(c);
	struct pgq_job_spec job = {.entrypoint = "mail",
				   .payload = "a\0b",
				   .payload_len = 3,
				   .priority = 7,
				   .headers_json = "{\"trace\": \"x\"}"};
	struct pgq_error err;
	int64_t id = 0;

	cr_assert_eq(pgq_enqueue(q, &job, &id, &err), 0, "%s", err.message);
	cr_assert_gt(id, 0);
	cr_expect_eq(
		harness_scalar(c,
			       "select priority from pgqueuer where id = %lld "
			       "and status = 'queued' and entrypoint = 'mail' "
			       "and payload = '\\x610062'::bytea "
			       "and headers->>'trace' = 'x'",
			       (long long)id),
		7);
	cr_expect_eq(
		harness_scalar(
			c,
			"select count(*) from pgqueuer_log where job_id = %lld "
			"and status = 'queued'",
			(long long)id),
		1);
	pgq_free(q);
	PQfinish(c);
}

Test(lib, batch_returns_ids_in_input_order)
{
	PGconn *c = harness_connect(conninfo);
	struct pgq *q = producer(c);
	struct pgq_job_spec jobs[200];
	int64_t ids[200];
	struct pgq_error err;
	char payloads[200][16];
	size_t added = 0;

	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 200; i++) {
		snprintf(payloads[i], sizeof(payloads[i]), "p%d", i);
		jobs[i].entrypoint = i % 2 ? "odd" : "even";
		jobs[i].payload = payloads[i];
		jobs[i].payload_len = strlen(payloads[i]);
		jobs[i].priority = (int32_t)(i % 5);
	}
	cr_assert_eq(pgq_enqueue_batch(q, jobs, 200, PGQ_CONFLICT_RAISE, ids,
				       &added, &err),
		     0, "%s", err.message);
	cr_expect_eq(added, 200);
	for (int i = 0; i < 200; i++) {
		const char *p = harness_text(
			c,
			"select convert_from(payload, 'UTF8') from pgqueuer "
			"where id = %lld",
			(long long)ids[i]);

		cr_assert_str_eq(p, payloads[i], "job %d", i);
	}
	pgq_free(q);
	PQfinish(c);
}

Test(lib, dedupe_raise_fails_and_skip_leaves_duplicate_out)
{
	PGconn *c = harness_connect(conninfo);
	struct pgq *q = producer(c);
	struct pgq_job_spec jobs[3] = {
		{.entrypoint = "e", .dedupe_key = "k1"},
		{.entrypoint = "e", .dedupe_key = "k2"},
		{.entrypoint = "e", .dedupe_key = "k1"},
	};
	struct pgq_error err;
	int64_t ids[3];
	size_t added;

	cr_assert_eq(pgq_enqueue(q, &jobs[0], &ids[0], &err), 0, "%s",
		     err.message);
	cr_expect_eq(pgq_enqueue(q, &jobs[2], &ids[2], &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_UNIQUE);
	cr_expect_str_eq(err.sqlstate, "23505");
	cr_expect_neq(err.hint[0], '\0');

	cr_assert_eq(pgq_enqueue_batch(q, jobs, 3, PGQ_CONFLICT_SKIP, ids,
				       &added, &err),
		     0, "%s", err.message);
	cr_expect_eq(added, 1);
	cr_expect_eq(ids[0], 0);
	cr_expect_gt(ids[1], 0);
	cr_expect_eq(ids[2], 0);
	cr_expect_eq(harness_scalar(c, "select count(*) from pgqueuer"), 2);
	pgq_free(q);
	PQfinish(c);
}

/* Waits up to ms for a notification on c; returns it (caller frees) or NULL. */
static PGnotify *
wait_notify(PGconn *c, int ms)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)ms;
	PGnotify *n;

	for (;;) {
		PQconsumeInput(c);
		n = PQnotifies(c);
		if (n != NULL || clock_mono_ms() >= deadline)
			return n;
		struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
		poll(&pfd, 1, (int)(deadline - clock_mono_ms()));
	}
}

Test(lib, enqueue_in_open_transaction_appears_with_notification_at_commit)
{
	PGconn *app = harness_connect(conninfo);
	PGconn *other = harness_connect(conninfo);
	struct pgq_job_spec job = {.entrypoint = "tx"};
	struct pgq_error err;
	struct pgq *q;
	PGnotify *n;
	int64_t id;

	PQclear(harness_query(other, "LISTEN ch_pgqueuer"));
	PQclear(harness_query(app, "BEGIN"));
	q = producer(app);
	cr_assert_eq(pgq_enqueue(q, &job, &id, &err), 0, "%s", err.message);
	cr_expect_eq(harness_scalar(other, "select count(*) from pgqueuer"), 0);
	n = wait_notify(other, 300);
	cr_expect_null(n, "notification before commit");
	PQfreemem(n);
	PQclear(harness_query(app, "COMMIT"));
	n = wait_notify(other, 5000);
	cr_assert_not_null(n, "no notification at commit");
	cr_expect(strstr(n->extra, "\"table_changed_event\"") != NULL, "%s",
		  n->extra);
	cr_expect(strstr(n->extra, "\"insert\"") != NULL, "%s", n->extra);
	PQfreemem(n);
	n = wait_notify(other, 200);
	cr_expect_null(n, "more than one notification for one statement");
	PQfreemem(n);
	cr_expect_eq(harness_scalar(other, "select count(*) from pgqueuer"), 1);
	pgq_free(q);
	PQfinish(app);
	PQfinish(other);
}

Test(lib, rollback_leaves_no_job)
{
	PGconn *app = harness_connect(conninfo);
	struct pgq_job_spec job = {.entrypoint = "tx"};
	struct pgq_error err;
	struct pgq *q;
	int64_t id;

	PQclear(harness_query(app, "BEGIN"));
	q = producer(app);
	cr_assert_eq(pgq_enqueue(q, &job, &id, &err), 0, "%s", err.message);
	PQclear(harness_query(app, "ROLLBACK"));
	cr_expect_eq(harness_scalar(app, "select count(*) from pgqueuer"), 0);
	pgq_free(q);
	PQfinish(app);
}

Test(lib, consumer_is_refused_inside_a_transaction)
{
	PGconn *c = harness_connect(conninfo);
	struct pgq_error err;
	struct pgq *q;

	PQclear(harness_query(c, "BEGIN"));
	q = pgq_wrap(c, NULL, PGQ_ROLE_CONSUMER, &err);
	cr_expect_null(q);
	cr_expect_eq(err.klass, PGQ_ERR_CHECK);
	cr_expect(strstr(err.message, "transaction") != NULL, "%s",
		  err.message);
	PQfinish(c);
}

Test(lib, missing_schema_gives_undefined_table_and_install_hint)
{
	const char *bare = harness_db_new(false);
	PGconn *c = harness_connect(bare);
	struct pgq *q = producer(c);
	struct pgq_job_spec job = {.entrypoint = "x"};
	struct pgq_error err;
	int64_t id;

	cr_assert_eq(pgq_enqueue(q, &job, &id, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_UNDEFINED_TABLE);
	cr_expect_str_eq(err.sqlstate, "42P01");
	cr_expect(strstr(err.hint, "pgq install") != NULL, "%s", err.hint);
	pgq_free(q);
	PQfinish(c);
}

Test(lib, bad_prefix_is_refused_before_sending)
{
	PGconn *c = harness_connect(conninfo);
	struct pgq_options opt = {.prefix = "x; drop table pgqueuer; --"};
	struct pgq_error err;

	cr_expect_null(pgq_wrap(c, &opt, PGQ_ROLE_PRODUCER, &err));
	cr_expect_eq(err.klass, PGQ_ERR_INVALID);
	PQfinish(c);
}

Test(lib, queue_size_cancel_and_requeue)
{
	PGconn *c = harness_connect(conninfo);
	struct pgq *q = producer(c);
	struct pgq_job_spec jobs[4] = {{.entrypoint = "a"},
				       {.entrypoint = "a"},
				       {.entrypoint = "b"},
				       {.entrypoint = "b"}};
	struct pgq_error err;
	int64_t ids[4], queued, picked;
	size_t n;

	cr_assert_eq(pgq_enqueue_batch(q, jobs, 4, PGQ_CONFLICT_RAISE, ids,
				       NULL, &err),
		     0, "%s", err.message);
	cr_assert_eq(pgq_queue_size(q, NULL, &queued, &picked, &err), 0, "%s",
		     err.message);
	cr_expect_eq(queued, 4);
	cr_expect_eq(picked, 0);
	cr_assert_eq(pgq_queue_size(q, "a", &queued, &picked, &err), 0);
	cr_expect_eq(queued, 2);

	cr_assert_eq(pgq_cancel(q, &ids[0], 1, &n, &err), 0, "%s", err.message);
	cr_expect_eq(n, 1);
	cr_expect_eq(
		harness_scalar(
			c,
			"select count(*) from pgqueuer_log where job_id = %lld "
			"and status = 'canceled'",
			(long long)ids[0]),
		1);

	PQclear(harness_query(
		c,
		"update pgqueuer set status = 'failed', attempts = 3 "
		"where id = %lld",
		(long long)ids[2]));
	cr_assert_eq(pgq_requeue(q, &ids[2], 1, &n, &err), 0, "%s",
		     err.message);
	cr_expect_eq(n, 1);
	cr_expect_eq(
		harness_scalar(
			c,
			"select attempts from pgqueuer where id = %lld and "
			"status = 'queued'",
			(long long)ids[2]),
		0);
	pgq_free(q);
	PQfinish(c);
}
