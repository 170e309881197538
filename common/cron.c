/*
 * The cron parser and the next-fire-time search of [schedule NAME]. Fields
 * become bit sets; the search walks forward from a UTC second, skipping a
 * whole month, day, hour or minute as soon as that unit cannot match, with
 * proleptic Gregorian calendar arithmetic on day numbers (no libc time zone).
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cron.h"

enum cron_field {
	F_MINUTE = 0,
	F_HOUR,
	F_MDAY,
	F_MONTH,
	F_WDAY,
	F_SECOND,
};

struct field_spec {
	const char *name;
	int min, max;
	const char *const *names; /* three-letter names of min, min+1, ... */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may",
					  "jun", "jul", "aug", "sep", "oct",
					  "nov", "dec", NULL};
static const char *const wday_names[] = {"sun", "mon", "tue", "wed",
					 "thu", "fri", "sat", NULL};

/* In field order; day of week accepts 7 for Sunday. */
static const struct field_spec specs[] = {
	[F_MINUTE] = {"minute", 0, 59, NULL},
	[F_HOUR] = {"hour", 0, 23, NULL},
	[F_MDAY] = {"day-of-month", 1, 31, NULL},
	[F_MONTH] = {"month", 1, 12, month_names},
	[F_WDAY] = {"day-of-week", 0, 7, wday_names},
	[F_SECOND] = {"second", 0, 59, NULL},
};

static const struct {
	const char *alias;
	const char *expr;
} aliases[] = {
	{"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
	{"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
	{"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

static void why_set(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* Shows at most 24 bytes of a token in a message, control bytes as '?'. */
static void
token_show(char *out, size_t outlen, const char *s, size_t n)
{
	size_t i, max = outlen - 4;

	for (i = 0; i < n && i < max; i++) {
		out[i] = s[i];
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			out[i] = '?';
	}
	if (i < n) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

/*
 * One value: digits or, where the field has names, a three-letter name.
 * Returns 0 with *v, or -1 with why.
 */
static int
parse_value(const struct field_spec *f, const char *s, size_t n, int *v,
	    char *why, size_t whylen)
{
	char shown[32];

	token_show(shown, sizeof(shown), s, n);
	if (n == 0) {
		why_set(why, whylen, "%s field: a value is missing", f->name);
		return -1;
	}
	if (isdigit((unsigned char)s[0])) {
		long val = 0;

		for (size_t i = 0; i < n; i++) {
			if (!isdigit((unsigned char)s[i])) {
				why_set(why, whylen,
					"%s field: \"%s\" is not a number",
					f->name, shown);
				return -1;
			}
			/* Stop growing early: anything this big is out of
			 * range anyway. */
			if (val < 1000)
				val = val * 10 + (s[i] - '0');
		}
		if (val < f->min || val > f->max) {
			why_set(why, whylen,
				"%s field: %s is out of range %d..%d", f->name,
				shown, f->min, f->max);
			return -1;
		}
		*v = (int)val;
		return 0;
	}
	if (f->names != NULL && n == 3) {
		for (int i = 0; f->names[i] != NULL; i++) {
			if (strncasecmp(s, f->names[i], 3) == 0) {
				*v = f->min + i;
				return 0;
			}
		}
	}
	if (f->names != NULL)
		why_set(why, whylen,
			"%s field: \"%s\" is not a number or a name like %s",
			f->name, shown, f->names[0]);
	else
		why_set(why, whylen, "%s field: \"%s\" is not a number",
			f->name, shown);
	return -1;
}

/*
 * One list element: "*", "*\/S", N, N-M, N/S or N-M/S. Sets the bits of
 * *bits (bit n for value n, before 7 is folded into 0).
 */
static int
parse_element(const struct field_spec *f, const char *s, size_t n,
	      uint64_t *bits, char *why, size_t whylen)
{
	const char *slash = memchr(s, '/', n);
	size_t rn = slash ? (size_t)(slash - s) : n;
	int lo, hi, step = 1;

	if (slash != NULL) {
		const char *st = slash + 1;
		size_t sn = n - rn - 1;
		int width = f->max - f->min + 1;
		long val = 0;
		char shown[32];

		token_show(shown, sizeof(shown), st, sn);
		if (sn == 0) {
			why_set(why, whylen, "%s field: step missing after /",
				f->name);
			return -1;
		}
		for (size_t i = 0; i < sn; i++) {
			if (!isdigit((unsigned char)st[i])) {
				why_set(why, whylen,
					"%s field: step \"%s\" is not a "
					"number",
					f->name, shown);
				return -1;
			}
			if (val < 1000)
				val = val * 10 + (st[i] - '0');
		}
		if (val < 1 || val > width) {
			why_set(why, whylen,
				"%s field: step %s is out of range 1..%d",
				f->name, shown, width);
			return -1;
		}
		step = (int)val;
	}
	if (rn == 1 && s[0] == '*') {
		lo = f->min;
		hi = f->max;
		/* Sunday is 0; 7 only repeats it. */
		if (f == &specs[F_WDAY])
			hi = 6;
	} else {
		const char *dash = memchr(s, '-', rn);
		size_t an = dash ? (size_t)(dash - s) : rn;

		if (parse_value(f, s, an, &lo, why, whylen) != 0)
			return -1;
		if (dash != NULL) {
			if (parse_value(f, dash + 1, rn - an - 1, &hi, why,
					whylen) != 0)
				return -1;
			if (hi < lo) {
				char shown[32];

				token_show(shown, sizeof(shown), s, rn);
				why_set(why, whylen,
					"%s field: range %s ends before it "
					"starts",
					f->name, shown);
				return -1;
			}
		} else {
			/* N/S runs from N to the end of the field. */
			hi = slash != NULL ? f->max : lo;
		}
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= UINT64_C(1) << v;
	return 0;
}

/* A whole field: elements separated by commas. */
static int
parse_field(enum cron_field which, const char *s, size_t n, uint64_t *bits,
	    char *why, size_t whylen)
{
	const struct field_spec *f = &specs[which];
	size_t i = 0;

	*bits = 0;
	for (;;) {
		const char *comma = memchr(s + i, ',', n - i);
		size_t en = comma ? (size_t)(comma - (s + i)) : n - i;

		if (en == 0) {
			why_set(why, whylen, "%s field: empty list element",
				f->name);
			return -1;
		}
		if (parse_element(f, s + i, en, bits, why, whylen) != 0)
			return -1;
		if (comma == NULL)
			break;
		i += en + 1;
	}
	if (which == F_WDAY && (*bits & (UINT64_C(1) << 7)) != 0)
		*bits = (*bits & ~(UINT64_C(1) << 7)) | 1;
	return 0;
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

/* The expansion of an alias (text without surrounding blanks), or NULL. */
static const char *
alias_find(const char *s, size_t n)
{
	for (size_t i = 0; i < PGQ_NELEM(aliases); i++)
		if (strlen(aliases[i].alias) == n &&
		    strncasecmp(aliases[i].alias, s, n) == 0)
			return aliases[i].expr;
	return NULL;
}

static const uint8_t month_days[13] = {0,  31, 29, 31, 30, 31, 30,
				       31, 31, 30, 31, 30, 31};

/*
 * False when no date can match: the day of week is "*" and no chosen day of
 * the month exists in any chosen month (Feb 29 counts: it exists in leap
 * years). With a restricted day of week some day always matches.
 */
static bool
can_fire(const struct cron *c)
{
	if (!c->wday_star && !c->mday_star)
		return true;
	if (!c->mday_star)
		for (int m = 1; m <= 12; m++) {
			/* Bits 1..days of the month. */
			uint64_t upto = (UINT64_C(2) << month_days[m]) - 2;

			if ((c->month & (1u << m)) && (c->mday & upto))
				return true;
		}
	return c->mday_star;
}

int
cron_parse(const char *text, struct cron *out, char *why, size_t whylen)
{
	const char *fs[6];
	size_t fn[6], nf = 0, len;
	const char *s = text, *alias;
	uint64_t bits[6];

	memset(out, 0, sizeof(*out));
	len = strlen(text);
	if (len > CRON_TEXT_MAX) {
		why_set(why, whylen, "expression too long: %zu bytes, limit %d",
			len, CRON_TEXT_MAX);
		return -1;
	}
	while (is_blank(*s))
		s++;
	len = strlen(s);
	while (len > 0 && is_blank(s[len - 1]))
		len--;
	if (len > 0 && s[0] == '@') {
		alias = alias_find(s, len);
		if (alias == NULL) {
			char shown[32];

			token_show(shown, sizeof(shown), s, len);
			why_set(why, whylen,
				"unknown alias %s; known: @yearly, "
				"@annually, @monthly, @weekly, @daily, "
				"@midnight, @hourly",
				shown);
			return -1;
		}
		s = alias;
		len = strlen(s);
	}
	for (size_t i = 0; i < len;) {
		size_t start;

		while (i < len && is_blank(s[i]))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && !is_blank(s[i]))
			i++;
		if (nf == PGQ_NELEM(fs)) {
			nf++;
			break;
		}
		fs[nf] = s + start;
		fn[nf] = i - start;
		nf++;
	}
	if (nf != 5 && nf != 6) {
		why_set(why, whylen,
			"expected 5 fields (minute hour day-of-month month "
			"day-of-week) or 6 (the same, then second), got %s%zu",
			nf > 6 ? "more than " : "", nf > 6 ? (size_t)6 : nf);
		return -1;
	}
	for (size_t i = 0; i < nf; i++)
		if (parse_field((enum cron_field)i, fs[i], fn[i], &bits[i], why,
				whylen) != 0)
			return -1;
	out->minute = bits[F_MINUTE];
	out->hour = (uint32_t)bits[F_HOUR];
	out->mday = (uint32_t)bits[F_MDAY];
	out->month = (uint16_t)bits[F_MONTH];
	out->wday = (uint8_t)bits[F_WDAY];
	out->mday_star = fn[F_MDAY] == 1 && fs[F_MDAY][0] == '*';
	out->wday_star = fn[F_WDAY] == 1 && fs[F_WDAY][0] == '*';
	out->has_seconds = nf == 6;
	out->second = nf == 6 ? bits[F_SECOND] : 1;
	if (!can_fire(out)) {
		why_set(why, whylen,
			"never fires: no chosen month has the chosen day of "
			"the month");
		return -1;
	}
	return 0;
}

char *
cron_normalize(const char *text)
{
	size_t len = strlen(text), o = 0;
	char *out = xmalloc(len + 1);
	const char *alias;
	bool blank = false;

	for (size_t i = 0; i < len; i++) {
		if (is_blank(text[i])) {
			blank = o > 0;
			continue;
		}
		if (blank)
			out[o++] = ' ';
		blank = false;
		out[o++] = (char)tolower((unsigned char)text[i]);
	}
	out[o] = '\0';
	alias = o > 0 && out[0] == '@' ? alias_find(out, o) : NULL;
	if (alias != NULL) {
		free(out);
		out = xstrdup(alias);
	}
	return out;
}

/* ---- calendar on day numbers (days since 1970-01-01) ---- */

struct civil {
	int64_t year;
	int month; /* 1..12 */
	int day;   /* 1..31 */
	int wday;  /* 0..6, 0 = Sunday */
};

/* Day number of a date of the proleptic Gregorian calendar (year >= 0). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = y / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The date of a day number >= 0. */
static void
civil_from_days(int64_t z, struct civil *c)
{
	int64_t era, doe, yoe, doy, mp;

	c->wday = (int)((z + 4) % 7);
	z += 719468;
	era = z / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	c->day = (int)(doy - (153 * mp + 2) / 5 + 1);
	c->month = (int)(mp < 10 ? mp + 3 : mp - 9);
	c->year = yoe + era * 400 + (c->month <= 2);
}

static bool
day_matches(const struct cron *c, const struct civil *d)
{
	bool md = (c->mday >> d->day) & 1u;
	bool wd = (c->wday >> d->wday) & 1u;

	if (c->mday_star || c->wday_star)
		return md && wd;
	return md || wd;
}

bool
cron_match(const struct cron *c, int64_t t)
{
	struct civil d;
	int64_t sod;

	if (t < 0 || t > CRON_TIME_MAX)
		return false;
	civil_from_days(t / 86400, &d);
	sod = t % 86400;
	return ((c->month >> d.month) & 1u) && day_matches(c, &d) &&
	       ((c->hour >> (sod / 3600)) & 1u) &&
	       ((c->minute >> (sod / 60 % 60)) & 1u) &&
	       ((c->second >> (sod % 60)) & 1u);
}

int
cron_next(const struct cron *c, int64_t after, int64_t *next)
{
	int64_t t;

	if (after < 0 || after >= CRON_TIME_MAX)
		return -1;
	/* Only a struct not made by cron_parse can have an empty set. */
	if (c->second == 0 || c->minute == 0 || c->hour == 0 || c->mday == 0 ||
	    c->month == 0 || c->wday == 0)
		return -1;
	t = after + 1;
	/*
	 * Each step either returns or moves t forward to the start of the
	 * next month, day, hour, minute or second; a month that cannot match
	 * costs one step, so even a yearly date needs at most a few hundred.
	 */
	while (t <= CRON_TIME_MAX) {
		int64_t day = t / 86400, sod = t % 86400;
		struct civil d;

		civil_from_days(day, &d);
		if (!((c->month >> d.month) & 1u)) {
			int64_t y = d.year + (d.month == 12);
			int m = d.month == 12 ? 1 : d.month + 1;

			t = days_from_civil(y, m, 1) * 86400;
			continue;
		}
		if (!day_matches(c, &d)) {
			t = (day + 1) * 86400;
			continue;
		}
		if (!((c->hour >> (sod / 3600)) & 1u)) {
			t = day * 86400 + (sod / 3600 + 1) * 3600;
			continue;
		}
		if (!((c->minute >> (sod / 60 % 60)) & 1u)) {
			uint64_t later = c->minute >> (sod / 60 % 60);

			/* The next chosen minute of this hour, else the
			 * next hour. */
			if (later != 0)
				t = day * 86400 + sod / 60 * 60 +
				    INT64_C(60) * __builtin_ctzll(later);
			else
				t = day * 86400 + (sod / 3600 + 1) * 3600;
			continue;
		}
		if (!((c->second >> (sod % 60)) & 1u)) {
			uint64_t later = c->second >> (sod % 60);

			if (later != 0)
				t += __builtin_ctzll(later);
			else
				t = day * 86400 + (sod / 60 + 1) * 60;
			continue;
		}
		*next = t;
		return 0;
	}
	return -1;
}
