/*
 * Cron expressions for [schedule NAME]: the 5 fields of crontab(5), or 6 with
 * seconds as the LAST field (as PgQueuer's croniter reads them), parsed into
 * bit sets, and the next matching second computed in UTC. No local time, so
 * no daylight-saving gaps or repeats: 0 3 * * * is 03:00 UTC every day.
 */
#ifndef PGQ_CRON_H
#define PGQ_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* Longest expression accepted, in bytes. */
#define CRON_TEXT_MAX 256
/* Latest time cron_next works with: 9999-12-31 23:59:59 UTC. */
#define CRON_TIME_MAX INT64_C(253402300799)

/*
 * A parsed expression. Bit n of a set stands for value n. A day matches when
 * its month matches and: both day fields are "*"; or only one is restricted
 * and it matches; or both are restricted and either matches (cron's OR rule).
 * A field counts as restricted unless it is exactly "*", as croniter does
 * (Vixie cron also treats "*\/2" as unrestricted).
 */
struct cron {
	uint64_t second;  /* 0..59; {0} with 5 fields */
	uint64_t minute;  /* 0..59 */
	uint32_t hour;	  /* 0..23 */
	uint32_t mday;	  /* 1..31 */
	uint16_t month;	  /* 1..12 */
	uint8_t wday;	  /* 0..6, 0 = Sunday (7 is folded into 0) */
	bool mday_star;	  /* the day-of-month field is "*" */
	bool wday_star;	  /* the day-of-week field is "*" */
	bool has_seconds; /* 6 fields */
};

/*
 * Parses text: "minute hour day-of-month month day-of-week [second]" with
 * fields separated by blanks. Each field is a comma-separated list of "*",
 * N, N-M, "*\/S", N-M/S or N/S (N up to the field's maximum, step S);
 * months and days of the week also take English three-letter names (jan,
 * mon; any case); day of week 0 and 7 are Sunday. Aliases: @yearly,
 * @annually, @monthly, @weekly, @daily, @midnight, @hourly. An expression
 * that can never fire (0 0 30 2 *) is refused. Returns 0, or -1 with a
 * message in why ("hour field: 24 is out of range 0..23"); why may be NULL.
 */
int cron_parse(const char *text, struct cron *out, char *why,
	       size_t whylen) PGQ_WUR;

/*
 * The canonical text of an expression, as stored in the schedules table's
 * expression column: blanks collapsed to one space, trimmed, lower case,
 * aliases expanded ("@hourly" -> "0 * * * *"). Caller frees.
 */
char *cron_normalize(const char *text);

/* True when second t (UTC, seconds since the epoch, >= 0) matches. */
bool cron_match(const struct cron *c, int64_t t);

/*
 * The first matching second strictly after `after` (UTC seconds since the
 * epoch). Returns 0 with *next set, or -1 when after is outside
 * 0..CRON_TIME_MAX or nothing matches up to CRON_TIME_MAX.
 */
int cron_next(const struct cron *c, int64_t after, int64_t *next) PGQ_WUR;

#endif
