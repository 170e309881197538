/*
 * Concurrency and rate limits against a real database: the LIMIT_LOCK and
 * CLAIM_LIMITED statements step by step (the second claimer waits and sees
 * the first one's claim; stale jobs pass a full limit; tickets), many
 * claimers on separate connections at once (raw statements and libpgq
 * consumers), the limits table in install/upgrade/verify, and the keys.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "common/common.h"
#include "conf/conf.h"
#include "pgq.h"
#include "sql/sql.h"
#include "tests/harness/harness.h"

#define OWNER_A	   "00000000-0000-4000-8000-00000000000a"
#define OWNER_B	   "00000000-0000-4000-8000-00000000000b"
#define OWNER_C	   "00000000-0000-4000-8000-00000000000c"
#define OWNER_DEAD "00000000-0000-4000-8000-0000000000dd"

static struct sql_names names;
static char dsn[256];

static void
setup(void)
{
	struct pgq_error err;

	cr_assert_eq(sql_names_init(&names, NULL, NULL, NULL, &err), 0);
	snprintf(dsn, sizeof(dsn), "%s", harness_db_new(true));
}

TestSuite(limits, .init = setup, .timeout = 180);

/* ---- helpers (main thread: they fail the test) ---- */

static PGconn *
conn(void)
{
	return harness_connect(dsn);
}

/* Sends statement s; the result is the caller's to read. */
static void
send_stmt(PGconn *c, enum sql_stmt s, int np, const char *const *v)
{
	char *sql = sql_stmt_render(s, &names);

	cr_assert_eq(PQsendQueryParams(c, sql, np, NULL, v, NULL, NULL, 0), 1,
		     "%s", PQerrorMessage(c));
	free(sql);
}

/* The one result of what send_stmt sent (NULL when it failed). */
static PGresult *
result(PGconn *c)
{
	PGresult *r = PQgetResult(c), *extra;

	while ((extra = PQgetResult(c)) != NULL)
		PQclear(extra);
	if (PQresultStatus(r) == PGRES_TUPLES_OK ||
	    PQresultStatus(r) == PGRES_COMMAND_OK)
		return r;
	cr_log_error("%s", PQresultErrorMessage(r));
	PQclear(r);
	return NULL;
}

static PGresult *
stmt(PGconn *c, enum sql_stmt s, int np, const char *const *v)
{
	PGresult *r;

	send_stmt(c, s, np, v);
	r = result(c);
	cr_assert_not_null(r, "%s failed", sql_stmt_name(s));
	return r;
}

static void
exec(PGconn *c, const char *sql)
{
	PQclear(harness_query(c, "%s", sql));
}

/* LIMIT_LOCK: returns tokens. */
static double
lock_ep(PGconn *c, const char *ep, int limit, double rate, double burst)
{
	char l[16], r[32], b[32];
	const char *v[4] = {ep, l, r, b};
	PGresult *res;
	double tokens;

	snprintf(l, sizeof(l), "%d", limit);
	snprintf(r, sizeof(r), "%g", rate);
	snprintf(b, sizeof(b), "%g", burst);
	res = stmt(c, SQL_LIMIT_LOCK, 4, v);
	tokens = strtod(PQgetvalue(res, 0, 0), NULL);
	PQclear(res);
	return tokens;
}

/* What one CLAIM_LIMITED returned. */
struct got {
	int n;
	long long ids[16];
	double tokens; /* NAN when NULL */
	double wait;   /* NAN when NULL */
	long spare;
	bool held;
};

static void
claim_args(char (*buf)[48], const char **v, const char *ep, int most, int limit,
	   double rate, bool bring, const char *stale, const char *owner,
	   bool may_ticket)
{
	snprintf(buf[0], 48, "%d", most);
	snprintf(buf[1], 48, "%d", limit);
	snprintf(buf[2], 48, "%g", rate);
	v[0] = ep;
	v[1] = buf[0];
	v[2] = buf[1];
	v[3] = buf[2];
	v[4] = bring ? "1" : "0";
	v[5] = stale;
	v[6] = owner;
	v[7] = may_ticket ? "true" : "false";
}

static struct got
read_got(PGresult *res)
{
	struct got g;

	memset(&g, 0, sizeof(g));
	cr_assert_geq(PQntuples(res), 1, "a claim always returns a row");
	for (int i = 0; i < PQntuples(res); i++)
		if (!PQgetisnull(res, i, 0) && g.n < 16)
			g.ids[g.n++] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	g.tokens = PQgetisnull(res, 0, 7) ? NAN
					  : strtod(PQgetvalue(res, 0, 7), NULL);
	g.wait = PQgetisnull(res, 0, 8) ? NAN
					: strtod(PQgetvalue(res, 0, 8), NULL);
	g.spare = strtol(PQgetvalue(res, 0, 9), NULL, 10);
	g.held = strcmp(PQgetvalue(res, 0, 10), "t") == 0;
	return g;
}

static struct got
claim_ep(PGconn *c, const char *ep, int most, int limit, double rate,
	 bool bring, const char *stale, const char *owner, bool may_ticket)
{
	char buf[3][48];
	const char *v[8];
	PGresult *res;
	struct got g;

	claim_args(buf, v, ep, most, limit, rate, bring, stale, owner,
		   may_ticket);
	res = stmt(c, SQL_CLAIM_LIMITED, 8, v);
	g = read_got(res);
	PQclear(res);
	return g;
}

/* One whole limited claim: BEGIN, LIMIT_LOCK, CLAIM_LIMITED, COMMIT. */
static struct got
claim_tx(PGconn *c, const char *ep, int most, int limit, double rate,
	 double burst, bool bring, const char *owner, bool may_ticket)
{
	struct got g;

	exec(c, "BEGIN");
	(void)lock_ep(c, ep, limit, rate, burst);
	g = claim_ep(c, ep, most, limit, rate, bring, "30 seconds", owner,
		     may_ticket);
	exec(c, "COMMIT");
	return g;
}

static void
add_jobs(PGconn *c, const char *ep, int n)
{
	PQclear(harness_query(c,
			      "INSERT INTO pgqueuer (priority, status, "
			      "entrypoint) SELECT 0, 'queued', '%s' FROM "
			      "generate_series(1, %d)",
			      ep, n));
}

static long long
picked(PGconn *c, const char *ep)
{
	return harness_scalar(c,
			      "SELECT count(*) FROM pgqueuer WHERE status = "
			      "'picked' AND entrypoint = '%s'",
			      ep);
}

static void
complete(PGconn *c, const char *owner, long long id)
{
	char ids[32];
	const char *v[4] = {owner, ids, "{successful}", "{NULL}"};

	snprintf(ids, sizeof(ids), "{%lld}", id);
	PQclear(stmt(c, SQL_COMPLETE, 4, v));
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1)
		;
}

/* ---- the statements, step by step ---- */

Test(limits, a_second_claimer_waits_for_the_lock_and_sees_the_first_claim)
{
	PGconn *a = conn(), *b = conn(), *watch = conn();
	struct got ga, gb;
	PGresult *r;
	int bpid = PQbackendPID(b);
	long long waiting = 0;

	add_jobs(watch, "lim", 5);
	add_jobs(watch, "free", 1);
	/* step a1: A locks the entrypoint's row */
	exec(a, "BEGIN");
	cr_expect_eq(lock_ep(a, "lim", 2, 0, 0), 0.0);
	/* step b1: B asks for the same row and waits */
	exec(b, "BEGIN");
	{
		const char *v[4] = {"lim", "2", "0", "0"};

		send_stmt(b, SQL_LIMIT_LOCK, 4, v);
	}
	for (uint64_t end = clock_mono_ms() + 10000;
	     waiting == 0 && clock_mono_ms() < end; sleep_ms(5))
		waiting =
			harness_scalar(watch,
				       "SELECT count(*) FROM pg_stat_activity "
				       "WHERE pid = %d AND wait_event_type = "
				       "'Lock'",
				       bpid);
	cr_assert_eq(waiting, 1, "B does not wait for A's lock");
	/* meanwhile: other entrypoints are not held up */
	{
		const char *v[4] = {"{free}", "10", "30 seconds", OWNER_C};

		r = stmt(watch, SQL_CLAIM, 4, v);
		cr_expect_eq(PQntuples(r), 1);
		PQclear(r);
		exec(watch, "BEGIN");
		(void)lock_ep(watch, "other", 1, 0, 0);
		exec(watch, "COMMIT");
	}
	/* step a2: A claims up to the limit and commits */
	ga = claim_ep(a, "lim", 5, 2, 0, false, "30 seconds", OWNER_A, false);
	cr_expect_eq(ga.n, 2);
	cr_expect_eq(ga.spare, 0);
	cr_expect(ga.held);
	cr_expect(isnan(ga.tokens), "no rate: no tokens");
	exec(a, "COMMIT");
	/* step b2: B gets the lock; its claim sees A's two picked jobs */
	r = result(b);
	cr_assert_not_null(r);
	PQclear(r);
	gb = claim_ep(b, "lim", 5, 2, 0, false, "30 seconds", OWNER_B, false);
	cr_expect_eq(gb.n, 0, "B claimed past the limit");
	cr_expect(gb.held);
	exec(b, "COMMIT");
	cr_expect_eq(picked(watch, "lim"), 2);
	/* a slot frees: the next claimer takes exactly one job */
	complete(watch, OWNER_A, ga.ids[0]);
	gb = claim_tx(b, "lim", 5, 2, 0, 0, false, OWNER_B, false);
	cr_expect_eq(gb.n, 1);
	cr_expect_eq(picked(watch, "lim"), 2);
	PQfinish(a);
	PQfinish(b);
	PQfinish(watch);
}

/* The slots of the picked jobs of ep, "0,1"; "" when none. */
static const char *
slots(PGconn *c, const char *ep)
{
	return harness_text(c,
			    "SELECT coalesce(string_agg(coalesce(slot::text, "
			    "'-'), ',' ORDER BY slot NULLS FIRST), '') FROM "
			    "pgqueuer WHERE status = 'picked' AND entrypoint = "
			    "'%s'",
			    ep);
}

Test(limits, fresh_claims_take_the_lowest_free_slots_stale_ones_keep_theirs)
{
	PGconn *c = conn();
	struct got g;
	char rid[32];
	const char *rv[5] = {OWNER_B, rid, "{NULL}", "{NULL}", "{1}"};
	long long retried;

	add_jobs(c, "lim", 6);
	g = claim_tx(c, "lim", 2, 3, 0, 0, false, OWNER_A, false);
	cr_assert_eq(g.n, 2);
	cr_expect_str_eq(slots(c, "lim"), "0,1");
	/* Slot 0 frees: the next claim fills 0, then 2. */
	complete(c, OWNER_A, g.ids[0]);
	g = claim_tx(c, "lim", 5, 3, 0, 0, false, OWNER_B, false);
	cr_expect_eq(g.n, 2);
	cr_expect_str_eq(slots(c, "lim"), "0,1,2");
	/* A stale job taken over keeps its slot. */
	exec(c, "UPDATE pgqueuer SET heartbeat = now() - interval '1 hour' "
		"WHERE slot = 1");
	g = claim_tx(c, "lim", 5, 3, 0, 0, false, OWNER_C, false);
	cr_expect_eq(g.n, 1);
	cr_expect_str_eq(harness_text(c, "SELECT slot || ' ' || "
					 "queue_manager_id FROM pgqueuer "
					 "WHERE status = 'picked' AND "
					 "queue_manager_id = '" OWNER_C "'"),
			 "1 " OWNER_C);
	/* A retried job keeps its number outside the index, and its next
	 * claim gives it the lowest free one. */
	retried = harness_scalar(c, "SELECT id FROM pgqueuer WHERE slot = 2");
	snprintf(rid, sizeof(rid), "{%lld}", retried);
	PQclear(stmt(c, SQL_RETRY, 5, rv));
	cr_expect_str_eq(harness_text(c,
				      "SELECT status || ' ' || slot FROM "
				      "pgqueuer WHERE id = %lld",
				      retried),
			 "queued 2");
	complete(c, OWNER_B,
		 harness_scalar(c, "SELECT id FROM pgqueuer WHERE status = "
				   "'picked' AND slot = 0"));
	g = claim_tx(c, "lim", 5, 3, 0, 0, false, OWNER_A, false);
	cr_expect_eq(g.n, 2);
	cr_expect_str_eq(slots(c, "lim"), "0,1,2");
	PQfinish(c);
}

Test(limits, jobs_picked_before_the_slots_count_and_rate_only_claims_take_none)
{
	PGconn *c = conn();
	struct got g;

	/* One job picked before the upgrade: no slot, but it counts. */
	add_jobs(c, "old", 4);
	exec(c, "UPDATE pgqueuer SET status = 'picked', queue_manager_id = "
		"'" OWNER_DEAD "' WHERE id = (SELECT min(id) FROM pgqueuer)");
	g = claim_tx(c, "old", 5, 2, 0, 0, false, OWNER_A, false);
	cr_expect_eq(g.n, 1);
	cr_expect_str_eq(slots(c, "old"), "-,0");
	g = claim_tx(c, "old", 5, 2, 0, 0, false, OWNER_B, false);
	cr_expect_eq(g.n, 0, "past the limit");

	/* A rate without a concurrency limit: no slot, an old one cleared. */
	add_jobs(c, "rated", 1);
	exec(c, "UPDATE pgqueuer SET slot = 7 WHERE entrypoint = 'rated'");
	g = claim_tx(c, "rated", 5, 0, 100.0, 10.0, false, OWNER_A, false);
	cr_expect_eq(g.n, 1);
	cr_expect_str_eq(slots(c, "rated"), "-");
	PQfinish(c);
}

Test(limits, stale_jobs_are_reclaimed_when_the_limit_is_full)
{
	PGconn *c = conn();
	struct got g;

	add_jobs(c, "lim", 5);
	/* A dead host holds two jobs: the limit of 2 is full. */
	exec(c, "UPDATE pgqueuer SET status = 'picked', queue_manager_id = "
		"'" OWNER_DEAD "', heartbeat = now() - interval '1 hour' "
		"WHERE id IN (SELECT id FROM pgqueuer ORDER BY id LIMIT 2)");
	g = claim_tx(c, "lim", 10, 2, 0, 0, false, OWNER_B, true);
	cr_expect_eq(g.n, 2, "the stale jobs must be re-claimed");
	cr_expect_eq(g.ids[0], harness_scalar(c, "SELECT min(id) FROM "
						 "pgqueuer"));
	cr_expect(g.held, "the queued ones are held back");
	cr_expect_eq(picked(c, "lim"), 2);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer WHERE "
				       "queue_manager_id = '" OWNER_B "'"),
		     2);
	/* The new owner is alive: its jobs are no longer stale. */
	g = claim_tx(c, "lim", 10, 2, 0, 0, false, OWNER_C, true);
	cr_expect_eq(g.n, 0);
	/* With a rate, a stale job spends a token even past an empty
	 * bucket. */
	exec(c, "UPDATE pgqueuer SET heartbeat = now() - interval '1 hour' "
		"WHERE status = 'picked'");
	g = claim_tx(c, "lim", 10, 2, 1.0, 1.0, false, OWNER_C, false);
	cr_expect_eq(g.n, 2);
	cr_expect_lt(g.tokens, -0.9, "tokens=%g", g.tokens);
	PQfinish(c);
}

Test(limits, an_empty_bucket_hands_out_tickets_one_token_apart)
{
	PGconn *c = conn();
	struct got a, b, c2, again;
	double due_b;
	uint64_t t_b;

	add_jobs(c, "rated", 5);
	/* rate 1/s, burst 1: the first claim empties the bucket */
	a = claim_tx(c, "rated", 5, 0, 1.0, 1.0, false, OWNER_A, true);
	cr_expect_eq(a.n, 1);
	cr_expect_lt(a.tokens, 0.1);
	cr_expect(isnan(a.wait));
	/* the next claimers each get a ticket, a token apart */
	b = claim_tx(c, "rated", 5, 0, 1.0, 1.0, false, OWNER_B, true);
	t_b = clock_mono_ms();
	c2 = claim_tx(c, "rated", 5, 0, 1.0, 1.0, false, OWNER_C, true);
	cr_expect_eq(b.n, 0);
	cr_expect_eq(c2.n, 0);
	cr_assert(!isnan(b.wait) && !isnan(c2.wait));
	cr_expect(b.wait > 0.5 && b.wait <= 1.0, "wait %g", b.wait);
	cr_expect(fabs(c2.wait - b.wait - 1.0) < 0.25, "waits %g then %g",
		  b.wait, c2.wait);
	cr_expect(b.held && c2.held);
	/* one who holds a ticket gets no second one */
	again = claim_tx(c, "rated", 5, 0, 1.0, 1.0, false, OWNER_B, false);
	cr_expect_eq(again.n, 0);
	cr_expect(isnan(again.wait));
	/* B's ticket falls due: it pays for a job */
	due_b = b.wait * 1000.0 + 20.0;
	while ((double)(clock_mono_ms() - t_b) < due_b)
		sleep_ms(10);
	again = claim_tx(c, "rated", 5, 0, 1.0, 1.0, true, OWNER_B, false);
	cr_expect_eq(again.n, 1, "a due ticket pays for a job");
	cr_expect_lt(again.tokens, 0.0, "C's ticket is still out");
	/* C's ticket, brought back when no job is left, is refunded */
	exec(c, "DELETE FROM pgqueuer WHERE status = 'queued'");
	again = claim_tx(c, "rated", 5, 0, 1.0, 1.0, true, OWNER_C, false);
	cr_expect_eq(again.n, 0);
	cr_expect(!again.held);
	cr_expect_gt(again.tokens, 0.0, "refunded: tokens=%g", again.tokens);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM "
				       "pgqueuer_pgq_limits"),
		     1);
	cr_expect_str_eq(harness_text(c, "SELECT rate || ' ' || burst FROM "
					 "pgqueuer_pgq_limits"),
			 "1 1");
	PQfinish(c);
}

/* ---- many claimers at once ---- */

struct raw_claimer {
	pthread_t t;
	char owner[40];
	long max_in_tx; /* picked jobs seen inside its own transactions */
	long claimed;
	char why[256]; /* the first error, "" when none */
};

static atomic_int sampling;

/* Runs one statement in a thread; NULL with why filled on error. */
static PGresult *
t_exec(PGconn *c, const char *sql, int np, const char *const *v, char *why,
       size_t len)
{
	PGresult *r = PQexecParams(c, sql, np, NULL, v, NULL, NULL, 0);

	if (PQresultStatus(r) == PGRES_TUPLES_OK ||
	    PQresultStatus(r) == PGRES_COMMAND_OK)
		return r;
	if (why[0] == '\0')
		snprintf(why, len, "%s", PQresultErrorMessage(r));
	PQclear(r);
	return NULL;
}

/*
 * Claims jobs of "lim" (limit 2) one at a time until none is left, checking
 * inside each claim transaction how many are picked, holding each job a
 * little before completing it.
 */
static void *
raw_claimer_main(void *arg)
{
	struct raw_claimer *cl = arg;
	PGconn *c = PQconnectdb(dsn);
	char *lock = sql_stmt_render(SQL_LIMIT_LOCK, &names);
	char *claim = sql_stmt_render(SQL_CLAIM_LIMITED, &names);
	char *done = sql_stmt_render(SQL_COMPLETE, &names);
	const char *lv[4] = {"lim", "2", "0", "0"};
	const char *cv[8] = {"lim", "1",	  "2",	     "0",
			     "0",   "30 seconds", cl->owner, "false"};
	unsigned seed = (unsigned)(uintptr_t)cl;
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(cl->why, sizeof(cl->why), "%s", PQerrorMessage(c));
		goto out;
	}
	for (;;) {
		long long id = -1, n;
		bool held;

		if ((r = t_exec(c, "BEGIN", 0, NULL, cl->why,
				sizeof(cl->why))) == NULL)
			break;
		PQclear(r);
		if ((r = t_exec(c, lock, 4, lv, cl->why, sizeof(cl->why))) ==
		    NULL)
			break;
		PQclear(r);
		if ((r = t_exec(c, claim, 8, cv, cl->why, sizeof(cl->why))) ==
		    NULL)
			break;
		if (!PQgetisnull(r, 0, 0))
			id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		held = strcmp(PQgetvalue(r, 0, 10), "t") == 0;
		PQclear(r);
		if ((r = t_exec(c,
				"SELECT count(*) FROM pgqueuer WHERE status = "
				"'picked' AND entrypoint = 'lim'",
				0, NULL, cl->why, sizeof(cl->why))) == NULL)
			break;
		n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		if (n > cl->max_in_tx)
			cl->max_in_tx = n;
		if ((r = t_exec(c, "COMMIT", 0, NULL, cl->why,
				sizeof(cl->why))) == NULL)
			break;
		PQclear(r);
		if (id >= 0) {
			char ids[32];
			const char *dv[4] = {cl->owner, ids, "{successful}",
					     "{NULL}"};

			cl->claimed++;
			sleep_ms(rand_r(&seed) % 3);
			snprintf(ids, sizeof(ids), "{%lld}", id);
			if ((r = t_exec(c, done, 4, dv, cl->why,
					sizeof(cl->why))) == NULL)
				break;
			PQclear(r);
			continue;
		}
		if (!held) {
			/* Nothing held back: done when nothing is queued. */
			if ((r = t_exec(c,
					"SELECT count(*) FROM pgqueuer WHERE "
					"entrypoint = 'lim'",
					0, NULL, cl->why, sizeof(cl->why))) ==
			    NULL)
				break;
			n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
			PQclear(r);
			if (n == 0)
				break;
		}
		sleep_ms(1);
	}
out:
	free(lock);
	free(claim);
	free(done);
	PQfinish(c);
	return NULL;
}

struct sampler {
	pthread_t t;
	long max;
	long samples;
	char why[600];
};

/* Counts the picked jobs of "lim" as often as it can. */
static void *
sampler_main(void *arg)
{
	struct sampler *s = arg;
	PGconn *c = PQconnectdb(dsn);

	while (atomic_load(&sampling)) {
		PGresult *r = t_exec(c,
				     "SELECT count(*) FROM pgqueuer WHERE "
				     "status = 'picked' AND entrypoint = 'lim'",
				     0, NULL, s->why, sizeof(s->why));
		long n;

		if (r == NULL)
			break;
		n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		if (n > s->max)
			s->max = n;
		s->samples++;
	}
	PQfinish(c);
	return NULL;
}

Test(limits, eight_connections_claiming_at_once_never_pass_the_limit)
{
	enum { CLAIMERS = 8, JOBS = 300 };
	struct raw_claimer cl[CLAIMERS];
	struct sampler s;
	PGconn *c = conn();
	long total = 0, max_in_tx = 0;

	add_jobs(c, "lim", JOBS);
	memset(cl, 0, sizeof(cl));
	memset(&s, 0, sizeof(s));
	atomic_store(&sampling, 1);
	cr_assert_eq(pthread_create(&s.t, NULL, sampler_main, &s), 0);
	for (int i = 0; i < CLAIMERS; i++) {
		snprintf(cl[i].owner, sizeof(cl[i].owner),
			 "00000000-0000-4000-8000-0000000001%02d", i);
		cr_assert_eq(pthread_create(&cl[i].t, NULL, raw_claimer_main,
					    &cl[i]),
			     0);
	}
	for (int i = 0; i < CLAIMERS; i++) {
		pthread_join(cl[i].t, NULL);
		cr_expect_str_eq(cl[i].why, "", "claimer %d", i);
		total += cl[i].claimed;
		if (cl[i].max_in_tx > max_in_tx)
			max_in_tx = cl[i].max_in_tx;
	}
	atomic_store(&sampling, 0);
	pthread_join(s.t, NULL);
	cr_expect_str_eq(s.why, "");
	cr_expect_eq(total, JOBS);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer_log "
				       "WHERE status = 'picked'"),
		     JOBS, "a job was picked twice");
	cr_expect_leq(max_in_tx, 2, "a claimer saw %ld picked", max_in_tx);
	cr_expect_leq(s.max, 2, "the sampler saw %ld picked", s.max);
	/* The limit was reached, so the test could have seen it broken. */
	cr_expect_eq(max_in_tx, 2);
	cr_expect_gt(s.samples, 10);
	cr_log_info("claimers: max picked in tx %ld, sampled %ld over %ld "
		    "samples",
		    max_in_tx, s.max, s.samples);
	PQfinish(c);
}

/* ---- libpgq consumers ---- */

static atomic_int inside, max_inside;
static atomic_long ran;

static enum pgq_outcome
counting_handler(const struct pgq_job *job, void *resources,
		 struct pgq_result *res)
{
	int now = atomic_fetch_add(&inside, 1) + 1;
	int seen = atomic_load(&max_inside);

	(void)job;
	(void)resources;
	(void)res;
	while (now > seen &&
	       !atomic_compare_exchange_weak(&max_inside, &seen, now))
		;
	sleep_ms(2);
	atomic_fetch_sub(&inside, 1);
	atomic_fetch_add(&ran, 1);
	return PGQ_OUTCOME_SUCCESS;
}

struct runner {
	pthread_t t;
	struct pgq_entrypoint_options opt;
	int rc;
	char why[600];
};

/* One libpgq consumer draining "lim" in its own thread. */
static void *
runner_main(void *arg)
{
	struct runner *r = arg;
	struct pgq_error err;
	struct pgq *q = pgq_connect(dsn, NULL, PGQ_ROLE_CONSUMER, &err);
	struct pgq_consumer *c = NULL;

	r->rc = -1;
	if (q == NULL || (c = pgq_consumer_new(q, NULL, &err)) == NULL ||
	    pgq_consumer_add(c, "lim", counting_handler, &r->opt, &err) == -1)
		goto out;
	r->rc = pgq_consumer_drain(c, &err);
out:
	if (r->rc == -1)
		snprintf(r->why, sizeof(r->why), "%s", err.message);
	pgq_consumer_free(c);
	pgq_free(q);
	return NULL;
}

static void
run_consumers(struct runner *r, int n)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(pthread_create(&r[i].t, NULL, runner_main, &r[i]),
			     0);
	for (int i = 0; i < n; i++) {
		pthread_join(r[i].t, NULL);
		cr_expect_eq(r[i].rc, 0, "consumer %d: %s", i, r[i].why);
	}
}

Test(limits, consumers_on_eight_connections_run_at_most_two_at_once)
{
	enum { CONSUMERS = 8, JOBS = 120 };
	struct runner r[CONSUMERS];
	struct sampler s;
	PGconn *c = conn();

	add_jobs(c, "lim", JOBS);
	memset(r, 0, sizeof(r));
	memset(&s, 0, sizeof(s));
	atomic_store(&inside, 0);
	atomic_store(&max_inside, 0);
	atomic_store(&ran, 0);
	for (int i = 0; i < CONSUMERS; i++) {
		pgq_entrypoint_options_init(&r[i].opt);
		r[i].opt.concurrency_limit = 2;
	}
	atomic_store(&sampling, 1);
	cr_assert_eq(pthread_create(&s.t, NULL, sampler_main, &s), 0);
	run_consumers(r, CONSUMERS);
	atomic_store(&sampling, 0);
	pthread_join(s.t, NULL);
	cr_expect_eq(atomic_load(&ran), JOBS);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pgqueuer"), 0);
	cr_expect_leq(atomic_load(&max_inside), 2, "%d handlers at once",
		      atomic_load(&max_inside));
	cr_expect_eq(atomic_load(&max_inside), 2);
	cr_expect_leq(s.max, 2, "the sampler saw %ld picked", s.max);
	PQfinish(c);
}

Test(limits, a_limit_of_one_dispatches_in_queue_order_one_at_a_time)
{
	enum { CONSUMERS = 4, JOBS = 40 };
	struct runner r[CONSUMERS];
	PGconn *c = conn();

	add_jobs(c, "lim", JOBS);
	memset(r, 0, sizeof(r));
	atomic_store(&inside, 0);
	atomic_store(&max_inside, 0);
	atomic_store(&ran, 0);
	for (int i = 0; i < CONSUMERS; i++) {
		pgq_entrypoint_options_init(&r[i].opt);
		r[i].opt.concurrency_limit = 1;
	}
	run_consumers(r, CONSUMERS);
	cr_expect_eq(atomic_load(&ran), JOBS);
	cr_expect_eq(atomic_load(&max_inside), 1);
	/* Serialized: each job was picked after the previous one ended, so
	 * the picks follow the ids. */
	cr_expect_eq(harness_scalar(
			     c,
			     "SELECT count(*) FROM (SELECT job_id, lag(job_id) "
			     "OVER (ORDER BY id) AS prev FROM pgqueuer_log "
			     "WHERE status = 'picked') p WHERE job_id < prev"),
		     0, "picked out of order");
	cr_expect_eq(harness_scalar(
			     c, "SELECT count(*) FROM pgqueuer_log p WHERE "
				"status = 'picked' AND EXISTS (SELECT 1 FROM "
				"pgqueuer_log s WHERE s.status = 'successful' "
				"AND s.job_id < p.job_id AND s.id > p.id)"),
		     0, "a job was picked before the one before it ended");
	PQfinish(c);
}

Test(limits, consumers_claim_at_the_rate)
{
	/*
	 * 5/s rather than a faster rate: on a loaded machine a consumer
	 * wakes some milliseconds late for each token, and at 200 ms a token
	 * that lateness stays well inside the 10 % the test allows.
	 */
	enum { CONSUMERS = 4, JOBS = 16 };
	struct runner r[CONSUMERS];
	PGconn *c = conn();
	double span, rate;

	add_jobs(c, "lim", JOBS);
	memset(r, 0, sizeof(r));
	atomic_store(&ran, 0);
	for (int i = 0; i < CONSUMERS; i++) {
		pgq_entrypoint_options_init(&r[i].opt);
		r[i].opt.requests_per_second = 5.0;
		r[i].opt.burst = 1.0;
	}
	run_consumers(r, CONSUMERS);
	cr_expect_eq(atomic_load(&ran), JOBS);
	span = strtod(harness_text(c, "SELECT extract(epoch FROM max(created) "
				      "- min(created)) FROM pgqueuer_log "
				      "WHERE status = 'picked'"),
		      NULL);
	rate = (JOBS - 1) / span;
	cr_log_info("%d intervals in %.3fs: %.2f/s (want 5)", JOBS - 1, span,
		    rate);
	cr_expect(rate > 4.5 && rate < 5.5, "rate %.2f/s, want 5 +- 10%%",
		  rate);
	PQfinish(c);
}

/* ---- the table and the keys ---- */

Test(limits, a_queue_without_the_table_says_to_run_pgq_upgrade)
{
	PGconn *c = conn();
	struct runner r;
	struct pgq_error err;
	char *report = NULL;

	exec(c, "DROP TABLE pgqueuer_pgq_limits");
	/* What PgQueuer installs passes verify: the table is pgq's own. */
	cr_expect_eq(sql_verify(c, &names, true, &report, &err), 0, "%s",
		     report);
	free(report);
	/* Changing the durability does not need it either. */
	cr_expect_eq(sql_set_durability(c, &names, SQL_BALANCED, &err), 0, "%s",
		     err.message);
	add_jobs(c, "lim", 3);
	memset(&r, 0, sizeof(r));
	atomic_store(&ran, 0);
	pgq_entrypoint_options_init(&r.opt);
	r.opt.concurrency_limit = 1;
	runner_main(&r);
	cr_expect_eq(r.rc, -1);
	cr_expect_not_null(strstr(r.why, "run pgq upgrade"), "%s", r.why);
	cr_expect_not_null(strstr(r.why, "pgqueuer_pgq_limits"), "%s", r.why);
	cr_expect_eq(atomic_load(&ran), 0);

	cr_assert_eq(sql_upgrade(c, &names, &err), 0, "%s", err.message);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pg_class WHERE "
				       "relname = 'pgqueuer_pgq_limits'"),
		     1);
	cr_expect_eq(sql_verify(c, &names, true, &report, &err), 0, "%s",
		     report);
	free(report);
	memset(&r, 0, sizeof(r));
	pgq_entrypoint_options_init(&r.opt);
	r.opt.concurrency_limit = 1;
	runner_main(&r);
	cr_expect_eq(r.rc, 0, "%s", r.why);
	cr_expect_eq(atomic_load(&ran), 3);
	PQfinish(c);
}

Test(limits, bad_limit_options_are_refused)
{
	static const struct {
		int32_t limit;
		double rate, burst;
		const char *want;
	} bad[] = {
		{-1, 0, 0, "concurrency_limit must be >= 0"},
		{0, -1, 0, "requests_per_second must be 0 (none)"},
		{0, NAN, 0, "requests_per_second must be 0 (none)"},
		{0, 2e6, 0, "requests_per_second must be 0 (none)"},
		{0, 5, 0.5, "burst must be 0"},
		{0, 5, INFINITY, "burst must be 0"},
	};
	struct pgq_error err;
	struct pgq *q = pgq_connect(dsn, NULL, PGQ_ROLE_CONSUMER, &err);
	struct pgq_consumer *c;

	cr_assert_not_null(q, "%s", err.message);
	c = pgq_consumer_new(q, NULL, &err);
	cr_assert_not_null(c, "%s", err.message);
	for (size_t i = 0; i < PGQ_NELEM(bad); i++) {
		struct pgq_entrypoint_options o;

		pgq_entrypoint_options_init(&o);
		o.concurrency_limit = bad[i].limit;
		o.requests_per_second = bad[i].rate;
		o.burst = bad[i].burst;
		cr_expect_eq(
			pgq_consumer_add(c, "e", counting_handler, &o, &err),
			-1, "case %zu", i);
		cr_expect_not_null(strstr(err.message, bad[i].want), "%s",
				   err.message);
	}
	pgq_consumer_free(c);
	pgq_free(q);
}

Test(limits, limit_keys_load_with_their_values)
{
	static const char text[] = "[database]\n"
				   "dsn = dbname=x\n"
				   "[entrypoint a]\n"
				   "builtin = noop\n"
				   "concurrency_limit = 3\n"
				   "requests_per_second = 2.5\n"
				   "[entrypoint b]\n"
				   "builtin = noop\n"
				   "requests_per_second = 0.5\n"
				   "burst = 7\n"
				   "[entrypoint c]\n"
				   "builtin = noop\n";
	struct conf_errors errs = {0};
	struct conf *cf = NULL;
	const struct conf_entrypoint *ep;

	cr_assert_eq(
		conf_load_buffer("t.ini", text, sizeof(text) - 1, &cf, &errs),
		0, "%s", errs.n > 0 ? errs.v[0].text : "");
	ep = conf_entrypoint_find(cf, "a");
	cr_expect_eq(ep->concurrency_limit, 3);
	cr_expect_eq(ep->requests_per_second, 2.5);
	cr_expect_eq(ep->burst, 3, "burst defaults to the rate rounded up");
	ep = conf_entrypoint_find(cf, "b");
	cr_expect_eq(ep->concurrency_limit, 0);
	cr_expect_eq(ep->burst, 7);
	ep = conf_entrypoint_find(cf, "c");
	cr_expect_eq(ep->concurrency_limit, 0);
	cr_expect_eq(ep->requests_per_second, 0.0);
	cr_expect_eq(ep->burst, 0);
	conf_free(cf);
	conf_errors_clear(&errs);
}
