/*
 * The table of every key pgq.ini knows: section, type, default, field and
 * how a SIGHUP applies it. Parsing, defaults, the reload diff and the
 * restart-only copy all walk this one table, each key through the
 * operations of its type (types.c); pgq.ini(5) documents it.
 */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "conf/conf_int.h"

#define MS_S   1000LL
#define MS_MIN (60LL * MS_S)
#define MS_DAY (24LL * 60LL * MS_MIN)
/* A bound for every duration: long enough for any real use, small enough
 * that timers and sums of durations never overflow. */
#define MS_MAX (365LL * MS_DAY)

#define PGQ(name, type, def, field, apply, min, max, words)                    \
	{                                                                      \
		CONF_SECT_PGQ, name, type, def, offsetof(struct conf, field),  \
			apply, min, max, words                                 \
	}
#define DB(name, type, def, field, apply)                                      \
	{                                                                      \
		CONF_SECT_DATABASE, name, type, def,                           \
			offsetof(struct conf, field), apply, 0, 0, NULL        \
	}
#define EP(name, type, def, field, min, max, words)                            \
	{                                                                      \
		CONF_SECT_ENTRYPOINT, name, type, def,                         \
			offsetof(struct conf_entrypoint, field),               \
			CONF_APPLY_WORKERS, min, max, words                    \
	}

#define SCHED(name, type, field)                                               \
	{                                                                      \
		CONF_SECT_SCHEDULE, name, type, NULL,                          \
			offsetof(struct conf_schedule, field),                 \
			CONF_APPLY_MASTER, 0, 0, NULL                          \
	}

/* Word lists, in the order of their enum values. */
static const char *const log_level_words[] = {"error", "warn", "info", "debug",
					      NULL};
static const char *const log_target_words[] = {"stderr", "file", "syslog",
					       NULL};
static const char *const builtin_words[] = {"noop", "sleep", "fail", "echo",
					    NULL};
static const char *const on_failure_words[] = {"delete", "hold", NULL};
static const char *const cancel_words[] = {"replace", "flag", NULL};

/* Enum fields are written as int: the compilers we support agree. */
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_target) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_builtin) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_on_failure) == sizeof(int), "enum size");
_Static_assert(LOG_LEVEL_ERROR == 0 && LOG_LEVEL_DEBUG == 3, "log words");
_Static_assert(LOG_TARGET_STDERR == 0 && LOG_TARGET_SYSLOG == 2, "targets");
_Static_assert(CONF_BUILTIN_NOOP == 0 && CONF_BUILTIN_ECHO == 3, "builtins");
_Static_assert(CONF_ON_FAILURE_DELETE == 0 && CONF_ON_FAILURE_HOLD == 1,
	       "on_failure");
_Static_assert(sizeof(enum conf_cancel) == sizeof(int), "enum size");
_Static_assert(CONF_CANCEL_REPLACE == 0 && CONF_CANCEL_FLAG == 1, "cancel");

/* Sizes: 1 TiB is more than any limit a host would set per process. */
#define SIZE_MAX_BYTES (1LL << 40)

const struct conf_key conf_keys[] = {
	/* [pgq] */
	PGQ("workers", CONF_T_UINT, "4", workers, CONF_APPLY_MASTER, 1, 1024,
	    NULL),
	PGQ("min_workers", CONF_T_UINT, "1", min_workers, CONF_APPLY_MASTER, 0,
	    1024, NULL),
	PGQ("max_workers", CONF_T_UINT, "64", max_workers, CONF_APPLY_MASTER, 1,
	    1024, NULL),
	/* The default channel is prefix + "ch_pgqueuer", set after parsing. */
	PGQ("channel", CONF_T_IDENT, NULL, channel, CONF_APPLY_RESTART, 1,
	    CONF_IDENT_MAX, NULL),
	PGQ("prefix", CONF_T_IDENT, NULL, prefix, CONF_APPLY_RESTART, 0,
	    CONF_PREFIX_MAX, NULL),
	PGQ("schema", CONF_T_IDENT, NULL, schema, CONF_APPLY_RESTART, 0,
	    CONF_IDENT_MAX, NULL),
	PGQ("batch_size", CONF_T_UINT, "500", batch_size, CONF_APPLY_WORKERS, 1,
	    10000, NULL),
	PGQ("batch_window", CONF_T_DURATION, "50ms", batch_window_ms,
	    CONF_APPLY_WORKERS, 0, 60LL * MS_MIN, NULL),
	PGQ("poll_interval", CONF_T_DURATION, "30s", poll_interval_ms,
	    CONF_APPLY_MASTER, 100, MS_MAX, NULL),
	/* Workers claim with it (stale heartbeats), the master beats with it.
	 */
	PGQ("heartbeat_timeout", CONF_T_DURATION, "30s", heartbeat_timeout_ms,
	    CONF_APPLY_WORKERS, MS_S, MS_MAX, NULL),
	PGQ("shutdown_timeout", CONF_T_DURATION, "30s", shutdown_timeout_ms,
	    CONF_APPLY_MASTER, 0, MS_MAX, NULL),
	PGQ("fast_shutdown_timeout", CONF_T_DURATION, "10s",
	    fast_shutdown_timeout_ms, CONF_APPLY_MASTER, 0, MS_MAX, NULL),
	PGQ("pidfile", CONF_T_PATH, NULL, pidfile, CONF_APPLY_RESTART, 0, 0,
	    NULL),
	/* Workers log too: they take new log settings when replaced. */
	PGQ("log_level", CONF_T_ENUM, "info", log_level, CONF_APPLY_WORKERS, 0,
	    0, log_level_words),
	PGQ("log_target", CONF_T_ENUM, "stderr", log_target, CONF_APPLY_WORKERS,
	    0, 0, log_target_words),
	PGQ("log_file", CONF_T_PATH, NULL, log_file, CONF_APPLY_WORKERS, 0, 0,
	    NULL),
	PGQ("respawn_backoff", CONF_T_DURATION, "100ms", respawn_backoff_ms,
	    CONF_APPLY_MASTER, 10, MS_MAX, NULL),
	PGQ("respawn_backoff_max", CONF_T_DURATION, "30s",
	    respawn_backoff_max_ms, CONF_APPLY_MASTER, 10, MS_MAX, NULL),
	PGQ("crash_breaker_count", CONF_T_UINT, "10", crash_breaker_count,
	    CONF_APPLY_MASTER, 0, 1000000, NULL),
	PGQ("crash_breaker_window", CONF_T_DURATION, "60s",
	    crash_breaker_window_ms, CONF_APPLY_MASTER, MS_S, MS_MAX, NULL),
	PGQ("healthy_uptime", CONF_T_DURATION, "10s", healthy_uptime_ms,
	    CONF_APPLY_MASTER, 0, MS_MAX, NULL),
	/* 0 = off; otherwise at least 100ms (checked in check.c). */
	PGQ("stats_interval", CONF_T_DURATION, "5s", stats_interval_ms,
	    CONF_APPLY_MASTER, 0, MS_MAX, NULL),
	/* Recycling: each worker reads them at start. */
	PGQ("max_jobs_per_worker", CONF_T_UINT, "0", max_jobs_per_worker,
	    CONF_APPLY_WORKERS, 0, 1000000000, NULL),
	PGQ("max_jobs_jitter", CONF_T_UINT, "0", max_jobs_jitter,
	    CONF_APPLY_WORKERS, 0, 1000000000, NULL),
	PGQ("max_worker_rss", CONF_T_SIZE, "0", max_worker_rss,
	    CONF_APPLY_WORKERS, 0, SIZE_MAX_BYTES, NULL),
	/* Privileges are dropped once, at start: a reload cannot regain them.
	 */
	PGQ("user", CONF_T_USER, NULL, user, CONF_APPLY_RESTART, 0, 0, NULL),
	PGQ("group", CONF_T_GROUP, NULL, group, CONF_APPLY_RESTART, 0, 0, NULL),
	PGQ("allow_root", CONF_T_BOOL, "no", allow_root, CONF_APPLY_RESTART, 0,
	    0, NULL),

	/* [database]: the master's own connection outlives a reload. */
	DB("dsn", CONF_T_DSN, NULL, dsn, CONF_APPLY_RESTART),
	DB("listen_dsn", CONF_T_DSN, NULL, listen_dsn, CONF_APPLY_RESTART),

	/* [entrypoint NAME]: every key replaces the workers on reload. */
	EP("command", CONF_T_COMMAND, NULL, command, 0, 0, NULL),
	EP("module", CONF_T_MODULE, NULL, module, 0, 0, NULL),
	EP("function", CONF_T_SYMBOL, NULL, function, 0, 0, NULL),
	EP("builtin", CONF_T_ENUM, NULL, builtin, 0, 0, builtin_words),
	EP("sleep", CONF_T_DURATION, "1s", sleep_ms, 0, MS_MAX, NULL),
	EP("timeout", CONF_T_DURATION, "0", timeout_ms, 0, MS_MAX, NULL),
	EP("kill_grace", CONF_T_DURATION, "5s", kill_grace_ms, 0, MS_MAX, NULL),
	EP("max_attempts", CONF_T_INT, "5", max_attempts, 0, 1000000, NULL),
	EP("on_failure", CONF_T_ENUM, "delete", on_failure, 0, 0,
	   on_failure_words),
	EP("retry_delay", CONF_T_DURATION, "1s", retry_delay_ms, 0, MS_MAX,
	   NULL),
	EP("retry_backoff", CONF_T_REAL, "2.0", retry_backoff, 1, 100, NULL),
	EP("retry_max_delay", CONF_T_DURATION, "5m", retry_max_delay_ms, 0,
	   MS_MAX, NULL),
	/* No default: 0 means "use [pgq] batch_size". */
	EP("batch_size", CONF_T_UINT, NULL, batch_size, 1, 10000, NULL),
	EP("retry_jitter", CONF_T_REAL, "0.1", retry_jitter, 0, 1, NULL),
	EP("cancel", CONF_T_ENUM, "replace", cancel, 0, 0, cancel_words),
	/* Command handlers only (checked in check.c); 0 = inherited. */
	EP("rlimit_as", CONF_T_SIZE, "0", rlimit_as, 0, SIZE_MAX_BYTES, NULL),
	EP("rlimit_cpu", CONF_T_DURATION, "0", rlimit_cpu_ms, 0, MS_MAX, NULL),
	EP("rlimit_nofile", CONF_T_UINT, "0", rlimit_nofile, 0, 1048576, NULL),
	EP("user", CONF_T_USER, NULL, user, 0, 0, NULL),
	EP("group", CONF_T_GROUP, NULL, group, 0, 0, NULL),
	EP("pass_env", CONF_T_ENVNAMES, NULL, pass_env, 0, 0, NULL),
	/* Limits of every kind of handler, held by the claim. No default for
	 * the rate: unset = none, and a value must be > 0 (check.c). burst
	 * defaults to the rate rounded up (check.c). */
	EP("concurrency_limit", CONF_T_UINT, "0", concurrency_limit, 0, 1000000,
	   NULL),
	EP("requests_per_second", CONF_T_REAL, NULL, requests_per_second, 0,
	   1000000, NULL),
	EP("burst", CONF_T_UINT, NULL, burst, 1, 1000000, NULL),
	/* Checked by the enqueue statement (limits table) and the worker. */
	EP("max_payload", CONF_T_SIZE, "0", max_payload, 0, SIZE_MAX_BYTES,
	   NULL),

	/* [schedule NAME]: the master upserts and fires schedules itself. An
	 * empty entrypoint becomes NAME after parsing. */
	SCHED("entrypoint", CONF_T_NAME, entrypoint),
	SCHED("cron", CONF_T_CRON, cron),
	SCHED("payload", CONF_T_TEXT, payload),
};

const size_t conf_nkeys = PGQ_NELEM(conf_keys);

const char *
conf_section_kind_name(enum conf_section_kind kind)
{
	switch (kind) {
	case CONF_SECT_PGQ:
		return "pgq";
	case CONF_SECT_DATABASE:
		return "database";
	case CONF_SECT_ENTRYPOINT:
		return "entrypoint";
	case CONF_SECT_SCHEDULE:
		return "schedule";
	}
	return "?";
}

const struct conf_key *
conf_key_find(enum conf_section_kind kind, const char *name)
{
	for (size_t i = 0; i < conf_nkeys; i++)
		if (conf_keys[i].section == kind &&
		    strcmp(conf_keys[i].name, name) == 0)
			return &conf_keys[i];
	return NULL;
}

int
conf_key_apply(const char *section_kind, const char *key)
{
	static const enum conf_section_kind kinds[] = {
		CONF_SECT_PGQ, CONF_SECT_DATABASE, CONF_SECT_ENTRYPOINT,
		CONF_SECT_SCHEDULE};

	for (size_t i = 0; i < PGQ_NELEM(kinds); i++) {
		const struct conf_key *k;

		if (strcmp(section_kind, conf_section_kind_name(kinds[i])) != 0)
			continue;
		k = conf_key_find(kinds[i], key);
		return k ? (int)k->apply : -1;
	}
	return -1;
}
