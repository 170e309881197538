/*
 * The error list of conf_load: compiler-style lines collected while a file is
 * checked, so that an operator sees every problem at once. Values are quoted
 * with control characters escaped and long ones shortened.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_int.h"

/* Enough of a value to recognise it; the line number points at the rest. */
#define VALUE_SHOWN_MAX 80

void
conf_errors_init(struct conf_errors *e)
{
	e->v = NULL;
	e->n = 0;
	e->cap = 0;
}

void
conf_errors_clear(struct conf_errors *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i].text);
	free(e->v);
	conf_errors_init(e);
}

void
conf_errors_print(const struct conf_errors *e, FILE *fp)
{
	for (size_t i = 0; i < e->n; i++)
		fprintf(fp, "%s\n", e->v[i].text);
}

char *
conf_errors_format(const struct conf_errors *e)
{
	size_t len = 1;
	char *s, *p;

	for (size_t i = 0; i < e->n; i++)
		len += strlen(e->v[i].text) + 1;
	s = p = xmalloc(len);
	*p = '\0';
	for (size_t i = 0; i < e->n; i++) {
		size_t n = strlen(e->v[i].text);

		if (i > 0)
			*p++ = '\n';
		memcpy(p, e->v[i].text, n + 1);
		p += n;
	}
	return s;
}

/* Quotes value into buf (size > 16): escapes ", \ and control bytes. */
static void
quote_value(const char *value, char *buf, size_t size)
{
	size_t o = 0, i;

	buf[o++] = '"';
	for (i = 0; i < VALUE_SHOWN_MAX && value[i] != '\0'; i++) {
		unsigned char c = (unsigned char)value[i];

		if (o + 8 >= size)
			break;
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o++] = '"';
	if (value[i] != '\0') {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
}

static void error_addv(struct conf_errors *errs, const char *file,
		       unsigned line, const char *key, const char *value,
		       const char *hint, const char *fmt, va_list ap)
	__attribute__((format(printf, 7, 0)));

static void
error_addv(struct conf_errors *errs, const char *file, unsigned line,
	   const char *key, const char *value, const char *hint,
	   const char *fmt, va_list ap)
{
	char where[64], msg[512], quoted[VALUE_SHOWN_MAX * 4 + 16];

	if (errs == NULL)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (line > 0)
		snprintf(where, sizeof(where), ":%u", line);
	else
		where[0] = '\0';
	if (value != NULL)
		quote_value(value, quoted, sizeof(quoted));
	if (errs->n == errs->cap) {
		errs->cap = errs->cap ? errs->cap * 2 : 8;
		errs->v = xrealloc(errs->v, errs->cap, sizeof(errs->v[0]));
	}
	errs->v[errs->n].line = line;
	errs->v[errs->n].text = xasprintf(
		"%s%s: %s%s%s%s%s%s%s", file, where, key ? key : "",
		key ? ": " : "", msg, value ? ", got " : "",
		value ? quoted : "", hint ? "; " : "", hint ? hint : "");
	errs->n++;
}

void
conf_error_add(struct conf_errors *errs, const char *file, unsigned line,
	       const char *key, const char *value, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_addv(errs, file, line, key, value, NULL, fmt, ap);
	va_end(ap);
}

void
conf_error_hint(struct conf_errors *errs, const char *file, unsigned line,
		const char *key, const char *value, const char *hint,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_addv(errs, file, line, key, value, hint, fmt, ap);
	va_end(ap);
}

size_t
conf_distance(const char *a, const char *b, size_t cap)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t *row, best = 0;

	if ((la > lb ? la - lb : lb - la) > cap)
		return cap + 1;
	row = xcalloc(lb + 1, sizeof(*row));
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		best = row[0];
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost =
				tolower((unsigned char)a[i - 1]) ==
						tolower((unsigned char)b[j - 1])
					? 0
					: 1;
			size_t v = diag + cost;

			if (up + 1 < v)
				v = up + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			row[j] = v;
			diag = up;
			if (v < best)
				best = v;
		}
		if (best > cap)
			break;
	}
	best = row[lb];
	free(row);
	return best > cap ? cap + 1 : best;
}
