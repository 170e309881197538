/*
 * Private to conf/: the key table that drives parsing, defaults, the reload
 * diff and the restart-only copy, and the error helper shared by the files
 * of the folder.
 */
#ifndef PGQ_CONF_INT_H
#define PGQ_CONF_INT_H

#include "conf/conf.h"

enum conf_section_kind {
	CONF_SECT_PGQ = 0,    /* [pgq]: the master and its workers */
	CONF_SECT_DATABASE,   /* [database]: where to connect */
	CONF_SECT_ENTRYPOINT, /* [entrypoint NAME]: one handler */
	CONF_SECT_SCHEDULE,   /* [schedule NAME]: a cron-driven enqueue */
};

enum conf_type {
	CONF_T_UINT = 0, /* unsigned in [min, max] */
	CONF_T_INT,	 /* int in [min, max] */
	CONF_T_DURATION, /* uint64_t milliseconds in [min, max] */
	CONF_T_REAL,	 /* double in [min, max] */
	CONF_T_IDENT,	 /* char *: SQL identifier of at most max bytes;
			    empty allowed when min is 0 */
	CONF_T_PATH,	 /* char *: absolute path or empty */
	CONF_T_DSN,	 /* char *: libpq conninfo or URI, may hold secrets */
	CONF_T_ENUM,	 /* an int-sized enum, value = index in words */
	CONF_T_COMMAND,	 /* entrypoint command line: command, argv, argc */
	CONF_T_MODULE,	 /* char *: absolute path of an existing file */
	CONF_T_SYMBOL,	 /* char *: C identifier */
	CONF_T_NAME,	 /* char *: an entrypoint name (1..63 bytes, no
			    blanks or control characters) */
	CONF_T_CRON,	 /* char *: a cron expression (common/cron.h); also
			    fills the schedule's expression and spec */
	CONF_T_TEXT,	 /* char *: any text */
	CONF_T_SIZE,	 /* uint64_t bytes in [min, max]; units B, k, M,
			    G (powers of 1024) */
	CONF_T_USER,	 /* char *: a user known to the system */
	CONF_T_GROUP,	 /* char *: a group known to the system */
	CONF_T_ENVNAMES, /* char *: environment variable names separated
			    by blanks */
	CONF_T_BOOL,	 /* bool: yes/no, true/false, on/off, 1/0 */
};

struct conf_key {
	enum conf_section_kind section;
	const char *name;
	enum conf_type type;
	const char *def; /* default in file syntax; NULL = zero or "" */
	size_t offset;	 /* in struct conf, conf_entrypoint or conf_schedule */
	enum conf_apply apply;
	long long min; /* ranges; milliseconds for durations */
	long long max;
	const char *const *words; /* CONF_T_ENUM: NULL-terminated */
};

extern const struct conf_key conf_keys[];
extern const size_t conf_nkeys;

const char *conf_section_kind_name(enum conf_section_kind kind);
/* The key called name in a section kind, or NULL. */
const struct conf_key *conf_key_find(enum conf_section_kind kind,
				     const char *name);

/* Where a key's value lives: base is a struct conf or conf_entrypoint. */
#define CONF_FIELD(base, key) ((void *)((char *)(base) + (key)->offset))
#define CONF_CFIELD(base, key)                                                 \
	((const void *)((const char *)(base) + (key)->offset))

/*
 * Appends "FILE:LINE: KEY: message, got \"VALUE\"" to errs. line 0 leaves out
 * ":LINE", key NULL leaves out "KEY: ", value NULL leaves out the value.
 */
void conf_error_add(struct conf_errors *errs, const char *file, unsigned line,
		    const char *key, const char *value, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/* The same with "; HINT" after the value (hint may be NULL). */
void conf_error_hint(struct conf_errors *errs, const char *file, unsigned line,
		     const char *key, const char *value, const char *hint,
		     const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

/* Formats ms as the shortest exact duration: "100ms", "30s", "5m", "0". */
void conf_format_ms(uint64_t ms, char *buf, size_t size);

/* Levenshtein distance, capped: returns cap + 1 when larger than cap. */
size_t conf_distance(const char *a, const char *b, size_t cap);

#endif
