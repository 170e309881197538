/*
 * Output helpers for the inspecting verbs: a table with aligned columns for
 * people, and a one-line summary of PgQueuer's traceback JSON.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"

void
cli_table_init(struct cli_table *t, const char *const *heads, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->heads = heads;
	t->ncols = ncols;
}

void
cli_table_add(struct cli_table *t, const char *const *row)
{
	if (t->rows == t->cap) {
		t->cap = t->cap == 0 ? 16 : t->cap * 2;
		t->cells = xrealloc(t->cells, t->cap * t->ncols,
				    sizeof(*t->cells));
	}
	for (size_t k = 0; k < t->ncols; k++)
		t->cells[t->rows * t->ncols + k] =
			xstrdup(row[k] != NULL ? row[k] : "");
	t->rows++;
}

static const char *
head_text(const char *head)
{
	return head[0] == '>' ? head + 1 : head;
}

/*
 * Prints one cell padded to width. Padding is owed, not written, until
 * something visible follows, so a line never ends in blanks.
 */
static void
put_cell(size_t *owed, bool first, const char *s, size_t width, bool right)
{
	size_t len = strlen(s);
	size_t pad = width > len ? width - len : 0;

	if (!first)
		*owed += 2;
	if (right)
		*owed += pad;
	if (len > 0) {
		printf("%*s%s", (int)*owed, "", s);
		*owed = 0;
	}
	if (!right)
		*owed += pad;
}

void
cli_table_print(const struct cli_table *t)
{
	size_t *width = xcalloc(t->ncols, sizeof(*width));
	size_t owed = 0;

	for (size_t k = 0; k < t->ncols; k++) {
		width[k] = strlen(head_text(t->heads[k]));
		for (size_t r = 0; r < t->rows; r++) {
			size_t len = strlen(t->cells[r * t->ncols + k]);

			if (len > width[k])
				width[k] = len;
		}
	}
	for (size_t k = 0; k < t->ncols; k++)
		put_cell(&owed, k == 0, head_text(t->heads[k]), width[k],
			 t->heads[k][0] == '>');
	fputc('\n', stdout);
	for (size_t r = 0; r < t->rows; r++) {
		owed = 0;
		for (size_t k = 0; k < t->ncols; k++)
			put_cell(&owed, k == 0, t->cells[r * t->ncols + k],
				 width[k], t->heads[k][0] == '>');
		fputc('\n', stdout);
	}
	free(width);
}

char *
cli_time_short(const char *ts)
{
	const char *dot = strchr(ts, '.');
	size_t digits;

	if (dot == NULL)
		return xstrdup(ts);
	digits = strspn(dot + 1, "0123456789");
	return xasprintf("%.*s%s", (int)(dot - ts), ts, dot + 1 + digits);
}

void
cli_table_clear(struct cli_table *t)
{
	for (size_t i = 0; i < t->rows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* Copies s into a fresh string on one line, cut to max bytes with "...". */
static char *
one_line(const char *s, size_t max)
{
	size_t len = strlen(s), n = len > max ? max : len;
	char *out = xmalloc(n + 4);

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t')
			out[i] = ' ';
		else
			out[i] = s[i];
	}
	out[n] = '\0';
	if (len > max && max >= 3)
		memcpy(out + max - 3, "...", 4);
	return out;
}

char *
cli_traceback_summary(const char *json, size_t max)
{
	json_error_t jerr;
	json_t *root;
	const char *type, *msg;
	char *text, *out;

	if (json == NULL || json[0] == '\0')
		return xstrdup("");
	root = json_loads(json, 0, &jerr);
	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		return one_line(json, max);
	}
	type = json_string_value(json_object_get(root, "exception_type"));
	msg = json_string_value(json_object_get(root, "exception_message"));
	if (type != NULL && msg != NULL && msg[0] != '\0')
		text = xasprintf("%s: %s", type, msg);
	else if (type != NULL)
		text = xstrdup(type);
	else if (msg != NULL)
		text = xstrdup(msg);
	else
		text = xstrdup(json);
	json_decref(root);
	out = one_line(text, max);
	free(text);
	return out;
}
