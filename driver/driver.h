/*
 * The libpq layer: connection checks, error classes from SQLSTATE, blocking
 * and libev-driven execution with prepared statements, LISTEN and the parsing
 * of PgQueuer's notification events, and reconnect backoff.
 */
#ifndef PGQ_DRIVER_H
#define PGQ_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <libpq-fe.h>

#include "common/common.h"
#include "pgq.h"

/* Oldest server release pgq supports (SKIP LOCKED, jsonb, identity columns). */
#define DRIVER_MIN_SERVER_VERSION     120000
#define DRIVER_MIN_SERVER_VERSION_STR "12"

/* ---- errors ---- */

/* Clears err to PGQ_OK. err may be NULL in every function here. */
void driver_error_clear(struct pgq_error *err);
/* Fills err with a class, no SQLSTATE, and a formatted message. */
void driver_error_set(struct pgq_error *err, enum pgq_error_class klass,
		      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sets the hint of err (formatted). */
void driver_error_hint(struct pgq_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * Fills err from a failed result (res may be NULL: then from the connection's
 * error message): class from the SQLSTATE, server message, the hint of the
 * class (undefined table: "run pgq install").
 */
void driver_error_from_result(struct pgq_error *err, PGconn *conn,
			      const PGresult *res);
/* Class for a SQLSTATE ("" or NULL = connection trouble). */
enum pgq_error_class driver_error_classify(const char *sqlstate);
/*
 * True when waiting cannot cure err: the queue tables are missing or older
 * than pgq needs, the session is read-only, the login or a privilege was
 * refused, a connection check or an argument failed. A drain stops on them
 * and a library consumer returns; a daemon waits for an operator, quietly.
 */
bool driver_error_fatal(const struct pgq_error *err);
/* The cause of err in a few words, for a message ("the database is
 * read-only", "the queue tables are missing"); static. */
const char *driver_error_cause(const struct pgq_error *err);
/*
 * Fills err from a connection attempt that failed (PQconnect*, PQreset) on
 * conn, made with PQERRORS_VERBOSE so that the server's SQLSTATE, if it
 * answered, is in the message: the class comes from it (a refused login is
 * PGQ_ERR_AUTH, no answer PGQ_ERR_CONNECTION); the message is the one line
 * "could not connect: ... host= port= dbname=", without the SQLSTATE, the
 * source location or the password.
 */
void driver_error_from_connect(struct pgq_error *err, PGconn *conn);

/*
 * What a retry loop waits for, so that it says so once and then backs off
 * quietly: driver_trouble_note is true for the first failure of a cause
 * (class and SQLSTATE) and again when the cause changes: log those at
 * warning level, the others at debug level. driver_trouble_over is true
 * once, at the first success after failures, with how many and how long
 * (from the first): log the recovery. Zero-initialised means no trouble.
 */
struct driver_trouble {
	enum pgq_error_class klass; /* PGQ_OK: none */
	char sqlstate[6];
	unsigned failures;
	uint64_t since_ms; /* clock_mono_ms of the first failure */
};

bool driver_trouble_note(struct driver_trouble *t, const struct pgq_error *err);
bool driver_trouble_over(struct driver_trouble *t, unsigned *failures,
			 uint64_t *lasted_ms);

/* ---- connections and checks ---- */

/*
 * The conninfo every pgq process connects with: conninfo itself when not
 * NULL ("" = only libpq's PG* variables), else PGQUEUER_DSN, else PGDSN, a
 * variable set to "" counting as unset, else "". *source (may be NULL) names
 * the variable it came from, or is NULL.
 */
const char *driver_conninfo(const char *conninfo, const char **source);

/*
 * The keywords and values of a pgq connection, for PQconnectdbParams or
 * PQconnectStartParams with expand_dbname = 1: TCP keepalives (a vanished
 * peer is noticed in about a minute), fallback_application_name app, then
 * conninfo, which overrides them all. p borrows both strings.
 */
#define DRIVER_PARAMS_MAX 7
struct driver_params {
	const char *keys[DRIVER_PARAMS_MAX];
	const char *values[DRIVER_PARAMS_MAX];
};
void driver_params_init(struct driver_params *p, const char *conninfo,
			const char *app);

/*
 * conn's error message on one line, with the password it was given masked,
 * into buf (a connection's errors may echo a setting; libpq's own do not
 * carry the password, a server's or a future libpq's might).
 */
void driver_conn_message(PGconn *conn, char *buf, size_t len);

/*
 * Opens a blocking connection on driver_conninfo(conninfo) (waiting at most
 * connect_timeout seconds at each step, when the conninfo sets one). Returns
 * NULL with err filled as driver_error_from_connect. The password never
 * appears in err.
 */
PGconn *driver_connect(const char *conninfo, struct pgq_error *err);

/*
 * Checks a connection for role: it is good; it is not in a transaction block
 * (a consumer is refused, a producer in an open transaction is accepted, one
 * in an aborted transaction is refused); the server is at least
 * DRIVER_MIN_SERVER_VERSION; default_transaction_isolation is read committed
 * (a consumer is refused otherwise; for a producer *warning is filled); a
 * consumer's session can write (a standby, or default_transaction_read_only
 * on, is refused with PGQ_ERR_READ_ONLY: every claim would fail). warning
 * may be NULL. Returns 0, or -1 with err (class PGQ_ERR_CHECK,
 * PGQ_ERR_READ_ONLY or PGQ_ERR_CONNECTION) saying what is wrong and what to
 * do.
 */
int driver_check(PGconn *conn, enum pgq_role role, char *warning,
		 size_t warnlen, struct pgq_error *err) PGQ_WUR;

/* ---- blocking execution ---- */

/*
 * Runs a statement with the simple protocol (several statements allowed).
 * Returns 0 or -1 with err filled.
 */
int driver_exec_simple(PGconn *conn, const char *sql,
		       struct pgq_error *err) PGQ_WUR;

/*
 * Runs one statement with parameters (text format unless formats says
 * otherwise). Returns the result (caller PQclears) on PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK, or NULL with err filled.
 */
PGresult *driver_exec_params(PGconn *conn, const char *sql, int nparams,
			     const char *const *values, const int *lengths,
			     const int *formats, int result_format,
			     struct pgq_error *err);

/*
 * A set of prepared statements on one connection. A statement is prepared on
 * first use; after a reconnect call driver_prepared_reset.
 */
#define DRIVER_MAX_PREPARED 64
struct driver_prepared {
	bool ready[DRIVER_MAX_PREPARED];
};

void driver_prepared_reset(struct driver_prepared *p);

/*
 * Runs prepared statement slot (0..DRIVER_MAX_PREPARED-1) named name with
 * text sql, preparing it first when needed. Same results as
 * driver_exec_params.
 */
PGresult *driver_exec_prepared(PGconn *conn, struct driver_prepared *p,
			       int slot, const char *name, const char *sql,
			       int nparams, const char *const *values,
			       const int *lengths, const int *formats,
			       int result_format, struct pgq_error *err);

/*
 * One statement of a pipeline (driver_exec_pipeline): the prepared
 * statement and its text parameters in; its result or its error out.
 */
struct driver_call {
	int slot;
	const char *name;
	const char *sql;
	int nparams;
	const char *const *values;
	PGresult *res;	      /* out: NULL when the statement failed */
	struct pgq_error err; /* out: set when res is NULL */
};

/*
 * Runs n prepared statements in one round trip (libpq pipeline mode), each
 * in a transaction of its own: a failed statement does not abort the
 * others. Statements not prepared yet are prepared first. Returns the number
 * of statements that failed; each call's res (caller PQclears) or err is
 * set. When the connection is lost every call fails. Should the connection
 * be left in pipeline mode (PQpipelineStatus), only PQreset mends it.
 */
int driver_exec_pipeline(PGconn *conn, struct driver_prepared *p,
			 struct driver_call *calls, int n);

/* ---- non-blocking execution on a libev loop ---- */

struct driver_async;
/* Called once per query with its final result (NULL + err on failure). The
 * result is cleared after the callback returns. err is never NULL: its class
 * is PGQ_OK on success. Never called from inside driver_async_query. */
typedef void (*driver_async_fn)(struct driver_async *a, PGresult *res,
				const struct pgq_error *err, void *arg);
/* Called for every notification received on the connection (borrowed). */
typedef void (*driver_notify_fn)(struct driver_async *a, const PGnotify *n,
				 void *arg);
/* Called when the connection is found broken, after every queued query has
 * failed with PGQ_ERR_CONNECTION; the owner frees the executor and
 * reconnects. */
typedef void (*driver_lost_fn)(struct driver_async *a, void *arg);

/*
 * Drives an established connection (set non-blocking here) from loop: queued
 * queries run one at a time, notifications are drained whenever the socket is
 * readable. Does not take ownership of conn.
 */
struct driver_async *driver_async_new(struct ev_loop *loop, PGconn *conn,
				      driver_notify_fn on_notify,
				      driver_lost_fn on_lost, void *arg);
/*
 * Stops the watchers and fails queued queries with a connection error. May be
 * called from inside any of the executor's callbacks (the memory goes once
 * they return). Call it before PQfinish of the connection; a running query
 * is abandoned and the connection is set back to blocking mode.
 */
void driver_async_free(struct driver_async *a);
/* Queues a query with text parameters (copied; NULL = SQL NULL). One
 * statement; COPY is not supported. Returns 0, or -1 once the connection was
 * lost or the executor is being freed. */
int driver_async_query(struct driver_async *a, const char *sql, int nparams,
		       const char *const *values, driver_async_fn done,
		       void *arg) PGQ_WUR;
/* Number of queries queued or running. */
size_t driver_async_pending(const struct driver_async *a);

/* ---- LISTEN and notifications ---- */

/* True when name is a valid channel (identifier rules, at most 63 bytes). */
bool driver_channel_valid(const char *name);
/* Builds "LISTEN \"name\"" into buf; false when the name is invalid. */
bool driver_listen_sql(const char *channel, char *buf, size_t len);

enum driver_event_type {
	DRIVER_EVENT_UNKNOWN = 0,   /* valid JSON of a type we ignore */
	DRIVER_EVENT_TABLE_CHANGED, /* table_changed_event from the trigger */
	DRIVER_EVENT_CANCELLATION,  /* cancellation_event with job ids */
	DRIVER_EVENT_HEALTH_CHECK,  /* health_check_event with an id */
};

enum driver_operation {
	DRIVER_OP_NONE = 0, /* not a table_changed_event */
	DRIVER_OP_INSERT,   /* rows were inserted */
	DRIVER_OP_UPDATE,   /* rows were updated (never sent by the trigger) */
	DRIVER_OP_DELETE,   /* rows were deleted */
	DRIVER_OP_TRUNCATE, /* the table was truncated */
};

struct driver_event {
	enum driver_event_type type;
	enum driver_operation operation; /* table_changed_event only */
	char channel[64];
	char table[128]; /* table_changed_event only */
	char id[64];	 /* health_check_event only */
	int64_t *ids;	 /* cancellation_event only; owned */
	size_t nids;
};

/*
 * Parses a notification payload. Returns 0 (unknown types included, type
 * DRIVER_EVENT_UNKNOWN), or -1 with a reason in errbuf when the payload is not
 * a JSON object or a known type lacks its fields. ev is overwritten (clear a
 * parsed event before reusing it); on -1 it owns nothing. errbuf may be NULL.
 */
int driver_event_parse(const char *payload, struct driver_event *ev,
		       char *errbuf, size_t errlen) PGQ_WUR;
/* Frees what an event owns; safe on a zeroed or cleared event. */
void driver_event_clear(struct driver_event *ev);
/*
 * True when payload is a table_changed_event for a delete or a truncate,
 * told without parsing: its "operation" key holds one of those words.
 * Every completion sends one, and they make nothing runnable, so a
 * listener drops them before paying for a JSON parse. False for anything
 * else (which then goes through driver_event_parse).
 */
bool driver_event_is_removal(const char *payload);

/* ---- reconnect backoff ---- */

struct driver_backoff {
	uint64_t base_ms; /* first delay */
	uint64_t cap_ms;  /* longest delay */
	unsigned attempt; /* failures so far */
};

void driver_backoff_init(struct driver_backoff *b, uint64_t base_ms,
			 uint64_t cap_ms);
/* The next delay: base * 2^attempt capped, with +-25 % jitter. */
uint64_t driver_backoff_next_ms(struct driver_backoff *b);
void driver_backoff_reset(struct driver_backoff *b);

#endif
