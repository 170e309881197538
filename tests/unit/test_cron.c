/*
 * common/cron.c: table tests of the parser (ranges, steps, lists, names,
 * aliases, 6 fields with seconds last, bad fields and their messages), of
 * the next-fire-time search across minute, month and year ends and Feb 29,
 * and of [schedule NAME] in pgq.ini (defaults, bad values at their line).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cron.h"
#include "conf/conf.h"

/* Seconds since the epoch of a UTC date, through the C library's timegm. */
static int64_t
utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {
		.tm_year = y - 1900,
		.tm_mon = mo - 1,
		.tm_mday = d,
		.tm_hour = h,
		.tm_min = mi,
		.tm_sec = s,
	};

	return (int64_t)timegm(&tm);
}

static char *
show(int64_t t)
{
	static char buf[4][32];
	static unsigned n;
	time_t tt = (time_t)t;
	struct tm tm;
	char *b = buf[n++ % 4];

	gmtime_r(&tt, &tm);
	strftime(b, sizeof(buf[0]), "%Y-%m-%d %H:%M:%S %a", &tm);
	return b;
}

static struct cron
parse_ok(const char *text)
{
	struct cron c;
	char why[200] = "";

	cr_assert_eq(cron_parse(text, &c, why, sizeof(why)), 0,
		     "\"%s\" refused: %s", text, why);
	return c;
}

/* Sets of the parsed fields, for the table below. */
struct set_case {
	const char *text;
	uint64_t minute;
	uint32_t hour;
	uint32_t mday;
	uint16_t month;
	uint8_t wday;
	uint64_t second;
};

#define B(n)  (UINT64_C(1) << (n))
#define ALLM  (B(60) - 1)
#define ALLH  ((UINT32_C(1) << 24) - 1)
#define ALLD  (UINT32_C(0xFFFFFFFE))
#define ALLMO ((uint16_t)0x1FFE)
#define ALLW  ((uint8_t)0x7F)

Test(cron, fields_become_the_right_sets)
{
	static const struct set_case cases[] = {
		{"* * * * *", ALLM, ALLH, ALLD, ALLMO, ALLW, B(0)},
		{"0 0 1 1 *", B(0), 1, B(1), B(1), ALLW, B(0)},
		{"5,10,59 23 * * *", B(5) | B(10) | B(59), 1u << 23, ALLD,
		 ALLMO, ALLW, B(0)},
		{"10-13 * * * *", B(10) | B(11) | B(12) | B(13), ALLH, ALLD,
		 ALLMO, ALLW, B(0)},
		{"*/15 * * * *", B(0) | B(15) | B(30) | B(45), ALLH, ALLD,
		 ALLMO, ALLW, B(0)},
		{"0 9-17/4 * * *", B(0), (1u << 9) | (1u << 13) | (1u << 17),
		 ALLD, ALLMO, ALLW, B(0)},
		/* N/S runs to the end of the field (croniter) */
		{"50/5 * * * *", B(50) | B(55), ALLH, ALLD, ALLMO, ALLW, B(0)},
		{"0 0 * jan,JUL-sep *", B(0), 1, ALLD,
		 (uint16_t)(B(1) | B(7) | B(8) | B(9)), ALLW, B(0)},
		{"0 0 * * mon-fri", B(0), 1, ALLD, ALLMO, 0x3E, B(0)},
		{"0 0 * * Sun", B(0), 1, ALLD, ALLMO, 1, B(0)},
		/* 7 is Sunday too */
		{"0 0 * * 7", B(0), 1, ALLD, ALLMO, 1, B(0)},
		{"0 0 * * 5-7", B(0), 1, ALLD, ALLMO, 0x61, B(0)},
		{"0 0 31 * *", B(0), 1, B(31), ALLMO, ALLW, B(0)},
		/* six fields: the seconds come last */
		{"* * * * * */2", ALLM, ALLH, ALLD, ALLMO, ALLW,
		 0x0555555555555555 & (B(60) - 1)},
		{"0 12 * * * 30", B(0), 1u << 12, ALLD, ALLMO, ALLW, B(30)},
		{"  1\t2  3 4   5 ", B(1), 1u << 2, B(3), (uint16_t)B(4),
		 (uint8_t)B(5), B(0)},
		{"@hourly", B(0), ALLH, ALLD, ALLMO, ALLW, B(0)},
		{"@Daily", B(0), 1, ALLD, ALLMO, ALLW, B(0)},
		{"@weekly", B(0), 1, ALLD, ALLMO, 1, B(0)},
		{"@monthly", B(0), 1, B(1), ALLMO, ALLW, B(0)},
		{"@yearly", B(0), 1, B(1), (uint16_t)B(1), ALLW, B(0)},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		const struct set_case *k = &cases[i];
		struct cron c = parse_ok(k->text);

		cr_expect_eq(c.minute, k->minute, "%s: minute %llx", k->text,
			     (unsigned long long)c.minute);
		cr_expect_eq(c.hour, k->hour, "%s: hour %x", k->text, c.hour);
		cr_expect_eq(c.mday, k->mday, "%s: mday %x", k->text, c.mday);
		cr_expect_eq(c.month, k->month, "%s: month %x", k->text,
			     c.month);
		cr_expect_eq(c.wday, k->wday, "%s: wday %x", k->text, c.wday);
		cr_expect_eq(c.second, k->second, "%s: second %llx", k->text,
			     (unsigned long long)c.second);
	}
}

Test(cron, six_fields_set_has_seconds)
{
	cr_expect(parse_ok("* * * * * 0").has_seconds);
	cr_expect_not(parse_ok("* * * * *").has_seconds);
	cr_expect(parse_ok("* * * * *").mday_star);
	cr_expect_not(parse_ok("*/2 * */2 * *").mday_star);
}

struct bad_case {
	const char *text;
	const char *why; /* the message must start with this */
};

Test(cron, bad_expressions_say_what_is_wrong)
{
	static const struct bad_case cases[] = {
		{"", "expected 5 fields"},
		{"   ", "expected 5 fields"},
		{"* * * *", "expected 5 fields (minute hour day-of-month month "
			    "day-of-week) or 6 (the same, then second), got 4"},
		{"* * * * * * *", "expected 5 fields"},
		{"60 * * * *", "minute field: 60 is out of range 0..59"},
		{"* 24 * * *", "hour field: 24 is out of range 0..23"},
		{"* * 0 * *", "day-of-month field: 0 is out of range 1..31"},
		{"* * 32 * *", "day-of-month field: 32 is out of range 1..31"},
		{"* * * 13 *", "month field: 13 is out of range 1..12"},
		{"* * * 0 *", "month field: 0 is out of range 1..12"},
		{"* * * * 8", "day-of-week field: 8 is out of range 0..7"},
		{"* * * * * 60", "second field: 60 is out of range 0..59"},
		{"99999999999999999999 * * * *",
		 "minute field: 99999999999999999999 is out of range 0..59"},
		{"1234567890123456789012345678901 * * * *",
		 "minute field: 1234567890123456789012345678... is out of "
		 "range"},
		{"a * * * *", "minute field: \"a\" is not a number"},
		{"-1 * * * *", "minute field: a value is missing"},
		{"1- * * * *", "minute field: a value is missing"},
		{"5-1 * * * *",
		 "minute field: range 5-1 ends before it starts"},
		{"* * * * fri-mon",
		 "day-of-week field: range fri-mon ends before it starts"},
		{"*/0 * * * *", "minute field: step 0 is out of range 1..60"},
		{"*/61 * * * *", "minute field: step 61 is out of range 1..60"},
		{"*/ * * * *", "minute field: step missing after /"},
		{"*/x * * * *", "minute field: step \"x\" is not a number"},
		{"1/2/3 * * * *", "minute field: step \"2/3\" is not a number"},
		{"1,,2 * * * *", "minute field: empty list element"},
		{",1 * * * *", "minute field: empty list element"},
		{"1, * * * *", "minute field: empty list element"},
		{"* * * foo *",
		 "month field: \"foo\" is not a number or a name like jan"},
		{"* * * * monday",
		 "day-of-week field: \"monday\" is not a number or a name "
		 "like sun"},
		{"* * * jan-mon *", "month field: \"mon\" is not a number"},
		{"* * L * *", "day-of-month field: \"L\" is not a number"},
		{"* * * * 5#2", "day-of-week field: \"5#2\" is not a number"},
		{"* * 15W * *", "day-of-month field: \"15W\" is not a number"},
		{"** * * * *", "minute field: \"**\" is not a number"},
		{"@reboot", "unknown alias @reboot"},
		{"@every 5m", "unknown alias @every 5m"},
		{"0 0 30 2 *", "never fires"},
		{"0 0 31 4,6,9,11 *", "never fires"},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		struct cron c;
		char why[200] = "";

		cr_expect_eq(cron_parse(cases[i].text, &c, why, sizeof(why)),
			     -1, "\"%s\" accepted", cases[i].text);
		cr_expect(strncmp(why, cases[i].why, strlen(cases[i].why)) == 0,
			  "\"%s\": got \"%s\", want \"%s...\"", cases[i].text,
			  why, cases[i].why);
	}
}

Test(cron, too_long_expressions_are_refused)
{
	char text[CRON_TEXT_MAX + 2];
	struct cron c;
	char why[200];

	memset(text, ' ', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	memcpy(text, "* * * * *", 9);
	cr_expect_eq(cron_parse(text, &c, why, sizeof(why)), -1);
	cr_expect(strncmp(why, "expression too long", 19) == 0, "%s", why);
	/* a NULL why is allowed */
	cr_expect_eq(cron_parse("x", &c, NULL, 0), -1);
}

Test(cron, normalize_gives_the_stored_text)
{
	static const char *const cases[][2] = {
		{"* * * * *", "* * * * *"},
		{"  */2\t*  * *   *  ", "*/2 * * * *"},
		{"0 3 * JAN Mon", "0 3 * jan mon"},
		{"@hourly", "0 * * * *"},
		{"@DAILY", "0 0 * * *"},
		{" @weekly ", "0 0 * * 0"},
		{"* * * * * */2", "* * * * * */2"},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		char *n = cron_normalize(cases[i][0]);

		cr_expect_str_eq(n, cases[i][1], "\"%s\"", cases[i][0]);
		free(n);
	}
}

/* From `after`, the next fire time must be `want`. */
struct next_case {
	const char *text;
	int64_t after;
	int64_t want;
};

Test(cron, next_fire_time_crosses_minutes_months_and_years)
{
	const struct next_case cases[] = {
		/* strictly after: a matching second is not returned again */
		{"* * * * *", utc(2026, 11, 27, 9, 0, 0),
		 utc(2026, 11, 27, 9, 1, 0)},
		{"* * * * *", utc(2026, 11, 27, 9, 0, 59),
		 utc(2026, 11, 27, 9, 1, 0)},
		{"* * * * * */2", utc(2026, 11, 27, 9, 0, 0),
		 utc(2026, 11, 27, 9, 0, 2)},
		{"* * * * * */2", utc(2026, 11, 27, 9, 0, 59),
		 utc(2026, 11, 27, 9, 1, 0)},
		{"0 12 * * * 30", utc(2026, 11, 27, 12, 0, 30),
		 utc(2026, 11, 28, 12, 0, 30)},
		/* end of hour, day, month and year */
		{"*/15 * * * *", utc(2026, 12, 31, 23, 50, 0),
		 utc(2027, 1, 1, 0, 0, 0)},
		{"0 0 1 * *", utc(2026, 1, 31, 12, 0, 0),
		 utc(2026, 2, 1, 0, 0, 0)},
		{"0 0 31 * *", utc(2026, 1, 31, 0, 0, 0),
		 utc(2026, 3, 31, 0, 0, 0)},
		{"30 4 31 12 *", utc(2026, 12, 31, 4, 30, 0),
		 utc(2027, 12, 31, 4, 30, 0)},
		{"@yearly", utc(2026, 6, 1, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0)},
		/* Feb 29: leap years only, and 2100 is not one */
		{"0 0 29 2 *", utc(2026, 1, 1, 0, 0, 0),
		 utc(2028, 2, 29, 0, 0, 0)},
		{"0 0 29 2 *", utc(2096, 2, 29, 0, 0, 0),
		 utc(2104, 2, 29, 0, 0, 0)},
		{"0 0 29 2 *", utc(2000, 1, 1, 0, 0, 0),
		 utc(2000, 2, 29, 0, 0, 0)},
		{"0 0 * 3 *", utc(2028, 2, 28, 12, 0, 0),
		 utc(2028, 3, 1, 0, 0, 0)},
		{"0 0 28-31 2 *", utc(2027, 2, 28, 0, 0, 0),
		 utc(2028, 2, 28, 0, 0, 0)},
		/* days of the week: 2026-11-27 is a Friday */
		{"0 9 * * mon-fri", utc(2026, 11, 27, 9, 0, 0),
		 utc(2026, 11, 30, 9, 0, 0)},
		{"0 0 * * 0", utc(2026, 11, 27, 0, 0, 0),
		 utc(2026, 11, 29, 0, 0, 0)},
		{"0 0 * * 7", utc(2026, 11, 27, 0, 0, 0),
		 utc(2026, 11, 29, 0, 0, 0)},
		/* both day fields restricted: either matches (OR) */
		{"0 0 1 * mon", utc(2026, 11, 27, 0, 0, 0),
		 utc(2026, 11, 30, 0, 0, 0)},
		{"0 0 1 * mon", utc(2026, 11, 30, 0, 0, 0),
		 utc(2026, 12, 1, 0, 0, 0)},
		/* a restricted day of month alone: AND with "*" */
		{"0 0 13 * *", utc(2026, 11, 27, 0, 0, 0),
		 utc(2026, 12, 13, 0, 0, 0)},
		/* "*\/10" is restricted (croniter): OR with Friday, and
		 * the 1st comes before the next Friday */
		{"0 0 */10 * fri", utc(2026, 11, 27, 0, 0, 0),
		 utc(2026, 12, 1, 0, 0, 0)},
		{"0 0 1 1 *", utc(1970, 1, 1, 0, 0, 0),
		 utc(1971, 1, 1, 0, 0, 0)},
		{"59 23 31 12 *", utc(9999, 1, 1, 0, 0, 0),
		 utc(9999, 12, 31, 23, 59, 0)},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		const struct next_case *k = &cases[i];
		struct cron c = parse_ok(k->text);
		int64_t got = -1;

		cr_expect_eq(cron_next(&c, k->after, &got), 0, "%s from %s",
			     k->text, show(k->after));
		cr_expect_eq(got, k->want, "%s from %s: got %s, want %s",
			     k->text, show(k->after), show(got), show(k->want));
		cr_expect(cron_match(&c, k->want), "%s must match %s", k->text,
			  show(k->want));
	}
}

Test(cron, next_fails_outside_the_supported_years)
{
	struct cron c = parse_ok("0 0 1 1 *");
	int64_t t;

	cr_expect_eq(cron_next(&c, -1, &t), -1);
	cr_expect_eq(cron_next(&c, CRON_TIME_MAX, &t), -1);
	/* the last Jan 1 is past: nothing before the end of 9999 */
	cr_expect_eq(cron_next(&c, utc(9999, 1, 1, 0, 0, 0), &t), -1);
	cr_expect_not(cron_match(&c, -5));
}

/*
 * A brute-force check of the search: for a few expressions, every second of
 * a window is tested with cron_match, and cron_next must land on each
 * match in turn.
 */
Test(cron, next_agrees_with_match_second_by_second)
{
	static const char *const exprs[] = {
		"* * * * * */7",  "*/13 * * * *", "0 */5 * * *",
		"7 1 1,15 * mon", "0 0 29 2 *",	  "0 0 * * * 0,59",
	};
	int64_t from = utc(2027, 12, 31, 20, 0, 0);
	int64_t to = from + 6 * 3600;

	for (size_t i = 0; i < PGQ_NELEM(exprs); i++) {
		struct cron c = parse_ok(exprs[i]);
		int64_t t = from;

		for (int64_t s = from + 1; s <= to; s++) {
			int64_t next;

			if (!cron_match(&c, s))
				continue;
			cr_assert_eq(cron_next(&c, t, &next), 0);
			cr_assert_eq(next, s, "%s: after %s got %s, want %s",
				     exprs[i], show(t), show(next), show(s));
			t = s;
		}
	}
}

/* ---- [schedule NAME] in pgq.ini ---- */

#define ENTRY "[entrypoint e]\nbuiltin = noop\n"

static struct conf *
load_text(const char *text, struct conf_errors *errs)
{
	struct conf *cf = NULL;

	conf_errors_init(errs);
	if (conf_load_buffer("t.ini", text, strlen(text), &cf, errs) != 0)
		cr_expect_null(cf);
	return cf;
}

Test(cron, schedule_sections_load_with_defaults)
{
	struct conf_errors e;
	struct conf *cf = load_text(ENTRY "[schedule tick]\n"
					  "cron = *  * * * * */2\n"
					  "[schedule nightly]\n"
					  "entrypoint = report\n"
					  "cron = @daily\n"
					  "payload = {\"full\": true}\n",
				    &e);

	cr_assert_not_null(cf, "%s", conf_errors_format(&e));
	cr_assert_eq(cf->nschedules, 2);
	cr_expect_str_eq(cf->schedules[0].name, "tick");
	/* the entrypoint defaults to the section's name */
	cr_expect_str_eq(cf->schedules[0].entrypoint, "tick");
	cr_expect_str_eq(cf->schedules[0].cron, "*  * * * * */2");
	cr_expect_str_eq(cf->schedules[0].expression, "* * * * * */2");
	cr_expect(cf->schedules[0].spec.has_seconds);
	cr_expect_eq(cf->schedules[0].line, 3);
	cr_expect_str_eq(cf->schedules[0].payload, "");
	cr_expect_str_eq(cf->schedules[1].entrypoint, "report");
	cr_expect_str_eq(cf->schedules[1].expression, "0 0 * * *");
	cr_expect_str_eq(cf->schedules[1].payload, "{\"full\": true}");
	cr_expect_eq(cf->stats_interval_ms, 5000);
	conf_free(cf);
	conf_errors_clear(&e);
}

struct bad_sched {
	const char *text; /* after ENTRY: line 3 is the first line here */
	unsigned line;
	const char *want; /* the error after "t.ini:LINE: " */
};

Test(cron, bad_schedule_values_are_reported_at_their_line)
{
	static const struct bad_sched cases[] = {
		{"[schedule s]\ncron = * * * *\n", 4,
		 "cron: expected 5 fields"},
		{"[schedule s]\ncron = 61 * * * *\n", 4,
		 "cron: minute field: 61 is out of range 0..59, got \"61 * * "
		 "* *\""},
		{"[schedule s]\ncron = 0 0 30 2 *\n", 4, "cron: never fires"},
		{"[schedule s]\nentrypoint = a b\ncron = * * * * *\n", 4,
		 "entrypoint: must be 1..63 bytes without spaces"},
		{"[schedule s]\n"
		 "entrypoint = "
		 "a234567890123456789012345678901234567890123456789012345678901"
		 "234\n"
		 "cron = * * * * *\n",
		 4, "entrypoint: must be 1..63 bytes"},
		{"[schedule s]\nentrypoint = x\n", 3,
		 "[schedule s]: cron is required"},
		{"[schedule s]\ncron = * * * * *\ncommand = /bin/true\n", 5,
		 "command: unknown key in [schedule]; it belongs in "
		 "[entrypoint NAME]"},
		{"[schedule s]\ncron = * * * * *\n[schedule s]\n", 5,
		 "duplicate section [schedule s], first on line 3"},
		{"[schedule]\ncron = * * * * *\n", 3,
		 "[schedule NAME]: NAME must be 1..63 bytes"},
		{"[schedul s]\n", 3,
		 "unknown section [schedul]; did you mean "
		 "[schedule]?"},
		{"[schedule a]\ncron = @hourly\nentrypoint = x\n"
		 "[schedule b]\ncron = 0  * * * *\nentrypoint = x\n",
		 6,
		 "[schedule b]: same entrypoint and cron as [schedule a] on "
		 "line 3"},
		{"[pgq]\nstats_interval = soon\n", 4,
		 "stats_interval: must be a duration"},
		{"[pgq]\nstats_interval = 10ms\n", 4,
		 "stats_interval: must be 0 (off) or at least 100ms"},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		const struct bad_sched *k = &cases[i];
		char *text = xasprintf(ENTRY "%s", k->text);
		char *want = xasprintf("t.ini:%u: %s", k->line, k->want);
		struct conf_errors e;
		struct conf *cf = load_text(text, &e);

		cr_expect_null(cf, "accepted:\n%s", text);
		conf_free(cf);
		cr_expect_eq(e.n, 1, "%zu errors for\n%s\n%s", e.n, text,
			     conf_errors_format(&e));
		if (e.n > 0)
			cr_expect(strncmp(e.v[0].text, want, strlen(want)) == 0,
				  "got  %s\nwant %s", e.v[0].text, want);
		conf_errors_clear(&e);
		free(want);
		free(text);
	}
}

Test(cron, reload_diff_names_schedule_changes)
{
	struct conf_errors e1, e2;
	struct conf *a = load_text(ENTRY "[schedule a]\ncron = * * * * *\n"
					 "[schedule b]\ncron = @hourly\n",
				   &e1);
	struct conf *b = load_text(ENTRY "[pgq]\nstats_interval = 0\n"
					 "[schedule a]\ncron = */5 * * * *\n"
					 "[schedule c]\ncron = @daily\n",
				   &e2);
	struct conf_diff d;
	bool seen_a = false, seen_b = false, seen_c = false;

	cr_assert_not_null(a, "%s", conf_errors_format(&e1));
	cr_assert_not_null(b, "%s", conf_errors_format(&e2));
	cr_expect_eq(b->stats_interval_ms, 0);
	conf_diff(a, b, &d);
	for (size_t i = 0; i < d.nchanges; i++) {
		const struct conf_change *c = &d.changes[i];

		cr_expect_eq(c->apply, CONF_APPLY_MASTER, "%s", c->text);
		if (strcmp(c->text, "[schedule a] cron changed: applied") == 0)
			seen_a = true;
		if (strcmp(c->text, "[schedule b] removed: applied") == 0)
			seen_b = true;
		if (strcmp(c->text, "[schedule c] added: applied") == 0)
			seen_c = true;
	}
	cr_expect(seen_a && seen_b && seen_c, "changes seen: a=%d b=%d c=%d",
		  seen_a, seen_b, seen_c);
	cr_expect(d.master_changed);
	cr_expect_not(d.workers_changed);
	conf_diff_clear(&d);
	conf_free(a);
	conf_free(b);
	conf_errors_clear(&e1);
	conf_errors_clear(&e2);
}
