/*
 * The master's signals, as libev watchers (the handlers only run in the
 * loop, never in signal context): shutdown at three levels that only ever
 * escalate, reload, scaling by one worker, log reopening, and SIGCHLD.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "master/master_int.h"

const char *
signal_name(int sig)
{
	static const struct {
		int sig;
		const char *name;
	} names[] = {{SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},
		     {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
		     {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"},
		     {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
		     {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"},
		     {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
		     {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"},
		     {SIGTERM, "SIGTERM"}, {SIGCHLD, "SIGCHLD"},
		     {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"},
		     {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
		     {SIGTTOU, "SIGTTOU"}, {SIGXCPU, "SIGXCPU"},
		     {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"}};
	static char buf[32];

	for (size_t i = 0; i < PGQ_NELEM(names); i++) {
		if (names[i].sig == sig)
			return names[i].name;
	}
	snprintf(buf, sizeof(buf), "signal %d", sig);
	return buf;
}

static const char *
shutdown_name(enum shutdown_level l)
{
	static const char *const names[] = {"none", "graceful", "fast",
					    "immediate"};

	return names[l];
}

static void
shutdown_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct master *m = w->data;

	(void)loop;
	(void)revents;
	if (m->shutdown == SHUTDOWN_IMMEDIATE) {
		/*
		 * The workers are dead or unkillable and the last statements
		 * got no answer: a master that never exits is worse than a
		 * job left for the heartbeat timeout to recover.
		 */
		log_warnx("shutdown: giving up on pending statements "
			  "pending=%zu live=%u",
			  listener_pending(m), spawn_live(m));
		ev_break(m->loop, EVBREAK_ALL);
		return;
	}
	log_warnx("shutdown: %s stage timed out live=%u: escalating",
		  shutdown_name(m->shutdown), spawn_live(m));
	master_shutdown(m, (enum shutdown_level)(m->shutdown + 1));
}

void
master_shutdown(struct master *m, enum shutdown_level level)
{
	uint64_t timeout_ms = 0;

	/* A repeated request escalates one level; nothing ever downgrades. */
	if (level <= m->shutdown)
		level = m->shutdown + 1;
	if (level > SHUTDOWN_IMMEDIATE)
		level = SHUTDOWN_IMMEDIATE;
	if (level == m->shutdown)
		return;
	if (m->shutdown == SHUTDOWN_NONE)
		master_notify("STOPPING=1");
	m->shutdown = level;
	log_info("shutdown: %s live=%u", shutdown_name(level), spawn_live(m));
	wake_stop(m);
	for (unsigned i = 0; i < m->nslots; i++) {
		struct slot *s = m->slots[i];

		if (s->state == SLOT_WAITING || s->state == SLOT_DISABLED) {
			ev_timer_stop(m->loop, &s->respawn_timer);
			s->state = SLOT_EMPTY;
		}
		if (s->pid == 0)
			continue;
		s->state = SLOT_STOPPING;
		if (level == SHUTDOWN_GRACEFUL)
			slot_send(s, CHAN_SHUTDOWN, 0);
		else if (level == SHUTDOWN_FAST)
			slot_send(s, CHAN_FAST, 0);
	}
	switch (level) {
	case SHUTDOWN_GRACEFUL:
		timeout_ms = m->cf->shutdown_timeout_ms;
		break;
	case SHUTDOWN_FAST:
		timeout_ms = m->cf->fast_shutdown_timeout_ms;
		break;
	case SHUTDOWN_IMMEDIATE:
		spawn_kill_all(m);
		/* Bound for the last recovery statements. */
		timeout_ms = 5000;
		break;
	case SHUTDOWN_NONE:
		break;
	}
	ev_timer_stop(m->loop, &m->shutdown_timer);
	ev_timer_set(&m->shutdown_timer, (double)timeout_ms / 1000.0, 0.0);
	ev_timer_start(m->loop, &m->shutdown_timer);
	master_status(m);
	master_check_exit(m);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct master *m = w->data;

	(void)loop;
	(void)revents;
	if (w->signum != SIGCHLD)
		log_info("received %s", signal_name(w->signum));
	switch (w->signum) {
	case SIGTERM:
		master_shutdown(m, SHUTDOWN_GRACEFUL);
		break;
	case SIGINT:
		master_shutdown(m, SHUTDOWN_FAST);
		break;
	case SIGQUIT:
		master_shutdown(m, SHUTDOWN_IMMEDIATE);
		break;
	case SIGHUP:
		if (m->shutdown == SHUTDOWN_NONE)
			reload_run(m);
		break;
	case SIGTTIN:
		if (m->shutdown != SHUTDOWN_NONE)
			break;
		if (m->nworkers >= (unsigned)m->cf->max_workers) {
			log_warnx("scale up refused: at max_workers=%u",
				  (unsigned)m->cf->max_workers);
			break;
		}
		m->nworkers++;
		log_info("scale up: workers=%u", m->nworkers);
		spawn_reconcile(m);
		break;
	case SIGTTOU:
		if (m->shutdown != SHUTDOWN_NONE)
			break;
		if (m->nworkers <= (unsigned)m->cf->min_workers ||
		    m->nworkers == 0) {
			log_warnx("scale down refused: at min_workers=%u",
				  (unsigned)m->cf->min_workers);
			break;
		}
		m->nworkers--;
		log_info("scale down: workers=%u", m->nworkers);
		spawn_reconcile(m);
		break;
	case SIGUSR1:
		if (log_reopen() == -1)
			log_warn("log reopen failed");
		else
			log_info("log reopened");
		break;
	case SIGCHLD:
		spawn_reap(m);
		break;
	default:
		break;
	}
}

void
signals_start(struct master *m)
{
	struct {
		ev_signal *w;
		int sig;
	} sigs[] = {{&m->sig_term, SIGTERM}, {&m->sig_int, SIGINT},
		    {&m->sig_quit, SIGQUIT}, {&m->sig_hup, SIGHUP},
		    {&m->sig_ttin, SIGTTIN}, {&m->sig_ttou, SIGTTOU},
		    {&m->sig_usr1, SIGUSR1}, {&m->sig_chld, SIGCHLD}};

	/* A dead channel peer must be an error from send, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < PGQ_NELEM(sigs); i++) {
		ev_signal_init(sigs[i].w, signal_cb, sigs[i].sig);
		sigs[i].w->data = m;
		ev_signal_start(m->loop, sigs[i].w);
	}
	ev_init(&m->shutdown_timer, shutdown_timer_cb);
	m->shutdown_timer.data = m;
}

void
signals_stop(struct master *m)
{
	ev_signal *ws[] = {&m->sig_term, &m->sig_int,  &m->sig_quit,
			   &m->sig_hup,	 &m->sig_ttin, &m->sig_ttou,
			   &m->sig_usr1, &m->sig_chld};

	for (size_t i = 0; i < PGQ_NELEM(ws); i++)
		ev_signal_stop(m->loop, ws[i]);
	ev_timer_stop(m->loop, &m->shutdown_timer);
}
