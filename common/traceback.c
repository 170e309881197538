/*
 * PgQueuer's traceback record in one place, so that a row written by a
 * worker, by the master's recovery or by its cancel reads the same in
 * PgQueuer's TracebackRecord model: same keys, same timestamp form.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/common.h"
#include "common/log.h"
#include "common/traceback.h"

/* Length of the valid UTF-8 sequence at s (of n bytes), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (s[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/*
 * A JSON string of arbitrary bytes: jansson refuses invalid UTF-8 (a stderr
 * tail may start inside a character), so such bytes become '?'.
 */
static json_t *
json_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t n = strlen((const char *)p), o = 0;
	char *clean = xmalloc(n + 1);
	json_t *j;

	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq(p + i, n - i);

		if (len == 0) {
			clean[o++] = '?';
			i++;
			continue;
		}
		memcpy(clean + o, p + i, len);
		o += len;
		i += len;
	}
	clean[o] = '\0';
	j = json_stringn(clean, o);
	free(clean);
	return j != NULL ? j : json_string("");
}

void
traceback_timestamp(const struct timespec *ts, char out[TRACEBACK_TS_LEN])
{
	struct tm tm;
	size_t n;

	gmtime_r(&ts->tv_sec, &tm);
	n = strftime(out, TRACEBACK_TS_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
	/* pydantic drops a zero fraction and writes UTC as Z. */
	if (ts->tv_nsec / 1000 != 0)
		snprintf(out + n, TRACEBACK_TS_LEN - n, ".%06ldZ",
			 ts->tv_nsec / 1000);
	else
		snprintf(out + n, TRACEBACK_TS_LEN - n, "Z");
}

/* additional_context: an object or null, as PgQueuer's model reads it. */
static json_t *
traceback_context(const char *ctx_json)
{
	json_t *ctx;

	if (ctx_json == NULL)
		return json_null();
	ctx = json_loads(ctx_json, JSON_DECODE_ANY, NULL);
	if (json_is_object(ctx))
		return ctx;
	json_decref(ctx);
	ctx = json_object();
	json_object_set_new(ctx, "text", json_text(ctx_json));
	return ctx;
}

char *
traceback_json(int64_t job_id, const char *type, const char *msg,
	       const char *tb, const char *ctx_json)
{
	char stamp[TRACEBACK_TS_LEN];
	struct timespec now;
	json_t *o = json_object();
	char *s;

	clock_gettime(CLOCK_REALTIME, &now);
	traceback_timestamp(&now, stamp);
	json_object_set_new(o, "job_id", json_integer(job_id));
	json_object_set_new(o, "timestamp", json_string(stamp));
	json_object_set_new(o, "exception_type", json_text(type));
	json_object_set_new(o, "exception_message", json_text(msg));
	json_object_set_new(o, "traceback", json_text(tb));
	json_object_set_new(o, "additional_context",
			    traceback_context(ctx_json));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		fatalx("cannot encode a traceback: out of memory");
	return s;
}
