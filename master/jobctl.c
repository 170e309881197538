/*
 * Job control that needs the master: the timeout of a module job (its call
 * cannot be interrupted, so the worker is killed), cancellations (passed to
 * the worker holding the job, or the worker replaced for a module with
 * cancel = replace), and workers that retire to be recycled. A worker the
 * master killed, or one that recycled itself, is replaced at once: neither is
 * a crash.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/traceback.h"
#include "master/master_int.h"

static void
jobctl_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct slot *s = w->data;
	char dur[32];

	(void)loop;
	(void)revents;
	/* It may have finished just now: read what it said first. */
	slot_poll(s);
	if (s->pid == 0 || s->job_id == 0 || s->job_id != s->timeout_job_id)
		return;
	format_duration_ms(s->job_timeout_ms, dur, sizeof(dur));
	log_warnx("worker %u: job=%lld entrypoint=%s ran past its timeout of "
		  "%s: killing the worker pid=%ld",
		  s->index, (long long)s->job_id, s->job_entrypoint, dur,
		  (long)s->pid);
	s->kill = SLOT_KILL_TIMEOUT;
	s->kill_job_id = s->job_id;
	slot_kill(s, "job timeout");
}

void
jobctl_slot_init(struct slot *s)
{
	ev_init(&s->job_timer, jobctl_timeout_cb);
	s->job_timer.data = s;
}

void
jobctl_slot_reset(struct slot *s)
{
	ev_timer_stop(s->m->loop, &s->job_timer);
	s->timeout_job_id = 0;
	s->job_timeout_ms = 0;
	s->kill = SLOT_KILL_NONE;
	s->kill_job_id = 0;
	s->cancel_job_id = 0;
	s->recycling = false;
}

void
jobctl_slot_stop(struct slot *s)
{
	ev_timer_stop(s->m->loop, &s->job_timer);
}

static bool
jobctl_was_canceled(const struct master *m, int64_t id)
{
	for (unsigned i = 0; i < JOBCTL_CANCELED_MAX; i++)
		if (m->canceled[i] == id)
			return true;
	return false;
}

/*
 * Stops job id, which s runs: by the worker itself, or by replacing it.
 * reaped: its process is gone already; only the kill's record is left to
 * make (its pid may belong to another process by now).
 */
static void
jobctl_cancel_slot(struct slot *s, int64_t id, bool reaped)
{
	struct master *m = s->m;
	const struct conf_entrypoint *ep =
		conf_entrypoint_find(m->cf, s->job_entrypoint);

	if (s->kill != SLOT_KILL_NONE)
		return;
	if (ep == NULL || ep->kind != CONF_HANDLER_MODULE ||
	    ep->cancel == CONF_CANCEL_FLAG) {
		log_info("cancel job=%lld worker=%u", (long long)id, s->index);
		slot_send(s, CHAN_CANCEL, id);
		return;
	}
	log_info("worker %u: job=%lld entrypoint=%s canceled: replacing the "
		 "worker pid=%ld",
		 s->index, (long long)id, s->job_entrypoint, (long)s->pid);
	s->kill = SLOT_KILL_CANCEL;
	s->kill_job_id = id;
	if (reaped)
		slot_set_state(s, SLOT_STOPPING, "job canceled");
	else
		slot_kill(s, "job canceled");
}

void
jobctl_job_start(struct slot *s, const struct chan_msg *msg)
{
	struct master *m = s->m;

	ev_timer_stop(m->loop, &s->job_timer);
	s->timeout_job_id = msg->a;
	s->job_timeout_ms = msg->b > 0 ? (uint64_t)msg->b : 0;
	if (s->job_timeout_ms > 0) {
		ev_timer_set(&s->job_timer, (double)s->job_timeout_ms / 1000.0,
			     0.0);
		ev_timer_start(m->loop, &s->job_timer);
	}
	/* Canceled while it waited in the worker's batch. */
	if (jobctl_was_canceled(m, msg->a))
		jobctl_cancel_slot(s, msg->a, false);
}

void
jobctl_job_end(struct slot *s)
{
	ev_timer_stop(s->m->loop, &s->job_timer);
	s->timeout_job_id = 0;
}

void
jobctl_recycle(struct slot *s, const struct chan_msg *msg)
{
	log_info("worker %u: recycling pid=%ld jobs=%lld rss=%lldKiB", s->index,
		 (long)s->pid, (long long)msg->a, (long long)msg->b);
	s->recycling = true;
	/* No more wake-ups: it claims nothing now. */
	slot_set_state(s, SLOT_STOPPING, "recycling");
}

/* Remembers id, canceled while no worker ran it, for when one starts it. */
static void
jobctl_remember(struct master *m, int64_t id)
{
	if (jobctl_was_canceled(m, id))
		return;
	/*
	 * Queued jobs were removed by the canceller's statement; a job picked
	 * but waiting in a worker's batch is stopped when it starts.
	 */
	m->canceled[m->canceled_head] = id;
	m->canceled_head = (m->canceled_head + 1) % JOBCTL_CANCELED_MAX;
}

void
jobctl_cancel(struct master *m, int64_t id)
{
	bool found = false;

	for (unsigned i = 0; i < m->nslots; i++) {
		struct slot *s = m->slots[i];

		if (s->pid == 0 || s->job_id != id)
			continue;
		found = true;
		/*
		 * It may have ended the job meanwhile: what it said must be
		 * read first. Reading here would handle every message of the
		 * worker in the middle of this notification (wakes, idles,
		 * hellos), so a worker with unread messages gets the cancel
		 * once its channel's callback has read them.
		 */
		if (slot_has_input(s))
			s->cancel_job_id = id;
		else
			jobctl_cancel_slot(s, id, false);
	}
	if (!found)
		jobctl_remember(m, id);
}

void
jobctl_cancel_resume(struct slot *s, bool reaped)
{
	int64_t id = s->cancel_job_id;

	if (id == 0)
		return;
	s->cancel_job_id = 0;
	if (s->pid != 0 && s->job_id == id)
		jobctl_cancel_slot(s, id, reaped);
	else
		jobctl_remember(s->m, id);
}

struct jobctl_complete {
	struct master *m;
	int64_t id;
	unsigned slot;
};

static void
jobctl_complete_done(struct driver_async *a, PGresult *res,
		     const struct pgq_error *err, void *arg)
{
	struct jobctl_complete *cc = arg;

	(void)a;
	if (res == NULL)
		log_warnx("job=%lld: cannot record it canceled: %s",
			  (long long)cc->id,
			  err != NULL ? err->message : "unknown");
	else if (PQntuples(res) == 0)
		log_info("job=%lld: no longer held by worker %u: not marked "
			 "canceled",
			 (long long)cc->id, cc->slot);
	else
		log_info("job=%lld canceled: worker %u replaced",
			 (long long)cc->id, cc->slot);
	free(cc);
}

/* PgQueuer's traceback object for a job the master ended as canceled. */
static char *
jobctl_cancel_traceback(const struct slot *s, long pid)
{
	char msg[160];
	json_t *o;
	char *ctx, *text;

	snprintf(msg, sizeof(msg),
		 "canceled while running: worker %u (pid %ld) replaced",
		 s->index, pid);
	o = json_pack("{s:i, s:I, s:s, s:s}", "slot", (int)s->index, "pid",
		      (json_int_t)pid, "queue_manager_id", s->queue_manager_id,
		      "cancel", "replace");
	ctx = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (ctx == NULL)
		fatalx("control: cannot build a traceback");
	text = traceback_json(s->kill_job_id, "Canceled", msg, "", ctx);
	free(ctx);
	return text;
}

/* Ends the canceled job as canceled, if that worker still owned it. */
static void
jobctl_complete_canceled(struct slot *s, long pid)
{
	struct master *m = s->m;
	struct jobctl_complete *cc = xcalloc(1, sizeof(*cc));
	char *tb = jobctl_cancel_traceback(s, pid);
	const char *tbs[1] = {tb}, *statuses[1] = {"canceled"};
	char *a_tb = text_array_literal(tbs, 1);
	char *a_status = text_array_literal(statuses, 1);
	char ids[32];
	const char *params[4];

	snprintf(ids, sizeof(ids), "{%lld}", (long long)s->kill_job_id);
	cc->m = m;
	cc->id = s->kill_job_id;
	cc->slot = s->index;
	params[0] = s->queue_manager_id;
	params[1] = ids;
	params[2] = a_status;
	params[3] = a_tb;
	/*
	 * Queued before the recovery of the worker's other jobs, on the same
	 * connection, so it runs first: the job is not put back.
	 */
	if (maint_query(m, SQL_COMPLETE, 4, params, jobctl_complete_done, cc) ==
	    -1) {
		log_warnx("job=%lld: no connection to record it canceled: it "
			  "is recovered instead",
			  (long long)s->kill_job_id);
		free(cc);
	}
	free(a_status);
	free(a_tb);
	free(tb);
}

bool
jobctl_exited(struct slot *s, long pid)
{
	struct master *m = s->m;
	char cause[160], dur[32];

	ev_timer_stop(m->loop, &s->job_timer);
	switch (s->kill) {
	case SLOT_KILL_NONE:
		return false;
	case SLOT_KILL_TIMEOUT:
		format_duration_ms(s->job_timeout_ms, dur, sizeof(dur));
		snprintf(cause, sizeof(cause),
			 "killed by the master: job %lld ran past its "
			 "timeout of %s",
			 (long long)s->kill_job_id, dur);
		log_info("worker %u: %s pid=%ld", s->index, cause, pid);
		if (s->queue_manager_id[0] != '\0')
			recovery_run_as(m, s->queue_manager_id, "Timeout",
					cause, s->index, pid);
		return true;
	case SLOT_KILL_CANCEL:
		snprintf(cause, sizeof(cause),
			 "killed by the master: job %lld was canceled",
			 (long long)s->kill_job_id);
		log_info("worker %u: %s pid=%ld", s->index, cause, pid);
		if (s->queue_manager_id[0] != '\0') {
			jobctl_complete_canceled(s, pid);
			recovery_run_as(m, s->queue_manager_id,
					"WorkerReplaced", cause, s->index, pid);
		}
		return true;
	}
	return false;
}
