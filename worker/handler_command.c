/*
 * Command handlers: one process per job, fork+exec without a shell, in a
 * process group of its own so a timeout can stop everything it started. The
 * payload goes to its stdin and its output is read on the loop, never
 * blocking the worker; only the newest bytes of each stream are kept. The
 * child takes on its limits, user and environment (worker/isolate.c) before
 * the exec; its resource usage goes into the job's log row.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "worker/worker_int.h"

#define EX_TEMPFAIL_CODE 75

/* The newest cap bytes of a stream. */
struct tailbuf {
	char *p; /* cap + 1 bytes, NUL-terminated */
	size_t cap, len;
	uint64_t total; /* bytes seen */
};

struct handler_command {
	struct handler h; /* first: the common head */
	char **argv;	  /* NULL-terminated copy */
	uint64_t kill_grace_ms;
	struct command_identity id;
	handler_group_fn on_group; /* may be NULL */
	void *on_group_arg;

	/* the running job */
	struct ev_loop *loop;
	const struct pgq_job *job;
	handler_done_fn done;
	void *done_arg;
	pid_t pid;
	int pidfd;
	int in_fd, out_fd, err_fd;
	size_t in_off;
	bool running;
	bool reaped;
	bool timed_out;	  /* the timeout fired: SIGTERM sent */
	bool aborted;	  /* abort was asked: SIGTERM sent */
	bool killed;	  /* SIGKILL sent to the group */
	int status;	  /* from wait4; -1 when it was reaped elsewhere */
	struct rusage ru; /* from wait4, valid when status != -1 */
	ev_io in_w, out_w, err_w, pid_w;
	ev_timer reap_poll_w; /* when pidfd_open is not available */
	ev_timer group_w;     /* after a stop: is the group gone yet? */
	ev_timer timeout_w, grace_w;
	struct tailbuf out, err;
};

static void
tail_init(struct tailbuf *t, size_t cap)
{
	t->p = xmalloc(cap + 1);
	t->cap = cap;
	t->len = 0;
	t->total = 0;
	t->p[0] = '\0';
}

static void
tail_reset(struct tailbuf *t)
{
	t->len = 0;
	t->total = 0;
	t->p[0] = '\0';
}

static void
tail_add(struct tailbuf *t, const char *d, size_t n)
{
	t->total += n;
	if (n >= t->cap) {
		memcpy(t->p, d + (n - t->cap), t->cap);
		t->len = t->cap;
	} else {
		if (t->len + n > t->cap) {
			size_t drop = t->len + n - t->cap;

			memmove(t->p, t->p + drop, t->len - drop);
			t->len -= drop;
		}
		memcpy(t->p + t->len, d, n);
		t->len += n;
	}
	t->p[t->len] = '\0';
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* A process group leader's pid is its group id: signal them all. */
static void
command_signal_group(struct handler_command *c, int sig)
{
	if (killpg(c->pid, sig) == -1 && errno != ESRCH)
		log_warn("job=%lld: cannot signal process group %d",
			 (long long)c->job->id, (int)c->pid);
}

/*
 * True while a process of group pgid still runs. A zombie does not count: a
 * descendant orphaned by the leader's death is reaped by init, which may
 * take its time (or never do it, in a container whose pid 1 is no init).
 */
static bool
group_alive(pid_t pgid)
{
	struct dirent *de;
	bool alive = false;
	DIR *d;

	if (killpg(pgid, 0) == -1 && errno == ESRCH)
		return false;
	d = opendir("/proc");
	if (d == NULL)
		return true;
	while (!alive && (de = readdir(d)) != NULL) {
		char path[300], buf[512], state;
		long long pgrp;
		const char *p;
		ssize_t n;
		int fd;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd == -1)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* pid (comm) state ppid pgrp ...; comm may hold anything. */
		p = strrchr(buf, ')');
		if (p == NULL ||
		    sscanf(p + 1, " %c %*d %lld", &state, &pgrp) != 2)
			continue;
		if (pgrp == (long long)pgid && state != 'Z' && state != 'X')
			alive = true;
	}
	closedir(d);
	return alive;
}

/* Runs in the child of worker `parent`: never returns. */
static void PGQ_NORETURN
command_child(const struct command_identity *id, pid_t parent, int in_r,
	      int out_w, int err_w, const char *path, char *const argv[],
	      char *const envp[])
{
	int fds[3] = {in_r, out_w, err_w};
	char msg[512];
	int n, e;

	sig_reset(NULL, 0);
	(void)setpgid(0, 0);
	/* Lift the ends above 2 first so no dup2 clobbers another end. */
	for (int i = 0; i < 3; i++) {
		fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (fds[i] == -1)
			_exit(127);
	}
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) == -1)
			_exit(127);
	if (close_range(3, ~0U, 0) == -1) {
		long max = sysconf(_SC_OPEN_MAX);

		for (long fd = 3; fd < (max > 0 ? max : 1024); fd++)
			(void)close((int)fd);
	}
	/* Its errors go to the job's stderr, which is the pipe by now. */
	isolate_apply(id);
	/*
	 * A second line behind the master, which ends the group of a dead
	 * worker's command: the worker's death ends this process too. Set
	 * after the switch of user, which clears it; a worker already gone
	 * cannot send it any more.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == 0 && getppid() != parent)
		_exit(126);
	execve(path, argv, envp);
	e = errno;
	n = snprintf(msg, sizeof(msg), "pgq: cannot execute %s: %s\n", path,
		     strerror(e));
	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	_exit(e == ENOENT ? 127 : 126);
}

/* argv[0] itself when it has a slash, else the first executable in PATH. */
static char *
command_resolve(const char *prog)
{
	const char *path = getenv("PATH");
	const char *p, *end;

	if (strchr(prog, '/') != NULL)
		return xstrdup(prog);
	if (path == NULL || path[0] == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p != '\0'; p = *end == ':' ? end + 1 : end) {
		end = strchr(p, ':');
		if (end == NULL)
			end = p + strlen(p);
		if (end == p)
			continue;
		char *cand = xasprintf("%.*s/%s", (int)(end - p), p, prog);

		if (access(cand, X_OK) == 0)
			return cand;
		free(cand);
	}
	return NULL;
}

static void
strv_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* Reads what fd has now; true at end of file or on an error. */
static bool
command_read(int fd, struct tailbuf *t, int max_reads)
{
	char buf[16384];

	for (int i = 0; i < max_reads; i++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n > 0) {
			tail_add(t, buf, (size_t)n);
			continue;
		}
		if (n == 0)
			return true;
		if (errno == EINTR)
			continue;
		return errno != EAGAIN && errno != EWOULDBLOCK;
	}
	return false;
}

static void
command_stop_watchers(struct handler_command *c)
{
	ev_io_stop(c->loop, &c->in_w);
	ev_io_stop(c->loop, &c->out_w);
	ev_io_stop(c->loop, &c->err_w);
	ev_io_stop(c->loop, &c->pid_w);
	ev_timer_stop(c->loop, &c->reap_poll_w);
	ev_timer_stop(c->loop, &c->group_w);
	ev_timer_stop(c->loop, &c->timeout_w);
	ev_timer_stop(c->loop, &c->grace_w);
	close_fd(&c->in_fd);
	close_fd(&c->out_fd);
	close_fd(&c->err_fd);
	close_fd(&c->pidfd);
}

static double
tv_seconds(const struct timeval *tv)
{
	/* Microseconds are all a timeval holds; keep the figure short. */
	return (double)tv->tv_sec + (double)(tv->tv_usec / 1000) / 1000.0;
}

static char *
command_context(const struct handler_command *c)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "command", json_string(c->argv[0]));
	json_object_set_new(o, "pid", json_integer(c->pid));
	if (c->status != -1 && WIFEXITED(c->status))
		json_object_set_new(o, "exit_status",
				    json_integer(WEXITSTATUS(c->status)));
	else
		json_object_set_new(o, "exit_status", json_null());
	if (c->status != -1 && WIFSIGNALED(c->status)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(c->status));
		char name[32];

		snprintf(name, sizeof(name), "SIG%s",
			 abbrev != NULL ? abbrev : "UNKNOWN");
		json_object_set_new(o, "signal", json_string(name));
	} else {
		json_object_set_new(o, "signal", json_null());
	}
	json_object_set_new(o, "stderr_bytes",
			    json_integer((json_int_t)c->err.total));
	json_object_set_new(o, "stdout_bytes",
			    json_integer((json_int_t)c->out.total));
	if (c->status != -1) {
		json_t *ru = json_object();

		json_object_set_new(ru, "user_cpu_s",
				    json_real(tv_seconds(&c->ru.ru_utime)));
		json_object_set_new(ru, "system_cpu_s",
				    json_real(tv_seconds(&c->ru.ru_stime)));
		/* Linux reports ru_maxrss in KiB. */
		json_object_set_new(ru, "max_rss_kib",
				    json_integer((json_int_t)c->ru.ru_maxrss));
		json_object_set_new(o, "rusage", ru);
	}
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* The job is over: report its outcome. */
static void
command_finish(struct handler_command *c)
{
	struct handler_result r;
	handler_done_fn done = c->done;
	void *arg = c->done_arg;
	char dur[32], *context, *traceback = NULL;

	command_stop_watchers(c);
	c->running = false;
	/* The group is gone, or SIGKILL is on its way to what is left. */
	if (c->on_group != NULL)
		c->on_group(c->on_group_arg, 0, 0);
	memset(&r, 0, sizeof(r));
	if (c->aborted) {
		r.outcome = PGQ_OUTCOME_FAIL;
		snprintf(r.res.exception_type, sizeof(r.res.exception_type),
			 "Aborted");
		snprintf(r.res.message, sizeof(r.res.message),
			 "command stopped by the worker");
	} else if (c->timed_out) {
		/* Transient by nature: retried while attempts remain. */
		r.outcome = PGQ_OUTCOME_RETRY;
		format_duration_ms(c->h.timeout_ms, dur, sizeof(dur));
		snprintf(r.res.exception_type, sizeof(r.res.exception_type),
			 "Timeout");
		snprintf(r.res.message, sizeof(r.res.message),
			 "timeout after %s", dur);
	} else if (c->status == -1) {
		r.outcome = PGQ_OUTCOME_FAIL;
		snprintf(r.res.exception_type, sizeof(r.res.exception_type),
			 "CommandLost");
		snprintf(r.res.message, sizeof(r.res.message),
			 "exit status lost: the process was reaped elsewhere");
	} else if (WIFEXITED(c->status)) {
		int code = WEXITSTATUS(c->status);

		if (code == 0)
			r.outcome = PGQ_OUTCOME_SUCCESS;
		else if (code == EX_TEMPFAIL_CODE)
			r.outcome = PGQ_OUTCOME_RETRY;
		else
			r.outcome = PGQ_OUTCOME_FAIL;
		snprintf(r.res.exception_type, sizeof(r.res.exception_type),
			 "%s",
			 code == EX_TEMPFAIL_CODE ? "RetryRequested"
						  : "CommandFailed");
		snprintf(r.res.message, sizeof(r.res.message),
			 "exited with status %d%s", code,
			 code == EX_TEMPFAIL_CODE ? " (EX_TEMPFAIL)" : "");
	} else {
		const char *abbrev = sigabbrev_np(WTERMSIG(c->status));

		r.outcome = PGQ_OUTCOME_FAIL;
		snprintf(r.res.exception_type, sizeof(r.res.exception_type),
			 "CommandKilled");
		snprintf(r.res.message, sizeof(r.res.message),
			 "killed by signal SIG%s",
			 abbrev != NULL ? abbrev : "UNKNOWN");
	}
	if (r.outcome == PGQ_OUTCOME_SUCCESS)
		r.res.exception_type[0] = r.res.message[0] = '\0';
	if (c->err.total > c->err.len)
		traceback = xasprintf(
			"[%llu earlier bytes of stderr dropped]\n"
			"%s",
			(unsigned long long)(c->err.total - c->err.len),
			c->err.p);
	r.traceback = traceback != NULL ? traceback : c->err.p;
	context = command_context(c);
	r.context_json = context;
	log_debug("job=%lld: command pid=%d ended: %s stdout_bytes=%llu "
		  "stderr_bytes=%llu user_cpu=%.3fs system_cpu=%.3fs "
		  "max_rss=%ldKiB",
		  (long long)c->job->id, (int)c->pid,
		  r.outcome == PGQ_OUTCOME_SUCCESS ? "success" : r.res.message,
		  (unsigned long long)c->out.total,
		  (unsigned long long)c->err.total, tv_seconds(&c->ru.ru_utime),
		  tv_seconds(&c->ru.ru_stime),
		  c->status != -1 ? (long)c->ru.ru_maxrss : -1L);
	done(&r, arg);
	free(context);
	free(traceback);
}

/* The leader is gone: collect the rest of its output and end the job. */
static void
command_reaped(struct handler_command *c)
{
	c->reaped = true;
	ev_io_stop(c->loop, &c->pid_w);
	ev_timer_stop(c->loop, &c->reap_poll_w);
	close_fd(&c->pidfd);
	ev_io_stop(c->loop, &c->in_w);
	close_fd(&c->in_fd);
	/*
	 * What it wrote before exiting is in the pipes; a descendant may
	 * still hold them open, so read what is there, not until EOF.
	 */
	if (c->out_fd >= 0)
		(void)command_read(c->out_fd, &c->out, 64);
	if (c->err_fd >= 0)
		(void)command_read(c->err_fd, &c->err, 64);
	if (group_alive(c->pid)) {
		/* The group outlived its leader. */
		if ((c->timed_out || c->aborted) && !c->killed) {
			/*
			 * Finish as soon as the group is gone, or when the
			 * grace timer has killed what is left.
			 */
			ev_timer_start(c->loop, &c->group_w);
			return;
		}
		if (!c->killed) {
			log_debug("job=%lld: command left processes in its "
				  "group %d: killed",
				  (long long)c->job->id, (int)c->pid);
			command_signal_group(c, SIGKILL);
			c->killed = true;
		}
	}
	command_finish(c);
}

static void
command_try_reap(struct handler_command *c)
{
	int status;
	pid_t r;

	do
		r = wait4(c->pid, &status, WNOHANG, &c->ru);
	while (r == -1 && errno == EINTR);
	if (r == 0)
		return;
	if (r == -1) {
		/* Someone else's waitpid(-1) took it. */
		log_warnx("job=%lld: command pid=%d was reaped elsewhere",
			  (long long)c->job->id, (int)c->pid);
		status = -1;
	}
	c->status = status;
	command_reaped(c);
}

static void
command_pid_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	command_try_reap(w->data);
}

static void
command_reap_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	command_try_reap(w->data);
}

static void
command_in_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct handler_command *c = w->data;
	const char *p = c->job->payload;
	sigset_t pipe_set, old;
	struct timespec zero = {0, 0};

	(void)revents;
	/*
	 * A child that exits without reading its stdin must not kill the
	 * worker with SIGPIPE: hold the signal, and drop it if it came.
	 */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	while (c->in_off < c->job->payload_len) {
		ssize_t n = write(c->in_fd, p + c->in_off,
				  c->job->payload_len - c->in_off);

		if (n > 0) {
			c->in_off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			goto out;
		if (n == -1 && errno == EPIPE)
			while (sigtimedwait(&pipe_set, NULL, &zero) == -1 &&
			       errno == EINTR)
				;
		break;
	}
	ev_io_stop(loop, w);
	close_fd(&c->in_fd);
out:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void
command_out_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct handler_command *c = w->data;
	bool eof;

	(void)revents;
	if (w == &c->out_w)
		eof = command_read(c->out_fd, &c->out, 16);
	else
		eof = command_read(c->err_fd, &c->err, 16);
	if (!eof)
		return;
	ev_io_stop(loop, w);
	if (w == &c->out_w)
		close_fd(&c->out_fd);
	else
		close_fd(&c->err_fd);
}

static void
command_group_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct handler_command *c = w->data;

	(void)loop;
	(void)revents;
	if (!group_alive(c->pid))
		command_finish(c);
}

static void
command_grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct handler_command *c = w->data;

	(void)loop;
	(void)revents;
	log_warnx("job=%lld: command still running %llums after SIGTERM: "
		  "sending SIGKILL to its process group",
		  (long long)c->job->id, (unsigned long long)c->kill_grace_ms);
	command_signal_group(c, SIGKILL);
	c->killed = true;
	if (c->reaped)
		command_finish(c);
}

/* SIGTERM to the group now, SIGKILL after the grace period. */
static void
command_terminate(struct handler_command *c)
{
	if (ev_is_active(&c->grace_w) || c->killed)
		return;
	command_signal_group(c, SIGTERM);
	ev_timer_set(&c->grace_w, (double)c->kill_grace_ms / 1000.0, 0.);
	ev_timer_start(c->loop, &c->grace_w);
}

static void
command_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct handler_command *c = w->data;
	char dur[32];

	(void)loop;
	(void)revents;
	format_duration_ms(c->h.timeout_ms, dur, sizeof(dur));
	log_warnx("job=%lld: command timed out after %s: sending SIGTERM to "
		  "its process group",
		  (long long)c->job->id, dur);
	c->timed_out = true;
	command_terminate(c);
}

/* Ends a job that never started, with the reason. */
static void
command_fail_start(handler_done_fn done, void *arg, const char *message)
{
	struct handler_result r;

	memset(&r, 0, sizeof(r));
	r.outcome = PGQ_OUTCOME_FAIL;
	snprintf(r.res.exception_type, sizeof(r.res.exception_type),
		 "CommandStartFailed");
	snprintf(r.res.message, sizeof(r.res.message), "%s", message);
	done(&r, arg);
}

static void
command_start(struct handler *h, struct ev_loop *loop,
	      const struct pgq_job *job, handler_done_fn done, void *arg)
{
	struct handler_command *c = (struct handler_command *)h;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	char **env = NULL, *path = NULL, why[600];
	sigset_t all, old_mask;
	pid_t pid, self = getpid();

	path = command_resolve(c->argv[0]);
	if (path == NULL) {
		snprintf(why, sizeof(why), "command %s not found in PATH",
			 c->argv[0]);
		command_fail_start(done, arg, why);
		return;
	}
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
	    pipe2(err, O_CLOEXEC) == -1) {
		int e = errno;

		log_warn("job=%lld: cannot create pipes", (long long)job->id);
		snprintf(why, sizeof(why), "pipe: %s", strerror(e));
		command_fail_start(done, arg, why);
		goto out;
	}
	env = isolate_env(&c->id, job);
	/*
	 * Until the child has reset its dispositions, a signal for its group
	 * (an abort right after the start) would run our handlers in it:
	 * block everything across the fork, the child unblocks after reset.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old_mask);
	pid = fork();
	if (pid == 0)
		command_child(&c->id, self, in[0], out[1], err[1], path,
			      c->argv, env);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	if (pid == -1) {
		int e = errno;

		log_warn("job=%lld: cannot fork", (long long)job->id);
		snprintf(why, sizeof(why), "fork: %s", strerror(e));
		command_fail_start(done, arg, why);
		goto out;
	}
	/* Also here: a signal to the group must not race the child's own. */
	(void)setpgid(pid, pid);
	if (c->on_group != NULL)
		c->on_group(c->on_group_arg, pid, c->kill_grace_ms);

	c->loop = loop;
	c->job = job;
	c->done = done;
	c->done_arg = arg;
	c->pid = pid;
	c->in_off = 0;
	c->running = true;
	c->reaped = c->timed_out = c->aborted = c->killed = false;
	c->status = -1;
	memset(&c->ru, 0, sizeof(c->ru));
	tail_reset(&c->out);
	tail_reset(&c->err);
	c->in_fd = in[1];
	c->out_fd = out[0];
	c->err_fd = err[0];
	in[1] = out[0] = err[0] = -1;
	if (fd_set_nonblock(c->in_fd) == -1 ||
	    fd_set_nonblock(c->out_fd) == -1 ||
	    fd_set_nonblock(c->err_fd) == -1)
		log_warn("job=%lld: cannot make pipes non-blocking",
			 (long long)job->id);

	ev_io_init(&c->out_w, command_out_cb, c->out_fd, EV_READ);
	ev_io_init(&c->err_w, command_out_cb, c->err_fd, EV_READ);
	c->out_w.data = c->err_w.data = c;
	ev_io_start(loop, &c->out_w);
	ev_io_start(loop, &c->err_w);
	ev_io_init(&c->in_w, command_in_cb, c->in_fd, EV_WRITE);
	c->in_w.data = c;
	if (job->payload != NULL && job->payload_len > 0)
		ev_io_start(loop, &c->in_w);
	else
		close_fd(&c->in_fd);

	/*
	 * A pidfd tells us about this child only; a SIGCHLD watcher would
	 * need the default loop and reap children that are not ours.
	 */
	c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (c->pidfd >= 0) {
		ev_io_init(&c->pid_w, command_pid_cb, c->pidfd, EV_READ);
		c->pid_w.data = c;
		ev_io_start(loop, &c->pid_w);
	} else {
		ev_timer_init(&c->reap_poll_w, command_reap_poll_cb, 0.02,
			      0.02);
		c->reap_poll_w.data = c;
		ev_timer_start(loop, &c->reap_poll_w);
	}
	ev_timer_init(&c->grace_w, command_grace_cb, 0., 0.);
	c->grace_w.data = c;
	ev_timer_init(&c->group_w, command_group_cb, 0.02, 0.02);
	c->group_w.data = c;
	ev_timer_init(&c->timeout_w, command_timeout_cb,
		      (double)c->h.timeout_ms / 1000.0, 0.);
	c->timeout_w.data = c;
	if (c->h.timeout_ms > 0)
		ev_timer_start(loop, &c->timeout_w);
	log_debug("job=%lld: started %s pid=%d", (long long)job->id, path,
		  (int)pid);
out:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&err[0]);
	close_fd(&err[1]);
	strv_free(env);
	free(path);
}

static void
command_abort(struct handler *h)
{
	struct handler_command *c = (struct handler_command *)h;

	if (!c->running)
		return;
	c->aborted = true;
	command_terminate(c);
}

static void
command_free(struct handler *h)
{
	struct handler_command *c = (struct handler_command *)h;

	if (c->running) {
		/* Nobody will wait for it: do not leave it running. */
		command_signal_group(c, SIGKILL);
		if (!c->reaped)
			(void)waitpid(c->pid, NULL, 0);
		command_stop_watchers(c);
		if (c->on_group != NULL)
			c->on_group(c->on_group_arg, 0, 0);
	}
	strv_free(c->argv);
	isolate_clear(&c->id);
	free(c->out.p);
	free(c->err.p);
	free(c);
}

static const struct handler_ops command_ops = {
	.kind = "command",
	.start = command_start,
	.abort = command_abort,
	.free = command_free,
};

struct handler *
handler_command_new(const char *const *argv, uint64_t timeout_ms,
		    uint64_t kill_grace_ms)
{
	struct handler_command *c = xcalloc(1, sizeof(*c));
	size_t n = 0;

	while (argv[n] != NULL)
		n++;
	c->h.ops = &command_ops;
	c->h.timeout_ms = timeout_ms;
	c->argv = xcalloc(n + 1, sizeof(*c->argv));
	for (size_t i = 0; i < n; i++)
		c->argv[i] = xstrdup(argv[i]);
	c->kill_grace_ms = kill_grace_ms;
	c->pid = -1;
	c->pidfd = c->in_fd = c->out_fd = c->err_fd = -1;
	tail_init(&c->out, HANDLER_STDOUT_KEEP);
	tail_init(&c->err, HANDLER_STDERR_KEEP);
	return &c->h;
}

void
handler_command_on_group(struct handler *h, handler_group_fn fn, void *arg)
{
	struct handler_command *c = (struct handler_command *)h;

	c->on_group = fn;
	c->on_group_arg = arg;
}

int
handler_command_isolate(struct handler *h, const struct command_isolation *iso,
			char *errbuf, size_t errlen)
{
	struct handler_command *c = (struct handler_command *)h;

	return isolate_resolve(&c->id, iso, errbuf, errlen);
}

const char *
handler_command_stdout(const struct handler *h, size_t *len)
{
	const struct handler_command *c = (const struct handler_command *)h;

	if (len != NULL)
		*len = c->out.len;
	return c->out.p;
}

int
handler_command_pid(const struct handler *h)
{
	const struct handler_command *c = (const struct handler_command *)h;

	return (int)c->pid;
}
