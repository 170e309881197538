/*
 * The slot table: forks a worker per wanted slot, reads what each one says on
 * its channel, reaps the dead, recovers their jobs and respawns them with a
 * per-slot exponential backoff, behind the crash breaker (breaker.c). A
 * worker that exits 78 has a configuration it cannot run and is not
 * respawned. Every change of a slot's state goes through slot_set_state.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/log.h"
#include "common/title.h"
#include "master/master_int.h"
#include "worker/worker.h"

static void slot_chan_cb(struct ev_loop *loop, ev_io *w, int revents);

const char *
slot_state_name(enum slot_state st)
{
	static const char *const names[] = {
		"empty", "waiting",  "starting",      "idle",
		"busy",	 "stopping", "config-failed", "held"};

	return names[st];
}

void
slot_set_state(struct slot *s, enum slot_state st, const char *why)
{
	if (s->state == st)
		return;
	log_debug("worker %u: state %s -> %s why=%s", s->index,
		  slot_state_name(s->state), slot_state_name(st), why);
	/* Only a waiting slot has its respawn timer running. */
	if (s->state == SLOT_WAITING)
		ev_timer_stop(s->m->loop, &s->respawn_timer);
	s->state = st;
}

void
slot_kill(struct slot *s, const char *why)
{
	slot_set_state(s, SLOT_STOPPING, why);
	if (kill(s->pid, SIGKILL) == -1 && errno != ESRCH)
		log_warn("worker %u: kill failed", s->index);
}

unsigned
slots_live(const struct master *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < m->nslots; i++)
		n += m->slots[i]->pid != 0;
	return n;
}

static void
respawn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct slot *s = w->data;

	(void)loop;
	(void)revents;
	if (s->state != SLOT_WAITING)
		return;
	if (breaker_holds(s->m)) {
		slot_set_state(s, SLOT_HELD, "crash breaker open");
		return;
	}
	slot_start(s);
}

void
slots_ensure(struct master *m, unsigned n)
{
	if (n <= m->nslots)
		return;
	m->slots = xrealloc(m->slots, n, sizeof(*m->slots));
	for (unsigned i = m->nslots; i < n; i++) {
		struct slot *s = xcalloc(1, sizeof(*s));

		s->m = m;
		s->index = i;
		s->chan_fd = -1;
		ev_init(&s->respawn_timer, respawn_timer_cb);
		s->respawn_timer.data = s;
		ev_init(&s->chan_io, slot_chan_cb);
		s->chan_io.data = s;
		jobctl_slot_init(s);
		m->slots[i] = s;
	}
	m->nslots = n;
}

void
slots_init(struct master *m)
{
	slots_ensure(m, m->nworkers);
}

void
slots_free(struct master *m)
{
	for (unsigned i = 0; i < m->nslots; i++) {
		struct slot *s = m->slots[i];

		ev_timer_stop(m->loop, &s->respawn_timer);
		ev_io_stop(m->loop, &s->chan_io);
		jobctl_slot_stop(s);
		if (s->chan_fd != -1)
			close(s->chan_fd);
		free(s);
	}
	free(m->slots);
	m->slots = NULL;
	m->nslots = 0;
}

/*
 * The worker closes every descriptor but its channel and stdio, so a log
 * file or syslog socket of the master's would leave its log pointing at a
 * number the worker may reuse for its database socket. Hand it the log as
 * its stderr instead, and let syslog reconnect on first use.
 */
static void
slot_child_log(const struct conf *cf)
{
	int fd;

	switch (cf->log_target) {
	case LOG_TARGET_FILE:
		fd = open(cf->log_file,
			  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd == -1)
			break;
		if (fd != STDERR_FILENO) {
			(void)dup2(fd, STDERR_FILENO);
			close(fd);
		}
		if (log_set_target(LOG_TARGET_STDERR, NULL) == 0)
			log_set_timestamps(true);
		break;
	case LOG_TARGET_SYSLOG:
		closelog();
		break;
	case LOG_TARGET_STDERR:
		break;
	}
}

/* Runs in the forked child: never returns. */
static void PGQ_NORETURN
slot_child(struct slot *s, int chan_fd, int master_fd)
{
	struct master *m = s->m;
	int status;

	close(master_fd);
	/* The master's sessions must survive this process. */
	dbconn_close_in_child(&m->ls.c);
	dbconn_close_in_child(&m->maint.c);
	/*
	 * libev keeps one process-wide table of which loop owns a signal: take
	 * the master's watchers out of it, or the worker's own loop may not
	 * watch those signals. Then reset every handler (libev's write into
	 * the master's pipe).
	 */
	signals_stop(m);
	sig_reset(NULL, 0);
	slot_child_log(m->cf);
	title_set("worker %u", s->index);
	status = worker_main(m->cf, s->index, chan_fd);
	_exit(status & 0xff);
}

void
slot_start(struct slot *s)
{
	struct master *m = s->m;
	sigset_t all, old;
	int fds[2];
	pid_t pid;

	ev_timer_stop(m->loop, &s->respawn_timer);
	if (chan_pair(fds) == -1) {
		log_warn("worker %u: cannot create its channel", s->index);
		goto retry;
	}
	/*
	 * Block every signal across fork so the child cannot run one of the
	 * master's handlers before it has reset them.
	 */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		slot_child(s, fds[1], fds[0]);
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(fds[1]);
	if (pid == -1) {
		log_warn("worker %u: fork failed", s->index);
		close(fds[0]);
		goto retry;
	}
	s->pid = pid;
	s->generation++;
	slot_set_state(s, SLOT_STARTING, "forked");
	s->queue_manager_id[0] = '\0';
	s->backend_pid = 0;
	s->job_id = 0;
	s->job_entrypoint[0] = '\0';
	s->handler_pgid = 0;
	s->started_ms = clock_mono_ms();
	s->stop_sent = false;
	s->replace = false;
	s->outq_len = 0;
	jobctl_slot_reset(s);
	s->chan_fd = fds[0];
	ev_io_set(&s->chan_io, s->chan_fd, EV_READ);
	ev_io_start(m->loop, &s->chan_io);
	log_info("worker %u: started pid=%ld generation=%u", s->index,
		 (long)pid, s->generation);
	master_status(m);
	return;
retry:
	slot_set_state(s, SLOT_WAITING, "cannot fork");
	ev_timer_set(&s->respawn_timer, 1.0, 0.0);
	ev_timer_start(m->loop, &s->respawn_timer);
}

/* Flushes queued messages; keeps EV_WRITE interest while any remain. */
static void
slot_flush(struct slot *s)
{
	struct master *m = s->m;
	size_t sent = 0;
	int events;

	while (sent < s->outq_len) {
		if (chan_send(s->chan_fd, &s->outq[sent]) == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* The worker is gone; SIGCHLD will follow. */
				log_debug("worker %u: channel send failed: %s",
					  s->index, strerror(errno));
				sent = s->outq_len;
			}
			break;
		}
		sent++;
	}
	memmove(s->outq, s->outq + sent,
		(s->outq_len - sent) * sizeof(s->outq[0]));
	s->outq_len -= sent;
	events = EV_READ | (s->outq_len > 0 ? EV_WRITE : 0);
	if ((s->chan_io.events & (EV_READ | EV_WRITE)) != events) {
		ev_io_stop(m->loop, &s->chan_io);
		ev_io_set(&s->chan_io, s->chan_fd, events);
		ev_io_start(m->loop, &s->chan_io);
	}
}

void
slot_send(struct slot *s, enum chan_type type, int64_t a)
{
	struct chan_msg msg;

	if (s->pid == 0 || s->chan_fd == -1)
		return;
	memset(&msg, 0, sizeof(msg));
	msg.type = type;
	msg.a = a;
	if (type == CHAN_SHUTDOWN || type == CHAN_FAST)
		s->stop_sent = true;
	/* Wake-ups are idempotent: one waiting in the queue is enough. */
	for (size_t i = 0; type == CHAN_WAKE && i < s->outq_len; i++) {
		if (s->outq[i].type == CHAN_WAKE)
			return;
	}
	if (s->outq_len == SLOT_OUTQ_MAX) {
		if (type == CHAN_WAKE)
			return;
		/*
		 * A worker that reads nothing while eight control messages
		 * wait is stuck; control messages must not be lost, so the
		 * escalation path (SIGKILL) takes over.
		 */
		log_warnx("worker %u: channel full, killing it pid=%ld",
			  s->index, (long)s->pid);
		kill(s->pid, SIGKILL);
		return;
	}
	s->outq[s->outq_len++] = msg;
	log_debug("worker %u: send %s a=%lld", s->index, chan_type_name(type),
		  (long long)a);
	slot_flush(s);
}

/* Handles one message; exiting = the worker is already reaped. */
static void
slot_handle(struct slot *s, const struct chan_msg *msg, bool exiting)
{
	struct master *m = s->m;

	switch (msg->type) {
	case CHAN_HELLO:
		/* chan_decode checked the NUL; a UUID is 36 characters. */
		memcpy(s->queue_manager_id, msg->uuid,
		       sizeof(s->queue_manager_id) - 1);
		s->queue_manager_id[sizeof(s->queue_manager_id) - 1] = '\0';
		s->backend_pid = (long)msg->a;
		log_info("worker %u: ready pid=%ld queue_manager_id=%s "
			 "backend_pid=%ld",
			 s->index, (long)s->pid, s->queue_manager_id,
			 s->backend_pid);
		if (exiting || s->state != SLOT_STARTING)
			break;
		/* The queue may hold work from before this worker existed. */
		if (m->shutdown == SHUTDOWN_NONE) {
			slot_send(s, CHAN_WAKE, 0);
			slot_set_state(s, SLOT_BUSY, "ready, woken");
		} else {
			slot_set_state(s, SLOT_IDLE, "ready");
		}
		master_status(m);
		break;
	case CHAN_JOB_START:
		s->job_id = msg->a;
		snprintf(s->job_entrypoint, sizeof(s->job_entrypoint), "%s",
			 msg->text);
		s->job_started_ms = clock_mono_ms();
		if (!exiting && s->state != SLOT_STOPPING)
			slot_set_state(s, SLOT_BUSY, "running a job");
		log_debug("worker %u: job start job=%lld entrypoint=%s",
			  s->index, (long long)s->job_id, s->job_entrypoint);
		if (!exiting)
			jobctl_job_start(s, msg);
		break;
	case CHAN_JOB_END:
		log_debug("worker %u: job end job=%lld outcome=%lld", s->index,
			  (long long)msg->a, (long long)msg->b);
		s->job_id = 0;
		s->job_entrypoint[0] = '\0';
		jobctl_job_end(s);
		break;
	case CHAN_RECYCLE:
		jobctl_recycle(s, msg);
		break;
	case CHAN_WAKE_MORE:
		if (!exiting)
			wake_more(m);
		break;
	case CHAN_HANDLER_GROUP:
		s->handler_pgid = (pid_t)msg->a;
		s->handler_grace_ms = msg->b > 0 ? (uint64_t)msg->b : 0;
		log_debug("worker %u: handler process group=%lld", s->index,
			  (long long)msg->a);
		break;
	case CHAN_IDLE:
		s->job_id = 0;
		s->job_entrypoint[0] = '\0';
		jobctl_job_end(s);
		if (exiting || s->state == SLOT_STOPPING)
			break;
		slot_set_state(s, SLOT_IDLE, "nothing left to claim");
		log_debug("worker %u: idle", s->index);
		wake_on_idle(m, s);
		master_status(m);
		break;
	default:
		log_warnx("worker %u: unexpected message type=%s", s->index,
			  chan_type_name(msg->type));
		break;
	}
}

/* Reads every waiting message; false when the channel is closed. */
static bool
slot_read(struct slot *s, bool exiting)
{
	struct chan_msg msg;

	for (;;) {
		int rc = chan_recv(s->chan_fd, &msg);

		if (rc == 1) {
			slot_handle(s, &msg, exiting);
			/* A handler may have killed or replaced the slot. */
			if (s->chan_fd == -1)
				return false;
			continue;
		}
		if (rc == 0)
			return false;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return true;
		if (errno == EBADMSG) {
			log_warnx("worker %u: malformed channel record",
				  s->index);
			continue;
		}
		if (errno != ECONNRESET)
			log_warn("worker %u: channel read failed", s->index);
		return false;
	}
}

void
slot_poll(struct slot *s)
{
	if (s->chan_fd != -1 && !slot_read(s, false) && s->chan_fd != -1)
		ev_io_stop(s->m->loop, &s->chan_io);
}

bool
slot_has_input(struct slot *s)
{
	char byte;

	/* A stopped watcher reads nothing more: nothing to wait for. */
	if (s->chan_fd == -1 || !ev_is_active(&s->chan_io))
		return false;
	return recv(s->chan_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void
slot_chan_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct slot *s = w->data;

	if (revents & EV_WRITE)
		slot_flush(s);
	if (!(revents & EV_READ))
		return;
	if (!slot_read(s, false)) {
		/* The worker closed its end: its exit follows; wait for it. */
		ev_io_stop(loop, &s->chan_io);
	}
	jobctl_cancel_resume(s, false);
}

static void
slot_describe_exit(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %s%s",
			 signal_name(WTERMSIG(st)),
			 WCOREDUMP(st) ? " (core dumped)" : "");
	else
		snprintf(buf, len, "wait status %d", st);
}

void
slots_forgive(struct master *m)
{
	breaker_reset(m);
	for (unsigned i = 0; i < m->nslots; i++) {
		struct slot *s = m->slots[i];

		s->backoff_ms = 0;
		if (s->state == SLOT_CONFIG_FAILED || s->state == SLOT_HELD)
			slot_set_state(s, SLOT_EMPTY, "reload");
	}
}

struct slot *
slots_first_held(struct master *m)
{
	for (unsigned i = 0; i < m->nslots && i < m->nworkers; i++)
		if (m->slots[i]->state == SLOT_HELD)
			return m->slots[i];
	return NULL;
}

void
slots_release_held(struct master *m)
{
	struct slot *s;

	while (m->shutdown == SHUTDOWN_NONE &&
	       (s = slots_first_held(m)) != NULL)
		slot_start(s);
}

/* Master exits 78 when every worker of a fresh start exited 78. */
static void
slots_check_all_config_failed(struct master *m)
{
	if (m->nworkers == 0)
		return;
	for (unsigned i = 0; i < m->nworkers; i++) {
		const struct slot *s = m->slots[i];

		if (s->state != SLOT_CONFIG_FAILED || s->generation != 1)
			return;
	}
	log_error("every worker exited with a configuration error (78): "
		  "stopping");
	m->exit_code = MASTER_EX_CONFIG;
	master_shutdown(m, SHUTDOWN_GRACEFUL);
}

static void
slot_schedule_respawn(struct slot *s, uint64_t uptime_ms)
{
	struct master *m = s->m;
	uint64_t delay;

	/* A worker that ran long enough was healthy: start over. */
	if (uptime_ms >= m->cf->healthy_uptime_ms)
		s->backoff_ms = 0;
	delay = s->backoff_ms;
	if (s->backoff_ms == 0)
		s->backoff_ms = m->cf->respawn_backoff_ms;
	else if (s->backoff_ms < m->cf->respawn_backoff_max_ms / 2)
		s->backoff_ms *= 2;
	else
		s->backoff_ms = m->cf->respawn_backoff_max_ms;
	if (s->backoff_ms > m->cf->respawn_backoff_max_ms)
		s->backoff_ms = m->cf->respawn_backoff_max_ms;
	if (delay == 0) {
		slot_start(s);
		return;
	}
	log_info("worker %u: respawn in %llums", s->index,
		 (unsigned long long)delay);
	slot_set_state(s, SLOT_WAITING, "respawn backoff");
	ev_timer_set(&s->respawn_timer, (double)delay / 1000.0, 0.0);
	ev_timer_start(m->loop, &s->respawn_timer);
}

/* Starts the next rolling replacement when none is under way. */
static void
slots_replace_next(struct master *m)
{
	for (unsigned i = 0; i < m->nslots; i++) {
		const struct slot *s = m->slots[i];

		if (s->replace && s->pid != 0 && s->stop_sent)
			return;
	}
	for (unsigned i = 0; i < m->nslots; i++) {
		struct slot *s = m->slots[i];

		if (s->replace && s->pid != 0) {
			log_info("worker %u: replacing for the new "
				 "configuration pid=%ld",
				 s->index, (long)s->pid);
			slot_set_state(s, SLOT_STOPPING, "replaced");
			slot_send(s, CHAN_SHUTDOWN, 0);
			return;
		}
	}
	if (m->rolling)
		log_info("reload: every worker runs the new configuration");
	m->rolling = false;
}

void
slots_replace_all(struct master *m)
{
	for (unsigned i = 0; i < m->nslots; i++) {
		struct slot *s = m->slots[i];

		if (s->pid != 0 && !s->stop_sent && i < m->nworkers)
			s->replace = true;
	}
	m->rolling = true;
	slots_replace_next(m);
}

static void
slot_exited(struct slot *s, int st)
{
	struct master *m = s->m;
	char cause[128];
	uint64_t uptime = clock_mono_ms() - s->started_ms;
	bool boot = uptime < s->m->cf->healthy_uptime_ms;
	bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	bool expected = s->stop_sent;
	bool replace = s->replace;
	bool recycled, by_master;
	long pid = (long)s->pid;

	/* Whatever it said before dying (its hello, its job) counts. */
	if (s->chan_fd != -1) {
		(void)slot_read(s, true);
		ev_io_stop(m->loop, &s->chan_io);
		close(s->chan_fd);
		s->chan_fd = -1;
	}
	/* A cancel that waited for those messages: still its job? */
	jobctl_cancel_resume(s, true);
	slot_describe_exit(st, cause, sizeof(cause));
	/* Killed by us (timeout, cancel) or recycled: not a crash. */
	recycled = s->recycling && clean;
	by_master = jobctl_exited(s, pid);
	jobctl_slot_reset(s);
	/* When by_master, jobctl_exited said why and recovered its jobs. */
	if (by_master)
		log_debug("worker %u: exit %s", s->index, cause);
	else if (clean && (expected || recycled))
		log_info("worker %u: exited pid=%ld uptime=%llums", s->index,
			 pid, (unsigned long long)uptime);
	else if (s->job_id != 0)
		log_warnx("worker %u: died: %s pid=%ld job=%lld entrypoint=%s "
			  "uptime=%llums",
			  s->index, cause, pid, (long long)s->job_id,
			  s->job_entrypoint, (unsigned long long)uptime);
	else
		log_warnx("worker %u: died: %s pid=%ld uptime=%llums", s->index,
			  cause, pid, (unsigned long long)uptime);
	/*
	 * Its command may still run: the job is recovered once that process
	 * group is gone, so the retry never runs beside it.
	 */
	if (s->handler_pgid != 0)
		orphans_add(m, s,
			    !by_master && s->queue_manager_id[0] != '\0'
				    ? cause
				    : NULL);
	else if (!by_master && s->queue_manager_id[0] != '\0')
		recovery_run(m, s->queue_manager_id, cause, s->index, pid);
	s->handler_pgid = 0;
	s->pid = 0;
	s->queue_manager_id[0] = '\0';
	s->backend_pid = 0;
	s->job_id = 0;
	s->job_entrypoint[0] = '\0';
	s->stop_sent = false;
	s->replace = false;
	s->outq_len = 0;
	slot_set_state(s, SLOT_EMPTY, "exited");

	if (m->shutdown != SHUTDOWN_NONE)
		goto out;
	if (s->index >= m->nworkers) {
		log_info("worker %u: retired", s->index);
		goto out;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == MASTER_EX_CONFIG) {
		log_error("worker %u: exited with status 78 (configuration "
			  "error): not respawned",
			  s->index);
		slot_set_state(s, SLOT_CONFIG_FAILED, "exit status 78");
		breaker_exited(m, s, boot);
		slots_check_all_config_failed(m);
		goto out;
	}
	if ((expected && clean) || recycled || by_master) {
		/* A replacement (reload), a slot wanted again, a recycled
		 * worker or one we killed: start now. */
		slot_start(s);
		goto out;
	}
	/*
	 * Only a worker that died before healthy_uptime counts towards the
	 * breaker, and only its slot waits while the breaker is open: a
	 * healthy worker's slot is respawned with its own backoff.
	 */
	breaker_exited(m, s, !clean && boot);
	if (boot && breaker_holds(m)) {
		slot_set_state(s, SLOT_HELD, "crash breaker open");
		goto out;
	}
	slot_schedule_respawn(s, uptime);
out:
	if (replace || m->rolling)
		slots_replace_next(m);
	/* Its jobs are back in the queue or on their way. */
	master_status(m);
}

void
slots_reap(struct master *m)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct slot *s = NULL;

		for (unsigned i = 0; i < m->nslots; i++) {
			if (m->slots[i]->pid == pid) {
				s = m->slots[i];
				break;
			}
		}
		if (s == NULL) {
			log_debug("reaped an unknown child pid=%ld", (long)pid);
			continue;
		}
		slot_exited(s, st);
	}
	if (pid == -1 && errno != ECHILD)
		log_warn("waitpid failed");
	/* Reaped orphans may have been the last of a handler's group. */
	if (m->orphans != NULL)
		orphans_check(m);
}

void
slots_reconcile(struct master *m)
{
	if (m->shutdown != SHUTDOWN_NONE)
		return;
	slots_ensure(m, m->nworkers);
	for (unsigned i = 0; i < m->nslots; i++) {
		struct slot *s = m->slots[i];

		if (i < m->nworkers) {
			if (s->state == SLOT_EMPTY)
				slot_start(s);
			continue;
		}
		switch (s->state) {
		case SLOT_WAITING:
		case SLOT_CONFIG_FAILED:
		case SLOT_HELD:
			slot_set_state(s, SLOT_EMPTY, "not wanted");
			break;
		case SLOT_STARTING:
		case SLOT_IDLE:
		case SLOT_BUSY:
			/* Retires after its current job. */
			log_info("worker %u: retiring pid=%ld job=%lld",
				 s->index, (long)s->pid, (long long)s->job_id);
			slot_set_state(s, SLOT_STOPPING, "retiring");
			s->replace = false;
			slot_send(s, CHAN_SHUTDOWN, 0);
			break;
		case SLOT_EMPTY:
		case SLOT_STOPPING:
			break;
		}
	}
	master_status(m);
}

void
slots_stop(struct master *m, enum shutdown_level level)
{
	for (unsigned i = 0; i < m->nslots; i++) {
		struct slot *s = m->slots[i];

		if (s->state == SLOT_WAITING ||
		    s->state == SLOT_CONFIG_FAILED || s->state == SLOT_HELD)
			slot_set_state(s, SLOT_EMPTY, "shutdown");
		if (s->pid == 0)
			continue;
		slot_set_state(s, SLOT_STOPPING, "shutdown");
		if (level == SHUTDOWN_GRACEFUL)
			slot_send(s, CHAN_SHUTDOWN, 0);
		else if (level == SHUTDOWN_FAST)
			slot_send(s, CHAN_FAST, 0);
	}
	if (level != SHUTDOWN_IMMEDIATE)
		return;
	for (unsigned i = 0; i < m->nslots; i++) {
		struct slot *s = m->slots[i];

		if (s->pid == 0)
			continue;
		log_info("worker %u: killing pid=%ld job=%lld", s->index,
			 (long)s->pid, (long long)s->job_id);
		slot_kill(s, "immediate shutdown");
	}
}
