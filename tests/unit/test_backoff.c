/*
 * Reconnect backoff: the delay doubles from the base, stops at the cap, and
 * its jitter stays within 25 % of the nominal delay while actually varying.
 */
#include "config.h"

#include <criterion/criterion.h>

#include "driver/driver.h"

/* The delay before jitter for attempt n, as the contract states it. */
static uint64_t
nominal_ms(uint64_t base, uint64_t cap, unsigned n)
{
	uint64_t d = base;

	for (unsigned i = 0; i < n && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}

static void
expect_within(uint64_t got, uint64_t nominal, unsigned attempt)
{
	uint64_t lo = nominal - nominal / 4, hi = nominal + nominal / 4;

	cr_expect(got >= lo && got <= hi,
		  "attempt %u: %llu outside [%llu, %llu]", attempt,
		  (unsigned long long)got, (unsigned long long)lo,
		  (unsigned long long)hi);
}

Test(backoff, grows_exponentially_then_stays_at_the_cap)
{
	struct driver_backoff b;

	driver_backoff_init(&b, 100, 30000);
	for (unsigned n = 0; n < 40; n++)
		expect_within(driver_backoff_next_ms(&b),
			      nominal_ms(100, 30000, n), n);
	/* Far past the cap, the nominal delay is the cap. */
	for (unsigned n = 0; n < 1000; n++)
		expect_within(driver_backoff_next_ms(&b), 30000, 40 + n);
}

Test(backoff, averages_show_growth)
{
	struct driver_backoff b;
	uint64_t sum[6] = {0};

	/* Many runs: jitter averages out, so each step roughly doubles. */
	for (int run = 0; run < 200; run++) {
		driver_backoff_init(&b, 1000, 1000000);
		for (int n = 0; n < 6; n++)
			sum[n] += driver_backoff_next_ms(&b);
	}
	for (int n = 1; n < 6; n++)
		cr_expect(sum[n] > sum[n - 1] * 3 / 2,
			  "step %d: %llu not well above %llu", n,
			  (unsigned long long)sum[n],
			  (unsigned long long)sum[n - 1]);
}

Test(backoff, jitter_varies_and_covers_both_sides)
{
	struct driver_backoff b;
	uint64_t lo = UINT64_MAX, hi = 0;

	driver_backoff_init(&b, 10000, 10000);
	for (int i = 0; i < 2000; i++) {
		uint64_t d = driver_backoff_next_ms(&b);

		expect_within(d, 10000, (unsigned)i);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	/* With 2000 draws from [7500, 12500], both tails are reached. */
	cr_expect(lo < 8000, "lowest %llu", (unsigned long long)lo);
	cr_expect(hi > 12000, "highest %llu", (unsigned long long)hi);
}

Test(backoff, reset_starts_over)
{
	struct driver_backoff b;

	driver_backoff_init(&b, 50, 5000);
	for (int i = 0; i < 10; i++)
		(void)driver_backoff_next_ms(&b);
	cr_expect_eq(b.attempt, 10);
	driver_backoff_reset(&b);
	cr_expect_eq(b.attempt, 0);
	expect_within(driver_backoff_next_ms(&b), 50, 0);
}

Test(backoff, odd_settings_do_not_overflow)
{
	struct driver_backoff b;

	/* Zero base: always zero, however many attempts. */
	driver_backoff_init(&b, 0, 1000);
	for (int i = 0; i < 100; i++)
		cr_expect_eq(driver_backoff_next_ms(&b), 0);

	/* Cap below base: the cap wins from the first attempt. */
	driver_backoff_init(&b, 5000, 1000);
	expect_within(driver_backoff_next_ms(&b), 1000, 0);

	/* An enormous cap: doubling saturates instead of wrapping. */
	driver_backoff_init(&b, UINT64_MAX / 8, UINT64_MAX);
	b.attempt = 100;
	cr_expect(driver_backoff_next_ms(&b) >= UINT64_MAX / 8);

	/* A huge attempt count on a small cap. */
	driver_backoff_init(&b, 1, 64);
	b.attempt = 4000000000u;
	expect_within(driver_backoff_next_ms(&b), 64, b.attempt);
}
