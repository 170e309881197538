/*
 * Private to master/: the master's state (one struct master per process),
 * the slot table of workers, and the functions each master/ file offers the
 * others. Everything runs on one libev loop in one thread.
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

enum slot_state {
	SLOT_EMPTY = 0, /* no process and none wanted (beyond `workers`) */
	SLOT_WAITING,	/* wanted; respawn timer running */
	SLOT_STARTING,	/* forked; no hello yet */
	SLOT_IDLE,	/* said idle: waits for a wake */
	SLOT_BUSY,	/* woken: claiming and running jobs */
	SLOT_STOPPING,	/* sent shutdown/fast or killed: waiting for its exit */
	SLOT_DISABLED,	/* exited 78 or held by the breaker: not respawned */
};

/* Control messages that found the channel full wait here, never dropped. */
#define SLOT_OUTQ_MAX 8

/* Why the master killed a worker itself (control.c). */
enum slot_kill {
	SLOT_KILL_NONE = 0, /* it did not */
	SLOT_KILL_TIMEOUT,  /* a module job ran past its timeout */
	SLOT_KILL_CANCEL,   /* a module job was canceled (cancel = replace) */
};

/* Cancellations of jobs no worker was running, kept for their start. */
#define CONTROL_CANCELED_MAX 256

struct master;
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
	bool disabled_first;	 /* exited 78 in its first generation */
	int chan_fd;		 /* master's end of the channel, -1 if none */
	ev_io chan_io;
	ev_timer respawn_timer;
	/* job control (control.c) */
	ev_timer job_timer;	 /* the running module job's timeout */
	int64_t timeout_job_id;	 /* the job job_timer is for */
	uint64_t job_timeout_ms; /* its timeout, from CHAN_JOB_START */
	enum slot_kill kill;	 /* set when the master killed it */
	int64_t kill_job_id;	 /* the job it was killed for */
	bool recycling;		 /* said CHAN_RECYCLE: exits 0 after its
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

/* The master's one libpq connection: LISTEN plus small statements. */
struct listener {
	PGconn *conn;		    /* NULL while disconnected */
	struct driver_async *async; /* drives conn once connected */
	bool connecting;	    /* PQconnectPoll in progress */
	bool listening;		    /* LISTEN done */
	bool ever_listened;	    /* a later LISTEN is a reconnect */
	ev_io conn_io;		    /* connect polling */
	ev_timer conn_timer;	    /* connect timeout / reconnect delay */
	ev_idle lost_idle; /* tears down outside the driver's callback */
	struct driver_backoff backoff;
	PostgresPollingStatusType poll;
};

struct master {
	struct ev_loop *loop;
	struct conf *cf; /* current configuration, owned */
	const char *conf_path;
	struct sql_names names;
	char **sql;		 /* rendered statements, SQL_STMT_COUNT */
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

	/* ids canceled while no worker ran them: a ring (control.c) */
	int64_t canceled[CONTROL_CANCELED_MAX];
	unsigned canceled_head;
	struct scheduler *sched; /* [schedule] and statistics, scheduler.c */

	/* crash breaker: abnormal exit times, ring of crash_breaker_count */
	uint64_t *crash_times;
	unsigned crash_cap, crash_head, crash_n;
	bool breaker_open;

	/* owners whose recovery failed for want of a connection */
	char (*recover_todo)[UUID_STR_LEN];
	char **recover_todo_cause;
	size_t recover_todo_n;

	enum shutdown_level shutdown;
	ev_timer shutdown_timer;
	bool ready_sent; /* READY=1 sent */
	bool rolling;	 /* a reload replacement is in progress */
	int exit_code;

	ev_signal sig_term, sig_int, sig_quit, sig_hup, sig_ttin, sig_ttou,
		sig_usr1, sig_chld;
};

/* pidfile.c */
int pidfile_create(const char *path) PGQ_WUR;
/* Unlinks the pidfile; when the dropped user may not (EACCES), empties it
 * instead, and the next master takes the unlocked file over. */
void pidfile_remove(void);

/* payload.c: writes the max_payload of cf's entrypoints (and clears those
 * of old's entrypoints that are gone; old may be NULL) into the limits
 * table, on the listening connection; a no-op while it is not ready. */
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

/* notify.c: sd_notify when NOTIFY_SOCKET is set; no-op otherwise */
void master_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* signals.c */
void signals_start(struct master *m);
void signals_stop(struct master *m);
const char *signal_name(int sig);
/* Raises the shutdown level (never lowers it) and acts on it. */
void master_shutdown(struct master *m, enum shutdown_level level);

/* spawn.c */
void spawn_init(struct master *m);
void spawn_free(struct master *m);
/* Grows the slot table to n slots (never shrinks it). */
void spawn_ensure_slots(struct master *m, unsigned n);
/* Starts or retires workers so that slots [0, nworkers) are wanted. */
void spawn_reconcile(struct master *m);
/* Reaps exited children (SIGCHLD). */
void spawn_reap(struct master *m);
/* Sends a message to a worker; control messages queue when full. */
void slot_send(struct slot *s, enum chan_type type, int64_t a);
/* Handles what the worker has said so far (before acting on a stale view). */
void slot_poll(struct slot *s);
/* Number of slots with a live process. */
unsigned spawn_live(const struct master *m);
/* SIGKILLs every live worker. */
void spawn_kill_all(struct master *m);
/* Reload: marks live workers for replacement and starts the first. */
void spawn_replace_all(struct master *m);
/* Reload: forgets recorded crashes, closes the breaker, re-enables slots. */
void spawn_breaker_reset(struct master *m);
const char *slot_state_name(enum slot_state s);

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

/* listener.c */
void listener_init(struct master *m);
void listener_start(struct master *m);
void listener_stop(struct master *m);
/* True when statements can be sent now. */
bool listener_ready(const struct master *m);
/* Queues a statement on the master's connection; -1 when not connected. */
int listener_query(struct master *m, enum sql_stmt stmt, int nparams,
		   const char *const *values, driver_async_fn done,
		   void *arg) PGQ_WUR;
size_t listener_pending(const struct master *m);

/* heartbeat.c */
void heartbeat_start(struct master *m);
void heartbeat_stop(struct master *m);
void heartbeat_reconfigure(struct master *m);

/* recovery.c: returns the jobs of a dead worker to the queue */
/* The text[] literal of cf's entrypoint names; caller frees. */
char *master_entrypoints_array(const struct conf *cf);
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
/* After listener_stop: no statement of the scheduler is in flight. */
void scheduler_stop(struct master *m);

/* control.c: timeouts of module jobs, cancellations, recycling */
void control_slot_init(struct slot *s);
/* A new process in the slot: forgets the last one's kill and recycle. */
void control_slot_reset(struct slot *s);
void control_slot_stop(struct slot *s);
/* CHAN_JOB_START (after s->job_id is set), CHAN_JOB_END or CHAN_IDLE,
 * CHAN_RECYCLE. */
void control_job_start(struct slot *s, const struct chan_msg *msg);
void control_job_end(struct slot *s);
void control_recycle(struct slot *s, const struct chan_msg *msg);
/* A cancellation_event named id: stop it where it runs. */
void control_cancel(struct master *m, int64_t id);
/*
 * The slot's process has exited and its channel is drained. When the master
 * killed it (timeout, cancel) this records the job's end and recovers the
 * rest, and returns true: no recovery is left to do, and the slot is
 * respawned at once without backoff or a crash count.
 */
bool control_exited(struct slot *s, long pid);

/* reload.c */
void reload_run(struct master *m);
/* Applies the log and timer settings of m->cf. */
void reload_apply_master(struct master *m);

/* main.c */
/* Checks whether the master is done (shutdown finished, drained). */
void master_check_exit(struct master *m);
/* The STATUS= line and the master's title. */
void master_status(struct master *m);

#endif
