/*
 * The crash breaker stops a fork loop of workers that cannot start. It counts
 * boot failures only (workers that die before healthy_uptime, exit 78
 * included): crash_breaker_count of them within crash_breaker_window open it,
 * and the slots of workers that fail at boot are then held. Every
 * respawn_backoff_max one held slot is tried (half-open); once that worker
 * has stayed up healthy_uptime the breaker closes and the held slots start
 * again. Healthy workers that die are respawned whatever its state.
 */
#include "config.h"

#include <stdlib.h>

#include "common/log.h"
#include "master/master_int.h"

const char *
breaker_state_name(enum breaker_state st)
{
	static const char *const names[] = {"closed", "open", "half-open"};

	return names[st];
}

static void
breaker_forget(struct master *m)
{
	struct breaker *b = &m->breaker;

	free(b->times);
	b->cap = m->cf->crash_breaker_count;
	b->times = xcalloc(b->cap > 0 ? b->cap : 1, sizeof(*b->times));
	b->head = 0;
	b->n = 0;
}

/* Arms the next trial, respawn_backoff_max from now. */
static void
breaker_open(struct master *m)
{
	struct breaker *b = &m->breaker;

	b->state = BREAKER_OPEN;
	ev_timer_stop(m->loop, &b->healthy_timer);
	ev_timer_stop(m->loop, &b->trial_timer);
	ev_timer_set(&b->trial_timer,
		     (double)m->cf->respawn_backoff_max_ms / 1000.0, 0.);
	ev_timer_start(m->loop, &b->trial_timer);
}

static void
breaker_close(struct master *m, const char *why)
{
	struct breaker *b = &m->breaker;

	b->state = BREAKER_CLOSED;
	ev_timer_stop(m->loop, &b->trial_timer);
	ev_timer_stop(m->loop, &b->healthy_timer);
	/* The failures that opened it must not trip it again at once. */
	breaker_forget(m);
	log_info("crash breaker closed: %s", why);
	slots_release_held(m);
	master_status(m);
}

static void
breaker_trial_failed(struct master *m, const char *why)
{
	char dur[32];

	format_duration_ms(m->cf->respawn_backoff_max_ms, dur, sizeof(dur));
	log_warnx("crash breaker: trial failed: worker %u %s: next trial in %s",
		  m->breaker.trial_slot, why, dur);
	breaker_open(m);
	master_status(m);
}

static void
breaker_trial_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct master *m = w->data;
	struct breaker *b = &m->breaker;
	struct slot *s;
	char dur[32];

	(void)loop;
	(void)revents;
	if (m->shutdown != SHUTDOWN_NONE || b->state != BREAKER_OPEN)
		return;
	s = slots_first_held(m);
	if (s == NULL) {
		breaker_close(m, "no slot is held");
		return;
	}
	format_duration_ms(m->cf->healthy_uptime_ms, dur, sizeof(dur));
	log_info("crash breaker half-open: trying worker %u: it closes once "
		 "the worker stays up %s",
		 s->index, dur);
	b->state = BREAKER_HALF_OPEN;
	b->trial_slot = s->index;
	slot_start(s);
	b->trial_generation = s->generation;
	ev_timer_set(&b->healthy_timer,
		     (double)m->cf->healthy_uptime_ms / 1000.0, 0.);
	ev_timer_start(m->loop, &b->healthy_timer);
	master_status(m);
}

static void
breaker_healthy_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct master *m = w->data;
	struct breaker *b = &m->breaker;
	const struct slot *s;
	char why[96], dur[32];

	(void)loop;
	(void)revents;
	if (b->state != BREAKER_HALF_OPEN)
		return;
	s = b->trial_slot < m->nslots ? m->slots[b->trial_slot] : NULL;
	if (s == NULL || s->pid == 0 || s->generation != b->trial_generation) {
		/* Its fork failed, or it went another way (a retirement). */
		breaker_trial_failed(m, "is not running");
		return;
	}
	format_duration_ms(m->cf->healthy_uptime_ms, dur, sizeof(dur));
	snprintf(why, sizeof(why), "worker %u stayed up %s", s->index, dur);
	breaker_close(m, why);
}

void
breaker_init(struct master *m)
{
	struct breaker *b = &m->breaker;

	b->state = BREAKER_CLOSED;
	breaker_forget(m);
	ev_init(&b->trial_timer, breaker_trial_cb);
	b->trial_timer.data = m;
	ev_init(&b->healthy_timer, breaker_healthy_cb);
	b->healthy_timer.data = m;
}

void
breaker_stop(struct master *m)
{
	ev_timer_stop(m->loop, &m->breaker.trial_timer);
	ev_timer_stop(m->loop, &m->breaker.healthy_timer);
}

void
breaker_free(struct master *m)
{
	breaker_stop(m);
	free(m->breaker.times);
	m->breaker.times = NULL;
}

void
breaker_reset(struct master *m)
{
	breaker_stop(m);
	breaker_forget(m);
	m->breaker.state = BREAKER_CLOSED;
}

bool
breaker_holds(const struct master *m)
{
	return m->breaker.state != BREAKER_CLOSED;
}

void
breaker_exited(struct master *m, const struct slot *s, bool boot_failure)
{
	struct breaker *b = &m->breaker;
	uint64_t now = clock_mono_ms();
	char dur[32], window[32];

	if (b->state == BREAKER_HALF_OPEN && s->index == b->trial_slot &&
	    s->generation == b->trial_generation)
		breaker_trial_failed(m, "died before it was healthy");
	if (!boot_failure || b->cap == 0)
		return;
	b->times[b->head] = now;
	b->head = (b->head + 1) % b->cap;
	if (b->n < b->cap)
		b->n++;
	/* The ring is full: its oldest entry is where the head points. */
	if (b->state != BREAKER_CLOSED || b->n < b->cap ||
	    now - b->times[b->head] > m->cf->crash_breaker_window_ms)
		return;
	format_duration_ms(m->cf->crash_breaker_window_ms, window,
			   sizeof(window));
	format_duration_ms(m->cf->respawn_backoff_max_ms, dur, sizeof(dur));
	log_error("crash breaker tripped: %u workers died before "
		  "healthy_uptime within %s: their slots are held, one is "
		  "tried every %s",
		  b->cap, window, dur);
	breaker_open(m);
}
