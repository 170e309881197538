/*
 * The process groups of command handlers whose worker died (kill -9, a crash,
 * the OOM killer, QUIT): the master sends the group SIGTERM, SIGKILL after the
 * entrypoint's kill_grace, and recovers the job only once the group is gone,
 * so its retry never runs beside the old handler. The master is a child
 * subreaper: the orphans are reparented to it, not to init, and the group's
 * id stays allocated (it cannot name another group) until the master has
 * reaped its last member.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "common/log.h"
#include "master/master_int.h"

/* How often a group that got a signal is looked at. */
#define ORPHANS_POLL_S 0.02
/* After SIGKILL: a group that still has members then is stuck (a process
 * in uninterruptible sleep); its job is recovered anyway. */
#define ORPHANS_KILL_WAIT_MS 5000

struct orphan {
	struct master *m;
	pid_t pgid;
	uint64_t grace_ms;
	uint64_t killed_ms;	  /* when SIGKILL went out; 0 before */
	char owner[UUID_STR_LEN]; /* the dead worker's; "" = none to recover */
	char *cause;
	unsigned slot;
	long pid; /* the dead worker's */
	ev_timer grace_timer;
	struct orphan *next;
};

/* True while some process of group pgid exists (a zombie still counts). */
static bool
orphan_group_exists(pid_t pgid)
{
	return killpg(pgid, 0) == 0 || errno != ESRCH;
}

static void
orphan_signal(struct orphan *o, int sig)
{
	if (killpg(o->pgid, sig) == -1 && errno != ESRCH)
		log_warn("worker %u: cannot signal its handler's process group "
			 "%d",
			 o->slot, (int)o->pgid);
}

/* The group is gone (or stuck after SIGKILL): recover its job, forget it. */
static void
orphan_done(struct orphan *o)
{
	struct master *m = o->m;
	struct orphan **p;

	for (p = &m->orphans; *p != NULL; p = &(*p)->next) {
		if (*p == o) {
			*p = o->next;
			break;
		}
	}
	ev_timer_stop(m->loop, &o->grace_timer);
	if (m->orphans == NULL)
		ev_timer_stop(m->loop, &m->orphans_poll);
	if (o->owner[0] != '\0')
		recovery_run(m, o->owner, o->cause, o->slot, o->pid);
	free(o->cause);
	free(o);
}

static void
orphan_grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct orphan *o = w->data;
	char dur[32];

	(void)loop;
	(void)revents;
	format_duration_ms(o->grace_ms, dur, sizeof(dur));
	log_warnx("worker %u: its handler's process group %d still runs %s "
		  "after SIGTERM: sending SIGKILL",
		  o->slot, (int)o->pgid, dur);
	orphan_signal(o, SIGKILL);
	o->killed_ms = clock_mono_ms();
}

void
orphans_check(struct master *m)
{
	struct orphan *o = m->orphans, *next;

	for (; o != NULL; o = next) {
		next = o->next;
		if (!orphan_group_exists(o->pgid)) {
			log_info("worker %u: its handler's process group %d "
				 "has ended",
				 o->slot, (int)o->pgid);
			orphan_done(o);
		} else if (o->killed_ms != 0 &&
			   clock_mono_ms() - o->killed_ms >=
				   ORPHANS_KILL_WAIT_MS) {
			log_warnx("worker %u: its handler's process group %d "
				  "survived SIGKILL for %dms: recovering its "
				  "job anyway",
				  o->slot, (int)o->pgid, ORPHANS_KILL_WAIT_MS);
			orphan_done(o);
		}
	}
}

static void
orphans_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	orphans_check(w->data);
}

void
orphans_init(struct master *m)
{
	ev_init(&m->orphans_poll, orphans_poll_cb);
	m->orphans_poll.data = m;
	/*
	 * Orphans of a dead worker come to us, not to init: we reap them
	 * (slots_reap), and their pids and group ids stay ours until then.
	 */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
		log_warn("prctl(PR_SET_CHILD_SUBREAPER)");
}

void
orphans_add(struct master *m, const struct slot *s, const char *cause)
{
	struct orphan *o;
	char dur[32];

	if (!orphan_group_exists(s->handler_pgid)) {
		if (cause != NULL)
			recovery_run(m, s->queue_manager_id, cause, s->index,
				     (long)s->pid);
		return;
	}
	o = xcalloc(1, sizeof(*o));
	o->m = m;
	o->pgid = s->handler_pgid;
	o->grace_ms = s->handler_grace_ms;
	if (cause != NULL)
		snprintf(o->owner, sizeof(o->owner), "%s", s->queue_manager_id);
	o->cause = xstrdup(cause != NULL ? cause : "");
	o->slot = s->index;
	o->pid = (long)s->pid;
	format_duration_ms(o->grace_ms, dur, sizeof(dur));
	log_warnx("worker %u: its handler's process group %d outlived it: "
		  "sending SIGTERM, SIGKILL in %s job=%lld",
		  o->slot, (int)o->pgid, dur, (long long)s->job_id);
	orphan_signal(o, SIGTERM);
	ev_timer_init(&o->grace_timer, orphan_grace_cb,
		      (double)o->grace_ms / 1000.0, 0.);
	o->grace_timer.data = o;
	ev_timer_start(m->loop, &o->grace_timer);
	o->next = m->orphans;
	m->orphans = o;
	if (!ev_is_active(&m->orphans_poll)) {
		ev_timer_set(&m->orphans_poll, ORPHANS_POLL_S, ORPHANS_POLL_S);
		ev_timer_start(m->loop, &m->orphans_poll);
	}
}

size_t
orphans_owners(const struct master *m, const char **out, size_t max)
{
	size_t n = 0;

	for (const struct orphan *o = m->orphans; o != NULL && n < max;
	     o = o->next)
		if (o->owner[0] != '\0')
			out[n++] = o->owner;
	return n;
}

void
orphans_kill_all(struct master *m)
{
	for (struct orphan *o = m->orphans; o != NULL; o = o->next) {
		if (o->killed_ms != 0)
			continue;
		log_warnx("worker %u: its handler's process group %d: sending "
			  "SIGKILL before the master exits",
			  o->slot, (int)o->pgid);
		orphan_signal(o, SIGKILL);
		o->killed_ms = clock_mono_ms();
	}
}

void
orphans_free(struct master *m)
{
	struct orphan *o, *next;

	orphans_kill_all(m);
	for (o = m->orphans; o != NULL; o = next) {
		next = o->next;
		if (o->owner[0] != '\0')
			log_warnx("worker %u: job of queue_manager_id=%s not "
				  "recovered: it returns to the queue after "
				  "heartbeat_timeout",
				  o->slot, o->owner);
		ev_timer_stop(m->loop, &o->grace_timer);
		free(o->cause);
		free(o);
	}
	m->orphans = NULL;
	ev_timer_stop(m->loop, &m->orphans_poll);
}
