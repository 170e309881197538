/*
 * Inside the consumer engine: struct pgq_consumer and what its four files
 * share. consumer.c runs the step machine, claim.c claims, outcome.c records
 * what jobs ended with, consumer_api.c holds pgq.h's pgq_consumer_* and the
 * library's LISTEN. Nothing outside those files includes this header.
 */
#ifndef PGQ_CONSUMER_INT_H
#define PGQ_CONSUMER_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <libpq-fe.h>

#include "common/common.h"
#include "common/log.h"
#include "driver/driver.h"
#include "pgq.h"
#include "worker/worker_int.h"

/* Reconnect and retry backoff after a database error. */
#define CONSUMER_BACKOFF_BASE_MS 100
#define CONSUMER_BACKOFF_CAP_MS	 10000
/* Largest requests_per_second and burst. */
#define CONSUMER_RATE_MAX 1e6
/* Drain mode: first and longest delay before looking again at jobs that
 * only the limits hold back (there are no notifications to wait for). */
#define CONSUMER_HELD_RETRY_MIN_MS 10
#define CONSUMER_HELD_RETRY_MAX_MS 1000

/* The RETRY status of a job put back without using an attempt. */
extern const char CONSUMER_RELEASED[];

struct consumer_ep {
	char *name;
	struct handler *h;
	struct pgq_entrypoint_options opt;
	double retry_jitter;	/* share of the delay, 0..1 (daemon only) */
	uint64_t max_payload;	/* larger payloads are not run; 0 = none
				   (daemon only) */
	bool limited;		/* a concurrency or rate limit applies */
	bool ticket;		/* holds a token a claim reserved for it */
	uint64_t ticket_due_ms; /* when that token may be spent (monotonic) */
};

/* One claimed job and the storage its struct pgq_job points into. */
struct consumer_job {
	struct pgq_job job;
	struct consumer_ep *ep;
	char *entrypoint;
	unsigned char *payload; /* from PQunescapeBytea: PQfreemem */
	char *headers;
	char *dedupe_key;
	bool canceled; /* a cancellation arrived for it */
};

/* Outcomes waiting to be written by one statement. */
struct outcome_list {
	int64_t *ids;
	const char **status; /* COMPLETE: terminal status per id; RETRY:
				CONSUMER_RELEASED for a job put back without
				using an attempt, else NULL */
	uint64_t *delay_ms;  /* RETRY: delay per id */
	char **traceback;    /* JSON per id, or NULL */
	size_t n, cap;
};

/*
 * What the engine does next. The step (consumer_step) runs only in IDLE,
 * CLAIM and BATCH; the others wait for a callback: a handler's end, the
 * backoff timer, nothing at all.
 */
enum consumer_phase {
	CONSUMER_IDLE = 0, /* nothing claimed and no sign of work: a wake (or
			      notification, poll, ticket) moves to CLAIM */
	CONSUMER_CLAIM,	   /* there may be work: the next step writes the
			      pending outcomes and claims */
	CONSUMER_BATCH,	   /* a claim found jobs: the step runs them one by
			      one, then lets the loop read the channel once
			      before the next claim */
	CONSUMER_STARTING, /* a handler's start is on the stack: a job that
			      ends inside it continues the step's loop */
	CONSUMER_RUNNING,  /* a handler runs a job (running) on the loop: its
			      end brings the next step */
	CONSUMER_BACKOFF,  /* a statement failed: backoff_w brings the next
			      step, in resume */
	CONSUMER_STOPPED,  /* a stop completed: outcomes written (or given
			      up), the stopped hook called */
};

/*
 * A stop asked for; only ever escalates. Kept beside the phase because it
 * arrives in any phase and takes effect at the next step.
 */
enum consumer_stop {
	CONSUMER_GO = 0,   /* claiming and running */
	CONSUMER_RETIRE,   /* run what is claimed, claim no more, then stop
			      gracefully */
	CONSUMER_GRACEFUL, /* finish the running job, release the rest */
	CONSUMER_FAST,	   /* abort the running job, release everything */
};

/*
 * The daemon's wake protocol with its master: a wake is owed an idle report
 * once claims run dry, and the first claim after a wake that leaves work for
 * one more asks for it (found_work), once. A wake spans many phases, so it
 * is kept beside the phase.
 */
enum consumer_wake {
	CONSUMER_WAKE_NONE = 0, /* no idle report owed; found_work allowed */
	CONSUMER_WAKE_OPEN,	/* woken: idle owed; found_work allowed */
	CONSUMER_WAKE_HELPED,	/* woken: idle owed; found_work sent */
	CONSUMER_WAKE_SPENT,	/* idle reported after found_work: none until
				   the next wake */
};

/* What one claim found besides its jobs. */
struct claim_result {
	bool help; /* it left work for one more worker (chain wake) */
	bool held; /* jobs wait that only the limits hold back */
};

struct pgq_consumer {
	struct pgq *q;
	void *resources;
	struct ev_loop *loop;
	struct consumer_ep *eps;
	size_t neps;
	char *ep_array; /* text[] literal of the names without limits */
	size_t nfree;	/* entrypoints without limits */
	char qmid[UUID_STR_LEN];
	struct pgq_consumer_options opt;
	struct consumer_hooks hooks;
	pgq_log_fn log_fn;
	void *log_arg;
	/*
	 * Modes, set once per run and independent of the phase: library
	 * (pgq_consumer_*: never logs, heartbeats itself), drain (stop once a
	 * claim finds nothing), listening (library: LISTEN on q's connection).
	 */
	bool library;
	bool drain;
	bool listening;

	enum consumer_phase phase;
	enum consumer_phase resume; /* BACKOFF: the phase it returns to */
	enum consumer_stop stop;
	enum consumer_wake wake;

	/* the claimed batch */
	struct consumer_job *batch;
	size_t nbatch, next;
	struct consumer_job *running; /* STARTING, RUNNING: its job */
	uint64_t heartbeat_ms;	      /* when our jobs' heartbeat was set */
	uint64_t max_jobs;	      /* retire after this many; 0 = never */
	uint64_t processed;
	/* limited entrypoints (concurrency_limit, requests_per_second) */
	size_t limit_next;	 /* the limited entrypoint claimed first */
	uint64_t limit_retry_ms; /* drain: delay before looking again */
	ev_timer limit_w;	 /* a ticket falls due, or drain looks again */
	/* adaptive claims (batch_window_ms) */
	uint64_t job_t0_us; /* when the running job started */
	double job_us_avg;  /* moving average of a job's run time; < 0 =
			       none measured yet */

	/* outcomes not written yet */
	struct outcome_list complete, retry, hold;
	/*
	 * An outcome waits that must be written before the next job runs, not
	 * with the next claim: a limited job's (its slot stays taken until
	 * then). About the outcome lists, not the phase.
	 */
	bool flush_due;

	struct pgq_error fail_err; /* library: an error retrying cannot cure
				      (klass PGQ_OK: none) */

	/* Set from any thread or a signal handler: pgq_consumer_stop. */
	volatile sig_atomic_t stop_flag;
	volatile sig_atomic_t loop_live; /* stop_w may be sent */
	ev_async stop_w;
	ev_timer kick_w; /* run a step outside the caller's stack */
	ev_timer backoff_w;
	struct driver_backoff backoff;
	struct driver_trouble trouble; /* what the backoff waits for */

	/* library mode: LISTEN on q's connection */
	ev_io notify_w;
	ev_timer poll_w;
};

/* ---- consumer.c: the step machine ---- */

/* A diagnostic: common/log.h in daemon mode, log_fn in library mode. */
void consumer_log(const struct pgq_consumer *c, enum log_level level,
		  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Runs a step from the loop soon (never in the caller's stack). */
void consumer_kick(struct pgq_consumer *c);
/*
 * A statement failed: back off (reconnecting if the connection is gone)
 * and try again, saying so at warning level once per cause; the library
 * stops on errors waiting cannot cure (driver_error_fatal).
 */
void consumer_db_error(struct pgq_consumer *c, const char *what,
		       const struct pgq_error *err);
/* A claim worked: the end of a database trouble is said once. */
void consumer_db_ok(struct pgq_consumer *c);
/* Leaves BACKOFF at once (a stop does not wait for the database). */
void consumer_backoff_cancel(struct pgq_consumer *c);
/* Initialises the step's watchers (kick, backoff, stop). */
void consumer_step_init(struct pgq_consumer *c);

/* ---- claim.c: claiming ---- */

struct consumer_ep *consumer_find_ep(struct pgq_consumer *c, const char *name);
/*
 * Claims a batch into c->batch (limited entrypoints first, each in a
 * transaction of its own, then the rest in one statement that also carries
 * the pending completions). Returns the number of jobs, or -1 with err.
 */
int consumer_claim(struct pgq_consumer *c, struct claim_result *cr,
		   struct pgq_error *err);
/* Frees the batch's jobs. */
void consumer_batch_clear(struct pgq_consumer *c);
/*
 * Arms limit_w for the earliest ticket and, in drain mode, for another look
 * at jobs only the limits hold back (held). Returns true when armed.
 */
bool consumer_limit_arm(struct pgq_consumer *c, bool held);
/* Initialises limit_w. */
void consumer_claim_init(struct pgq_consumer *c);
/* Library mode: refreshes our jobs' heartbeat once half of it is gone. */
void consumer_heartbeat(struct pgq_consumer *c);

/* ---- outcome.c: outcomes ---- */

/* Decides what the database records for a finished job; returns the
 * outcome reported to the hooks. */
enum pgq_outcome consumer_record(struct pgq_consumer *c, struct consumer_job *j,
				 const struct handler_result *r);
/* Records a job that is not run: canceled before it started. */
void consumer_record_canceled(struct pgq_consumer *c,
			      const struct consumer_job *j);
/* Records a job over its max_payload as an exception, never run. */
void consumer_too_large(struct pgq_consumer *c, const struct consumer_job *j);
/* Puts a job that never started back for someone else, attempts kept. */
void consumer_release_unstarted(struct pgq_consumer *c,
				const struct consumer_job *j, const char *why);
/*
 * Writes the pending outcomes; what was written is forgotten. Completions
 * stay pending when !with_complete: the next claim carries them. Returns 0
 * or -1 with err.
 */
int consumer_flush(struct pgq_consumer *c, bool with_complete,
		   struct pgq_error *err) PGQ_WUR;
/* The parameters of SQL_COMPLETE for the pending completions. */
struct complete_params {
	const char *values[4];
	char *ids, *sts, *tbs;
};
void complete_params_init(struct pgq_consumer *c, struct complete_params *cp);
void complete_params_free(struct complete_params *cp);
/* SQL_COMPLETE completed done jobs: warns about those no longer ours and
 * forgets the completions. */
void consumer_completed(struct pgq_consumer *c, int done);
/* Forgets every pending outcome (their jobs stay picked until recovered). */
void consumer_outcomes_drop(struct pgq_consumer *c);
void consumer_outcomes_free(struct pgq_consumer *c);

/* ---- consumer_api.c: the library's LISTEN ---- */

/* Reads the notifications libpq has buffered: wakes and cancellations. */
void consumer_read_notifies(struct pgq_consumer *c);

#endif
