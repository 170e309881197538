/*
 * [schedule NAME] and the statistics fold. The master keeps its schedules in
 * PgQueuer's schedules table and, at the earliest next_run, claims the due
 * rows (SQL_SCHEDULE_CLAIM) and fires each (SQL_SCHEDULE_FIRE: the job, the
 * next tick and the row back to queued in one statement), so every tick
 * fires once across masters and PgQueuer schedulers. All statements go
 * through the master's maintenance connection, queued on the loop, never
 * blocking.
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cron.h"
#include "common/log.h"
#include "master/master_int.h"

/* The most log rows SQL_AGGREGATE folds in one statement (its LIMIT). */
#define STATS_CHUNK_ROWS 500
/*
 * The pause before the next chunk: the fold runs on the maintenance
 * connection, and chunks sent back to back would hold back the heartbeats,
 * recoveries and due queries queued behind them.
 */
#define STATS_CHUNK_GAP_S 0.02

/* PgQueuer's claim takes over a picked row after 30 s without heartbeat. */
#define SCHED_STALE_S 30.0
/* Look again at least this often: stale rows, rows moved by others. */
#define SCHED_MAX_WAIT_S 30.0
/* After a failure. */
#define SCHED_RETRY_S 1.0
/* While the maintenance connection is being (re)established. */
#define SCHED_CONNECT_S 0.25
/* A due row locked by another claimer: it fires it; look again soon. */
#define SCHED_BUSY_S 0.5
/* Added to every wait so that the server's now() has passed next_run. */
#define SCHED_EPSILON_S 0.005

/* One schedule, copied from the configuration of its time. */
struct sched_item {
	char *name;
	char *expression; /* canonical: the table's key with entrypoint */
	char *entrypoint;
	char *payload_hex; /* "\x..." bytea text, or NULL for no payload */
	struct cron spec;
};

/*
 * The schedules of one configuration. Every statement in flight holds a
 * reference, so a reload may replace the set while answers still arrive.
 */
struct sched_set {
	struct sched_item *v;
	size_t n;
	char *expressions; /* text[] literals for the statements */
	char *entrypoints;
	unsigned refs;
};

struct scheduler {
	struct master *m;
	struct sched_set *set; /* current; NULL when no [schedule] */
	ev_timer timer;	       /* the next claim round */
	ev_timer stats_timer;  /* every stats_interval */
	ev_timer stats_more;   /* the next chunk after a full one */
	bool registered;       /* rows upserted for the current set */
	bool round_running;    /* an upsert or a claim is in flight */
	bool stats_running;
	bool drain_logged;
};

/* What a statement's callback needs: its scheduler and the set it used. */
struct sched_query {
	struct scheduler *s;
	struct sched_set *set;
	size_t item; /* SQL_SCHEDULE_FIRE: the schedule fired */
	char *due;   /* SQL_SCHEDULE_FIRE: the tick, for the log */
};

static struct sched_set *
set_ref(struct sched_set *set)
{
	set->refs++;
	return set;
}

static void
set_unref(struct sched_set *set)
{
	if (set == NULL || --set->refs > 0)
		return;
	for (size_t i = 0; i < set->n; i++) {
		free(set->v[i].name);
		free(set->v[i].expression);
		free(set->v[i].entrypoint);
		free(set->v[i].payload_hex);
	}
	free(set->v);
	free(set->expressions);
	free(set->entrypoints);
	free(set);
}

/* bytea in hex input form: the payload's bytes whatever they are. */
static char *
payload_hex(const char *payload)
{
	static const char digits[] = "0123456789abcdef";
	size_t n = strlen(payload);
	char *out, *p;

	if (n == 0)
		return NULL;
	out = xmalloc(2 * n + 3);
	p = out;
	*p++ = '\\';
	*p++ = 'x';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)payload[i];

		*p++ = digits[c >> 4];
		*p++ = digits[c & 15];
	}
	*p = '\0';
	return out;
}

static struct sched_set *
set_new(const struct conf *cf)
{
	struct sched_set *set;
	const char **ex, **ep;

	if (cf->nschedules == 0)
		return NULL;
	set = xcalloc(1, sizeof(*set));
	set->n = cf->nschedules;
	set->v = xcalloc(set->n, sizeof(set->v[0]));
	ex = xcalloc(set->n, sizeof(*ex));
	ep = xcalloc(set->n, sizeof(*ep));
	for (size_t i = 0; i < set->n; i++) {
		const struct conf_schedule *cs = &cf->schedules[i];

		set->v[i].name = xstrdup(cs->name);
		set->v[i].expression = xstrdup(cs->expression);
		set->v[i].entrypoint = xstrdup(cs->entrypoint);
		set->v[i].payload_hex = payload_hex(cs->payload);
		set->v[i].spec = cs->spec;
		ex[i] = set->v[i].expression;
		ep[i] = set->v[i].entrypoint;
	}
	set->expressions = text_array_literal(ex, set->n);
	set->entrypoints = text_array_literal(ep, set->n);
	free(ex);
	free(ep);
	set->refs = 1;
	return set;
}

static struct sched_item *
set_find(struct sched_set *set, const char *expression, const char *entrypoint)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->v[i].expression, expression) == 0 &&
		    strcmp(set->v[i].entrypoint, entrypoint) == 0)
			return &set->v[i];
	return NULL;
}

/* The first tick of spec after the second `after`; +inf when none. */
static double
next_tick(const struct cron *spec, double after)
{
	int64_t t;

	if (!isfinite(after) || after < 0.0 ||
	    cron_next(spec, (int64_t)floor(after), &t) != 0)
		return INFINITY;
	return (double)t;
}

static void
sched_arm(struct scheduler *s, double delay_s)
{
	struct ev_loop *loop = s->m->loop;

	if (delay_s < 0.0)
		delay_s = 0.0;
	if (delay_s > SCHED_MAX_WAIT_S)
		delay_s = SCHED_MAX_WAIT_S;
	/* The wait is measured from now, not from the loop's cached time. */
	ev_now_update(loop);
	ev_timer_stop(loop, &s->timer);
	ev_timer_set(&s->timer, delay_s, 0.0);
	ev_timer_start(loop, &s->timer);
}

static struct sched_query *
query_new(struct scheduler *s, struct sched_set *set)
{
	struct sched_query *q = xcalloc(1, sizeof(*q));

	q->s = s;
	q->set = set_ref(set);
	return q;
}

static void
query_free(struct sched_query *q)
{
	set_unref(q->set);
	free(q->due);
	free(q);
}

static void
fire_done(struct driver_async *a, PGresult *res, const struct pgq_error *err,
	  void *arg)
{
	struct sched_query *q = arg;
	const struct sched_item *it = &q->set->v[q->item];

	(void)a;
	if (res == NULL)
		log_warnx("schedule %s: fire failed: %s; the claim expires in "
			  "30s, then the tick fires",
			  it->name, err->message);
	else if (PQntuples(res) == 0)
		log_warnx("schedule %s: claim lost before it fired "
			  "entrypoint=%s due=%s",
			  it->name, it->entrypoint, q->due);
	else
		log_info("schedule fired name=%s entrypoint=%s job=%s due=%s",
			 it->name, it->entrypoint, PQgetvalue(res, 0, 0),
			 q->due);
	query_free(q);
}

/* Sends the fire of a claimed row: the job, next_run, the row queued. */
static void
sched_fire(struct scheduler *s, struct sched_set *set,
	   const struct sched_item *it, const char *id, const char *token,
	   const char *due, int64_t next)
{
	struct sched_query *q = query_new(s, set);
	char next_s[32];
	const char *params[5];

	snprintf(next_s, sizeof(next_s), "%" PRId64, next);
	params[0] = id;
	params[1] = token;
	params[2] = next_s;
	params[3] = it->payload_hex;
	params[4] = it->name;
	q->item = (size_t)(it - set->v);
	q->due = xstrdup(due);
	if (maint_query(s->m, SQL_SCHEDULE_FIRE, 5, params, fire_done, q) ==
	    -1) {
		log_warnx("schedule %s: cannot fire: not connected; the claim "
			  "expires in 30s",
			  it->name);
		query_free(q);
	}
}

/*
 * The claim's answer: fire what was claimed, then wait until something may
 * be due again. Every time here is the server's (now, next_run, heartbeat),
 * and the wait is relative to the server's now(), so a clock difference
 * between this host and the server neither fires a tick twice nor skips it.
 */
static void
claim_done(struct driver_async *a, PGresult *res, const struct pgq_error *err,
	   void *arg)
{
	struct sched_query *q = arg;
	struct scheduler *s = q->s;
	struct sched_set *set = q->set;
	double now, wake = INFINITY;
	size_t found = 0;

	(void)a;
	s->round_running = false;
	if (res == NULL) {
		log_warnx("schedules: claim failed: %s", err->message);
		if (s->set != NULL)
			sched_arm(s, SCHED_RETRY_S);
		goto out;
	}
	now = PQntuples(res) > 0 ? strtod(PQgetvalue(res, 0, 9), NULL)
				 : clock_wall_s();
	for (int i = 0; i < PQntuples(res); i++) {
		const struct sched_item *it = set_find(
			set, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
		bool claimed = PQgetvalue(res, i, 3)[0] == 't';
		const char *status = PQgetvalue(res, i, 4);
		double next_run = strtod(PQgetvalue(res, i, 5), NULL);
		double heartbeat = strtod(PQgetvalue(res, i, 8), NULL);

		if (it == NULL)
			continue;
		found++;
		if (claimed) {
			double next = next_tick(&it->spec, now);

			if (!isfinite(next)) {
				/* Past year 9999: park the row a year on. */
				next = floor(now) + 366.0 * 86400.0;
				log_warnx("schedule %s: no tick left; parked",
					  it->name);
			}
			sched_fire(s, set, it, PQgetvalue(res, i, 0),
				   PQgetvalue(res, i, 7), PQgetvalue(res, i, 6),
				   (int64_t)next);
			wake = fmin(wake, next);
		} else if (strcmp(status, "queued") == 0) {
			/* Due but locked: its claimer is firing it now. */
			wake = fmin(wake, next_run > now ? next_run
							 : now + SCHED_BUSY_S);
		} else {
			/*
			 * Picked by someone: their fire moves next_run to
			 * the next tick; if they died, the row is ours to
			 * take when its heartbeat is 30 s old.
			 */
			wake = fmin(wake, heartbeat + SCHED_STALE_S);
			wake = fmin(wake, next_tick(&it->spec, now));
		}
	}
	if (set != s->set) {
		/* Reloaded meanwhile: the new set starts its own round. */
		if (s->set != NULL)
			sched_arm(s, 0.0);
		goto out;
	}
	if (found < set->n) {
		/* A row was deleted (pgq schedules --remove, PgQueuer's
		 * clean_old): put it back at the next round. */
		log_warnx("schedules: %zu of %zu rows missing: registering "
			  "them again",
			  set->n - found, set->n);
		s->registered = false;
		wake = fmin(wake, now + SCHED_RETRY_S);
	}
	sched_arm(s, isfinite(wake) ? wake - now + SCHED_EPSILON_S
				    : SCHED_MAX_WAIT_S);
out:
	query_free(q);
}

static void
upsert_done(struct driver_async *a, PGresult *res, const struct pgq_error *err,
	    void *arg)
{
	struct sched_query *q = arg;
	struct scheduler *s = q->s;

	(void)a;
	s->round_running = false;
	if (q->set != s->set) {
		/* Reloaded meanwhile: the new set registers itself. */
		if (s->set != NULL)
			sched_arm(s, 0.0);
	} else if (res == NULL) {
		log_warnx("schedules: registering failed: %s", err->message);
		sched_arm(s, SCHED_RETRY_S);
	} else {
		s->registered = true;
		log_info("schedules registered count=%zu inserted=%s",
			 q->set->n, PQcmdTuples(res));
		sched_arm(s, 0.0);
	}
	query_free(q);
}

/* Inserts the rows that are missing, each with its next tick from now. */
static void
sched_register(struct scheduler *s)
{
	struct sched_set *set = s->set;
	double now = clock_wall_s();
	size_t len = 3;
	char *nexts, *p;
	const char *params[3];
	struct sched_query *q;

	for (size_t i = 0; i < set->n; i++)
		len += 22;
	nexts = xmalloc(len);
	p = nexts;
	*p++ = '{';
	for (size_t i = 0; i < set->n; i++) {
		double next = next_tick(&set->v[i].spec, now);

		if (!isfinite(next))
			next = floor(now) + 366.0 * 86400.0;
		p += snprintf(p, 23, "%s%" PRId64, i > 0 ? "," : "",
			      (int64_t)next);
	}
	*p++ = '}';
	*p = '\0';
	params[0] = set->expressions;
	params[1] = set->entrypoints;
	params[2] = nexts;
	q = query_new(s, set);
	if (maint_query(s->m, SQL_SCHEDULE_UPSERT, 3, params, upsert_done, q) ==
	    -1) {
		query_free(q);
		sched_arm(s, SCHED_RETRY_S);
	} else {
		s->round_running = true;
	}
	free(nexts);
}

static void
sched_round(struct scheduler *s)
{
	struct master *m = s->m;
	const char *params[2];
	struct sched_query *q;

	if (s->set == NULL || m->shutdown != SHUTDOWN_NONE || s->round_running)
		return;
	if (m->drain) {
		if (!s->drain_logged)
			log_info("drain: schedules are not fired");
		s->drain_logged = true;
		return;
	}
	if (!maint_ready(m)) {
		sched_arm(s, SCHED_CONNECT_S);
		return;
	}
	if (!s->registered) {
		sched_register(s);
		return;
	}
	params[0] = s->set->expressions;
	params[1] = s->set->entrypoints;
	q = query_new(s, s->set);
	if (maint_query(m, SQL_SCHEDULE_CLAIM, 2, params, claim_done, q) ==
	    -1) {
		query_free(q);
		sched_arm(s, SCHED_RETRY_S);
		return;
	}
	s->round_running = true;
}

static void
sched_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	sched_round(w->data);
}

/* ---- statistics ---- */

static void
stats_done(struct driver_async *a, PGresult *res, const struct pgq_error *err,
	   void *arg)
{
	struct scheduler *s = arg;

	(void)a;
	s->stats_running = false;
	if (res == NULL)
		log_warnx("statistics: aggregate failed: %s", err->message);
	else if (PQntuples(res) > 0 &&
		 strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
		log_debug("statistics: aggregated log_rows=%s "
			  "statistics_rows=%s",
			  PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		/* A full chunk: more rows wait. Go on after a pause in
		 * which the notifications held back meanwhile arrive. */
		if (strtol(PQgetvalue(res, 0, 0), NULL, 10) >=
		    STATS_CHUNK_ROWS) {
			ev_timer_set(&s->stats_more, STATS_CHUNK_GAP_S, 0.);
			ev_timer_start(s->m->loop, &s->stats_more);
		}
	}
}

static void
stats_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct scheduler *s = w->data;

	(void)loop;
	(void)revents;
	if (s->stats_running || s->m->shutdown != SHUTDOWN_NONE ||
	    !maint_ready(s->m))
		return;
	if (maint_query(s->m, SQL_AGGREGATE, 0, NULL, stats_done, s) == 0)
		s->stats_running = true;
}

static void
stats_arm(struct scheduler *s)
{
	double every = (double)s->m->cf->stats_interval_ms / 1000.0;

	ev_timer_stop(s->m->loop, &s->stats_timer);
	if (every <= 0.0)
		return;
	ev_timer_set(&s->stats_timer, every, every);
	ev_timer_start(s->m->loop, &s->stats_timer);
}

/* ---- life cycle ---- */

void
scheduler_start(struct master *m)
{
	struct scheduler *s = xcalloc(1, sizeof(*s));

	s->m = m;
	ev_init(&s->timer, sched_timer_cb);
	s->timer.data = s;
	ev_init(&s->stats_timer, stats_timer_cb);
	s->stats_timer.data = s;
	ev_init(&s->stats_more, stats_timer_cb);
	s->stats_more.data = s;
	m->sched = s;
	scheduler_reconfigure(m);
}

void
scheduler_reconfigure(struct master *m)
{
	struct scheduler *s = m->sched;

	if (s == NULL)
		return;
	set_unref(s->set);
	s->set = set_new(m->cf);
	s->registered = false;
	ev_timer_stop(m->loop, &s->timer);
	if (s->set != NULL)
		sched_arm(s, 0.0);
	stats_arm(s);
}

void
scheduler_stop(struct master *m)
{
	struct scheduler *s = m->sched;

	if (s == NULL)
		return;
	ev_timer_stop(m->loop, &s->timer);
	ev_timer_stop(m->loop, &s->stats_timer);
	ev_timer_stop(m->loop, &s->stats_more);
	set_unref(s->set);
	free(s);
	m->sched = NULL;
}
