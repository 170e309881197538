/*
 * The INI file of pgq-master as a typed struct: conf_load parses a file
 * through inih into a fresh struct conf, validates it whole and collects every
 * error as "FILE:LINE: key: message, got \"value\"". conf_diff compares two
 * configs for a SIGHUP reload. Keys and rules are documented in pgq.ini(5).
 */
#ifndef PGQ_CONF_H
#define PGQ_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/common.h"
#include "common/cron.h"
#include "common/log.h"

/* A physical line may hold at most this many bytes before its newline. */
#define CONF_LINE_MAX 198
/* Longest [entrypoint NAME]; fits the channel's text field with its NUL. */
#define CONF_ENTRYPOINT_NAME_MAX 63
/* Longest prefix (PGQUEUER_PREFIX) and longest identifier (NAMEDATALEN-1). */
#define CONF_PREFIX_MAX 24
#define CONF_IDENT_MAX	63

enum conf_handler_kind {
	CONF_HANDLER_COMMAND =
		0,	      /* fork+exec argv, no shell, payload on stdin */
	CONF_HANDLER_MODULE,  /* dlopen module, call function (pgq.h ABI) */
	CONF_HANDLER_BUILTIN, /* one of enum conf_builtin, in the worker */
};

enum conf_builtin {
	CONF_BUILTIN_NOOP = 0, /* succeeds at once */
	CONF_BUILTIN_SLEEP,    /* sleeps the payload's duration (or sleep_ms
				  when the payload is empty), then succeeds */
	CONF_BUILTIN_FAIL,     /* ends in exception "builtin fail" */
	CONF_BUILTIN_ECHO,     /* logs the payload at info and succeeds */
};

enum conf_on_failure {
	CONF_ON_FAILURE_DELETE = 0, /* attempts used up: the job ends as an
				       exception and leaves the queue */
	CONF_ON_FAILURE_HOLD,	    /* attempts used up: the job is kept with
				       status failed for review/requeue */
};

enum conf_cancel {
	CONF_CANCEL_REPLACE = 0, /* module handler canceled while running: the
				    master kills its worker, ends the job
				    canceled and starts a new worker */
	CONF_CANCEL_FLAG,	 /* the running job is only flagged; the module
				    polls pgq_job_canceled() and returns */
};

/* How a changed key takes effect on SIGHUP. */
enum conf_apply {
	CONF_APPLY_MASTER = 0, /* the master applies the new value at once */
	CONF_APPLY_WORKERS,    /* the master applies it where it uses it and
				  replaces workers one at a time so that they
				  pick it up */
	CONF_APPLY_RESTART,    /* needs a restart: a reload logs it and keeps
				  the old value (conf_keep_restart_keys) */
};

/* One [entrypoint NAME] section. */
struct conf_entrypoint {
	char *name;    /* NAME: non-empty, no whitespace, <= 63 bytes */
	unsigned line; /* line of the [entrypoint NAME] header */
	enum conf_handler_kind kind;
	/* kind == CONF_HANDLER_COMMAND */
	char *command; /* the command line as written (for messages) */
	char **argv;   /* NULL-terminated; argv[0] is an absolute path to an
			  executable regular file (checked at load) */
	size_t argc;   /* entries in argv before the NULL, >= 1 */
	/* kind == CONF_HANDLER_MODULE */
	char *module;	/* absolute path of an existing .so */
	char *function; /* C identifier: the pgq_handler_fn symbol */
	/* kind == CONF_HANDLER_BUILTIN */
	enum conf_builtin builtin;
	uint64_t sleep_ms; /* builtin sleep with an empty payload; 1s */
	/* every kind */
	uint64_t timeout_ms;		 /* 0 = none; default 0 */
	uint64_t kill_grace_ms;		 /* SIGTERM -> SIGKILL; default 5s */
	int max_attempts;		 /* 0 = unlimited; default 5 */
	enum conf_on_failure on_failure; /* default delete */
	uint64_t retry_delay_ms;	 /* first retry delay; default 1s */
	double retry_backoff;	     /* delay factor per attempt, >= 1.0; 2.0 */
	uint64_t retry_max_delay_ms; /* cap of the retry delay; default 5m */
	unsigned batch_size;	     /* 0 = [pgq] batch_size */
	double retry_jitter;	     /* each retry delay varies by up to this
					share either way, 0..1; default 0.1 */
	enum conf_cancel cancel;     /* module handlers; default replace */
	/* kind == CONF_HANDLER_COMMAND: the child's limits and identity */
	uint64_t rlimit_as;	/* RLIMIT_AS in bytes; 0 = inherited */
	uint64_t rlimit_cpu_ms; /* RLIMIT_CPU (whole seconds, rounded up);
				   0 = inherited */
	unsigned rlimit_nofile; /* RLIMIT_NOFILE; 0 = inherited */
	char *user;		/* run as this user (exists at load); "" =
				   the worker's */
	char *group;		/* and this group; "" = the user's primary
				   group */
	char *pass_env; /* environment variable names passed on, separated
			   by blanks; "" = none */
	/* limits held across every worker of every host */
	unsigned concurrency_limit; /* jobs picked at once; 0 = none */
	double requests_per_second; /* jobs claimed per second; 0 = none */
	unsigned burst; /* token bucket size; ceil(requests_per_second) when
			   not set, 0 without a rate */
	uint64_t max_payload; /* largest payload in bytes an enqueue may
				 insert (and a worker runs); 0 = none */
};

/* One [schedule NAME] section: a job for entrypoint at every cron tick. */
struct conf_schedule {
	char *name;	  /* NAME: same rules as an entrypoint's name */
	unsigned line;	  /* line of the [schedule NAME] header */
	char *entrypoint; /* the job's entrypoint; default NAME; need not be
			     an [entrypoint] of this file (another host may
			     run it) */
	char *cron;	  /* the expression as written (required) */
	char *expression; /* cron_normalize(cron): the schedules table key */
	struct cron spec; /* cron parsed */
	char *payload;	  /* the job's payload; "" = none (NULL payload) */
};

/* The whole file. Every string is non-NULL ("" when unset). */
struct conf {
	char *path; /* the file it was loaded from */

	/* [pgq] */
	unsigned workers;	       /* 1..1024, default 4 */
	unsigned min_workers;	       /* 0..1024, default 1 */
	unsigned max_workers;	       /* 1..1024, default 64 */
	char *channel;		       /* default prefix + "ch_pgqueuer" */
	char *prefix;		       /* identifier or "", <= 24 bytes */
	char *schema;		       /* identifier or "" (= search_path) */
	unsigned batch_size;	       /* 1..10000, default 500 */
	uint64_t batch_window_ms;      /* 0..1h, default 50ms; 0 = fixed */
	uint64_t poll_interval_ms;     /* default 30s, >= 100ms */
	uint64_t heartbeat_timeout_ms; /* default 30s, >= 1s */
	uint64_t shutdown_timeout_ms;  /* default 30s */
	uint64_t fast_shutdown_timeout_ms; /* default 10s */
	char *pidfile;			   /* absolute path or "" (none) */
	enum log_level log_level;	   /* default info */
	enum log_target log_target;	   /* default stderr */
	char *log_file; /* absolute path; required for log_target = file */
	uint64_t respawn_backoff_ms;	  /* default 100ms */
	uint64_t respawn_backoff_max_ms;  /* default 30s */
	unsigned crash_breaker_count;	  /* default 10 */
	uint64_t crash_breaker_window_ms; /* default 60s */
	uint64_t healthy_uptime_ms;	  /* default 10s */
	uint64_t stats_interval_ms;	  /* log -> statistics; 0 = off; 5s */
	unsigned max_jobs_per_worker;	  /* recycle a worker after this many
					     jobs; 0 = never */
	unsigned max_jobs_jitter;	  /* up to this many more, at random */
	uint64_t max_worker_rss;	  /* recycle a worker whose resident set
					     exceeds this many bytes; 0 = never */
	char *user;	 /* started as root: drop to this user; "" = stay */
	char *group;	 /* and this group; "" = the user's primary group */
	bool allow_root; /* handlers may run as root; default no */

	/* [database] */
	char *dsn;	  /* conninfo or URI; "" = libpq environment */
	char *listen_dsn; /* LISTEN connection; "" = same as dsn */

	/* [entrypoint NAME], in file order, at least one */
	struct conf_entrypoint *entrypoints;
	size_t nentrypoints;

	/* [schedule NAME], in file order, any number */
	struct conf_schedule *schedules;
	size_t nschedules;
};

/* One error, already formatted. */
struct conf_error {
	unsigned line; /* 1-based; 0 when it concerns the whole file */
	char *text;    /* "FILE:LINE: key: message, got \"value\"" */
};

/* A growing list of errors; zero-initialise or conf_errors_init. */
struct conf_errors {
	struct conf_error *v;
	size_t n;
	size_t cap;
};

void conf_errors_init(struct conf_errors *e);
void conf_errors_clear(struct conf_errors *e);
/* Writes each error on its own line to fp (for pgq-master -t). */
void conf_errors_print(const struct conf_errors *e, FILE *fp);
/* All errors joined by newlines in a fresh string ("" when none). */
char *conf_errors_format(const struct conf_errors *e);

/*
 * Loads and validates path into a fresh config. Returns 0 and stores it in
 * *out (free with conf_free), or -1 with every problem appended to errs (may
 * be NULL) and *out set to NULL. Never logs.
 */
int conf_load(const char *path, struct conf **out,
	      struct conf_errors *errs) PGQ_WUR;
/* The same from text in memory; name is used in messages as the file. */
int conf_load_buffer(const char *name, const char *text, size_t len,
		     struct conf **out, struct conf_errors *errs) PGQ_WUR;
/* conf_free(NULL) is a no-op. */
void conf_free(struct conf *cf);

/* The entrypoint called name, or NULL. */
const struct conf_entrypoint *conf_entrypoint_find(const struct conf *cf,
						   const char *name);
/* The batch size that applies to ep (its own or [pgq] batch_size). */
unsigned conf_entrypoint_batch_size(const struct conf *cf,
				    const struct conf_entrypoint *ep);

/*
 * Splits a command line into argv the way a shell would split words, without
 * any expansion: whitespace separates words; '...' keeps everything
 * literally; "..." keeps everything but \" and \\ (backslash escapes only
 * those); outside quotes a backslash escapes any character. Returns 0 with a
 * NULL-terminated argv (free with conf_argv_free) and its count, or -1 with a
 * static reason in *why (unterminated quote, trailing backslash, empty).
 */
int conf_split_command(const char *line, char ***argv_out, size_t *argc_out,
		       const char **why) PGQ_WUR;
void conf_argv_free(char **argv);

/* What changed between two configs, for a reload. */
enum conf_change_kind {
	CONF_CHANGE_VALUE = 0, /* a key has a different value */
	CONF_CHANGE_ADDED,     /* an [entrypoint NAME] or [schedule NAME]
				  section was added */
	CONF_CHANGE_REMOVED,   /* an [entrypoint NAME] or [schedule NAME]
				  section was removed */
};

struct conf_change {
	enum conf_change_kind kind;
	char *section;	       /* "pgq", "database", "entrypoint NAME" or
				  "schedule NAME" */
	const char *key;       /* key name; NULL for ADDED/REMOVED */
	enum conf_apply apply; /* for ADDED/REMOVED: CONF_APPLY_WORKERS
				  (entrypoint) or CONF_APPLY_MASTER
				  (schedule) */
	char *text;	       /* ready to log: "[pgq] prefix changed: needs a
				  restart, keeping old value" */
};

struct conf_diff {
	struct conf_change *changes;
	size_t nchanges;
	bool master_changed;  /* a CONF_APPLY_MASTER key changed */
	bool workers_changed; /* workers must be replaced: a CONF_APPLY_WORKERS
				 key or an entrypoint changed */
	bool restart_changed; /* a key that needs a restart changed */
};

/* Fills out (overwritten) with the differences from old to new. */
void conf_diff(const struct conf *old, const struct conf *new,
	       struct conf_diff *out);
void conf_diff_clear(struct conf_diff *d);
/* True when entrypoint name was added, removed or changed from old to new. */
bool conf_entrypoint_changed(const struct conf *old, const struct conf *new,
			     const char *name);
/*
 * Copies the values of every CONF_APPLY_RESTART key from old into new, so
 * that new can replace old after a reload without changing them.
 */
void conf_keep_restart_keys(struct conf *new, const struct conf *old);
/* How key name of a section kind ("pgq", "database", "entrypoint",
 * "schedule") applies;
 * -1 when there is no such key. */
int conf_key_apply(const char *section_kind, const char *key);

#endif
