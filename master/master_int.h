/*
 * Private to master/: the master's state (one struct master per process),
 * the slot table of workers, and the functions each master/ file offers the
 * others. Everything runs on one libev loop in one thread. The files:
 *   main.c       options, the INI file, privileges, pidfile; then master_run
 *   master.c     the cycle and its reactions: signals, shutdown, LISTEN ready
 *   slot.c       the workers: fork, channel, reap, respawn with backoff
 *   breaker.c    the crash breaker: holds slots that fail at boot
 *   dbconn.c     a connection driven from the loop, reconnected with backoff
 *   listener.c   the LISTEN connection (LISTEN only)
 *   maint.c      the maintenance connection: every other statement
 *   wake.c       notifications to wakes; the due timer
 *   jobctl.c     module job timeouts, cancellations, recycling
 *   orphans.c    ends the handler process groups of dead workers
 *   recovery.c heartbeat.c payload.c scheduler.c   statements the master runs
 *   reload.c signals.c sdnotify.c pidfile.c privs.c
 */
#ifndef PGQ_MASTER_INT_H
#define PGQ_MASTER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>
#include <libpq-fe.h>

#include "common/channel.h"
#include "common/common.h"
#include "conf/conf.h"
#include "driver/driver.h"
#include "sql/sql.h"

/* sysexits(3) values the master uses. */
#define MASTER_EX_USAGE	 64
#define MASTER_EX_CONFIG 78

/*
 * A slot's state; slot_set_state (slot.c) is its only writer. What a slot
 * was told or announced besides (stop_sent, recycling, kill) and whether a
 * reload wants it replaced (replace) are facts about its process, not
 * states: a recycling worker may still be told to shut down, a worker told
 * to stop may then be killed, and a busy worker keeps working while marked
 * for replacement.
 */
enum slot_state {
	SLOT_EMPTY = 0,	    /* no process and none wanted (beyond `workers`) */
	SLOT_WAITING,	    /* wanted; respawn timer running */
	SLOT_STARTING,	    /* forked; no hello yet */
	SLOT_IDLE,	    /* said idle: waits for a wake */
	SLOT_BUSY,	    /* woken: claiming and running jobs */
	SLOT_STOPPING,	    /* sent shutdown/fast, recycling or killed: waiting
			       for its exit */
	SLOT_CONFIG_FAILED, /* exited 78: not respawned until a reload */
	SLOT_HELD,	    /* held by the crash breaker: not respawned */
};

/* Control messages that found the channel full wait here, never dropped. */
#define SLOT_OUTQ_MAX 8

/* Why the master killed a worker itself (jobctl.c). */
enum slot_kill {
	SLOT_KILL_NONE = 0, /* it did not */
	SLOT_KILL_TIMEOUT,  /* a module job ran past its timeout */
	SLOT_KILL_CANCEL,   /* a module job was canceled (cancel = replace) */
};

/* Cancellations of jobs no worker was running, kept for their start. */
#define JOBCTL_CANCELED_MAX 256

struct master;
struct orphan;
struct scheduler;

struct slot {
	struct master *m;
	unsigned index;
	pid_t pid;	     /* 0 when no process */
	unsigned generation; /* processes started in this slot */
	enum slot_state state;
	char queue_manager_id[UUID_STR_LEN]; /* from hello; "" before */
	long backend_pid; /* the worker's connection, from hello */
	int64_t job_id;	  /* running job, 0 when none */
	char job_entrypoint[CHAN_TEXT_MAX];
	uint64_t started_ms;	 /* fork time (monotonic) */
	uint64_t job_started_ms; /* running job's start (monotonic) */
	uint64_t backoff_ms;	 /* next respawn delay */
	bool replace;		 /* reload: replace with the new conf */
	bool stop_sent;		 /* shutdown or fast already sent */
	int chan_fd;		 /* master's end of the channel, -1 if none */
	ev_io chan_io;
	ev_timer respawn_timer;
	/* job control (jobctl.c) */
	ev_timer job_timer;	   /* the running module job's timeout */
	int64_t timeout_job_id;	   /* the job job_timer is for */
	uint64_t job_timeout_ms;   /* its timeout, from CHAN_JOB_START */
	enum slot_kill kill;	   /* set when the master killed it */
	int64_t kill_job_id;	   /* the job it was killed for */
	int64_t cancel_job_id;	   /* a cancel waiting for the channel's
				      messages to be read first; 0 none */
	pid_t handler_pgid;	   /* its running command's process group */
	uint64_t handler_grace_ms; /* that command's kill_grace */
	bool recycling;		   /* said CHAN_RECYCLE: exits 0 after its
				      jobs, replaced at once */
	struct chan_msg outq[SLOT_OUTQ_MAX];
	size_t outq_len;
};

enum shutdown_level {
	SHUTDOWN_NONE = 0,  /* running */
	SHUTDOWN_GRACEFUL,  /* TERM: workers finish their job and exit */
	SHUTDOWN_FAST,	    /* INT: running jobs stopped and returned */
	SHUTDOWN_IMMEDIATE, /* QUIT: SIGKILL, the master returns the jobs */
};

enum breaker_state {
	BREAKER_CLOSED = 0, /* workers are respawned */
	BREAKER_OPEN,	    /* boot failures tripped it: their slots are held */
	BREAKER_HALF_OPEN,  /* one held slot is on trial */
};

/* The crash breaker (breaker.c). */
struct breaker {
	enum breaker_state state;
	uint64_t *times; /* boot failures: a ring of crash_breaker_count */
	unsigned cap, head, n;
	unsigned trial_slot;	   /* HALF_OPEN: the slot on trial */
	unsigned trial_generation; /* and its process */
	ev_timer trial_timer;	   /* OPEN: the next trial */
	ev_timer healthy_timer;	   /* HALF_OPEN: the trial's healthy_uptime */
};

struct dbconn;
/* The conninfo to connect with (read at each attempt). */
typedef const char *(*dbconn_conninfo_fn)(const struct master *m);
/* Connected, the executor set up: 0, or -1 to close and retry. */
typedef int (*dbconn_connected_fn)(struct dbconn *c);
typedef void (*dbconn_notify_fn)(struct dbconn *c, const PGnotify *n);

/* A connection the master drives from its loop (dbconn.c). */
struct dbconn {
	struct master *m;
	const char *name;     /* "listen connection", for the log */
	const char *app_name; /* fallback_application_name */
	dbconn_conninfo_fn conninfo;
	dbconn_connected_fn on_connected;
	dbconn_notify_fn on_notify; /* NULL: notifications are dropped */
	PGconn *conn;		    /* NULL while disconnected */
	struct driver_async *async; /* drives conn once connected */
	bool connecting;	    /* PQconnectPoll in progress */
	bool ready;		    /* statements may go (its owner says) */
	ev_io conn_io;		    /* connect polling */
	ev_timer conn_timer;	    /* connect timeout / reconnect delay */
	ev_idle lost_idle; /* tears down outside the driver's callback */
	struct driver_backoff backoff;
	PostgresPollingStatusType poll;
};

/* The LISTEN connection is listening (again): reconnect after a loss. */
typedef void (*listener_ready_fn)(struct master *m, bool reconnect);

/* The LISTEN connection: LISTEN only. */
struct listener {
	struct dbconn c;
	bool ever_listened;	    /* a later LISTEN is a reconnect */
	listener_ready_fn on_ready; /* set by master.c */
};

/* The maintenance connection is (again) ready for statements. */
typedef void (*maint_ready_fn)(struct master *m);

/* Every other statement of the master (maint.c). */
struct maint {
	struct dbconn c;
	maint_ready_fn on_ready; /* set by master.c */
};

struct master {
	struct ev_loop *loop;
	struct conf *cf; /* current configuration, owned */
	const char *conf_path;
	/*
	 * The statements' texts for the queue's names, rendered on first
	 * use. Its connection stays NULL: the master sends its statements
	 * unprepared through driver/async.c.
	 */
	struct sql_session session;
	char *entrypoints_array; /* text[] literal of the entrypoint names */
	bool drain;		 /* --drain */

	struct slot **slots; /* nslots allocated, each its own block */
	unsigned nslots;
	unsigned nworkers; /* wanted workers (TTIN/TTOU, reload) */

	/* wake strategy */
	unsigned pending_wakes; /* wake-ups no idle worker could take */
	ev_timer poll_timer;	/* safety net every poll_interval */
	ev_timer due_timer;	/* earliest execute_after */
	bool due_query_running;
	bool due_query_again;	  /* asked again while one ran */
	bool due_query_from_idle; /* the running query follows an idle */
	bool due_again_from_idle;
	uint64_t due_idle_delay_ms; /* backoff for due-but-unclaimable jobs */
	uint64_t wakes_sent;	    /* counter, for the drain check */
	uint64_t due_query_wakes;   /* wakes_sent when the query was sent */

	ev_timer heartbeat_timer;
	struct listener ls;
	struct maint maint;

	/* ids canceled while no worker ran them: a ring (jobctl.c) */
	int64_t canceled[JOBCTL_CANCELED_MAX];
	unsigned canceled_head;
	struct scheduler *sched; /* [schedule] and statistics, scheduler.c */

	struct breaker breaker;

	/* dead workers' command handler groups being ended (orphans.c) */
	struct orphan *orphans;
	ev_timer orphans_poll;

	/* owners whose recovery failed for want of a connection */
	char (*recover_todo)[UUID_STR_LEN];
	char **recover_todo_cause;
	size_t recover_todo_n;

	enum shutdown_level shutdown;
	ev_timer shutdown_timer;
	ev_prepare exit_check; /* after each round of events: done yet? */
	bool ready_sent;       /* READY=1 sent */
	bool rolling;	       /* a reload replacement is in progress */
	int exit_code;

	ev_signal sig_term, sig_int, sig_quit, sig_hup, sig_ttin, sig_ttou,
		sig_usr1, sig_chld;
};

/* master.c: the cycle and the master's reactions to events */
/*
 * Renders what the master sends for m->cf (the statements' names, the
 * entrypoints literal). Returns 0, or -1 after logging.
 */
int master_prepare(struct master *m) PGQ_WUR;
/* Frees what master_prepare made and the configuration. */
void master_clear(struct master *m);
/* Runs the master until a shutdown completes; returns the exit code. */
int master_run(struct master *m);
/* A signal arrived (signals.c). */
void master_signal(struct master *m, int sig);
/* Raises the shutdown level (never lowers it) and acts on it. */
void master_shutdown(struct master *m, enum shutdown_level level);
/* The STATUS= line and the master's title. */
void master_status(struct master *m);
/* The text[] literal of cf's entrypoint names; caller frees. */
char *master_entrypoints_array(const struct conf *cf);

/* pidfile.c */
int pidfile_create(const char *path) PGQ_WUR;
/* Unlinks the pidfile; when the dropped user may not (EACCES), empties it
 * instead, and the next master takes the unlocked file over. */
void pidfile_remove(void);

/* payload.c: writes the max_payload of cf's entrypoints (and clears those
 * of old's entrypoints that are gone; old may be NULL) into the limits
 * table, on the maintenance connection; a no-op while it is not ready. */
void payload_sync(struct master *m, const struct conf *old);

/* privs.c */
/* Warns (log) when cf holds a DSN password and path is group- or
 * world-readable. */
void privs_check_conf_mode(const struct conf *cf, const char *path);
/*
 * Before the drop: [pgq] user is reachable (root, or already that user),
 * no entrypoint asks for a user the dropped master cannot switch to, and no
 * handler would run as root unless allow_root (flag or key). Returns 0, or
 * MASTER_EX_CONFIG after logging why.
 */
int privs_check(const struct conf *cf, const char *path,
		bool allow_root) PGQ_WUR;
/* Started as root with [pgq] user: setgroups, setgid, setuid, then proves
 * root cannot be regained. 0, or -1 after logging. */
int privs_drop(const struct conf *cf) PGQ_WUR;

/* sdnotify.c: sd_notify when NOTIFY_SOCKET is set; no-op otherwise */
void sdnotify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* signals.c: the watchers; what a signal does is master_signal's */
void signals_start(struct master *m);
/* Also in a forked worker: takes the watchers out of libev's table. */
void signals_stop(struct master *m);
const char *signal_name(int sig);

/* slot.c: the slot table, the worker processes and their channels */
void slots_init(struct master *m);
void slots_free(struct master *m);
/* Grows the slot table to n slots (never shrinks it). */
void slots_ensure(struct master *m, unsigned n);
/* Starts or retires workers so that slots [0, nworkers) are wanted. */
void slots_reconcile(struct master *m);
/* Reaps exited children (SIGCHLD). */
void slots_reap(struct master *m);
/* Number of slots with a live process. */
unsigned slots_live(const struct master *m);
/* Shutdown at level: tells or kills every live worker, drops the slots
 * waiting to respawn. */
void slots_stop(struct master *m, enum shutdown_level level);
/* Reload: marks live workers for replacement and starts the first. */
void slots_replace_all(struct master *m);
/* Reload: forgets recorded crashes and backoffs, closes the breaker,
 * re-enables held and failed slots. */
void slots_forgive(struct master *m);
/* The lowest wanted slot the breaker holds; NULL when none. */
struct slot *slots_first_held(struct master *m);
/* The breaker closed: starts every wanted slot it held. */
void slots_release_held(struct master *m);
/* Forks a worker into s now (a failed fork retries in a second). */
void slot_start(struct slot *s);
/* The one writer of s->state; logs the transition (debug). */
void slot_set_state(struct slot *s, enum slot_state st, const char *why);
const char *slot_state_name(enum slot_state s);
/* Sends a message to a worker; control messages queue when full. */
void slot_send(struct slot *s, enum chan_type type, int64_t a);
/* Handles what the worker has said so far (before acting on a stale view);
 * for callbacks of the loop, never from inside another slot's handling. */
void slot_poll(struct slot *s);
/* True when the worker has said something not yet handled. */
bool slot_has_input(struct slot *s);
/* SIGKILLs the worker (the slot is STOPPING until its exit). */
void slot_kill(struct slot *s, const char *why);

/* wake.c */
void wake_init(struct master *m);
void wake_start(struct master *m);
void wake_stop(struct master *m);
/* One wake-up: the lowest idle slot, else a pending count. */
void wake_one(struct master *m, const char *reason);
/* Chain wake: one more idle worker, if there is one (no pending count). */
void wake_more(struct master *m);
/* Every idle worker (after a LISTEN reconnect). */
void wake_all(struct master *m, const char *reason);
/* A worker reported idle: serve a pending wake or recheck the due timer. */
void wake_on_idle(struct master *m, struct slot *s);
/* A notification from the LISTEN connection. */
void wake_on_notify(struct master *m, const char *payload);
/* Asks SQL_NEXT_DUE again (coalesced). */
void wake_query_due(struct master *m, bool from_idle);
/* poll_interval may have changed. */
void wake_reconfigure(struct master *m);

/* dbconn.c: a connection driven from the loop */
void dbconn_init(struct dbconn *c, struct master *m, const char *name,
		 const char *app_name, dbconn_conninfo_fn conninfo,
		 dbconn_connected_fn on_connected, dbconn_notify_fn on_notify);
void dbconn_start(struct dbconn *c);
void dbconn_stop(struct dbconn *c);
/* Closes the connection and connects again after the backoff delay. */
void dbconn_retry(struct dbconn *c);
/* Found broken: not ready; closed and retried from the loop (not from
 * inside the driver's callback). */
void dbconn_lost(struct dbconn *c);
/* Queues statement stmt; -1 when it is not ready. */
int dbconn_query(struct dbconn *c, enum sql_stmt stmt, int nparams,
		 const char *const *values, driver_async_fn done,
		 void *arg) PGQ_WUR;
size_t dbconn_pending(const struct dbconn *c);
/* In a forked child: closes the socket, never PQfinish. */
void dbconn_close_in_child(const struct dbconn *c);

/* listener.c: the LISTEN connection (transport only) */
/* on_ready runs each time LISTEN succeeds. */
void listener_init(struct master *m, listener_ready_fn on_ready);
void listener_start(struct master *m);
void listener_stop(struct master *m);
/* The LISTEN statement in flight (0 or 1). */
size_t listener_pending(const struct master *m);

/* maint.c: the maintenance connection, for every other statement */
/* on_ready runs each time it connects. */
void maint_init(struct master *m, maint_ready_fn on_ready);
void maint_start(struct master *m);
void maint_stop(struct master *m);
/* True when statements can be sent now. */
bool maint_ready(const struct master *m);
/* Queues a statement; -1 when not connected. */
int maint_query(struct master *m, enum sql_stmt stmt, int nparams,
		const char *const *values, driver_async_fn done,
		void *arg) PGQ_WUR;
size_t maint_pending(const struct master *m);

/* heartbeat.c */
void heartbeat_start(struct master *m);
void heartbeat_stop(struct master *m);
void heartbeat_reconfigure(struct master *m);

/* recovery.c: returns the jobs of a dead worker to the queue */
void recovery_run(struct master *m, const char *owner, const char *cause,
		  unsigned slot, long pid);
/* The same with an exception_type other than "WorkerDied". */
void recovery_run_as(struct master *m, const char *owner, const char *type,
		     const char *cause, unsigned slot, long pid);
/* After a reconnect: runs recoveries that could not be sent. */
void recovery_retry(struct master *m);
void recovery_free(struct master *m);

/* scheduler.c: [schedule NAME] firing and the statistics fold */
void scheduler_start(struct master *m);
/* m->cf changed (reload): new schedules, new stats_interval. */
void scheduler_reconfigure(struct master *m);
/* After maint_stop: no statement of the scheduler is in flight. */
void scheduler_stop(struct master *m);

/* jobctl.c: timeouts of module jobs, cancellations, recycling */
void jobctl_slot_init(struct slot *s);
/* A new process in the slot: forgets the last one's kill and recycle. */
void jobctl_slot_reset(struct slot *s);
void jobctl_slot_stop(struct slot *s);
/* CHAN_JOB_START (after s->job_id is set), CHAN_JOB_END or CHAN_IDLE,
 * CHAN_RECYCLE. */
void jobctl_job_start(struct slot *s, const struct chan_msg *msg);
void jobctl_job_end(struct slot *s);
void jobctl_recycle(struct slot *s, const struct chan_msg *msg);
/* A cancellation_event named id: stop it where it runs. */
void jobctl_cancel(struct master *m, int64_t id);
/*
 * s's messages are read: a cancel that waited for them goes on. reaped: the
 * process is gone (slot.c reaped it), so it is not signalled.
 */
void jobctl_cancel_resume(struct slot *s, bool reaped);
/*
 * The slot's process has exited and its channel is drained. When the master
 * killed it (timeout, cancel) this records the job's end and recovers the
 * rest, and returns true: no recovery is left to do, and the slot is
 * respawned at once without backoff or a crash count.
 */
bool jobctl_exited(struct slot *s, long pid);

/* breaker.c: the crash breaker */
void breaker_init(struct master *m);
/* Stops its timers (shutdown). */
void breaker_stop(struct master *m);
void breaker_free(struct master *m);
/* Reload: closes it and forgets the failures (crash_breaker_count may have
 * changed). */
void breaker_reset(struct master *m);
/* True when respawning a slot that failed at boot must wait (open, or
 * half-open with another slot on trial). */
bool breaker_holds(const struct master *m);
/* s's worker exited abnormally; boot_failure: before healthy_uptime (those
 * alone count). Ends a trial, may trip it. */
void breaker_exited(struct master *m, const struct slot *s, bool boot_failure);
const char *breaker_state_name(enum breaker_state st);

/* orphans.c: the command handler groups of dead workers */
/* Makes the master a child subreaper; the poll timer. */
void orphans_init(struct master *m);
/*
 * s's worker has died with its command's group s->handler_pgid running:
 * SIGTERM now, SIGKILL after its kill_grace, and once the group is gone the
 * recovery of s's jobs with cause (NULL: none, it is done already).
 */
void orphans_add(struct master *m, const struct slot *s, const char *cause);
/* Forgets the groups that are gone (after a reap, on a timer). */
void orphans_check(struct master *m);
/* The queue_manager_ids whose recovery waits (for heartbeats). */
size_t orphans_owners(const struct master *m, const char **out, size_t max);
/* SIGKILL to every group still there (the master is about to exit). */
void orphans_kill_all(struct master *m);
void orphans_free(struct master *m);

/* reload.c */
void reload_run(struct master *m);
/* Applies the log and timer settings of m->cf. */
void reload_apply_master(struct master *m);

#endif
