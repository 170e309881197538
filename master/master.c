/*
 * The master's cycle, read like nginx's ngx_process_cycle.c: start every
 * part, run the loop, stop every part; and the master's reactions to events:
 * signals (shutdown levels, reload, scaling), the LISTEN and maintenance
 * connections becoming ready, and the check after each round of events
 * whether a shutdown is done.
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/title.h"
#include "master/master_int.h"

/* Bound for the last recovery statements of an immediate shutdown. */
#define MASTER_IMMEDIATE_TIMEOUT_MS 5000

static const char *
shutdown_name(enum shutdown_level l)
{
	static const char *const names[] = {"none", "graceful", "fast",
					    "immediate"};

	return names[l];
}

char *
master_entrypoints_array(const struct conf *cf)
{
	const char **names = xcalloc(cf->nentrypoints + 1, sizeof(*names));
	char *out;

	for (size_t i = 0; i < cf->nentrypoints; i++)
		names[i] = cf->entrypoints[i].name;
	out = text_array_literal(names, cf->nentrypoints);
	free(names);
	return out;
}

int
master_prepare(struct master *m)
{
	struct pgq_error err;

	if (sql_session_init(&m->session, NULL, m->cf->prefix, m->cf->schema,
			     m->cf->channel, &err) == -1) {
		log_error("%s: %s", m->conf_path, err.message);
		return -1;
	}
	m->entrypoints_array = master_entrypoints_array(m->cf);
	return 0;
}

void
master_clear(struct master *m)
{
	sql_session_clear(&m->session);
	free(m->entrypoints_array);
	m->entrypoints_array = NULL;
	conf_free(m->cf);
	m->cf = NULL;
}

void
master_status(struct master *m)
{
	enum breaker_state bs = m->breaker.state;
	unsigned live = 0, busy = 0;

	for (unsigned i = 0; i < m->nslots; i++) {
		live += m->slots[i]->pid != 0;
		busy += m->slots[i]->state == SLOT_BUSY;
	}
	if (bs == BREAKER_CLOSED)
		title_set("master");
	else
		title_set("master breaker=%s", breaker_state_name(bs));
	if (m->ready_sent)
		sdnotify_send("STATUS=workers=%u live=%u busy=%u pending=%u "
			      "breaker=%s%s",
			      m->nworkers, live, busy, m->pending_wakes,
			      breaker_state_name(bs),
			      m->shutdown != SHUTDOWN_NONE ? " stopping" : "");
}

/*
 * Before the loop waits again: a shutdown is done once no worker lives and
 * no statement (a recovery, a cancel's record) is still in flight.
 */
static void
master_exit_check_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct master *m = w->data;

	(void)revents;
	if (m->shutdown == SHUTDOWN_NONE)
		return;
	if (slots_live(m) > 0 || listener_pending(m) > 0 ||
	    maint_pending(m) > 0 || m->orphans != NULL)
		return;
	ev_break(loop, EVBREAK_ALL);
}

static void
master_shutdown_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct master *m = w->data;

	(void)revents;
	if (m->shutdown == SHUTDOWN_IMMEDIATE) {
		/*
		 * The workers are dead or unkillable and the last statements
		 * got no answer: a master that never exits is worse than a
		 * job left for the heartbeat timeout to recover.
		 */
		log_warnx("shutdown: giving up on pending statements "
			  "pending=%zu live=%u",
			  maint_pending(m), slots_live(m));
		orphans_kill_all(m);
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	log_warnx("shutdown: %s stage timed out live=%u: escalating",
		  shutdown_name(m->shutdown), slots_live(m));
	master_shutdown(m, (enum shutdown_level)(m->shutdown + 1));
}

/* The longest kill_grace of the entrypoints. */
static uint64_t
master_max_grace(const struct master *m)
{
	uint64_t max = 0;

	for (size_t i = 0; i < m->cf->nentrypoints; i++)
		if (m->cf->entrypoints[i].kill_grace_ms > max)
			max = m->cf->entrypoints[i].kill_grace_ms;
	return max;
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
		sdnotify_send("STOPPING=1");
	m->shutdown = level;
	log_info("shutdown: %s live=%u", shutdown_name(level), slots_live(m));
	wake_stop(m);
	breaker_stop(m);
	slots_stop(m, level);
	switch (level) {
	case SHUTDOWN_GRACEFUL:
		timeout_ms = m->cf->shutdown_timeout_ms;
		break;
	case SHUTDOWN_FAST:
		timeout_ms = m->cf->fast_shutdown_timeout_ms;
		break;
	case SHUTDOWN_IMMEDIATE:
		/* Handler groups of the killed workers get their kill_grace. */
		timeout_ms = MASTER_IMMEDIATE_TIMEOUT_MS + master_max_grace(m);
		break;
	case SHUTDOWN_NONE:
		break;
	}
	ev_timer_stop(m->loop, &m->shutdown_timer);
	ev_timer_set(&m->shutdown_timer, (double)timeout_ms / 1000.0, 0.0);
	ev_timer_start(m->loop, &m->shutdown_timer);
	master_status(m);
}

/* TTIN (+1) and TTOU (-1): one worker more or fewer, within the bounds. */
static void
master_scale(struct master *m, int by)
{
	if (m->shutdown != SHUTDOWN_NONE)
		return;
	if (by > 0 && m->nworkers >= (unsigned)m->cf->max_workers) {
		log_warnx("scale up refused: at max_workers=%u",
			  (unsigned)m->cf->max_workers);
		return;
	}
	if (by < 0 &&
	    (m->nworkers <= (unsigned)m->cf->min_workers || m->nworkers == 0)) {
		log_warnx("scale down refused: at min_workers=%u",
			  (unsigned)m->cf->min_workers);
		return;
	}
	if (by > 0) {
		m->nworkers++;
		log_info("scale up: workers=%u", m->nworkers);
	} else {
		m->nworkers--;
		log_info("scale down: workers=%u", m->nworkers);
	}
	slots_reconcile(m);
}

void
master_signal(struct master *m, int sig)
{
	if (sig != SIGCHLD)
		log_info("received %s", signal_name(sig));
	switch (sig) {
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
		master_scale(m, 1);
		break;
	case SIGTTOU:
		master_scale(m, -1);
		break;
	case SIGUSR1:
		if (log_reopen() == -1)
			log_warn("log reopen failed");
		else
			log_info("log reopened");
		break;
	case SIGCHLD:
		slots_reap(m);
		break;
	default:
		break;
	}
}

/*
 * LISTEN succeeded: after a reconnect every idle worker looks for work, since
 * notifications sent meanwhile are lost. The first time, the master is ready.
 */
static void
master_on_listening(struct master *m, bool reconnect)
{
	if (reconnect)
		wake_all(m, "reconnect");
	wake_query_due(m, false);
	if (!m->ready_sent && m->shutdown == SHUTDOWN_NONE) {
		m->ready_sent = true;
		sdnotify_send("READY=1");
		master_status(m);
	}
}

/* The maintenance connection is (again) up: what waited for it runs now. */
static void
master_on_maint_ready(struct master *m)
{
	recovery_retry(m);
	payload_sync(m, NULL);
	wake_query_due(m, false);
}

int
master_run(struct master *m)
{
	m->loop = ev_loop_new(EVFLAG_AUTO);
	if (m->loop == NULL) {
		log_error("cannot create the event loop");
		return 1;
	}
	ev_init(&m->shutdown_timer, master_shutdown_timer_cb);
	m->shutdown_timer.data = m;
	ev_prepare_init(&m->exit_check, master_exit_check_cb);
	m->exit_check.data = m;
	ev_prepare_start(m->loop, &m->exit_check);
	signals_start(m);
	orphans_init(m);
	listener_init(m, master_on_listening);
	maint_init(m, master_on_maint_ready);
	wake_init(m);
	breaker_init(m);
	slots_init(m);
	heartbeat_start(m);
	wake_start(m);
	title_set("master");
	log_info("started version=%s workers=%u config=%s%s", PGQ_VERSION,
		 m->nworkers, m->conf_path, m->drain ? " drain" : "");
	listener_start(m);
	maint_start(m);
	scheduler_start(m);
	slots_reconcile(m);
	ev_run(m->loop, 0);

	log_info("stopped exit=%d", m->exit_code);
	heartbeat_stop(m);
	wake_stop(m);
	listener_stop(m);
	maint_stop(m);
	scheduler_stop(m);
	orphans_free(m);
	recovery_free(m);
	signals_stop(m);
	ev_timer_stop(m->loop, &m->shutdown_timer);
	ev_prepare_stop(m->loop, &m->exit_check);
	slots_free(m);
	breaker_free(m);
	ev_loop_destroy(m->loop);
	m->loop = NULL;
	return m->exit_code;
}
