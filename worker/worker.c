/*
 * The worker process: after the master's fork it sheds everything inherited
 * (descriptors, signal state, the master's loop), sets up its handlers, opens
 * its own connection and runs the consumer engine, woken and stopped by the
 * master over its channel and reporting every job back to it. It retires by
 * itself after max_jobs_per_worker jobs or past max_worker_rss.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/channel.h"
#include "common/common.h"
#include "common/log.h"
#include "conf/conf.h"
#include "driver/driver.h"
#include "common/title.h"
#include "worker/worker.h"
#include "worker/worker_int.h"

/* Reconnect backoff while the database cannot be reached at start. */
#define WORKER_BACKOFF_BASE_MS 100
#define WORKER_BACKOFF_CAP_MS  10000

struct worker {
	const struct conf *cf;
	unsigned slot;
	int chan_fd;
	bool chan_dead; /* end of file: the master is gone */
	struct ev_loop *loop;
	ev_io chan_w;
	ev_io chan_out_w;
	ev_signal term_w;
	ev_timer connect_w;
	struct driver_backoff backoff;
	struct driver_trouble trouble; /* what connecting waits for */
	struct handler **handlers;     /* per cf entrypoint until added */
	struct pgq *q;
	struct pgq_consumer *c;
	char qmid[UUID_STR_LEN];
	bool wake_pending; /* a wake arrived before the consumer existed */
	bool stopping;
	bool recycling;	   /* CHAN_RECYCLE sent: exiting after its jobs */
	uint64_t max_jobs; /* max_jobs_per_worker plus this one's jitter */
	bool job_reported; /* the running job's start went to the master */
	/* messages the channel could not take yet */
	struct chan_msg *out;
	size_t nout, capout;
};

/* "pgq-master: worker 3 busy job=42 send_email" in ps. */
static void
worker_title(const struct worker *w, const char *state)
{
	title_set("worker %u %s", w->slot, state);
}

/* ---- the channel ---- */

static void
worker_chan_flush(struct worker *w)
{
	size_t i = 0;

	for (; i < w->nout; i++) {
		if (chan_send(w->chan_fd, &w->out[i]) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			log_warn("cannot write to the master channel");
			w->nout = 0;
			ev_io_stop(w->loop, &w->chan_out_w);
			return;
		}
	}
	if (i > 0) {
		memmove(w->out, w->out + i, (w->nout - i) * sizeof(*w->out));
		w->nout -= i;
	}
	if (w->nout == 0)
		ev_io_stop(w->loop, &w->chan_out_w);
	else
		ev_io_start(w->loop, &w->chan_out_w);
}

static void
worker_send(struct worker *w, enum chan_type type, int64_t a, int64_t b,
	    const char *text)
{
	struct chan_msg m;

	if (w->chan_dead)
		return;
	memset(&m, 0, sizeof(m));
	m.type = (uint32_t)type;
	m.a = a;
	m.b = b;
	snprintf(m.uuid, sizeof(m.uuid), "%s", w->qmid);
	if (text != NULL)
		snprintf(m.text, sizeof(m.text), "%s", text);
	/* Keep the order: nothing overtakes a message already waiting. */
	if (w->nout == 0 && chan_send(w->chan_fd, &m) == 0)
		return;
	if (w->nout == 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		log_warn("cannot write to the master channel: message=%s",
			 chan_type_name(m.type));
		return;
	}
	if (w->nout == w->capout) {
		w->capout = w->capout == 0 ? 8 : 2 * w->capout;
		w->out = xrealloc(w->out, w->capout, sizeof(*w->out));
	}
	w->out[w->nout++] = m;
	ev_io_start(w->loop, &w->chan_out_w);
}

static void
worker_chan_out_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	worker_chan_flush(io->data);
}

static void
worker_hello(struct worker *w)
{
	worker_send(w, CHAN_HELLO, PQbackendPID(pgq_conn(w->q)), 0, NULL);
}

/* Stops: graceful lets the running job finish, fast aborts it. */
static void
worker_stop(struct worker *w, bool fast)
{
	w->stopping = true;
	if (w->c != NULL)
		consumer_shutdown(w->c, fast);
	else
		ev_break(w->loop, EVBREAK_ALL); /* nothing held yet */
}

static void
worker_message(struct worker *w, const struct chan_msg *m)
{
	switch ((enum chan_type)m->type) {
	case CHAN_WAKE:
		if (w->stopping)
			break;
		worker_title(w, "running");
		if (w->c != NULL)
			consumer_wake(w->c);
		else
			w->wake_pending = true;
		break;
	case CHAN_SHUTDOWN:
		log_debug("shutdown asked: finishing the current job");
		worker_stop(w, false);
		break;
	case CHAN_FAST:
		log_debug("fast shutdown asked: stopping the current job");
		worker_stop(w, true);
		break;
	case CHAN_CANCEL:
		if (w->c != NULL)
			consumer_cancel(w->c, m->a);
		break;
	default:
		log_warnx("unexpected message from the master: %s",
			  chan_type_name(m->type));
		break;
	}
}

/* Handles every message waiting on the channel. */
static void
worker_chan_drain(struct worker *w)
{
	struct ev_loop *loop = w->loop;
	ev_io *io = &w->chan_w;
	struct chan_msg m;

	if (w->chan_dead)
		return;
	for (;;) {
		int r = chan_recv(w->chan_fd, &m);

		if (r == 1) {
			worker_message(w, &m);
			continue;
		}
		if (r == 0) {
			log_info("master gone: finishing the current job, then "
				 "exiting");
			ev_io_stop(loop, io);
			ev_io_stop(loop, &w->chan_out_w);
			w->chan_dead = true;
			w->nout = 0;
			worker_stop(w, false);
			return;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (errno == EBADMSG) {
			log_warnx("malformed message from the master: ignored");
			continue;
		}
		log_warn("cannot read the master channel");
		return;
	}
}

static void
worker_chan_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	worker_chan_drain(io->data);
}

static void
worker_term_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	(void)loop;
	(void)revents;
	log_info("SIGTERM: finishing the current job, then exiting");
	worker_stop(s->data, false);
}

/* ---- the engine's hooks ---- */

/*
 * The builtins that end inside their start call (noop, fail, echo): the
 * master could do nothing with their start and end (there is no timeout to
 * enforce and nothing to cancel or kill in between), so they are not
 * reported. That saves two channel messages and two title updates per job
 * where they would cost the most: a drain of no-op jobs.
 */
static bool
worker_job_instant(const struct conf_entrypoint *ep)
{
	return ep != NULL && ep->kind == CONF_HANDLER_BUILTIN &&
	       ep->builtin != CONF_BUILTIN_SLEEP;
}

static void
hook_job_start(void *arg, const struct pgq_job *job, uint64_t timeout_ms)
{
	struct worker *w = arg;
	const struct conf_entrypoint *ep =
		conf_entrypoint_find(w->cf, job->entrypoint);
	uint64_t master_timeout_ms = 0;
	char detail[128];

	w->job_reported = !worker_job_instant(ep);
	if (!w->job_reported)
		return;
	/*
	 * Other handlers stop at their own timeout (timeout_ms); a module's
	 * call cannot be interrupted, so the master enforces it by killing
	 * this process.
	 */
	(void)timeout_ms;
	if (ep != NULL && ep->kind == CONF_HANDLER_MODULE)
		master_timeout_ms = ep->timeout_ms;
	worker_send(w, CHAN_JOB_START, job->id, (int64_t)master_timeout_ms,
		    job->entrypoint);
	snprintf(detail, sizeof(detail), "busy job=%lld %s", (long long)job->id,
		 job->entrypoint);
	worker_title(w, detail);
}

/* Resident set size in KiB from /proc/self/statm; 0 when unknown. */
static uint64_t
worker_rss_kib(void)
{
	char buf[128];
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	ssize_t n;
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2 || page <= 0)
		return 0;
	return resident * (unsigned long long)page / 1024;
}

/* Claims no more, finishes what it holds, tells the master, exits 0. */
static void
worker_recycle(struct worker *w, const char *why, uint64_t rss_kib)
{
	unsigned long long jobs = consumer_processed(w->c);

	if (w->recycling || w->stopping)
		return;
	w->recycling = true;
	log_info("recycling: %s jobs=%llu rss=%lluKiB", why, jobs,
		 (unsigned long long)rss_kib);
	worker_send(w, CHAN_RECYCLE, (int64_t)jobs, (int64_t)rss_kib, NULL);
	consumer_retire(w->c);
}

static void
hook_job_end(void *arg, const struct pgq_job *job, enum pgq_outcome outcome)
{
	struct worker *w = arg;
	uint64_t rss_kib = 0;

	if (w->job_reported) {
		worker_send(w, CHAN_JOB_END, job->id, (int64_t)outcome, NULL);
		worker_title(w, "running");
	}
	if (w->cf->max_worker_rss > 0)
		rss_kib = worker_rss_kib();
	if (w->max_jobs > 0 && consumer_processed(w->c) >= w->max_jobs)
		worker_recycle(w, "max_jobs_per_worker reached", rss_kib);
	else if (w->cf->max_worker_rss > 0 &&
		 rss_kib * 1024 > w->cf->max_worker_rss)
		worker_recycle(w, "max_worker_rss exceeded", rss_kib);
}

/* A command's process group: the master ends it if we die first. */
static void
worker_handler_group(void *arg, pid_t pgid, uint64_t kill_grace_ms)
{
	worker_send(arg, CHAN_HANDLER_GROUP, (int64_t)pgid,
		    (int64_t)kill_grace_ms, NULL);
}

static void
hook_found_work(void *arg)
{
	worker_send(arg, CHAN_WAKE_MORE, 0, 0, NULL);
}

static void
hook_idle(void *arg)
{
	struct worker *w = arg;

	worker_send(w, CHAN_IDLE, 0, 0, NULL);
	worker_title(w, "idle");
}

static void
hook_stopped(void *arg)
{
	struct worker *w = arg;

	ev_break(w->loop, EVBREAK_ALL);
}

static void
hook_reconnected(void *arg)
{
	/* The master shows the backend pid: tell it the new one. */
	worker_hello(arg);
}

static void
hook_poll(void *arg)
{
	/* A module asks pgq_job_canceled(): a CHAN_CANCEL may be waiting. */
	worker_chan_drain(arg);
}

/* ---- start-up ---- */

static const char *
worker_builtin_name(enum conf_builtin b)
{
	switch (b) {
	case CONF_BUILTIN_NOOP:
		return "noop";
	case CONF_BUILTIN_SLEEP:
		return "sleep";
	case CONF_BUILTIN_FAIL:
		return "fail";
	case CONF_BUILTIN_ECHO:
		return "echo";
	}
	return "?";
}

/* Builds every entrypoint's handler; -1 (logged) on a configuration error. */
static int
worker_handlers(struct worker *w)
{
	const struct conf *cf = w->cf;
	char errbuf[1024];

	w->handlers = xcalloc(cf->nentrypoints, sizeof(*w->handlers));
	for (size_t i = 0; i < cf->nentrypoints; i++) {
		const struct conf_entrypoint *ep = &cf->entrypoints[i];
		struct handler *h = NULL;

		switch (ep->kind) {
		case CONF_HANDLER_COMMAND: {
			struct command_isolation iso = {
				.rlimit_as = ep->rlimit_as,
				/* Whole seconds, never below what was asked. */
				.rlimit_cpu_s =
					(ep->rlimit_cpu_ms + 999) / 1000,
				.rlimit_nofile = ep->rlimit_nofile,
				.user = ep->user,
				.group = ep->group,
				.pass_env = ep->pass_env,
			};

			h = handler_command_new((const char *const *)ep->argv,
						ep->timeout_ms,
						ep->kill_grace_ms);
			handler_command_on_group(h, worker_handler_group, w);
			if (handler_command_isolate(h, &iso, errbuf,
						    sizeof(errbuf)) == -1) {
				log_error("%s:%u: entrypoint %s: %s", cf->path,
					  ep->line, ep->name, errbuf);
				handler_free(h);
				return -1;
			}
			break;
		}
		case CONF_HANDLER_MODULE:
			h = handler_module_new(ep->module, ep->function,
					       ep->name, errbuf,
					       sizeof(errbuf));
			if (h == NULL) {
				log_error("%s:%u: entrypoint %s: %s", cf->path,
					  ep->line, ep->name, errbuf);
				return -1;
			}
			break;
		case CONF_HANDLER_BUILTIN:
			h = handler_builtin_new(
				worker_builtin_name(ep->builtin), ep->sleep_ms,
				ep->timeout_ms);
			break;
		}
		if (h == NULL) {
			log_error("%s:%u: entrypoint %s: unknown handler kind",
				  cf->path, ep->line, ep->name);
			return -1;
		}
		w->handlers[i] = h;
	}
	return 0;
}

/* Creates the engine once connected; takes the handlers. */
static int
worker_consumer(struct worker *w)
{
	const struct conf *cf = w->cf;
	struct pgq_consumer_options copt;
	struct consumer_hooks hooks;
	struct pgq_error err;
	unsigned batch = cf->batch_size;

	w->c = consumer_new(w->q, NULL, w->qmid, false);
	for (size_t i = 0; i < cf->nentrypoints; i++) {
		const struct conf_entrypoint *ep = &cf->entrypoints[i];
		struct pgq_entrypoint_options o;
		struct handler *h = w->handlers[i];

		pgq_entrypoint_options_init(&o);
		o.max_attempts = ep->max_attempts;
		o.retry_delay_ms = ep->retry_delay_ms;
		o.retry_backoff = ep->retry_backoff;
		o.retry_max_delay_ms = ep->retry_max_delay_ms;
		o.hold_on_failure = ep->on_failure == CONF_ON_FAILURE_HOLD;
		o.concurrency_limit = (int32_t)ep->concurrency_limit;
		o.requests_per_second = ep->requests_per_second;
		o.burst = (double)ep->burst;
		w->handlers[i] = NULL;
		if (consumer_add_handler(w->c, ep->name, h, &o) == -1)
			return -1;
		consumer_set_retry_jitter(w->c, ep->name, ep->retry_jitter);
		consumer_set_max_payload(w->c, ep->name, ep->max_payload);
		/* One claim serves every entrypoint: the smallest batch. */
		if (ep->batch_size > 0 && ep->batch_size < batch)
			batch = ep->batch_size;
	}
	pgq_consumer_options_init(&copt);
	copt.batch_size = batch;
	copt.batch_window_ms = cf->batch_window_ms;
	copt.heartbeat_timeout_ms = cf->heartbeat_timeout_ms;
	copt.poll_interval_ms = 0; /* the master polls for us */
	if (pgq_consumer_set_options(w->c, &copt, &err) == -1) {
		log_error("consumer options: %s", err.message);
		return -1;
	}
	memset(&hooks, 0, sizeof(hooks));
	hooks.job_start = hook_job_start;
	hooks.job_end = hook_job_end;
	hooks.found_work = hook_found_work;
	hooks.idle = hook_idle;
	hooks.stopped = hook_stopped;
	hooks.reconnected = hook_reconnected;
	hooks.poll = hook_poll;
	hooks.arg = w;
	consumer_set_hooks(w->c, &hooks);
	consumer_set_max_jobs(w->c, w->max_jobs);
	consumer_attach(w->c, w->loop);
	return 0;
}

/*
 * Connects (retried with backoff: a database outage at start must not make
 * the master respawn us in a loop), then starts the engine.
 */
static void
worker_connect_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	const struct conf *cf = w->cf;
	struct pgq_options opt;
	struct pgq_error err;
	uint64_t delay;

	(void)revents;
	memset(&opt, 0, sizeof(opt));
	opt.prefix = cf->prefix;
	opt.schema = cf->schema;
	opt.channel = cf->channel;
	w->q = pgq_connect(cf->dsn[0] != '\0' ? cf->dsn : NULL, &opt,
			   PGQ_ROLE_CONSUMER, &err);
	if (w->q == NULL) {
		delay = driver_backoff_next_ms(&w->backoff);
		/* Said once per cause; the retries go to the debug level. */
		if (driver_trouble_note(&w->trouble, &err))
			log_warnx("cannot connect: %s sqlstate=%s class=%s "
				  "retry_in=%llums; waiting: %s",
				  err.message,
				  err.sqlstate[0] != '\0' ? err.sqlstate : "-",
				  pgq_error_class_name(err.klass),
				  (unsigned long long)delay,
				  driver_error_cause(&err));
		else
			log_debug("cannot connect: %s retry_in=%llums",
				  err.message, (unsigned long long)delay);
		ev_timer_set(t, (double)delay / 1000.0, 0.);
		ev_timer_start(loop, t);
		return;
	}
	if (worker_consumer(w) == -1) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	log_info("connected queue_manager_id=%s backend_pid=%d", w->qmid,
		 PQbackendPID(pgq_conn(w->q)));
	worker_hello(w);
	worker_title(w, "idle");
	if (w->wake_pending)
		consumer_wake(w->c);
}

/* Signals: defaults everywhere, then what a worker wants. */
static void
worker_signals(void)
{
	/*
	 * A handler's child that closes its stdin must not kill us. Terminal
	 * signals go to the whole foreground group: the master decides what
	 * they mean and tells us over the channel.
	 */
	static const int ignore[] = {SIGPIPE, SIGINT,  SIGQUIT, SIGHUP,
				     SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1};

	sig_reset(ignore, PGQ_NELEM(ignore));
}

static void
worker_free(struct worker *w)
{
	if (w->handlers != NULL)
		for (size_t i = 0; i < w->cf->nentrypoints; i++)
			handler_free(w->handlers[i]);
	free(w->handlers);
	/* Module fini hooks run here, in the engine's handler_free. */
	pgq_consumer_free(w->c);
	pgq_free(w->q);
	free(w->out);
}

int
worker_main(const struct conf *cf, unsigned slot, int chan_fd)
{
	struct worker w;
	char role[32];
	int keep[1] = {chan_fd};
	pid_t parent = getppid();
	int rc = 0;

	snprintf(role, sizeof(role), "worker %u", slot);
	log_set_role(role);
	fd_close_all_except(keep, PGQ_NELEM(keep));
	worker_signals();
	/* Backup for a master that dies without closing our channel. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
		log_warn("prctl(PR_SET_PDEATHSIG)");
	if (getppid() != parent) {
		log_warnx("master gone before the worker started");
		return 0;
	}

	memset(&w, 0, sizeof(w));
	w.cf = cf;
	w.slot = slot;
	w.chan_fd = chan_fd;
	uuid_generate_str(w.qmid);
	if (cf->max_jobs_per_worker > 0)
		w.max_jobs = cf->max_jobs_per_worker +
			     random_below((uint64_t)cf->max_jobs_jitter + 1);
	driver_backoff_init(&w.backoff, WORKER_BACKOFF_BASE_MS,
			    WORKER_BACKOFF_CAP_MS);
	/*
	 * A loop of our own, never the default one: the master's default loop
	 * was inherited, and command handlers wait on pidfds, not SIGCHLD.
	 */
	w.loop = ev_loop_new(EVFLAG_AUTO);
	if (w.loop == NULL)
		fatalx("cannot create an event loop");
	if (fd_set_nonblock(chan_fd) == -1)
		log_warn("cannot make the channel non-blocking");
	ev_io_init(&w.chan_w, worker_chan_cb, chan_fd, EV_READ);
	w.chan_w.data = &w;
	ev_io_init(&w.chan_out_w, worker_chan_out_cb, chan_fd, EV_WRITE);
	w.chan_out_w.data = &w;
	ev_signal_init(&w.term_w, worker_term_cb, SIGTERM);
	w.term_w.data = &w;
	ev_timer_init(&w.connect_w, worker_connect_cb, 0., 0.);
	w.connect_w.data = &w;

	if (worker_handlers(&w) == -1) {
		rc = WORKER_EXIT_CONFIG;
		goto out;
	}
	worker_title(&w, "starting");
	ev_io_start(w.loop, &w.chan_w);
	ev_signal_start(w.loop, &w.term_w);
	ev_timer_start(w.loop, &w.connect_w);
	ev_run(w.loop, 0);
	if (w.c == NULL && !w.stopping)
		rc = WORKER_EXIT_CONFIG; /* the engine could not be set up */
	worker_chan_flush(&w);
	log_debug("exiting processed=%llu",
		  w.c != NULL ? (unsigned long long)consumer_processed(w.c)
			      : 0ULL);
out:
	ev_io_stop(w.loop, &w.chan_w);
	ev_io_stop(w.loop, &w.chan_out_w);
	ev_signal_stop(w.loop, &w.term_w);
	ev_timer_stop(w.loop, &w.connect_w);
	if (w.c != NULL)
		consumer_detach(w.c);
	worker_free(&w);
	ev_loop_destroy(w.loop);
	return rc;
}
