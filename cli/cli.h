/*
 * The pgq command's inside: the verb table, the option parser every verb
 * shares, the resolution of names and DSN from options and environment, and
 * the error reporting that maps failures onto documented exit codes.
 */
#ifndef PGQ_CLI_H
#define PGQ_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "pgq.h"
#include "sql/sql.h"

/* Exit codes, documented in pgq(1). */
enum cli_exit {
	CLI_EXIT_OK = 0,      /* the verb did what was asked */
	CLI_EXIT_FAIL = 1,    /* a check failed, or there was nothing to do */
	CLI_EXIT_USAGE = 2,   /* bad command line; nothing was sent */
	CLI_EXIT_DB = 3,      /* the database refused or could not be reached */
	CLI_EXIT_CONFIG = 78, /* a bad value in the environment (EX_CONFIG) */
};

/* The global settings, from options first, then the environment. */
struct cli {
	const char *verb;	/* the verb being run, for messages */
	const char *dsn;	/* --dsn, or NULL */
	const char *prefix;	/* --prefix, or NULL */
	const char *schema;	/* --schema, or NULL */
	const char *channel;	/* --channel, or NULL */
	struct sql_names names; /* resolved by cli_resolve */
	const char *conninfo;	/* resolved DSN; NULL = libpq environment */
};

struct cli_verb {
	const char *name;
	const char *synopsis; /* one line: arguments after the verb */
	const char *summary;  /* one line for `pgq --help` */
	const char *help;     /* the options block of `pgq VERB --help` */
	int (*run)(struct cli *c, int argc, char **argv);
};

/*
 * A verb option. With value set the option takes an argument, stored there;
 * with flag set it takes none and sets *flag. Long name without dashes.
 */
struct cli_opt {
	const char *name;
	const char **value;
	bool *flag;
};

/*
 * Parses a verb's arguments (argv[0] is the verb): its options, the global
 * options (accepted after the verb too), --help and "--". Positional
 * arguments are moved to argv[0 .. *npos). Returns -1 to go on, or the exit
 * code to return now: 0 after printing help, 2 after reporting a usage error.
 */
int cli_parse(struct cli *c, const struct cli_verb *v,
	      const struct cli_opt *opts, int argc, char **argv, int *npos);

/* Global option handling shared by main and cli_parse; see cli/args.c. */
enum cli_global {
	CLI_GLOBAL_NONE = 0, /* not a global option */
	CLI_GLOBAL_TAKEN,    /* consumed (with its value when it has one) */
	CLI_GLOBAL_ERROR,    /* a global option missing its value (reported) */
};
enum cli_global cli_global_option(struct cli *c, int argc, char **argv, int *i);

/*
 * Resolves names (prefix, schema, channel) and the DSN from options and the
 * environment, validating both. Returns 0, or the exit code after reporting:
 * 2 for a bad option value, 78 for a bad environment value.
 */
int cli_resolve(struct cli *c);

/*
 * Resolves, then opens a checked producer connection. Returns 0 with *q set,
 * or the exit code after reporting.
 */
int cli_connect(struct cli *c, struct pgq **q);

/* Prints "pgq: VERB: message" to stderr. */
void cli_warnx(const struct cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints a usage error and where to find help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const struct cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * Prints "pgq: VERB failed: message (SQLSTATE X); hint: H" and returns the
 * exit code for the error's class (2 for an invalid argument, else 3).
 */
int cli_db_error(const struct cli *c, const struct pgq_error *err);

/* Parses a job id (1 .. INT64_MAX); false when s is not one. */
bool cli_parse_id(const char *s, int64_t *out) PGQ_WUR;

/* Prints the usage of v (to stdout). */
void cli_print_verb_help(const struct cli_verb *v);

/*
 * A text table printed with aligned columns. Cells are copied. Columns whose
 * heading starts with '>' are right-aligned (the '>' is not printed).
 */
struct cli_table {
	size_t ncols;
	const char *const *heads;
	char **cells; /* row-major, rows * ncols */
	size_t rows, cap;
};
void cli_table_init(struct cli_table *t, const char *const *heads,
		    size_t ncols);
/* Appends a row of ncols strings (NULL prints as empty). */
void cli_table_add(struct cli_table *t, const char *const *row);
void cli_table_print(const struct cli_table *t);
void cli_table_clear(struct cli_table *t);

/* A timestamp without its fractional seconds; caller frees. */
char *cli_time_short(const char *ts);

/*
 * A one-line summary of a traceback (PgQueuer's JSON object):
 * "type: message", cut to max bytes; "" for NULL or empty. Caller frees.
 */
char *cli_traceback_summary(const char *json, size_t max);

extern const struct cli_verb cli_verb_install;
extern const struct cli_verb cli_verb_uninstall;
extern const struct cli_verb cli_verb_upgrade;
extern const struct cli_verb cli_verb_verify;
extern const struct cli_verb cli_verb_sql;
extern const struct cli_verb cli_verb_durability;
extern const struct cli_verb cli_verb_autovac;
extern const struct cli_verb cli_verb_queue;
extern const struct cli_verb cli_verb_status;
extern const struct cli_verb cli_verb_failed;
extern const struct cli_verb cli_verb_requeue;
extern const struct cli_verb cli_verb_cancel;
extern const struct cli_verb cli_verb_log;
extern const struct cli_verb cli_verb_listen;
extern const struct cli_verb cli_verb_schedules;
extern const struct cli_verb cli_verb_stats;
extern const struct cli_verb cli_verb_prune;

#endif
