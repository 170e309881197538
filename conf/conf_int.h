/*
 * Private to conf/: the key table (keys.c), the operations of each value type
 * (types.c), a file as the reader collected it (load.c) for the build step
 * (check.c), and the error helpers shared by the files of the folder.
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
	CONF_T_COUNT,	 /* not a type: the number of types */
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

/* Where a key's value lives: base is a struct conf, conf_entrypoint or
 * conf_schedule. */
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

/* One value as written, and where a problem with it is reported. */
struct conf_value {
	const struct conf_key *key;
	const char *text; /* continuation lines joined, comment removed */
	const char *file; /* for messages */
	unsigned line;	  /* of the key; 0 for a default */
	bool comment_cut; /* an inline comment was removed from text */
	struct conf_errors *errs; /* where problems are appended */
};

/*
 * What each value type does, one function per operation, after nginx's
 * ngx_conf_set_*_slot setters and PgBouncer's typed table. base is the
 * struct conf, conf_entrypoint or conf_schedule that holds the key's field;
 * the command type also owns argv and argc, the cron type expression and
 * spec. Every operation is set for every type.
 */
struct conf_type_ops {
	const char *name; /* "duration": for tests */
	bool secret;	  /* may hold a password: the value is never echoed */
	size_t size;	  /* bytes of a scalar field; 0 when it owns memory */
	/* Sets the field empty: "" for strings, zero otherwise. */
	void (*init)(const struct conf_key *k, void *base);
	/*
	 * Reads v->text into a zeroed base; 0, or -1 after reporting. Either
	 * way clear frees what it stored. Checks the form only.
	 */
	int (*parse)(const struct conf_value *v, void *base);
	/* Checks a parsed value against the key's range or words, or against
	 * the system (files, users); 0, or -1 after reporting. */
	int (*validate)(const struct conf_value *v, const void *base);
	/* The value in file syntax, which parse reads back to an equal value;
	 * a fresh string. */
	char *(*print)(const struct conf_key *k, const void *base);
	/* True when the key has the same value in a and b (the reload diff).
	 */
	bool (*equal)(const struct conf_key *k, const void *a, const void *b);
	/* Replaces the value in dst with a copy of the one in src. */
	void (*copy)(const struct conf_key *k, void *dst, const void *src);
	/* Frees what the field owns; init may follow. */
	void (*clear)(const struct conf_key *k, void *base);
};

/* Indexed by enum conf_type. */
extern const struct conf_type_ops conf_types[CONF_T_COUNT];

/*
 * Parses and validates v, then stores it in base; 0, or -1 after reporting
 * with base unchanged. Every value of the file and every default goes
 * through here.
 */
int conf_value_set(const struct conf_value *v, void *base) PGQ_WUR;
/*
 * Reports a bad value: "FILE:LINE: KEY: message, got \"TEXT\"; HINT". The
 * text is left out for a secret type. Without a hint, says so when an
 * inline comment shortened the value.
 */
void conf_value_error(const struct conf_value *v, const char *hint,
		      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The rule for NAME of [entrypoint NAME], [schedule NAME] and a schedule's
 * entrypoint: 1..63 bytes without blanks or control characters. */
bool conf_name_valid(const char *s, size_t n);

/* One key = value as written, waiting for the build step. */
struct conf_raw_entry {
	const struct conf_key *key;
	char *value;	  /* continuation lines joined, comment removed */
	unsigned line;	  /* line of the key */
	bool comment_cut; /* an inline comment was removed from the value */
	bool broken;	  /* a continuation line was rejected: skip it */
	bool bad;	  /* its value failed to parse */
};

struct conf_raw_section {
	enum conf_section_kind kind;
	char *name;    /* NAME of [entrypoint NAME] or [schedule NAME], else
			  NULL */
	unsigned line; /* line of the header */
	struct conf_raw_entry *entries;
	size_t nentries;
	size_t cap;
};

/* A file as the reader collected it: its sections in file order. */
struct conf_raw {
	const char *file; /* the name used in messages */
	struct conf_errors *errs;
	struct conf_raw_section *sections;
	size_t nsections;
	size_t cap;
};

/*
 * check.c: fills cf (zeroed, path set) from raw: defaults, every value
 * through conf_value_set, the rules between keys, the entrypoints and the
 * schedules. Marks the entries that fail and appends every problem to
 * raw->errs.
 */
void conf_build(struct conf_raw *raw, struct conf *cf);

/* Levenshtein distance, capped: returns cap + 1 when larger than cap. */
size_t conf_distance(const char *a, const char *b, size_t cap);

#endif
