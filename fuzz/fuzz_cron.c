/*
 * libFuzzer target: cron expressions. Whatever cron_parse accepts must
 * survive cron_normalize unchanged in meaning, and cron_next must return a
 * matching second after its start, with no match skipped in the first
 * minutes after it.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
same(const struct cron *a, const struct cron *b)
{
	return a->second == b->second && a->minute == b->minute &&
	       a->hour == b->hour && a->mday == b->mday &&
	       a->month == b->month && a->wday == b->wday &&
	       a->mday_star == b->mday_star && a->wday_star == b->wday_star &&
	       a->has_seconds == b->has_seconds;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Start times: the epoch, a leap day, the last years supported. */
	static const int64_t starts[] = {0, INT64_C(951782400),
					 INT64_C(1795000000),
					 INT64_C(253370764800)};
	struct cron c, n;
	char why[200];
	char *s, *norm;

	if (size > CRON_TEXT_MAX + 16)
		return 0;
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (cron_parse(s, &c, why, sizeof(why)) != 0) {
		if (why[0] == '\0')
			__builtin_trap();
		free(s);
		return 0;
	}
	norm = cron_normalize(s);
	if (cron_parse(norm, &n, why, sizeof(why)) != 0 || !same(&c, &n))
		__builtin_trap();
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		int64_t next;

		if (cron_next(&c, starts[i], &next) != 0) {
			/* Only near the end of year 9999 may nothing match. */
			if (starts[i] < INT64_C(253370764800))
				__builtin_trap();
			continue;
		}
		if (next <= starts[i] || !cron_match(&c, next))
			__builtin_trap();
		for (int64_t t = starts[i] + 1; t < next && t < starts[i] + 600;
		     t++)
			if (cron_match(&c, t))
				__builtin_trap();
	}
	free(norm);
	free(s);
	return 0;
}
