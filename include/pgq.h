/*
 * libpgq: a PostgreSQL job queue that shares PgQueuer's schema and
 * notifications. Wrap or open a checked connection, enqueue jobs, inspect and
 * control the queue, and run jobs in process with the consumer. The library
 * never prints: every failure is returned as a struct pgq_error.
 */
#ifndef PGQ_H
#define PGQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PGQ_VERSION "0.1.0"
/* Bumped when struct pgq_job or the handler signatures change. */
#define PGQ_ABI_VERSION 1

/* What kind of failure a call met; derived from the SQLSTATE when there is one.
 */
enum pgq_error_class {
	PGQ_OK = 0,	    /* no error */
	PGQ_ERR_CONNECTION, /* could not connect, or the connection was lost
			       (08xxx, 57P01..) */
	PGQ_ERR_UNIQUE, /* unique violation (23505): a duplicate dedupe_key */
	PGQ_ERR_UNDEFINED_TABLE, /* the queue objects are missing (42P01,
				    42704: run pgq install) or older than
				    pgq needs (42703: run pgq upgrade) */
	PGQ_ERR_SERIALIZATION,	 /* serialization failure or deadlock (40001,
				    40P01): retry */
	PGQ_ERR_CHECK,	 /* a connection check failed (transaction, version,
			    isolation) */
	PGQ_ERR_INVALID, /* a bad argument: name, size, count; nothing was sent
			  */
	PGQ_ERR_OTHER,	 /* any other server or client error */
	PGQ_ERR_LIMIT,	 /* a limit was exceeded (54000): a payload over its
			    entrypoint's max_payload; nothing was inserted */
	PGQ_ERR_READ_ONLY,  /* the session cannot write (25006): a standby,
			       or default_transaction_read_only is on */
	PGQ_ERR_AUTH,	    /* the server refused the login (28000, 28P01)
			       or has no such database (3D000) */
	PGQ_ERR_PERMISSION, /* the role lacks a privilege on the queue's
			       objects (42501) */
};

struct pgq_error {
	enum pgq_error_class klass; /* PGQ_OK when there is no error */
	char sqlstate[6];  /* five characters, or "" when not from the server */
	char message[512]; /* what went wrong, server text included */
	char hint[256];	   /* what to do about it, or "" */
};

/* Returns a static name for a class: "connection", "unique_violation", ... */
const char *pgq_error_class_name(enum pgq_error_class klass);

/* What a connection is for; consumers are held to stricter checks. */
enum pgq_role {
	PGQ_ROLE_PRODUCER = 0, /* enqueue and inspect; may be inside the
				  caller's transaction */
	PGQ_ROLE_CONSUMER, /* claims jobs: must be in autocommit, read committed
			    */
};

/* Names of the queue objects; NULL members take the defaults. */
struct pgq_options {
	const char *prefix;  /* PGQUEUER_PREFIX: prepended to every object name;
				default "" */
	const char *schema;  /* PGQUEUER_SCHEMA: schema of the tables; default:
				search_path */
	const char *channel; /* notification channel; default prefix +
				"ch_pgqueuer" */
};

/* A checked connection with the queue's names and prepared statements. */
struct pgq;

/*
 * Opens a connection from a conninfo string or URI (NULL or "" = the libpq
 * environment: PGHOST, PGPORT, PGDATABASE, ...) and runs the checks for role.
 * Returns NULL and fills err on failure.
 */
struct pgq *pgq_connect(const char *conninfo, const struct pgq_options *opt,
			enum pgq_role role, struct pgq_error *err);

/*
 * Wraps a connection the caller already has (the C form of PgQueuer's
 * from_*_connection constructors) and runs the checks for role. The caller
 * keeps ownership of conn: pgq_free does not close it. A producer may be
 * wrapped inside an open transaction; enqueued jobs then appear, with their
 * notification, when the caller commits.
 */
struct pgq *pgq_wrap(PGconn *conn, const struct pgq_options *opt,
		     enum pgq_role role, struct pgq_error *err);

/* Frees the handle, and closes the connection if pgq_connect opened it. */
void pgq_free(struct pgq *q);

/* The underlying connection (borrowed). */
PGconn *pgq_conn(struct pgq *q);

/* The channel this handle notifies and listens on. */
const char *pgq_channel(const struct pgq *q);

/* One job to enqueue. Zero-initialise, then set what you need. */
struct pgq_job_spec {
	const char *entrypoint;	  /* required; the handler's name */
	const void *payload;	  /* bytes, or NULL for a NULL payload */
	size_t payload_len;	  /* length of payload */
	int32_t priority;	  /* higher runs first; default 0 */
	int64_t delay_ms;	  /* execute_after = now() + delay; default 0 */
	const char *dedupe_key;	  /* NULL = none */
	const char *headers_json; /* a JSON object as text, or NULL */
};

/* What to do with a job whose dedupe_key is already queued or picked. */
enum pgq_on_conflict {
	PGQ_CONFLICT_RAISE =
		0,	   /* fail the whole statement with PGQ_ERR_UNIQUE */
	PGQ_CONFLICT_SKIP, /* leave the duplicate out; its id is 0 */
};

/* Enqueues one job; stores its id. Returns 0, or -1 with err filled. */
int pgq_enqueue(struct pgq *q, const struct pgq_job_spec *job, int64_t *id_out,
		struct pgq_error *err);

/*
 * Enqueues n jobs in one statement; ids_out (may be NULL) receives their ids
 * in input order, 0 for a duplicate left out in skip mode. *added_out (may be
 * NULL) receives how many were inserted. Returns 0 or -1 with err filled.
 */
int pgq_enqueue_batch(struct pgq *q, const struct pgq_job_spec *jobs, size_t n,
		      enum pgq_on_conflict on_conflict, int64_t *ids_out,
		      size_t *added_out, struct pgq_error *err);

/* Number of jobs with status queued or picked (entrypoint NULL = all). */
int pgq_queue_size(struct pgq *q, const char *entrypoint, int64_t *queued_out,
		   int64_t *picked_out, struct pgq_error *err);

/*
 * Cancels jobs: queued ones are removed at once with a canceled log row; a
 * cancellation_event naming every id is sent so that the holder of a running
 * one can stop it. *canceled_out (may be NULL) receives how many queued jobs
 * were removed.
 */
int pgq_cancel(struct pgq *q, const int64_t *ids, size_t n,
	       size_t *canceled_out, struct pgq_error *err);

/*
 * Puts held (failed) jobs back in the queue: status queued, attempts 0,
 * execute_after now(), a queued log row and a notification. n = 0 requeues
 * every held job. *requeued_out (may be NULL) receives the count.
 */
int pgq_requeue(struct pgq *q, const int64_t *ids, size_t n,
		size_t *requeued_out, struct pgq_error *err);

/* ---- Handlers and the consumer (the worker loop, in process) ---- */

/* One claimed job, as a handler sees it. All pointers live until it returns. */
struct pgq_job {
	int64_t id;
	int32_t priority;
	int32_t attempts; /* retries so far; 0 on the first run */
	const char *entrypoint;
	const void *payload; /* NULL when the payload is NULL */
	size_t payload_len;
	const char *headers_json;     /* NULL when there are none */
	const char *dedupe_key;	      /* NULL when there is none */
	const char *queue_manager_id; /* the claiming worker's UUID */
};

/* What a handler reports. */
enum pgq_outcome {
	PGQ_OUTCOME_SUCCESS =
		0,	   /* done: the job is deleted, logged successful */
	PGQ_OUTCOME_RETRY, /* transient: retried with backoff while attempts
			      remain */
	PGQ_OUTCOME_FAIL,  /* failed: logged exception (or held, per on_failure)
			    */
};

/* Room for a handler to explain a failure; both strings may stay empty. */
struct pgq_result {
	char exception_type[64];
	char message[1024];
};

/*
 * A job handler. resources is the pointer given to the consumer (library
 * mode) or returned by the module's init hook (daemon). Returns the outcome;
 * on RETRY or FAIL it may fill res.
 */
typedef enum pgq_outcome (*pgq_handler_fn)(const struct pgq_job *job,
					   void *resources,
					   struct pgq_result *res);

/*
 * Module hooks looked up by pgq-master in a handler module (`module = ...`):
 * an optional `int pgq_module_init(void **resources, const char *entrypoint,
 * char *errbuf, size_t errlen)` run once per worker before its first job
 * (non-zero = fatal configuration error, the worker exits 78), and an optional
 * `void pgq_module_fini(void *resources)` run when the worker exits.
 */
typedef int (*pgq_module_init_fn)(void **resources, const char *entrypoint,
				  char *errbuf, size_t errlen);
typedef void (*pgq_module_fini_fn)(void *resources);

/*
 * How an entrypoint treats failures. pgq_entrypoint_options_init fills the
 * defaults shown.
 */
struct pgq_entrypoint_options {
	/* runs before a RETRY is final; 0 = unlimited; default 5 */
	int32_t max_attempts;
	/* delay before the first retry; default 1000 */
	uint64_t retry_delay_ms;
	/* delay factor per retry, >= 1; default 2.0 */
	double retry_backoff;
	/* longest retry delay; default 300000 */
	uint64_t retry_max_delay_ms;
	/*
	 * true: a final failure stays as status 'failed' (pgq_requeue brings
	 * it back); false (default): it is deleted with an exception log row
	 */
	bool hold_on_failure;
	/*
	 * Limits that hold across every consumer of the database that sets
	 * the same values (pgq_consumer and pgq-master alike; PgQueuer 1.4
	 * workers share concurrency_limit through its capacity slots, 1.3
	 * ones know neither). They need pgq's limits table and PgQueuer
	 * 1.4's layout (pgq install or pgq upgrade).
	 * concurrency_limit: at most this many jobs of the entrypoint picked
	 * at once; 1 = one at a time; 0 = no limit (default).
	 */
	int32_t concurrency_limit;
	/* jobs claimed per second at most (a token bucket shared by every
	 * consumer); 0 = no limit (default) */
	double requests_per_second;
	/* jobs that may be claimed at once after a quiet spell, >= 1;
	 * 0 = ceil(requests_per_second) (default) */
	double burst;
};

void pgq_entrypoint_options_init(struct pgq_entrypoint_options *opt);

/*
 * Called by a running handler with the job it was given: true once the job
 * has been canceled (pgq_cancel, `pgq cancel`, PgQueuer's cancellation) while
 * it runs. A long handler may call it now and then and return early: any
 * outcome but PGQ_OUTCOME_SUCCESS then ends the job as canceled. Each call
 * reads the cancellations that arrived (a pgq_consumer's notifications, or
 * pgq-master's channel for a module with `cancel = flag`), so call it between
 * steps, not in a tight loop. False outside a handler or for another job.
 */
bool pgq_job_canceled(const struct pgq_job *job);

/* How a consumer claims. pgq_consumer_options_init fills the defaults. */
struct pgq_consumer_options {
	/* jobs per claim at most, 1..10000; default 500 */
	uint32_t batch_size;
	/* claim while idle even without a notification; 0 = never;
	 * default 30000 */
	uint64_t poll_interval_ms;
	/* a picked job whose heartbeat is older is re-claimable by anyone;
	 * default 30000 */
	uint64_t heartbeat_timeout_ms;
	/* adaptive claims: each claim asks for as many jobs as the average
	 * job time says will run in this window (1..batch_size; one until a
	 * job has been timed); 0 = always batch_size; default 50 */
	uint64_t batch_window_ms;
};

void pgq_consumer_options_init(struct pgq_consumer_options *opt);

/*
 * The consumer: PgQueuer's QueueManager in C. It claims jobs of its
 * entrypoints in batches (FOR UPDATE SKIP LOCKED), runs each through its
 * handler in the calling thread, one at a time, and records the outcome:
 * SUCCESS deletes the job with a `successful` log row; RETRY puts it back
 * with attempts + 1 after retry_delay * retry_backoff^attempts while
 * attempts remain; FAIL (or a RETRY with no attempts left) deletes it with
 * an `exception` log row, or holds it as `failed` with hold_on_failure. The
 * traceback of a failure is PgQueuer's JSON object. Delivery is
 * at-least-once: a consumer that dies leaves its jobs to be re-claimed after
 * heartbeat_timeout. A handler that runs longer than heartbeat_timeout may
 * see its job re-claimed elsewhere: the consumer refreshes heartbeats only
 * between jobs.
 */
struct pgq_consumer;

/*
 * Creates a consumer on q, which must have been opened or wrapped with
 * PGQ_ROLE_CONSUMER and stays the caller's (free the consumer first).
 * resources is handed to every handler call. Returns NULL with err filled.
 */
struct pgq_consumer *pgq_consumer_new(struct pgq *q, void *resources,
				      struct pgq_error *err);

/* Sets batch size, poll interval and heartbeat timeout (opt is copied). */
int pgq_consumer_set_options(struct pgq_consumer *c,
			     const struct pgq_consumer_options *opt,
			     struct pgq_error *err);

/*
 * Registers fn for jobs of entrypoint; opt NULL = the defaults (opt is
 * copied). Not while running. Returns 0 or -1 with err filled.
 */
int pgq_consumer_add(struct pgq_consumer *c, const char *entrypoint,
		     pgq_handler_fn fn,
		     const struct pgq_entrypoint_options *opt,
		     struct pgq_error *err);

/*
 * Runs until pgq_consumer_stop: LISTENs on q's channel, claims at once,
 * then whenever a notification (or the poll interval) says there may be
 * work. A lost connection is reset with backoff (q's PGconn stays the same
 * object); cancellation events stop the canceled jobs that wait in a batch.
 * On return the channel is UNLISTENed. Returns 0 after a stop, or -1 with
 * err filled on an error that retrying cannot cure (missing queue tables, a
 * failed connection check).
 */
int pgq_consumer_run(struct pgq_consumer *c, struct pgq_error *err);

/*
 * Claims and runs until no eligible job is left (or pgq_consumer_stop),
 * without LISTEN. Returns 0, or -1 with err filled as pgq_consumer_run.
 */
int pgq_consumer_drain(struct pgq_consumer *c, struct pgq_error *err);

/*
 * Asks a running consumer to stop: the job running now finishes, jobs
 * claimed but not started go back to the queue (attempts + 1), outcomes are
 * written, then run or drain returns. Async-signal-safe; may be called from
 * a handler. A stop asked before run makes it return at once.
 */
void pgq_consumer_stop(struct pgq_consumer *c);

/* Frees the consumer (not while running); NULL is a no-op. */
void pgq_consumer_free(struct pgq_consumer *c);

/* The UUID this consumer writes to queue_manager_id (borrowed). */
const char *pgq_consumer_queue_manager_id(const struct pgq_consumer *c);

/* Number of jobs run so far (successful or not). */
uint64_t pgq_consumer_processed(const struct pgq_consumer *c);

/* Levels given to a pgq_log_fn. */
enum pgq_log_level {
	PGQ_LOG_ERROR = 0, /* the consumer could not do something */
	PGQ_LOG_WARN,	   /* a database error it retries, a lost job */
	PGQ_LOG_INFO,	   /* reconnects */
	PGQ_LOG_DEBUG,	   /* per-job detail */
};

/* Receives the consumer's diagnostics (the library never prints). */
typedef void (*pgq_log_fn)(void *arg, enum pgq_log_level level,
			   const char *message);

/* Sets where diagnostics go; fn NULL = nowhere (the default). */
void pgq_consumer_set_log(struct pgq_consumer *c, pgq_log_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif
