/*
 * The ABI of the built binaries: libpgq.so and pgq-master (for its handler
 * modules) export exactly the functions declared in include/pgq.h, no
 * internal helper and no missing function. Reads the header and runs nm on
 * the build tree.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct names {
	char **v;
	size_t n, cap;
};

static void
names_add(struct names *s, const char *p, size_t len)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->v[i]) == len && memcmp(s->v[i], p, len) == 0)
			return;
	if (s->n == s->cap) {
		s->cap = s->cap == 0 ? 64 : 2 * s->cap;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		cr_assert_not_null(s->v);
	}
	s->v[s->n] = strndup(p, len);
	cr_assert_not_null(s->v[s->n]);
	s->n++;
}

static bool
names_has(const struct names *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], name) == 0)
			return true;
	return false;
}

static void
names_free(struct names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	long len;

	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	cr_assert_gt(len, 0);
	rewind(f);
	text = calloc(1, (size_t)len + 1);
	cr_assert_not_null(text);
	cr_assert_eq(fread(text, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return text;
}

/*
 * Blanks comments, string literals and preprocessor lines, so that what is
 * left is declarations: "int pgq_module_init(" in a comment is no function.
 */
static void
blank_non_code(char *t)
{
	bool line_start = true;

	for (char *p = t; *p != '\0'; p++) {
		if (p[0] == '/' && p[1] == '*') {
			char *end = strstr(p + 2, "*/");

			cr_assert_not_null(end, "unterminated comment");
			for (; p < end + 1; p++)
				if (*p != '\n')
					*p = ' ';
			*p = ' ';
		} else if (*p == '"') {
			*p = ' ';
			for (p++; *p != '\0' && *p != '"'; p++)
				*p = ' ';
			cr_assert_neq(*p, '\0', "unterminated string");
			*p = ' ';
		} else if (line_start && *p == '#') {
			/* a directive, with its continuation lines */
			for (; *p != '\0' && (*p != '\n' || p[-1] == '\\'); p++)
				*p = ' ';
			if (*p == '\0')
				break;
		}
		if (*p == '\n')
			line_start = true;
		else if (!isspace((unsigned char)*p))
			line_start = false;
	}
}

/*
 * The functions declared in a header: an identifier followed by "(" outside
 * any parentheses. A function pointer typedef or member names itself inside
 * "(*...)", one level down, and is left out with its return type.
 */
static void
header_functions(const char *path, struct names *out)
{
	char *text = read_file(path);
	int depth = 0;

	blank_non_code(text);
	for (char *p = text; *p != '\0';) {
		if (*p == '(') {
			depth++;
			p++;
		} else if (*p == ')') {
			depth--;
			p++;
		} else if (isalpha((unsigned char)*p) || *p == '_') {
			char *start = p, *q;

			while (isalnum((unsigned char)*p) || *p == '_')
				p++;
			for (q = p; isspace((unsigned char)*q); q++)
				;
			if (depth != 0 || *q != '(')
				continue;
			/* "int (*name)(...)": int is a return type */
			for (q++; isspace((unsigned char)*q); q++)
				;
			if (*q != '*')
				names_add(out, start, (size_t)(p - start));
		} else
			p++;
	}
	free(text);
}

/*
 * The symbols nm lists, without a version: a versioned one
 * ("optarg@GLIBC_2.2.5") is libc's data copied into an executable, not ours.
 * Lines of another shape (an archive's member names) are skipped.
 */
static void
nm_symbols(const char *cmd, struct names *out)
{
	char line[1024], type, name[800];
	FILE *p;
	int rc;

	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while (fgets(line, sizeof(line), p) != NULL)
		if (sscanf(line, "%*s %c %799s", &type, name) == 2 &&
		    strchr(name, '@') == NULL)
			names_add(out, name, strlen(name));
	rc = pclose(p);
	cr_assert_eq(rc, 0, "%s failed: status %d", cmd, rc);
	cr_assert_gt(out->n, 0, "%s lists nothing", cmd);
}

static const char *
builddir(void)
{
	const char *top = getenv("PGQ_TOP_BUILDDIR");

	cr_assert_not_null(top, "PGQ_TOP_BUILDDIR is not set");
	return top;
}

/* The dynamic symbols binary rel of the build tree defines. */
static void
binary_exports(const char *rel, struct names *out)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s/%s'", builddir(),
		 rel);
	nm_symbols(cmd, out);
}

/*
 * The global symbols pgq's own code defines: the two convenience libraries
 * and pgq-master's objects.
 */
static void
own_symbols(struct names *out)
{
	const char *top = builddir();
	char cmd[4200];

	snprintf(cmd, sizeof(cmd),
		 "nm -g --defined-only '%s/.libs/libpgq_core.a' "
		 "'%s/.libs/libpgq_daemon.a' '%s'/master/*.o",
		 top, top, top);
	nm_symbols(cmd, out);
}

/* Fails with every name one set has and the other lacks. */
static void
assert_same(const struct names *api, const struct names *exp, const char *what)
{
	char extra[4096] = "", missing[4096] = "";

	for (size_t i = 0; i < exp->n; i++)
		if (!names_has(api, exp->v[i]))
			snprintf(extra + strlen(extra),
				 sizeof(extra) - strlen(extra), " %s",
				 exp->v[i]);
	for (size_t i = 0; i < api->n; i++)
		if (!names_has(exp, api->v[i]))
			snprintf(missing + strlen(missing),
				 sizeof(missing) - strlen(missing), " %s",
				 api->v[i]);
	cr_assert(extra[0] == '\0' && missing[0] == '\0',
		  "%s: exported but not in pgq.h:%s; in pgq.h but not "
		  "exported:%s",
		  what, extra[0] != '\0' ? extra : " -",
		  missing[0] != '\0' ? missing : " -");
}

static void
api_functions(struct names *api)
{
	const char *src = getenv("PGQ_TOP_SRCDIR");
	char path[4096];

	cr_assert_not_null(src, "PGQ_TOP_SRCDIR is not set");
	snprintf(path, sizeof(path), "%s/include/pgq.h", src);
	header_functions(path, api);
}

Test(exports, header_parser_finds_functions_only)
{
	struct names api = {0};

	api_functions(&api);
	cr_expect(names_has(&api, "pgq_connect"));
	cr_expect(names_has(&api, "pgq_error_class_name"));
	cr_expect(names_has(&api, "pgq_consumer_set_log"));
	/* a typedef, a comment and a struct are no functions */
	cr_expect(!names_has(&api, "pgq_handler_fn"));
	cr_expect(!names_has(&api, "pgq_module_init"));
	cr_expect(!names_has(&api, "pgq_error"));
	for (size_t i = 0; i < api.n; i++)
		cr_expect(strncmp(api.v[i], "pgq_", 4) == 0,
			  "not a pgq function: %s", api.v[i]);
	names_free(&api);
}

Test(exports, libpgq_exports_exactly_the_functions_of_pgq_h)
{
	struct names api = {0}, exp = {0};

	api_functions(&api);
	binary_exports(".libs/libpgq.so", &exp);
	assert_same(&api, &exp, "libpgq.so");
	names_free(&api);
	names_free(&exp);
}

/*
 * Of pgq's own symbols, pgq-master exports pgq.h's functions only. Those
 * of a runtime linked into it (a sanitizer build exports ASan's) are not
 * pgq's to choose.
 */
Test(exports, pgq_master_exports_exactly_the_functions_of_pgq_h)
{
	struct names api = {0}, all = {0}, own = {0}, exp = {0};

	api_functions(&api);
	binary_exports("pgq-master", &all);
	own_symbols(&own);
	cr_assert(names_has(&own, "sql_exec") && names_has(&own, "conf_load"),
		  "pgq's own symbols were not found");
	for (size_t i = 0; i < all.n; i++)
		if (names_has(&own, all.v[i]))
			names_add(&exp, all.v[i], strlen(all.v[i]));
	assert_same(&api, &exp, "pgq-master");
	names_free(&api);
	names_free(&all);
	names_free(&own);
	names_free(&exp);
}
