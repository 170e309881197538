/*
 * The SQL of pgq: PgQueuer's schema and the queue statements, kept in .sql
 * files compiled into the binaries, rendered with validated object names.
 * Nothing user-supplied is ever spliced into SQL: names pass ident_valid
 * first, values are bind parameters.
 */
#ifndef PGQ_SQL_H
#define PGQ_SQL_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "common/common.h"
#include "driver/driver.h"
#include "pgq.h"

/* Longest prefix: object names must stay within PostgreSQL's 63 bytes. */
#define SQL_PREFIX_MAX 24
#define SQL_IDENT_MAX  63

/* Rendered object names for one prefix, schema and channel. */
struct sql_names {
	char prefix[SQL_PREFIX_MAX + 1];
	char schema[SQL_IDENT_MAX + 1]; /* "" = unqualified (search_path) */
	char channel[SQL_IDENT_MAX + 1];
	/* qualified names, ready for SQL: [schema.]prefixpgqueuer ... */
	char queue[2 * SQL_IDENT_MAX + 2];
	char log[2 * SQL_IDENT_MAX + 2];
	char statistics[2 * SQL_IDENT_MAX + 2];
	char schedules[2 * SQL_IDENT_MAX + 2];
	char status[2 * SQL_IDENT_MAX + 2];
	char function[2 * SQL_IDENT_MAX + 2];
	/* bare names */
	char queue_bare[SQL_IDENT_MAX + 1]; /* as TG_TABLE_NAME reports it */
	char log_bare[SQL_IDENT_MAX + 1];
	char statistics_bare[SQL_IDENT_MAX + 1];
	char schedules_bare[SQL_IDENT_MAX + 1];
	char status_bare[SQL_IDENT_MAX + 1];
	char function_bare[SQL_IDENT_MAX + 1];
	char trigger[SQL_IDENT_MAX + 1];
	/*
	 * The names pgq gave the function and trigger with a prefix until
	 * it followed PgQueuer (fn_<prefix>pgqueuer_changed where PgQueuer
	 * says <prefix>fn_pgqueuer_changed): upgrade renames them, uninstall
	 * drops them. Without a prefix they equal function and trigger.
	 */
	char legacy_function[2 * SQL_IDENT_MAX + 2];
	char legacy_function_bare[SQL_IDENT_MAX + 1];
	char legacy_trigger[SQL_IDENT_MAX + 1];
};

/*
 * Validates and renders names. prefix/schema/channel may be NULL or "" for
 * the defaults (channel default: prefix + "ch_pgqueuer"). Returns 0, or -1
 * with err (PGQ_ERR_INVALID) naming the bad value and the rule.
 */
int sql_names_init(struct sql_names *n, const char *prefix, const char *schema,
		   const char *channel, struct pgq_error *err) PGQ_WUR;

enum sql_durability {
	SQL_DURABLE = 0, /* every table logged (WAL) */
	SQL_BALANCED,	 /* queue logged; log and statistics unlogged */
	SQL_VOLATILE,	 /* every table unlogged */
};
bool sql_durability_parse(const char *s, enum sql_durability *out) PGQ_WUR;
const char *sql_durability_name(enum sql_durability d);

/*
 * The statements used at run time. Each one's parameters, result columns,
 * serving index and locks are documented beside its text in sql/queries.sql.
 */
enum sql_stmt {
	SQL_ENQUEUE = 0, /* $1 text[] entrypoint, $2 bytea[] payload, $3 int[]
			    priority, $4 interval[] delay, $5 text[] dedupe_key,
			    $6 jsonb[] headers, $7 bool skip_duplicates -> (ord
			    int, id bigint) */
	SQL_CLAIM,    /* $1 text[] entrypoints, $2 int limit, $3 interval stale
			 heartbeat timeout, $4 uuid owner -> id, priority,
			 attempts,    entrypoint, payload, headers, dedupe_key */
	SQL_COMPLETE, /* $1 uuid owner, $2 bigint[] ids, $3 status[] terminal,
			 $4 jsonb[] traceback -> id of each row completed */
	SQL_RETRY,    /* $1 uuid owner, $2 bigint[] ids, $3 interval[] delay,
			 $4 jsonb[] traceback, $5 int[] attempts added (NULL
			 = 1; 0 = released unstarted) -> id; notifies */
	SQL_HOLD, /* $1 uuid owner, $2 bigint[] ids, $3 jsonb[] traceback -> id;
		     status failed, owner cleared */
	SQL_REQUEUE,   /* $1 bigint[] ids (NULL = all held) -> id; notifies */
	SQL_CANCEL,    /* $1 bigint[] ids -> id of queued jobs removed;
			  sends cancellation_event with all ids */
	SQL_HEARTBEAT, /* $1 uuid[] owners -> row count */
	SQL_RECOVER,   /* $1 uuid owner, $2 text[] entrypoints, $3 int[]
			  max_attempts,   $4 bool[] hold, $5 int default
			  max_attempts, $6 bool default hold,   $7 jsonb traceback
			  (cause) -> id, entrypoint, outcome text
			  ('queued'|'exception'|'failed'); notifies when any is
			  queued */
	SQL_AGGREGATE, /* no params: folds unaggregated log rows into statistics
			  under a transaction advisory lock -> row count */
	SQL_QUEUE_SIZE, /* $1 text entrypoint or NULL -> entrypoint, priority,
			   status, count */
	SQL_JOB_LOG,	/* $1 bigint job id -> created, status, priority,
			   entrypoint,    traceback */
	SQL_FAILED,	/* $1 int limit -> id, entrypoint, priority, attempts,
			   updated,     last traceback of held jobs */
	SQL_NEXT_DUE,	/* $1 text[] entrypoints -> seconds until the earliest
			   execute_after of a queued job (NULL = none) */
	SQL_NOTIFY,	/* $1 text operation -> sends a table_changed_event */
	SQL_SCHEDULE_UPSERT, /* $1 text[] expressions, $2 text[] entrypoints,
				$3 bigint[] next_run (epoch seconds) -> rows
				inserted (PQcmdTuples); existing rows kept */
	SQL_SCHEDULE_CLAIM,  /* $1 text[] expressions, $2 text[] entrypoints
				-> one row per schedule found: id, expression,
				entrypoint, claimed bool, status, next_run
				epoch, due text, token text (claimed rows),
				heartbeat epoch, now epoch */
	SQL_SCHEDULE_FIRE,   /* $1 bigint id, $2 timestamptz token, $3 bigint
				next_run epoch, $4 bytea payload, $5 text
				schedule name -> id of the job enqueued (no
				row when the claim was lost) */
	SQL_SCHEDULE_LIST,   /* no params -> id, expression, entrypoint,
				status, next_run, last_run, heartbeat */
	SQL_SCHEDULE_REMOVE, /* $1 bigint[] ids, $2 text[] entrypoints -> id,
				expression, entrypoint of rows deleted */
	SQL_STATS,	     /* $1 interval window -> per entrypoint: counts
				of queued, picked, successful, exception,
				failed, canceled, deleted; last */
	SQL_PRUNE,	     /* $1 interval age, $2 bool all -> log rows and
				statistics rows deleted */
	SQL_LIMIT_LOCK,	     /* $1 text entrypoint, $2 int concurrency_limit, $3
				float8 rate, $4 float8 burst -> tokens; locks the
				entrypoint's limits row until the commit */
	SQL_CLAIM_LIMITED,   /* after SQL_LIMIT_LOCK: $1 text entrypoint, $2 int
				most jobs, $3 int concurrency_limit, $4 float8
				rate, $5 int ticket brought (0/1), $6 interval
				stale, $7 uuid owner, $8 bool may get a ticket
				-> the SQL_CLAIM columns (NULLs when none),
				tokens, wait, spare, held */
	SQL_ENQUEUE_CHECKED, /* SQL_ENQUEUE that first checks max_payload in
				the limits table: 54000 and nothing inserted
				when a job is over its entrypoint's limit.
				Needs the limits table and payload function
				(sql_payload_check_exists) */
	SQL_PAYLOAD_LIMITS,  /* $1 text[] entrypoints, $2 bigint[] max_payload
				(0 = none) -> nothing; sets or clears the
				limits table's max_payload */
	SQL_STMT_COUNT
};

/* The prepared statement name, e.g. "pgq_claim". */
const char *sql_stmt_name(enum sql_stmt s);
/* The statement text rendered for names; caller frees. */
char *sql_stmt_render(enum sql_stmt s, const struct sql_names *n);

/*
 * Scripts: ordered lists of statements, each run separately so an error names
 * the step. install/uninstall/upgrade/autovac/durability render for names.
 */
enum sql_script {
	SQL_SCRIPT_INSTALL = 0, /* enum, tables, indexes, function, trigger */
	SQL_SCRIPT_UNINSTALL,	/* drops everything install creates */
	SQL_SCRIPT_UPGRADE, /* idempotent steps from older PgQueuer layouts */
	SQL_SCRIPT_AUTOVAC, /* autovacuum settings for the hot tables */
	SQL_SCRIPT_DURABILITY, /* ALTER TABLE ... SET LOGGED/UNLOGGED */
	SQL_SCRIPT_COUNT
};

struct sql_script_text {
	char **steps;  /* rendered statements, each owned */
	char **labels; /* a short label per step for messages, owned */
	size_t n;
};

/* Renders a script. durability applies to install and durability. */
void sql_script_render(enum sql_script s, const struct sql_names *n,
		       enum sql_durability d, struct sql_script_text *out);
void sql_script_clear(struct sql_script_text *t);

/* ---- schema operations on a blocking connection ---- */

/*
 * Whether the queue has pgq's limits table with max_payload and the payload
 * function, i.e. whether SQL_ENQUEUE_CHECKED can run. 1 yes, 0 no, -1 on a
 * database error (err set).
 */
int sql_payload_check_exists(PGconn *conn, const struct sql_names *n,
			     struct pgq_error *err) PGQ_WUR;

/* Runs install in one transaction. Returns 0 or -1 with err. */
int sql_install(PGconn *conn, const struct sql_names *n, enum sql_durability d,
		struct pgq_error *err) PGQ_WUR;
int sql_uninstall(PGconn *conn, const struct sql_names *n,
		  struct pgq_error *err) PGQ_WUR;
int sql_upgrade(PGconn *conn, const struct sql_names *n,
		struct pgq_error *err) PGQ_WUR;
int sql_autovac(PGconn *conn, const struct sql_names *n,
		struct pgq_error *err) PGQ_WUR;
int sql_set_durability(PGconn *conn, const struct sql_names *n,
		       enum sql_durability d, struct pgq_error *err) PGQ_WUR;

/*
 * Checks which objects exist. expect_present true: every object must exist
 * (a PgQueuer 1.3 queue, without the slot column and index, counts as
 * present: see sql_layout); false: none may. Each mismatch is appended as a
 * line to report (caller frees; NULL when all is as expected). Returns 0
 * when as expected, 1 when not, -1 on a database error.
 */
int sql_verify(PGconn *conn, const struct sql_names *n, bool expect_present,
	       char **report, struct pgq_error *err) PGQ_WUR;

/* Which PgQueuer layout the queue table has. */
enum sql_layout {
	SQL_LAYOUT_NONE = 0, /* no queue table */
	SQL_LAYOUT_1_3,	     /* PgQueuer 1.3: no capacity slots */
	SQL_LAYOUT_1_4, /* PgQueuer 1.4: the slot column and its valid unique
			   index (what install creates) */
	SQL_LAYOUT_PARTIAL, /* the slot column without a valid index: an
			       upgrade that did not finish */
};

/*
 * Reads the layout of n's queue table into *out. PgQueuer 1.4 workers and
 * pgq's limited claims need SQL_LAYOUT_1_4; everything else runs on 1.3 too.
 * Returns 0, or -1 with err on a database error.
 */
int sql_layout(PGconn *conn, const struct sql_names *n, enum sql_layout *out,
	       struct pgq_error *err) PGQ_WUR;
/* "PgQueuer 1.3", "PgQueuer 1.4", ... (static). */
const char *sql_layout_name(enum sql_layout l);

/* ---- the statement session of one connection (session.c) ---- */

/*
 * One connection with the queue's names and the statements prepared on it.
 * libpgq's handle embeds one, and the consumer and the CLI run their
 * statements through the handle's, so a backend has one set of prepared
 * names whoever runs a statement. A statement is rendered and prepared on
 * first use. The connection is borrowed: its owner opens and closes it.
 */
struct sql_session {
	PGconn *conn;
	struct sql_names names;
	struct driver_prepared prep; /* slot = enum sql_stmt */
	char *text[SQL_STMT_COUNT];  /* rendered on first use */
	int payload_check; /* SQL_ENQUEUE_CHECKED can run: 1 yes, 0 no, -1 not
			      looked up yet */
};

/*
 * Sets up a session on conn (borrowed) with names for prefix, schema and
 * channel, as sql_names_init. Returns 0, or -1 with err.
 */
int sql_session_init(struct sql_session *s, PGconn *conn, const char *prefix,
		     const char *schema, const char *channel,
		     struct pgq_error *err) PGQ_WUR;
/* Frees what the session rendered; the connection is left as it is. */
void sql_session_clear(struct sql_session *s);
/*
 * DEALLOCATEs the statements the session prepared, for a connection its owner
 * goes on using: later prepared names cannot clash. No-op on a connection
 * that is not CONNECTION_OK.
 */
void sql_session_deallocate(struct sql_session *s);
/* Forgets the prepared statements: after PQreset the backend has none. */
void sql_session_reset(struct sql_session *s);
/* Statement st's text for the session's names, rendered on first use. */
const char *sql_session_text(struct sql_session *s, enum sql_stmt st);

/*
 * Runs statement st with nparams text parameters, prepared on first use.
 * Returns the result (caller PQclears) or NULL with err.
 */
PGresult *sql_exec(struct sql_session *s, enum sql_stmt st, int nparams,
		   const char *const *values, struct pgq_error *err);
/*
 * Runs n statements in one round trip, each in a transaction of its own
 * (driver_exec_pipeline): calls[i].slot is the enum sql_stmt, name and sql
 * are filled in here. Returns the number of statements that failed.
 */
int sql_exec_pipeline(struct sql_session *s, struct driver_call *calls, int n);
/*
 * Runs the enqueue statement with SQL_ENQUEUE's 7 values: SQL_ENQUEUE_CHECKED
 * when the queue has pgq's limits table and payload function (looked up once
 * per session), plain SQL_ENQUEUE on a queue installed by PgQueuer. Returns
 * the result (caller PQclears) or NULL with err.
 */
PGresult *sql_exec_enqueue(struct sql_session *s, const char *const *values,
			   struct pgq_error *err);

/*
 * BEGIN and COMMIT around statements that must share a transaction. Return
 * 0 or -1 with err.
 */
int sql_begin(struct sql_session *s, struct pgq_error *err) PGQ_WUR;
int sql_commit(struct sql_session *s, struct pgq_error *err) PGQ_WUR;
/* ROLLBACK after an error; a failure is left to the caller's reconnect
 * (a lost connection has ended the transaction already). */
void sql_rollback(struct sql_session *s);
/* LISTEN (on) or UNLISTEN on the session's channel. Returns 0 or -1 with
 * err. */
int sql_listen(struct sql_session *s, bool on, struct pgq_error *err) PGQ_WUR;

#endif
