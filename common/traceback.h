/*
 * PgQueuer's traceback record: the JSON object the log table's traceback
 * column holds for a job that failed, was retried, canceled or recovered.
 * Written by the consumer engine and by the master alike.
 */
#ifndef PGQ_TRACEBACK_H
#define PGQ_TRACEBACK_H

#include <stdint.h>
#include <time.h>

/* "2026-12-01T10:20:30.123456Z" and its NUL, with room to spare. */
#define TRACEBACK_TS_LEN 48

/*
 * ts in UTC as PgQueuer writes a timestamp (pydantic's JSON form of an aware
 * datetime): "YYYY-MM-DDTHH:MM:SS.ffffffZ", the fraction left out when it is
 * zero.
 */
void traceback_timestamp(const struct timespec *ts, char out[TRACEBACK_TS_LEN]);

/*
 * The record {job_id, timestamp (now), exception_type, exception_message,
 * traceback, additional_context} as compact JSON; caller frees. type, msg
 * and tb may be NULL (""); bytes that are not UTF-8 become '?'. ctx_json is
 * the text of a JSON object, or NULL for null; any other text is kept as
 * {"text": ctx_json}, since PgQueuer reads only an object or null there.
 * Exits on out-of-memory.
 */
char *traceback_json(int64_t job_id, const char *type, const char *msg,
		     const char *tb, const char *ctx_json);

#endif
