/*
 * Inside worker/: the handler interface shared by the consumer engine and the
 * handler kinds (function, module, command, builtin), and the engine's hooks
 * through which the daemon's worker process talks to its master. Library
 * users see only the pgq_consumer_* functions of pgq.h.
 */
#ifndef PGQ_WORKER_INT_H
#define PGQ_WORKER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <ev.h>

#include "common/common.h"
#include "common/log.h"
#include "pgq.h"

/* ---- handlers ---- */

/* What a handler reports when its job has ended. */
struct handler_result {
	enum pgq_outcome outcome;
	struct pgq_result res;	  /* exception type and message on RETRY/FAIL */
	const char *traceback;	  /* traceback text (a stderr tail) or NULL */
	const char *context_json; /* a JSON object for additional_context, or
				     NULL */
};

/*
 * Called exactly once per started job. r and the strings it points to are
 * borrowed: they live until the callback returns.
 */
typedef void (*handler_done_fn)(const struct handler_result *r, void *arg);

struct handler;

struct handler_ops {
	const char *kind; /* "function", "module", "command", "builtin" */
	/*
	 * Runs job, driving any watchers from loop. job and its strings live
	 * until done is called. done is called exactly once, possibly before
	 * start returns (synchronous handlers); a job that cannot even start
	 * ends with PGQ_OUTCOME_FAIL. One job at a time per handler.
	 */
	void (*start)(struct handler *h, struct ev_loop *loop,
		      const struct pgq_job *job, handler_done_fn done,
		      void *arg);
	/*
	 * Ends the running job as soon as possible (fast shutdown,
	 * cancellation); done still follows. No-op when nothing runs or the
	 * handler cannot be interrupted.
	 */
	void (*abort)(struct handler *h);
	void (*free)(struct handler *h);
};

/* The common head of every handler kind. */
struct handler {
	const struct handler_ops *ops;
	uint64_t timeout_ms; /* enforced by the handler; 0 = none */
};

/* Frees any handler; NULL is a no-op. */
void handler_free(struct handler *h);

/*
 * A handler that calls fn(job, resources, &res) in the caller's stack: the
 * library's handlers and the base of module handlers.
 */
struct handler *handler_fn_new(pgq_handler_fn fn, void *resources);

/*
 * Calls fn and reports through done; an outcome outside enum pgq_outcome is
 * reported as FAIL.
 */
void handler_call_fn(pgq_handler_fn fn, void *resources,
		     const struct pgq_job *job, handler_done_fn done,
		     void *arg);

/*
 * A shared-object handler: dlopen(path, RTLD_NOW | RTLD_LOCAL), dlsym
 * function, run the optional pgq_module_init(&resources, entrypoint, ...)
 * now and pgq_module_fini(resources) in handler_free. Returns NULL with the
 * reason in errbuf (a dlerror text or the module's own message).
 */
struct handler *handler_module_new(const char *path, const char *function,
				   const char *entrypoint, char *errbuf,
				   size_t errlen);

/*
 * A command handler: argv[0] is run without a shell (searched in PATH when
 * it has no slash), in a process group of its own, with the payload on its
 * stdin, stdout and stderr captured, and only PGQ_* plus PATH, HOME, LANG
 * and TZ in its environment. timeout_ms 0 = none; after the timeout the
 * group gets SIGTERM, then SIGKILL kill_grace_ms later. argv is copied.
 */
struct handler *handler_command_new(const char *const *argv,
				    uint64_t timeout_ms,
				    uint64_t kill_grace_ms);

/*
 * Told of a command's process group: pgid right after the fork (with the
 * group's kill_grace_ms), 0 once the group has ended (before the job's
 * outcome is reported). The daemon's worker passes it on to its master,
 * which ends the group if the worker dies while it runs.
 */
typedef void (*handler_group_fn)(void *arg, pid_t pgid, uint64_t kill_grace_ms);
void handler_command_on_group(struct handler *h, handler_group_fn fn,
			      void *arg);

/* What a command's process gets besides its job (pgq.ini(5)). */
struct command_isolation {
	uint64_t rlimit_as;	/* bytes; 0 = inherited */
	uint64_t rlimit_cpu_s;	/* seconds; 0 = inherited */
	uint64_t rlimit_nofile; /* 0 = inherited */
	const char *user;	/* name or uid; NULL or "" = the worker's */
	const char *group;	/* name or gid; NULL or "" = the user's */
	const char *pass_env;	/* variable names, blank-separated, or NULL */
};

/*
 * Applies iso to command handler h (iso is copied). User and group are
 * resolved now: the child only calls setrlimit, setgroups (when we are
 * root), setgid and setuid before its exec, and gets the user's HOME, USER
 * and LOGNAME. Returns 0, or -1 with the reason in errbuf.
 */
int handler_command_isolate(struct handler *h,
			    const struct command_isolation *iso, char *errbuf,
			    size_t errlen) PGQ_WUR;

/* ---- isolate.c: what a command's process becomes ---- */

/* Set in the child before the exec; resolved when the handler is set up. */
struct command_identity {
	struct rlimit as, cpu, nofile;
	bool set_as, set_cpu, set_nofile;
	bool set_groups; /* setgroups(ngroups, groups): we are root */
	bool set_gid, set_uid;
	gid_t gid;
	uid_t uid;
	gid_t *groups;
	int ngroups;
	char *user; /* the user's name and home for the environment, or NULL */
	char *home;
	char **pass_env; /* names passed on, NULL-terminated, or NULL */
};

/*
 * Resolves iso into id (zeroed or cleared before; what it held is freed):
 * the limits, the user and group by common/ids.h's rule, the group list
 * when we are root, the names pass_env lists. Returns 0, or -1 with the
 * reason in errbuf ("user x: no such user").
 */
int isolate_resolve(struct command_identity *id,
		    const struct command_isolation *iso, char *errbuf,
		    size_t errlen) PGQ_WUR;
/* Frees what id holds and zeroes it. */
void isolate_clear(struct command_identity *id);
/*
 * In the forked child: limits, then groups, group and user, in that order
 * (a process that dropped root could no longer change its groups). On a
 * failure it writes why to stderr and exits 126.
 */
void isolate_apply(const struct command_identity *id);
/*
 * The child's whole environment, NULL-terminated (caller frees each string
 * and the vector): the job as PGQ_*, the few variables a program needs to
 * behave, its user's HOME, USER and LOGNAME when it runs as another user,
 * and what pass_env lists. Anything else the worker has (PGPASSWORD, the
 * DSN, the master's settings) stays out.
 */
char **isolate_env(const struct command_identity *id,
		   const struct pgq_job *job);

/* How much of a command's output is kept (the newest bytes). */
#define HANDLER_STDERR_KEEP 4096
#define HANDLER_STDOUT_KEEP 65536

/*
 * The stdout the last job of a command handler printed (its newest
 * HANDLER_STDOUT_KEEP bytes), and the pid it ran as; valid until the next
 * start. For tests and debug logs.
 */
const char *handler_command_stdout(const struct handler *h, size_t *len);
int handler_command_pid(const struct handler *h);

/*
 * A builtin handler: "noop", "sleep", "fail" or "echo". sleep waits for
 * the duration its payload names ("100ms", "2s"; an empty payload takes
 * default_sleep_ms) on a loop timer; timeout_ms applies to it. Returns NULL
 * for an unknown name.
 */
struct handler *handler_builtin_new(const char *name, uint64_t default_sleep_ms,
				    uint64_t timeout_ms);

/* ---- the consumer engine ---- */

/* How the daemon's worker follows the engine; every member may be NULL. */
struct consumer_hooks {
	/* a job is about to run; timeout_ms is its handler's, 0 = none */
	void (*job_start)(void *arg, const struct pgq_job *job,
			  uint64_t timeout_ms);
	/* it has ended with outcome (what was recorded: RETRY, FAIL, ...) */
	void (*job_end)(void *arg, const struct pgq_job *job,
			enum pgq_outcome outcome);
	/* the first claim after a wake found jobs (chain wake) */
	void (*found_work)(void *arg);
	/* the claims after a wake found nothing more: waiting for a wake */
	void (*idle)(void *arg);
	/* a shutdown has completed: outcomes are written (or given up) */
	void (*stopped)(void *arg);
	/* the connection was re-established (new backend pid) */
	void (*reconnected)(void *arg);
	/* a handler asks whether its job was canceled: read control
	   messages now (the loop does not run during a synchronous call) */
	void (*poll)(void *arg);
	void *arg;
};

/*
 * Creates an engine on q (a consumer connection; borrowed) for loop
 * (borrowed; NULL until consumer_attach). queue_manager_id NULL = a fresh
 * UUID. In daemon mode (library false) it logs through common/log.h;
 * library mode only reports through pgq_consumer_set_log.
 */
struct pgq_consumer *consumer_new(struct pgq *q, void *resources,
				  const char *queue_manager_id, bool library);
/* Registers an entrypoint; takes ownership of h (freed on error too). */
int consumer_add_handler(struct pgq_consumer *c, const char *entrypoint,
			 struct handler *h,
			 const struct pgq_entrypoint_options *opt) PGQ_WUR;
void consumer_set_hooks(struct pgq_consumer *c,
			const struct consumer_hooks *hooks);
/* Starts the engine's watchers on loop / stops them. */
void consumer_attach(struct pgq_consumer *c, struct ev_loop *loop);
void consumer_detach(struct pgq_consumer *c);
/* There may be work: claim until nothing is left. */
void consumer_wake(struct pgq_consumer *c);
/*
 * Stops: graceful finishes the running job, fast aborts it; jobs claimed but
 * not started (and a fast-aborted job) go back to the queue. The stopped
 * hook follows. A second call may only escalate.
 */
void consumer_shutdown(struct pgq_consumer *c, bool fast);
/* A cancellation for job id: abort it if it runs, skip it if it waits. */
void consumer_cancel(struct pgq_consumer *c, int64_t id);
/* The UUID written to queue_manager_id by this engine's claims. */
const char *consumer_queue_manager_id(const struct pgq_consumer *c);
/* True while a job runs or claimed jobs wait. */
bool consumer_busy(const struct pgq_consumer *c);
/* Jobs run so far. */
uint64_t consumer_processed(const struct pgq_consumer *c);
/* The random share of entrypoint's retry delays, 0..1 (default 0). */
void consumer_set_retry_jitter(struct pgq_consumer *c, const char *entrypoint,
			       double jitter);
/* Jobs of entrypoint with a larger payload end as exceptions
 * (PayloadTooLarge) without running; 0 = no limit (default). */
void consumer_set_max_payload(struct pgq_consumer *c, const char *entrypoint,
			      uint64_t max_payload);
/*
 * Retires after max_jobs jobs (0 = never): claims never reach past it, and
 * once it is reached the engine stops as after a graceful shutdown.
 */
void consumer_set_max_jobs(struct pgq_consumer *c, uint64_t max_jobs);
/* Runs the jobs already claimed, claims no more, then stops (stopped hook). */
void consumer_retire(struct pgq_consumer *c);
/*
 * Runs the engine's claim statements for its entrypoints with room for no
 * job, in a transaction rolled back: what a claim would meet (missing tables
 * or an older layout, a read-only session, a missing privilege) without
 * claiming anything. Returns 0, or -1 with err as a claim would fill it.
 */
int consumer_probe(struct pgq_consumer *c, struct pgq_error *err) PGQ_WUR;

#endif
