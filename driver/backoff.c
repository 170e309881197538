/*
 * Reconnect backoff: capped exponential delays with +-25 % jitter, so that
 * a fleet of workers that lost the server at the same moment does not come
 * back at the same moment either.
 */
#include "config.h"

#include "driver/driver.h"

void
driver_backoff_init(struct driver_backoff *b, uint64_t base_ms, uint64_t cap_ms)
{
	b->base_ms = base_ms;
	b->cap_ms = cap_ms;
	b->attempt = 0;
}

void
driver_backoff_reset(struct driver_backoff *b)
{
	b->attempt = 0;
}

uint64_t
driver_backoff_next_ms(struct driver_backoff *b)
{
	uint64_t d = b->base_ms, spread;

	/* Doubling stops at the cap, so this runs at most 64 times. */
	for (unsigned i = 0; i < b->attempt && d != 0 && d < b->cap_ms; i++)
		d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
	if (d > b->cap_ms)
		d = b->cap_ms;
	/* Leaves room for the jitter above d. */
	if (d > UINT64_MAX / 2)
		d = UINT64_MAX / 2;
	if (b->attempt < UINT32_MAX)
		b->attempt++;
	/* d - d/4 + [0, 2 * (d/4)]: within 25 % either side of d, also when
	 * d is not a multiple of 4 (d/2 would reach one past d + d/4). */
	spread = 2 * (d / 4);
	return d - d / 4 + random_below(spread + 1);
}
