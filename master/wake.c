/*
 * Turning notifications into wake-ups: one notification wakes one idle worker
 * (the lowest slot, so a quiet system keeps using the same few); a worker that
 * found work asks for one more (chain wake); wake-ups that find every worker
 * busy are counted and served as workers go idle. A safety-net poll covers
 * lost notifications, and a timer at the earliest execute_after starts
 * deferred and retried jobs on time.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "master/master_int.h"

/* Delay before re-checking a due job that an idle worker could not claim. */
#define WAKE_DUE_RETRY_MIN_MS 100

static struct slot *
wake_pick_idle(struct master *m)
{
	for (unsigned i = 0; i < m->nslots; i++) {
		if (m->slots[i]->state == SLOT_IDLE)
			return m->slots[i];
	}
	return NULL;
}

static void
wake_slot(struct master *m, struct slot *s, const char *reason)
{
	log_debug("wake worker=%u reason=%s pending=%u", s->index, reason,
		  m->pending_wakes);
	slot_set_state(s, SLOT_BUSY, "woken");
	m->wakes_sent++;
	slot_send(s, CHAN_WAKE, 0);
	master_status(m);
}

void
wake_one(struct master *m, const char *reason)
{
	struct slot *s;

	if (m->shutdown != SHUTDOWN_NONE)
		return;
	s = wake_pick_idle(m);
	if (s != NULL) {
		wake_slot(m, s, reason);
		return;
	}
	/*
	 * Everyone is busy. One pending wake per wanted worker is enough:
	 * each makes an idle worker claim until nothing is left.
	 */
	if (m->pending_wakes < m->nworkers)
		m->pending_wakes++;
	log_debug("wake pending reason=%s pending=%u", reason,
		  m->pending_wakes);
}

void
wake_more(struct master *m)
{
	struct slot *s;

	if (m->shutdown != SHUTDOWN_NONE)
		return;
	s = wake_pick_idle(m);
	if (s != NULL)
		wake_slot(m, s, "chain");
}

void
wake_all(struct master *m, const char *reason)
{
	if (m->shutdown != SHUTDOWN_NONE)
		return;
	for (unsigned i = 0; i < m->nslots; i++) {
		if (m->slots[i]->state == SLOT_IDLE)
			wake_slot(m, m->slots[i], reason);
	}
}

void
wake_on_idle(struct master *m, struct slot *s)
{
	if (m->shutdown != SHUTDOWN_NONE)
		return;
	if (m->pending_wakes > 0) {
		m->pending_wakes--;
		wake_slot(m, s, "pending");
		return;
	}
	/*
	 * The worker claimed everything eligible; ask when the next deferred
	 * job is due (and, with --drain, whether anything is left).
	 */
	wake_query_due(m, true);
}

/* True when every wanted worker is idle and nothing is owed. */
static bool
wake_all_idle(const struct master *m)
{
	unsigned idle = 0;

	if (m->pending_wakes > 0)
		return false;
	for (unsigned i = 0; i < m->nslots; i++) {
		switch (m->slots[i]->state) {
		case SLOT_IDLE:
			idle++;
			break;
		case SLOT_WAITING:
		case SLOT_STARTING:
		case SLOT_BUSY:
		case SLOT_STOPPING:
			return false;
		case SLOT_EMPTY:
		case SLOT_CONFIG_FAILED:
		case SLOT_HELD:
			break;
		}
	}
	return idle > 0;
}

static void
due_arm(struct master *m, double after_s)
{
	ev_timer_stop(m->loop, &m->due_timer);
	ev_timer_set(&m->due_timer, after_s, 0.0);
	ev_timer_start(m->loop, &m->due_timer);
}

static void
due_done(struct driver_async *a, PGresult *res, const struct pgq_error *err,
	 void *arg)
{
	struct master *m = arg;
	bool from_idle = m->due_query_from_idle;
	bool none;
	double due_s = 0.0;

	(void)a;
	m->due_query_running = false;
	if (res == NULL) {
		log_warnx("next due query failed: %s",
			  err != NULL ? err->message : "unknown");
		goto out;
	}
	if (m->shutdown != SHUTDOWN_NONE)
		goto out;
	none = PQntuples(res) < 1 || PQgetisnull(res, 0, 0);
	if (!none)
		due_s = strtod(PQgetvalue(res, 0, 0), NULL);
	if (m->drain && (none || due_s > 0.0) && wake_all_idle(m) &&
	    m->wakes_sent == m->due_query_wakes) {
		log_info("drain: no eligible job left: stopping");
		master_shutdown(m, SHUTDOWN_GRACEFUL);
		goto out;
	}
	if (none) {
		ev_timer_stop(m->loop, &m->due_timer);
		m->due_idle_delay_ms = 0;
	} else if (due_s > 0.0) {
		/* The claim wants execute_after < now(): land just after. */
		due_arm(m, due_s + 0.002);
		m->due_idle_delay_ms = 0;
	} else if (from_idle) {
		/*
		 * Due, yet the worker that just went idle did not take it
		 * (locked by another claimer, or it became due a moment
		 * later): look again soon, backing off towards
		 * poll_interval rather than spinning.
		 */
		if (m->due_idle_delay_ms == 0)
			m->due_idle_delay_ms = WAKE_DUE_RETRY_MIN_MS;
		else if (m->due_idle_delay_ms < m->cf->poll_interval_ms)
			m->due_idle_delay_ms *= 2;
		if (m->due_idle_delay_ms > m->cf->poll_interval_ms)
			m->due_idle_delay_ms = m->cf->poll_interval_ms;
		due_arm(m, (double)m->due_idle_delay_ms / 1000.0);
	} else if (wake_all_idle(m)) {
		/*
		 * Due now, and nobody is looking (after a reload or a
		 * reconnect, say). A worker that is busy, or one a
		 * notification just woke, claims it without our help.
		 */
		wake_one(m, "due");
	}
out:
	if (m->due_query_again) {
		bool idle = m->due_again_from_idle;

		m->due_query_again = false;
		m->due_again_from_idle = false;
		wake_query_due(m, idle);
	}
}

void
wake_query_due(struct master *m, bool from_idle)
{
	const char *params[1];

	if (m->shutdown != SHUTDOWN_NONE)
		return;
	if (m->due_query_running) {
		m->due_query_again = true;
		m->due_again_from_idle = m->due_again_from_idle || from_idle;
		return;
	}
	params[0] = m->entrypoints_array;
	if (maint_query(m, SQL_NEXT_DUE, 1, params, due_done, m) == -1)
		return;
	m->due_query_running = true;
	m->due_query_from_idle = from_idle;
	m->due_query_wakes = m->wakes_sent;
}

static void
due_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct master *m = w->data;

	(void)loop;
	(void)revents;
	wake_one(m, "due");
}

static void
poll_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct master *m = w->data;

	(void)loop;
	(void)revents;
	/* Only a safety net: with every worker busy there is nothing to do. */
	wake_more(m);
	if (!m->due_query_running)
		wake_query_due(m, false);
}

void
wake_on_notify(struct master *m, const char *payload)
{
	struct driver_event ev;
	char why[256];

	memset(&ev, 0, sizeof(ev));
	/* Deletes and truncates make nothing runnable: one per completion. */
	if (driver_event_is_removal(payload))
		goto out;
	if (driver_event_parse(payload, &ev, why, sizeof(why)) == -1) {
		log_debug("notification ignored: %s", why);
		goto out;
	}
	switch (ev.type) {
	case DRIVER_EVENT_TABLE_CHANGED:
		if (strcmp(ev.table, m->session.names.queue_bare) != 0) {
			log_debug("notification for another table=%s",
				  ev.table);
			break;
		}
		/* Deletes and truncates make nothing runnable. */
		if (ev.operation != DRIVER_OP_INSERT &&
		    ev.operation != DRIVER_OP_UPDATE)
			break;
		wake_one(m, ev.operation == DRIVER_OP_INSERT ? "insert"
							     : "update");
		/* It may be deferred: re-arm the timer at the earliest. */
		wake_query_due(m, false);
		break;
	case DRIVER_EVENT_CANCELLATION:
		for (size_t i = 0; i < ev.nids; i++)
			jobctl_cancel(m, ev.ids[i]);
		break;
	case DRIVER_EVENT_HEALTH_CHECK:
	case DRIVER_EVENT_UNKNOWN:
		log_debug("notification ignored: type=%d", (int)ev.type);
		break;
	}
out:
	driver_event_clear(&ev);
}

void
wake_init(struct master *m)
{
	ev_init(&m->poll_timer, poll_timer_cb);
	m->poll_timer.data = m;
	ev_init(&m->due_timer, due_timer_cb);
	m->due_timer.data = m;
}

void
wake_start(struct master *m)
{
	wake_reconfigure(m);
}

void
wake_reconfigure(struct master *m)
{
	double every = (double)m->cf->poll_interval_ms / 1000.0;

	ev_timer_stop(m->loop, &m->poll_timer);
	ev_timer_set(&m->poll_timer, every, every);
	ev_timer_start(m->loop, &m->poll_timer);
}

void
wake_stop(struct master *m)
{
	ev_timer_stop(m->loop, &m->poll_timer);
	ev_timer_stop(m->loop, &m->due_timer);
	m->pending_wakes = 0;
}
