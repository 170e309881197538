/*
 * The run-time statements of sql/queries.sql against a real database:
 * enqueue (batches, dedupe, transactions), claim (order, deferral, stale
 * heartbeats, concurrency, the index it uses), and every write after it
 * with ownership, log rows and notifications.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "driver/driver.h"
#include "sql/sql.h"
#include "tests/harness/harness.h"

#define OWNER_A "00000000-0000-4000-8000-00000000000a"
#define OWNER_B "00000000-0000-4000-8000-00000000000b"

static struct sql_names names;

static PGconn *
fresh(void)
{
	struct pgq_error err;

	cr_assert_eq(sql_names_init(&names, NULL, NULL, NULL, &err), 0);
	return harness_connect(harness_db_new(true));
}

/* Runs statement s; returns the result (caller clears) or NULL on error. */
static PGresult *
try_stmt(PGconn *c, enum sql_stmt s, int np, const char *const *v)
{
	char *sql = sql_stmt_render(s, &names);
	PGresult *r = PQexecParams(c, sql, np, NULL, v, NULL, NULL, 0);

	free(sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK ||
	    PQresultStatus(r) == PGRES_COMMAND_OK)
		return r;
	PQclear(r);
	return NULL;
}

/* Runs statement s and fails the test unless it succeeds. */
static PGresult *
stmt(PGconn *c, enum sql_stmt s, int np, const char *const *v)
{
	PGresult *r = try_stmt(c, s, np, v);

	cr_assert_not_null(r, "%s: %s", sql_stmt_name(s), PQerrorMessage(c));
	return r;
}

/* Enqueues one job; delay and key may be NULL. Returns its id. */
static long long
enqueue1(PGconn *c, const char *ep, int prio, const char *delay,
	 const char *key)
{
	char e[64], p[32], d[64], k[64];
	const char *v[7] = {e, "{NULL}", p, d, k, "{NULL}", "false"};
	PGresult *r;
	long long id;

	snprintf(e, sizeof(e), "{%s}", ep);
	snprintf(p, sizeof(p), "{%d}", prio);
	snprintf(d, sizeof(d), "{%s}", delay != NULL ? delay : "NULL");
	snprintf(k, sizeof(k), "{%s}", key != NULL ? key : "NULL");
	r = stmt(c, SQL_ENQUEUE, 7, v);
	cr_assert_eq(PQntuples(r), 1);
	id = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	return id;
}

/* Claims up to limit jobs of entrypoints (an array literal) for owner. */
static PGresult *
claim(PGconn *c, const char *entrypoints, int limit, const char *stale,
      const char *owner)
{
	char l[16];
	const char *v[4] = {entrypoints, l, stale, owner};

	snprintf(l, sizeof(l), "%d", limit);
	return stmt(c, SQL_CLAIM, 4, v);
}

static long long
val(PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* See test_schema.c: notifications up to a sentinel, with a deadline. */
static int
collect(PGconn *l, const char *until, char **got, int max)
{
	uint64_t deadline = clock_mono_ms() + 10000;
	int n = 0;

	for (;;) {
		PGnotify *nt;
		struct pollfd pfd;
		uint64_t now;

		cr_assert_eq(PQconsumeInput(l), 1, "%s", PQerrorMessage(l));
		while ((nt = PQnotifies(l)) != NULL) {
			bool stop = strcmp(nt->extra, until) == 0;

			if (!stop && n < max)
				got[n] = xstrdup(nt->extra);
			if (!stop)
				n++;
			PQfreemem(nt);
			if (stop)
				return n;
		}
		now = clock_mono_ms();
		cr_assert_lt(now, deadline, "no notification %s", until);
		pfd.fd = PQsocket(l);
		pfd.events = POLLIN;
		pfd.revents = 0;
		(void)poll(&pfd, 1, (int)(deadline - now));
	}
}

/* Notifications on l sent before a sentinel that w sends now. */
static int
drain(PGconn *l, PGconn *w, char **got, int max)
{
	static unsigned seq;
	char s[32];

	snprintf(s, sizeof(s), "sentinel-%u", ++seq);
	PQclear(harness_query(w, "SELECT pg_notify('ch_pgqueuer', '%s')", s));
	return collect(l, s, got, max);
}

static void
free_all(char **got, int n, int max)
{
	for (int i = 0; i < n && i < max; i++)
		free(got[i]);
}

static json_t *
parse(const char *payload)
{
	json_error_t jerr;
	json_t *o = json_loads(payload, 0, &jerr);

	cr_assert_not_null(o, "not JSON: %s", payload);
	return o;
}

static const char *
member(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static PGconn *
listener(void)
{
	PGconn *l = harness_connect("");

	PQclear(harness_query(l, "LISTEN ch_pgqueuer"));
	return l;
}

Test(queries, every_statement_prepares, .timeout = 60)
{
	PGconn *c = fresh();

	for (int i = 0; i < SQL_STMT_COUNT; i++) {
		char *s = sql_stmt_render((enum sql_stmt)i, &names);
		PGresult *r = PQprepare(c, sql_stmt_name((enum sql_stmt)i), s,
					0, NULL);

		cr_expect_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s",
			     sql_stmt_name((enum sql_stmt)i),
			     PQerrorMessage(c));
		PQclear(r);
		free(s);
	}
	PQfinish(c);
}

Test(queries, enqueue_one_job_writes_its_row_and_a_queued_log_row,
     .timeout = 60)
{
	PGconn *c = fresh();
	const char *v[7] = {
		"{mail}", "{\"\\\\x6869\"}",	  "{7}",  "{\"2 hours\"}",
		"{key1}", "{\"{\\\"a\\\": 1}\"}", "false"};
	PGresult *r = stmt(c, SQL_ENQUEUE, 7, v);
	long long id;

	cr_assert_eq(PQntuples(r), 1);
	cr_expect_eq(val(r, 0, 0), 1, "ord");
	id = val(r, 0, 1);
	PQclear(r);
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT concat_ws(' ', entrypoint, priority, "
			     "status, encode(payload, 'escape'), dedupe_key, "
			     "headers->>'a', attempts, queue_manager_id IS "
			     "NULL, execute_after - now() BETWEEN '119 min' "
			     "AND '121 min') FROM pgqueuer WHERE id = %lld",
			     id),
		"mail 7 queued hi key1 1 0 t t");
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT string_agg(concat_ws(' ', status, "
			     "priority, entrypoint, aggregated), ',') FROM "
			     "pgqueuer_log WHERE job_id = %lld",
			     id),
		"queued 7 mail f");
	PQfinish(c);
}

Test(queries, absent_headers_are_json_null_and_read_as_none, .timeout = 60)
{
	PGconn *c = fresh();
	long long mine = enqueue1(c, "h", 3, NULL, NULL);
	const char *v[7] = {"{h}",    "{NULL}", "{1}",
			    "{NULL}", "{NULL}", "{\"{\\\"k\\\": 1}\"}",
			    "false"};
	PGresult *r;

	/* PgQueuer's form: JSON null, not SQL NULL. */
	cr_expect_str_eq(harness_text(c,
				      "SELECT jsonb_typeof(headers) FROM "
				      "pgqueuer WHERE id = %lld",
				      mine),
			 "null");
	/* Older pgq wrote SQL NULL; a claim reads both as none. */
	PQclear(harness_query(c, "INSERT INTO pgqueuer (priority, status, "
				 "entrypoint, headers) VALUES (2, 'queued', "
				 "'h', NULL)"));
	PQclear(stmt(c, SQL_ENQUEUE, 7, v));
	r = claim(c, "{h}", 10, "30 seconds", OWNER_A);
	cr_assert_eq(PQntuples(r), 3);
	cr_expect_eq(val(r, 0, 0), mine);
	cr_expect(PQgetisnull(r, 0, 5), "JSON null: %s", PQgetvalue(r, 0, 5));
	cr_expect(PQgetisnull(r, 1, 5), "SQL NULL: %s", PQgetvalue(r, 1, 5));
	cr_expect_str_eq(PQgetvalue(r, 2, 5), "{\"k\": 1}");
	PQclear(r);
	PQfinish(c);
}

Test(queries, enqueue_of_ten_thousand_returns_ids_in_input_order,
     .timeout = 120)
{
	enum { N = 10000 };
	PGconn *c = fresh();
	char *eps = xmalloc(N * 8 + 8), *prios = xmalloc(N * 8 + 8);
	char *nulls = xmalloc(N * 5 + 8);
	const char *v[7];
	size_t a = 0, b = 0, d = 0;
	PGresult *r;

	eps[a++] = prios[b++] = nulls[d++] = '{';
	for (int i = 0; i < N; i++) {
		const char *sep = i + 1 < N ? "," : "}";

		a += (size_t)sprintf(eps + a, "e%d%s", i % 3, sep);
		b += (size_t)sprintf(prios + b, "%d%s", i % 7, sep);
		d += (size_t)sprintf(nulls + d, "NULL%s", sep);
	}
	v[0] = eps;
	v[1] = nulls;
	v[2] = prios;
	v[3] = nulls;
	v[4] = nulls;
	v[5] = nulls;
	v[6] = "true";
	r = stmt(c, SQL_ENQUEUE, 7, v);
	cr_assert_eq(PQntuples(r), N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(val(r, i, 0), i + 1, "row %d", i);
		if (i > 0)
			cr_assert_gt(val(r, i, 1), val(r, i - 1, 1),
				     "ids not increasing at %d", i);
	}
	/* Each id holds the job of its position. */
	cr_expect_eq(
		harness_scalar(
			c,
			"SELECT count(*) FROM pgqueuer WHERE id = %lld AND "
			"entrypoint = 'e%d' AND priority = %d",
			val(r, 4321, 1), 4321 % 3, 4321 % 7),
		1);
	PQclear(r);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer"), N);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer_log "
				       "WHERE status = 'queued'"),
		     N);
	free(eps);
	free(prios);
	free(nulls);
	PQfinish(c);
}

Test(queries, duplicate_dedupe_key_raises_or_is_skipped, .timeout = 60)
{
	PGconn *c = fresh();
	const char *raise[7] = {"{e,e}",       "{NULL,NULL}", "{0,0}",
				"{NULL,NULL}", "{k2,k1}",     "{NULL,NULL}",
				"false"};
	const char *skip[7] = {"{e,e,e,e}",
			       "{NULL,NULL,NULL,NULL}",
			       "{0,1,2,3}",
			       "{NULL,NULL,NULL,NULL}",
			       "{k1,k2,k2,NULL}",
			       "{NULL,NULL,NULL,NULL}",
			       "true"};
	PGresult *r;
	char *sql;

	enqueue1(c, "e", 0, NULL, "k1");
	/* Raise: the whole batch fails with a unique violation. */
	sql = sql_stmt_render(SQL_ENQUEUE, &names);
	r = PQexecParams(c, sql, 7, NULL, raise, NULL, NULL, 0);
	free(sql);
	cr_expect_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	cr_expect_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23505");
	PQclear(r);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer"), 1);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer_log"), 1);

	/* Skip: k1 is queued already, the second k2 repeats the first. */
	r = stmt(c, SQL_ENQUEUE, 7, skip);
	cr_assert_eq(PQntuples(r), 2);
	cr_expect_eq(val(r, 0, 0), 2);
	cr_expect_eq(val(r, 1, 0), 4);
	PQclear(r);
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT string_agg(coalesce(dedupe_key, '-') || "
			     "priority, ',' ORDER BY id) FROM pgqueuer"),
		"k10,k21,-3");
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer_log"), 3);

	/* Once the holder is done, the key is free again. */
	PQclear(harness_query(c, "DELETE FROM pgqueuer WHERE dedupe_key = "
				 "'k1'"));
	enqueue1(c, "e", 0, NULL, "k1");
	PQfinish(c);
}

Test(queries, enqueue_in_a_transaction_appears_with_its_notification_at_commit,
     .timeout = 60)
{
	PGconn *c = fresh();
	PGconn *other = harness_connect(""), *l = listener();
	char *got[8];
	json_t *o;
	int n;

	PQclear(harness_query(c, "BEGIN"));
	enqueue1(c, "e", 0, NULL, NULL);
	cr_expect_eq(harness_scalar(other, "SELECT count(*) FROM pgqueuer"), 0);
	n = drain(l, other, got, 8);
	cr_expect_eq(n, 0, "notified before commit");
	free_all(got, n, 8);

	PQclear(harness_query(c, "COMMIT"));
	cr_expect_eq(harness_scalar(other, "SELECT count(*) FROM pgqueuer"), 1);
	n = drain(l, other, got, 8);
	cr_assert_eq(n, 1);
	o = parse(got[0]);
	cr_expect_str_eq(member(o, "operation"), "insert");
	cr_expect_str_eq(member(o, "type"), "table_changed_event");
	json_decref(o);
	free_all(got, n, 8);
	PQfinish(l);
	PQfinish(other);
	PQfinish(c);
}

Test(queries, claim_takes_priority_desc_then_id_of_its_entrypoints,
     .timeout = 60)
{
	PGconn *c = fresh();
	long long a = enqueue1(c, "e1", 1, NULL, NULL);
	long long b = enqueue1(c, "e1", 5, NULL, NULL);
	long long d = enqueue1(c, "e2", 5, NULL, NULL);
	long long e = enqueue1(c, "e1", 3, NULL, NULL);
	long long other = enqueue1(c, "e3", 9, NULL, NULL);
	PGresult *r;

	r = claim(c, "{e1,e2}", 3, "30 seconds", OWNER_A);
	cr_assert_eq(PQntuples(r), 3);
	cr_expect_eq(val(r, 0, 0), b);
	cr_expect_eq(val(r, 1, 0), d);
	cr_expect_eq(val(r, 2, 0), e);
	cr_expect_str_eq(PQgetvalue(r, 0, 3), "e1");
	cr_expect_eq(val(r, 0, 2), 0, "attempts");
	PQclear(r);
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT string_agg(id || ':' || status || ':' || "
			     "coalesce(queue_manager_id::text, '-'), ',' ORDER "
			     "BY id) FROM pgqueuer"),
		harness_text(
			c,
			"SELECT "
			"format('%lld:queued:-,%lld:picked:%s,%lld:picked:%s,"
			"%lld:picked:%s,%lld:queued:-')",
			a, b, OWNER_A, d, OWNER_A, e, OWNER_A, other));
	cr_expect_eq(harness_scalar(
			     c,
			     "SELECT count(*) FROM pgqueuer_log WHERE status = "
			     "'picked' AND job_id IN (%lld, %lld, %lld)",
			     b, d, e),
		     3);

	r = claim(c, "{e1,e2}", 10, "30 seconds", OWNER_A);
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_eq(val(r, 0, 0), a);
	PQclear(r);
	r = claim(c, "{e1,e2}", 10, "30 seconds", OWNER_A);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	PQfinish(c);
}

Test(queries, claim_leaves_deferred_jobs_and_next_due_finds_them, .timeout = 60)
{
	PGconn *c = fresh();
	const char *v[1] = {"{e}"};
	PGresult *r;
	double s;

	r = stmt(c, SQL_NEXT_DUE, 1, v);
	cr_expect(PQgetisnull(r, 0, 0), "next_due with no job");
	PQclear(r);
	enqueue1(c, "e", 0, "1 hour", NULL);
	enqueue1(c, "other", 0, "1 minute", NULL);
	r = claim(c, "{e}", 10, "30 seconds", OWNER_A);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	r = stmt(c, SQL_NEXT_DUE, 1, v);
	s = strtod(PQgetvalue(r, 0, 0), NULL);
	cr_expect(s > 3500 && s <= 3600, "next due in %f s", s);
	PQclear(r);

	PQclear(harness_query(c, "UPDATE pgqueuer SET execute_after = now() "
				 "- interval '1 s'"));
	r = stmt(c, SQL_NEXT_DUE, 1, v);
	cr_expect_eq(strtod(PQgetvalue(r, 0, 0), NULL), 0.0);
	PQclear(r);
	r = claim(c, "{e}", 10, "30 seconds", OWNER_A);
	cr_expect_eq(PQntuples(r), 1);
	PQclear(r);
	PQfinish(c);
}

Test(queries, stale_picked_job_is_claimed_again_after_heartbeat_timeout,
     .timeout = 60)
{
	PGconn *c = fresh();
	long long id = enqueue1(c, "e", 0, NULL, NULL);
	PGresult *r;

	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A));
	r = claim(c, "{e}", 1, "30 seconds", OWNER_B);
	cr_expect_eq(PQntuples(r), 0, "fresh heartbeat re-claimed");
	PQclear(r);
	PQclear(harness_query(c, "UPDATE pgqueuer SET updated = now() - "
				 "interval '1 hour', heartbeat = now() - "
				 "interval '31 seconds'"));
	r = claim(c, "{e}", 1, "30 seconds", OWNER_B);
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_eq(val(r, 0, 0), id);
	cr_expect_eq(val(r, 0, 2), 0, "a re-claim is not a retry");
	PQclear(r);
	cr_expect_str_eq(harness_text(c, "SELECT queue_manager_id FROM "
					 "pgqueuer"),
			 OWNER_B);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer_log "
				       "WHERE status = 'picked'"),
		     2);
	PQfinish(c);
}

static int
cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

Test(queries, concurrent_claims_never_share_a_job, .timeout = 120)
{
	enum { JOBS = 1000, ROUNDS = 50, BATCH = 10 };
	PGconn *c = fresh();
	PGconn *w[2];
	const char *owners[2] = {OWNER_A, OWNER_B};
	char *sql = sql_stmt_render(SQL_CLAIM, &names);
	long long *ids = xcalloc(2 * ROUNDS * BATCH, sizeof(*ids));
	size_t nids = 0;

	PQclear(harness_query(
		c,
		"INSERT INTO pgqueuer (priority, status, entrypoint) "
		"SELECT i %% 10, 'queued', 'e' FROM generate_series(1, %d) i",
		JOBS));
	w[0] = harness_connect("");
	w[1] = harness_connect("");
	for (int round = 0; round < ROUNDS; round++) {
		/* Both statements are in the server at the same time. */
		for (int k = 0; k < 2; k++) {
			const char *v[4] = {"{e}", "10", "30 seconds",
					    owners[k]};

			cr_assert_eq(PQsendQueryParams(w[k], sql, 4, NULL, v,
						       NULL, NULL, 0),
				     1, "%s", PQerrorMessage(w[k]));
		}
		for (int k = 0; k < 2; k++) {
			PGresult *r;

			while ((r = PQgetResult(w[k])) != NULL) {
				cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK,
					     "%s", PQerrorMessage(w[k]));
				for (int i = 0; i < PQntuples(r); i++)
					ids[nids++] = val(r, i, 0);
				PQclear(r);
			}
		}
	}
	cr_expect_eq(nids, JOBS, "claimed %zu of %d", nids, JOBS);
	qsort(ids, nids, sizeof(*ids), cmp_ll);
	for (size_t i = 1; i < nids; i++)
		cr_assert_neq(ids[i], ids[i - 1], "job %lld claimed twice",
			      ids[i]);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer WHERE "
				       "status = 'picked'"),
		     JOBS);
	free(ids);
	free(sql);
	PQfinish(w[0]);
	PQfinish(w[1]);
	PQfinish(c);
}

/* Completes ids (an array literal) as status for owner. */
static PGresult *
complete(PGconn *c, const char *owner, const char *ids, const char *statuses,
	 const char *tracebacks)
{
	const char *v[4] = {owner, ids, statuses, tracebacks};

	return stmt(c, SQL_COMPLETE, 4, v);
}

/*
 * Completes ids for owner, then claims up to limit jobs of "{e}", in one
 * round trip as the worker sends them (each its own transaction). Returns
 * the claim's result; *done is the number of jobs completed.
 */
static PGresult *
complete_then_claim(PGconn *c, const char *owner, const char *ids,
		    const char *statuses, int limit, int *done)
{
	char l[16], tbs[16];
	const char *cv[4] = {owner, ids, statuses, tbs};
	const char *clv[4] = {"{e}", l, "30 seconds", owner};
	char *sql[2] = {sql_stmt_render(SQL_COMPLETE, &names),
			sql_stmt_render(SQL_CLAIM, &names)};
	struct driver_call calls[2] = {
		{.slot = 0,
		 .name = "t_complete",
		 .sql = sql[0],
		 .nparams = 4,
		 .values = cv},
		{.slot = 1,
		 .name = "t_claim",
		 .sql = sql[1],
		 .nparams = 4,
		 .values = clv},
	};
	struct driver_prepared p;

	snprintf(l, sizeof(l), "%d", limit);
	/* one NULL traceback per id (the tests pass one or two ids) */
	snprintf(tbs, sizeof(tbs), "%s",
		 strchr(ids, ',') != NULL ? "{NULL,NULL}" : "{NULL}");
	driver_prepared_reset(&p);
	cr_assert_eq(driver_exec_pipeline(c, &p, calls, 2), 0, "%s / %s",
		     calls[0].err.message, calls[1].err.message);
	*done = PQntuples(calls[0].res);
	PQclear(calls[0].res);
	PQclear(harness_query(c, "DEALLOCATE ALL"));
	free(sql[0]);
	free(sql[1]);
	return calls[1].res;
}

/*
 * A claim commits asynchronously (its loss in a crash only means a re-run),
 * for its own transaction only: the completion after it must wait for its
 * flush.
 */
Test(queries, claim_commits_asynchronously_and_only_itself, .timeout = 60)
{
	PGconn *c = fresh();

	enqueue1(c, "e", 0, NULL, NULL);
	enqueue1(c, "e", 0, NULL, NULL);
	cr_assert_str_eq(harness_text(c, "SHOW synchronous_commit"), "on");
	PQclear(harness_query(c, "BEGIN"));
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A));
	cr_expect_str_eq(harness_text(c, "SHOW synchronous_commit"), "off");
	PQclear(harness_query(c, "COMMIT"));
	cr_expect_str_eq(harness_text(c, "SHOW synchronous_commit"), "on");
	/* autocommit, as the workers send it */
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A));
	cr_expect_str_eq(harness_text(c, "SHOW synchronous_commit"), "on");
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer WHERE "
				       "status = 'picked'"),
		     2);
	PQfinish(c);
}

Test(queries, complete_then_claim_in_one_round_trip, .timeout = 60)
{
	PGconn *c = fresh();
	long long a = enqueue1(c, "e", 0, NULL, NULL);
	long long b = enqueue1(c, "e", 5, NULL, NULL);
	long long d = enqueue1(c, "e", 0, NULL, NULL);
	char ids[64], want[160];
	PGresult *r;
	int done;

	r = claim(c, "{e}", 1, "30 seconds", OWNER_A);
	cr_assert_eq(val(r, 0, 0), b, "the highest priority first");
	PQclear(r);
	snprintf(ids, sizeof(ids), "{%lld}", b);
	r = complete_then_claim(c, OWNER_A, ids, "{successful}", 10, &done);
	cr_expect_eq(done, 1, "one job completed");
	cr_assert_eq(PQntuples(r), 2, "two jobs claimed");
	cr_expect_eq(val(r, 0, 0), a);
	cr_expect_eq(val(r, 1, 0), d);
	PQclear(r);
	snprintf(want, sizeof(want),
		 "%lld:picked,%lld:picked,%lld:successful,"
		 "%lld:picked",
		 a, b, b, d);
	cr_expect_str_eq(harness_text(c, "SELECT string_agg(job_id || ':' || "
					 "status, ',' ORDER BY job_id, status) "
					 "FROM pgqueuer_log WHERE status <> "
					 "'queued'"),
			 want);
	cr_expect_eq(harness_scalar(c,
				    "SELECT count(*) FROM pgqueuer WHERE "
				    "status = 'picked' AND "
				    "queue_manager_id = '%s'",
				    OWNER_A),
		     2);
	/* Nothing left to claim. */
	snprintf(ids, sizeof(ids), "{%lld,%lld}", a, d);
	r = complete_then_claim(c, OWNER_A, ids, "{successful,exception}", 10,
				&done);
	cr_expect_eq(done, 2);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer"), 0);
	PQfinish(c);
}

/*
 * A job of ours that ran past the heartbeat timeout is stale to any
 * claimer, ours too: completed first, it is gone before the claim looks.
 */
Test(queries, complete_then_claim_does_not_reclaim_what_it_completes,
     .timeout = 60)
{
	PGconn *c = fresh();
	long long id = enqueue1(c, "e", 0, NULL, NULL);
	char ids[64];
	PGresult *r;
	int done;

	snprintf(ids, sizeof(ids), "{%lld}", id);
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A));
	PQclear(harness_query(c, "UPDATE pgqueuer SET updated = now() - "
				 "interval '1 hour', heartbeat = now() - "
				 "interval '1 hour'"));
	r = complete_then_claim(c, OWNER_A, ids, "{successful}", 10, &done);
	cr_expect_eq(done, 1);
	cr_expect_eq(PQntuples(r), 0, "the completed job was claimed again");
	PQclear(r);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer"), 0);
	cr_expect_eq(harness_scalar(c,
				    "SELECT count(*) FROM pgqueuer_log "
				    "WHERE job_id = %lld AND status = "
				    "'successful'",
				    id),
		     1);
	PQfinish(c);
}

Test(queries, complete_by_a_former_owner_does_nothing, .timeout = 60)
{
	PGconn *c = fresh();
	long long id = enqueue1(c, "e", 0, NULL, NULL);
	char ids[64];
	PGresult *r;

	snprintf(ids, sizeof(ids), "{%lld}", id);
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A));
	PQclear(harness_query(c, "UPDATE pgqueuer SET updated = now() - "
				 "interval '1 hour', heartbeat = now() - "
				 "interval '1 minute'"));
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_B));

	r = complete(c, OWNER_A, ids, "{successful}", "{NULL}");
	cr_expect_eq(PQntuples(r), 0, "the old owner completed the job");
	PQclear(r);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer"), 1);

	r = complete(c, OWNER_B, ids, "{exception}",
		     "{\"{\\\"exception_type\\\": \\\"E\\\"}\"}");
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_eq(val(r, 0, 0), id);
	PQclear(r);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer"), 0);
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT string_agg(status || ':' || "
			     "coalesce(traceback->>'exception_type', '-'), ',' "
			     "ORDER BY id) FROM pgqueuer_log WHERE job_id = "
			     "%lld",
			     id),
		"queued:-,picked:-,picked:-,exception:E");

	/* Completing again, or with a non-terminal status, does nothing. */
	r = complete(c, OWNER_B, ids, "{successful}", "{NULL}");
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	id = enqueue1(c, "e", 0, NULL, NULL);
	snprintf(ids, sizeof(ids), "{%lld}", id);
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A));
	r = complete(c, OWNER_A, ids, "{queued}", "{NULL}");
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	PQfinish(c);
}

Test(queries, retry_requeues_with_delay_attempts_log_and_notification,
     .timeout = 60)
{
	PGconn *c = fresh(), *l = listener();
	long long id = enqueue1(c, "e", 0, NULL, NULL);
	char ids[64], *got[8];
	const char *v[5] = {OWNER_B, ids, "{\"10 minutes\"}",
			    "{\"{\\\"exception_type\\\": \\\"Tmp\\\"}\"}",
			    NULL};
	PGresult *r;
	json_t *o;
	int n;

	snprintf(ids, sizeof(ids), "{%lld}", id);
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A));
	n = drain(l, c, got, 8);
	free_all(got, n, 8);

	/* Not the owner: nothing, and no notification. */
	r = stmt(c, SQL_RETRY, 5, v);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	n = drain(l, c, got, 8);
	cr_expect_eq(n, 0);
	free_all(got, n, 8);

	v[0] = OWNER_A;
	r = stmt(c, SQL_RETRY, 5, v);
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_eq(val(r, 0, 0), id);
	PQclear(r);
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT concat_ws(' ', status, attempts, "
			     "queue_manager_id IS NULL, execute_after - now() "
			     "BETWEEN '9 min' AND '10 min') FROM pgqueuer"),
		"queued 1 t t");
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT status || ':' || (traceback->>"
			     "'exception_type') FROM pgqueuer_log WHERE job_id "
			     "= %lld ORDER BY id DESC LIMIT 1",
			     id),
		"queued:Tmp");
	n = drain(l, c, got, 8);
	cr_assert_eq(n, 1, "%d notifications", n);
	o = parse(got[0]);
	cr_expect_str_eq(member(o, "operation"), "update");
	cr_expect_str_eq(member(o, "table"), "pgqueuer");
	cr_expect_str_eq(member(o, "channel"), "ch_pgqueuer");
	cr_expect_str_eq(member(o, "type"), "table_changed_event");
	cr_expect(json_is_string(json_object_get(o, "sent_at")));
	json_decref(o);
	free_all(got, n, 8);
	/* A release (0 attempts added) puts a job back as it was. */
	PQclear(harness_query(c, "UPDATE pgqueuer SET execute_after = now()"));
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A));
	v[2] = "{NULL}";
	v[4] = "{0}";
	r = stmt(c, SQL_RETRY, 5, v);
	cr_assert_eq(PQntuples(r), 1);
	PQclear(r);
	cr_expect_eq(harness_scalar(c, "SELECT attempts FROM pgqueuer"), 1,
		     "a release used up an attempt");
	PQfinish(l);
	PQfinish(c);
}

Test(queries, hold_then_requeue_round_trip, .timeout = 60)
{
	PGconn *c = fresh(), *l = listener();
	long long id = enqueue1(c, "e", 4, NULL, NULL);
	char ids[64], *got[8];
	const char *hv[3] = {OWNER_A, ids,
			     "{\"{\\\"exception_message\\\": \\\"boom\\\"}\"}"};
	const char *lim[1] = {"10"};
	const char *rq[1] = {NULL};
	PGresult *r;
	json_t *o;
	int n;

	snprintf(ids, sizeof(ids), "{%lld}", id);
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A));
	PQclear(harness_query(c, "UPDATE pgqueuer SET attempts = 2"));
	r = stmt(c, SQL_HOLD, 3, hv);
	cr_assert_eq(PQntuples(r), 1);
	PQclear(r);
	cr_expect_str_eq(
		harness_text(c, "SELECT concat_ws(' ', status, attempts, "
				"queue_manager_id IS NULL) FROM pgqueuer"),
		"failed 2 t");
	/* Held: no longer picked, so not claimable, and not owned. */
	r = stmt(c, SQL_HOLD, 3, hv);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	r = claim(c, "{e}", 1, "0 seconds", OWNER_B);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);

	r = stmt(c, SQL_FAILED, 1, lim);
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_eq(val(r, 0, 0), id);
	cr_expect_str_eq(PQgetvalue(r, 0, 1), "e");
	cr_expect_eq(val(r, 0, 2), 4);
	cr_expect_eq(val(r, 0, 3), 2);
	cr_expect_not_null(strstr(PQgetvalue(r, 0, 5), "boom"));
	PQclear(r);
	n = drain(l, c, got, 8);
	free_all(got, n, 8);

	r = stmt(c, SQL_REQUEUE, 1, rq); /* NULL = every held job */
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_eq(val(r, 0, 0), id);
	PQclear(r);
	cr_expect_str_eq(harness_text(c,
				      "SELECT concat_ws(' ', status, attempts, "
				      "execute_after <= now()) FROM pgqueuer"),
			 "queued 0 t");
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT string_agg(status::text, ',' ORDER BY id) "
			     "FROM pgqueuer_log WHERE job_id = %lld",
			     id),
		"queued,picked,failed,queued");
	n = drain(l, c, got, 8);
	cr_assert_eq(n, 1);
	o = parse(got[0]);
	cr_expect_str_eq(member(o, "operation"), "update");
	json_decref(o);
	free_all(got, n, 8);

	/* Nothing held: no row, no notification. */
	rq[0] = ids;
	r = stmt(c, SQL_REQUEUE, 1, rq);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	n = drain(l, c, got, 8);
	cr_expect_eq(n, 0);
	free_all(got, n, 8);
	PQfinish(l);
	PQfinish(c);
}

Test(queries, cancel_removes_queued_jobs_and_names_every_id, .timeout = 60)
{
	PGconn *c = fresh(), *l = listener();
	long long q = enqueue1(c, "e", 0, NULL, NULL);
	long long p = enqueue1(c, "e", 9, NULL, NULL);
	char ids[64], *got[8];
	const char *v[1] = {ids};
	PGresult *r;
	json_t *o, *arr;
	int n;

	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A)); /* takes p */
	n = drain(l, c, got, 8);
	free_all(got, n, 8);
	snprintf(ids, sizeof(ids), "{%lld,%lld,999999}", q, p);
	r = stmt(c, SQL_CANCEL, 1, v);
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_eq(val(r, 0, 0), q);
	PQclear(r);
	cr_expect_eq(harness_scalar(c, "SELECT id FROM pgqueuer"), p);
	cr_expect_eq(harness_scalar(c,
				    "SELECT count(*) FROM pgqueuer_log "
				    "WHERE status = 'canceled' AND job_id "
				    "= %lld",
				    q),
		     1);

	/* One delete event from the trigger, one cancellation event (in
	 * either order). */
	n = drain(l, c, got, 8);
	cr_assert_eq(n, 2, "%d notifications", n);
	for (int i = 0; i < 2; i++) {
		o = parse(got[i]);
		if (strcmp(member(o, "type"), "table_changed_event") == 0) {
			cr_expect_str_eq(member(o, "operation"), "delete");
			json_decref(o);
			continue;
		}
		cr_expect_str_eq(member(o, "type"), "cancellation_event");
		cr_expect_str_eq(member(o, "channel"), "ch_pgqueuer");
		cr_expect(json_is_string(json_object_get(o, "sent_at")));
		cr_expect(json_is_string(json_object_get(o, "received_at")));
		arr = json_object_get(o, "ids");
		cr_assert(json_is_array(arr));
		cr_assert_eq(json_array_size(arr), 3);
		cr_expect_eq(json_integer_value(json_array_get(arr, 0)), q);
		cr_expect_eq(json_integer_value(json_array_get(arr, 1)), p);
		cr_expect_eq(json_integer_value(json_array_get(arr, 2)),
			     999999);
		json_decref(o);
	}
	free_all(got, n, 8);

	/* Nothing queued to remove: the event is still sent. */
	snprintf(ids, sizeof(ids), "{%lld}", p);
	r = stmt(c, SQL_CANCEL, 1, v);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	n = drain(l, c, got, 8);
	{
		int found = 0;

		/* The statement trigger fires on a DELETE of no row too. */
		for (int i = 0; i < n && i < 8; i++) {
			o = parse(got[i]);
			found += strcmp(member(o, "type"),
					"cancellation_event") == 0;
			json_decref(o);
		}
		cr_expect_eq(found, 1, "%d cancellation events", found);
	}
	free_all(got, n, 8);
	PQfinish(l);
	PQfinish(c);
}

Test(queries, heartbeat_refreshes_only_the_owners_picked_jobs, .timeout = 60)
{
	PGconn *c = fresh();
	const char *v[1] = {"{" OWNER_A
			    ",00000000-0000-4000-8000-0000000000cc}"};
	PGresult *r;

	enqueue1(c, "e", 0, NULL, NULL);
	enqueue1(c, "e", 0, NULL, NULL);
	enqueue1(c, "e", 0, NULL, NULL);
	PQclear(claim(c, "{e}", 2, "30 seconds", OWNER_A));
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_B));
	PQclear(harness_query(c, "UPDATE pgqueuer SET updated = now() - "
				 "interval '1 hour', heartbeat = now() - "
				 "interval '1 hour'"));
	r = stmt(c, SQL_HEARTBEAT, 1, v);
	cr_expect_str_eq(PQcmdTuples(r), "2");
	PQclear(r);
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT string_agg(queue_manager_id || ':' || "
			     "(heartbeat > now() - interval '1 minute'), ',' "
			     "ORDER BY queue_manager_id) FROM pgqueuer"),
		OWNER_A ":true," OWNER_A ":true," OWNER_B ":false");
	PQfinish(c);
}

Test(queries, recover_requeues_holds_or_fails_a_dead_workers_jobs,
     .timeout = 60)
{
	PGconn *c = fresh(), *l = listener();
	const char *v[7] = {OWNER_A,
			    "{e1,e2,e5}",
			    "{3,1,0}",
			    "{false,true,false}",
			    "1",
			    "false",
			    "{\"exception_type\": \"WorkerDied\"}"};
	long long j1 = enqueue1(c, "e1", 0, NULL, NULL);
	long long j2 = enqueue1(c, "e2", 0, NULL, NULL);
	long long j3 = enqueue1(c, "e3", 0, NULL, NULL);
	long long j4 = enqueue1(c, "e1", 0, NULL, NULL);
	long long j5 = enqueue1(c, "e5", 0, NULL, NULL);
	long long jb = enqueue1(c, "e1", 0, NULL, NULL);
	char *got[8], *expect;
	PGresult *r;
	json_t *o;
	int n;

	PQclear(claim(c, "{e1,e2,e3,e5}", 5, "30 seconds", OWNER_A));
	PQclear(claim(c, "{e1}", 1, "30 seconds", OWNER_B));
	cr_assert_eq(harness_scalar(c,
				    "SELECT count(*) FROM pgqueuer WHERE "
				    "queue_manager_id = '%s'",
				    OWNER_B),
		     1);
	PQclear(harness_query(c,
			      "UPDATE pgqueuer SET attempts = 2 WHERE id "
			      "= %lld",
			      j4));
	PQclear(harness_query(c,
			      "UPDATE pgqueuer SET attempts = 100 WHERE "
			      "id = %lld",
			      j5));
	n = drain(l, c, got, 8);
	free_all(got, n, 8);

	r = stmt(c, SQL_RECOVER, 7, v);
	cr_assert_eq(PQntuples(r), 5);
	expect = xasprintf("%lld e1 queued,%lld e2 failed,%lld e3 exception,"
			   "%lld e1 exception,%lld e5 queued,",
			   j1, j2, j3, j4, j5);
	{
		char buf[512] = "";

		for (int i = 0; i < PQntuples(r); i++) {
			size_t o_len = strlen(buf);

			snprintf(buf + o_len, sizeof(buf) - o_len, "%s %s %s,",
				 PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
				 PQgetvalue(r, i, 2));
		}
		cr_expect_str_eq(buf, expect);
	}
	free(expect);
	PQclear(r);

	cr_expect_str_eq(
		harness_text(c, "SELECT string_agg(concat_ws(':', id, status, "
				"attempts, coalesce(queue_manager_id::text, "
				"'-')), ',' ORDER BY id) FROM pgqueuer"),
		harness_text(c,
			     "SELECT format('%lld:queued:1:-,%lld:failed:1:-,"
			     "%lld:queued:101:-,%lld:picked:0:%s')",
			     j1, j2, j5, jb, OWNER_B));
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT string_agg(concat_ws(':', job_id, status, "
			     "traceback->>'exception_type', "
			     "traceback->>'job_id' = job_id::text), ',' ORDER "
			     "BY job_id) FROM pgqueuer_log WHERE traceback IS "
			     "NOT NULL"),
		harness_text(c,
			     "SELECT format('%lld:queued:WorkerDied:true,"
			     "%lld:failed:WorkerDied:true,%lld:exception:"
			     "WorkerDied:true,"
			     "%lld:exception:WorkerDied:true,%lld:queued:"
			     "WorkerDied:true')",
			     j1, j2, j3, j4, j5));

	/* One delete (j3, j4 gone) and one update (requeued) event. */
	n = drain(l, c, got, 8);
	cr_assert_eq(n, 2, "%d notifications", n);
	for (int i = 0; i < n; i++) {
		o = parse(got[i]);
		cr_expect(strcmp(member(o, "operation"), "update") == 0 ||
				  strcmp(member(o, "operation"), "delete") == 0,
			  "%s", got[i]);
		json_decref(o);
	}
	free_all(got, n, 8);

	/* Nothing left of that owner. */
	r = stmt(c, SQL_RECOVER, 7, v);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	PQfinish(l);
	PQfinish(c);
}

/*
 * The master folds on its LISTEN connection, which receives no
 * notification while a statement runs: one call folds at most 500 rows.
 */
Test(queries, aggregate_folds_in_chunks_of_500, .timeout = 60)
{
	PGconn *c = fresh();
	PGresult *r;

	PQclear(harness_query(c, "INSERT INTO pgqueuer_log (job_id, status, "
				 "priority, entrypoint) SELECT g, 'queued', 0, "
				 "'e' FROM generate_series(1, 700) g"));
	r = stmt(c, SQL_AGGREGATE, 0, NULL);
	cr_expect_str_eq(PQgetvalue(r, 0, 0), "500");
	PQclear(r);
	r = stmt(c, SQL_AGGREGATE, 0, NULL);
	cr_expect_str_eq(PQgetvalue(r, 0, 0), "200");
	PQclear(r);
	cr_expect_eq(harness_scalar(c, "SELECT sum(count) FROM "
				       "pgqueuer_statistics"),
		     700);
	PQfinish(c);
}

Test(queries, aggregate_folds_log_rows_into_statistics_once, .timeout = 60)
{
	PGconn *c = fresh(), *other = harness_connect("");
	PGresult *r;

	enqueue1(c, "e", 1, NULL, NULL);
	enqueue1(c, "e", 1, NULL, NULL);
	enqueue1(c, "f", 2, NULL, NULL);
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A));

	/* Another aggregator holds the lock: nothing is done. */
	PQclear(harness_query(other, "BEGIN"));
	PQclear(harness_query(other, "SELECT pg_advisory_xact_lock("
				     "hashtext('pgqueuer_statistics'))"));
	r = stmt(c, SQL_AGGREGATE, 0, NULL);
	cr_expect_eq(val(r, 0, 0), 0);
	PQclear(r);
	PQclear(harness_query(other, "COMMIT"));

	r = stmt(c, SQL_AGGREGATE, 0, NULL);
	cr_expect_eq(val(r, 0, 0), 4);
	PQclear(r);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer_log "
				       "WHERE NOT aggregated"),
		     0);
	cr_expect_eq(harness_scalar(c, "SELECT sum(count) FROM "
				       "pgqueuer_statistics"),
		     4);
	cr_expect_eq(harness_scalar(
			     c,
			     "SELECT sum(count) FROM pgqueuer_statistics WHERE "
			     "status = 'queued' AND entrypoint = 'e' AND "
			     "priority = 1"),
		     2);
	r = stmt(c, SQL_AGGREGATE, 0, NULL);
	cr_expect_eq(val(r, 0, 0), 0, "folded twice");
	PQclear(r);

	/* New rows of the same second add to the existing counts. */
	PQclear(harness_query(
		c,
		"INSERT INTO pgqueuer_log (created, job_id, status, priority, "
		"entrypoint) SELECT date_trunc('second', now()) + interval "
		"'0.1 s' "
		"* i, i, 'successful', 0, 'g' FROM generate_series(1, 3) i"));
	r = stmt(c, SQL_AGGREGATE, 0, NULL);
	cr_expect_eq(val(r, 0, 0), 3);
	PQclear(r);
	PQclear(harness_query(
		c,
		"INSERT INTO pgqueuer_log (created, job_id, status, priority, "
		"entrypoint) VALUES (date_trunc('second', now()) + interval "
		"'0.5 s', 9, 'successful', 0, 'g')"));
	r = stmt(c, SQL_AGGREGATE, 0, NULL);
	cr_expect_eq(val(r, 0, 0), 1);
	PQclear(r);
	cr_expect_str_eq(harness_text(c, "SELECT string_agg(count::text, ',') "
					 "FROM pgqueuer_statistics WHERE "
					 "entrypoint = 'g'"),
			 "4");
	PQfinish(other);
	PQfinish(c);
}

Test(queries, every_job_gets_exactly_one_terminal_log_row, .timeout = 120)
{
	enum { JOBS = 200 };
	PGconn *c = fresh();
	const char *owners[2] = {OWNER_A, OWNER_B};
	static const char *const outcomes[] = {"successful", "exception",
					       "canceled", "deleted"};
	int round = 0;

	PQclear(harness_query(
		c,
		"INSERT INTO pgqueuer (priority, status, entrypoint) "
		"SELECT i %% 3, 'queued', 'e' FROM generate_series(1, %d) i",
		JOBS));
	for (;;) {
		const char *owner = owners[round % 2];
		PGresult *r = claim(c, "{e}", 7, "30 seconds", owner);
		int n = PQntuples(r);
		char ids[256] = "{", st[256] = "{", tb[128] = "{";

		if (n == 0) {
			PQclear(r);
			break;
		}
		for (int i = 0; i < n; i++) {
			const char *sep = i + 1 < n ? "," : "}";
			size_t a = strlen(ids), b = strlen(st), d = strlen(tb);

			snprintf(ids + a, sizeof(ids) - a, "%s%s",
				 PQgetvalue(r, i, 0), sep);
			snprintf(st + b, sizeof(st) - b, "%s%s",
				 outcomes[(round + i) % 4], sep);
			snprintf(tb + d, sizeof(tb) - d, "NULL%s", sep);
		}
		PQclear(r);
		/* The wrong owner first: it must not complete anything. */
		r = complete(c, owners[(round + 1) % 2], ids, st, tb);
		cr_assert_eq(PQntuples(r), 0);
		PQclear(r);
		r = complete(c, owner, ids, st, tb);
		cr_assert_eq(PQntuples(r), n);
		PQclear(r);
		round++;
	}
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer"), 0);
	cr_expect_eq(harness_scalar(
			     c,
			     "SELECT count(DISTINCT job_id) FROM pgqueuer_log "
			     "WHERE status IN ('successful', 'exception', "
			     "'canceled', 'deleted')"),
		     JOBS);
	cr_expect_eq(
		harness_scalar(
			c,
			"SELECT count(*) FROM (SELECT job_id FROM "
			"pgqueuer_log WHERE status IN ('successful', "
			"'exception', 'canceled', 'deleted') GROUP BY job_id "
			"HAVING count(*) <> 1) d"),
		0);
	PQfinish(c);
}

Test(queries, claim_uses_an_index_on_a_large_queue, .timeout = 120)
{
	PGconn *c = fresh();
	char *sql = sql_stmt_render(SQL_CLAIM, &names);
	PGresult *r;
	char *plan;
	size_t len = 1;

	PQclear(harness_query(
		c, "INSERT INTO pgqueuer (priority, status, entrypoint) "
		   "SELECT i %% 10, 'queued', 'e' || (i %% 4) "
		   "FROM generate_series(1, 100000) i"));
	PQclear(harness_query(c, "ANALYZE pgqueuer"));
	r = PQprepare(c, "claim", sql, 0, NULL);
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s",
		     PQerrorMessage(c));
	PQclear(r);
	r = harness_query(c, "EXPLAIN (COSTS OFF) EXECUTE claim('{e1,e2}', "
			     "10, '30 seconds', '" OWNER_A "')");
	for (int i = 0; i < PQntuples(r); i++)
		len += strlen(PQgetvalue(r, i, 0)) + 1;
	plan = xcalloc(1, len);
	for (int i = 0; i < PQntuples(r); i++) {
		strcat(plan, PQgetvalue(r, i, 0));
		strcat(plan, "\n");
	}
	PQclear(r);
	cr_expect(strstr(plan, "using pgqueuer_priority_id_id1_idx") != NULL ||
			  strstr(plan, "using pgqueuer_ep_prio_id_idx") != NULL,
		  "queued branch without its index:\n%s", plan);
	cr_expect_null(strstr(plan, "Seq Scan"), "%s", plan);
	free(plan);
	free(sql);
	PQfinish(c);
}

Test(queries, queue_size_job_log_and_notify, .timeout = 60)
{
	PGconn *c = fresh(), *l = listener();
	long long id = enqueue1(c, "e", 2, NULL, NULL);
	const char *all[1] = {NULL}, *one[1] = {"f"}, *job[1];
	const char *op[1] = {"insert"};
	char idbuf[32], *got[8];
	PGresult *r;
	json_t *o;
	int n;

	enqueue1(c, "e", 2, NULL, NULL);
	enqueue1(c, "f", 0, NULL, NULL);
	PQclear(claim(c, "{e}", 1, "30 seconds", OWNER_A));
	r = stmt(c, SQL_QUEUE_SIZE, 1, all);
	cr_assert_eq(PQntuples(r), 3);
	cr_expect_str_eq(PQgetvalue(r, 0, 0), "e");
	cr_expect_str_eq(PQgetvalue(r, 0, 2), "queued");
	cr_expect_eq(val(r, 0, 3), 1);
	cr_expect_str_eq(PQgetvalue(r, 1, 2), "picked");
	cr_expect_str_eq(PQgetvalue(r, 2, 0), "f");
	PQclear(r);
	r = stmt(c, SQL_QUEUE_SIZE, 1, one);
	cr_expect_eq(PQntuples(r), 1);
	PQclear(r);

	snprintf(idbuf, sizeof(idbuf), "%lld", id);
	job[0] = idbuf;
	r = stmt(c, SQL_JOB_LOG, 1, job);
	cr_assert_eq(PQntuples(r), 2);
	cr_expect_str_eq(PQgetvalue(r, 0, 1), "queued");
	cr_expect_str_eq(PQgetvalue(r, 1, 1), "picked");
	PQclear(r);

	n = drain(l, c, got, 8);
	free_all(got, n, 8);
	PQclear(stmt(c, SQL_NOTIFY, 1, op));
	n = drain(l, c, got, 8);
	cr_assert_eq(n, 1);
	o = parse(got[0]);
	cr_expect_str_eq(member(o, "operation"), "insert");
	cr_expect_str_eq(member(o, "table"), "pgqueuer");
	cr_expect_str_eq(member(o, "type"), "table_changed_event");
	json_decref(o);
	free_all(got, n, 8);
	PQfinish(l);
	PQfinish(c);
}
