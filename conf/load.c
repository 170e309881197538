/*
 * conf_load: reads pgq.ini whole, hands inih one key line at a time through
 * its own reader (so every line number is ours and no line is ever cut),
 * collects raw key = value entries per section, then builds and validates a
 * fresh struct conf from the key table, reporting every error it finds.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <libpq-fe.h>

#include "conf/conf_int.h"

/* A configuration file is small; anything larger is a mistake. */
#define CONF_FILE_MAX ((size_t)1 << 20)

/* One key = value as written, waiting for the build step. */
struct raw_entry {
	const struct conf_key *key;
	char *value;	  /* continuation lines joined, comment removed */
	unsigned line;	  /* line of the key */
	bool comment_cut; /* an inline comment was removed from the value */
	bool broken;	  /* a continuation line was rejected: skip it */
	bool bad;	  /* its value failed to parse */
};

struct raw_section {
	enum conf_section_kind kind;
	char *name;    /* NAME of [entrypoint NAME] or [schedule NAME], else
			  NULL */
	unsigned line; /* line of the header */
	struct raw_entry *entries;
	size_t nentries;
	size_t cap;
};

enum parser_where {
	IN_NONE = 0, /* before the first section header */
	IN_SECTION,  /* in sections[cur] */
	IN_SKIPPED,  /* in a bad or duplicate section: keys are ignored */
};

struct parser {
	const char *file;
	const char *buf;
	size_t len;
	size_t pos;
	unsigned line;	   /* physical lines read so far */
	unsigned key_line; /* line of the key line last handed to inih */
	char *cont;	   /* its continuation text, or NULL */
	bool comment_cut;  /* its value lost an inline comment */
	bool cont_broken;  /* one of its continuation lines was rejected */
	struct raw_section *sections;
	size_t nsections;
	size_t cap;
	enum parser_where where;
	size_t cur;
	struct conf_errors *errs;
};

/* Names shown inside messages: control bytes become '?'. */
static char *
printable(const char *s, size_t n)
{
	char *p = xstrndup(s, n);

	for (char *q = p; *q != '\0'; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
	return p;
}

/*
 * The next physical line without its line ending; false at the end. A NUL
 * byte would end the line early for inih, so such a line is reported and
 * returned empty.
 */
static bool
next_line(struct parser *ps, const char **start, size_t *n)
{
	const char *l, *nl;
	size_t len;

	if (ps->pos >= ps->len)
		return false;
	l = ps->buf + ps->pos;
	nl = memchr(l, '\n', ps->len - ps->pos);
	len = nl ? (size_t)(nl - l) : ps->len - ps->pos;
	ps->pos += len + (nl ? 1 : 0);
	ps->line++;
	if (len > 0 && l[len - 1] == '\r')
		len--;
	if (ps->line == 1 && len >= 3 && memcmp(l, "\xef\xbb\xbf", 3) == 0) {
		l += 3;
		len -= 3;
	}
	if (memchr(l, '\0', len) != NULL) {
		conf_error_add(ps->errs, ps->file, ps->line, NULL, NULL,
			       "NUL byte in line");
		len = 0;
	}
	*start = l;
	*n = len;
	return true;
}

static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && isspace((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

/*
 * inih's rule, repeated here so that we know what it will do: the index of
 * the first byte in chars, or of a ';' that follows whitespace (an inline
 * comment), or n.
 */
static size_t
scan_chars_or_comment(const char *s, size_t n, const char *chars)
{
	bool was_space = false;
	size_t i;

	for (i = 0; i < n; i++) {
		if (chars != NULL && strchr(chars, s[i]) != NULL)
			break;
		if (was_space && s[i] == ';')
			break;
		was_space = isspace((unsigned char)s[i]);
	}
	return i;
}

static bool
line_too_long(struct parser *ps, size_t raw, size_t limit)
{
	if (raw <= limit)
		return false;
	conf_error_add(
		ps->errs, ps->file, ps->line, NULL, NULL,
		"line too long: %zu bytes, limit %zu; split the value with a "
		"backslash at the end of the line",
		raw, limit);
	return true;
}

/* Sections of these kinds take a NAME and may appear more than once. */
static bool
kind_named(enum conf_section_kind kind)
{
	return kind == CONF_SECT_ENTRYPOINT || kind == CONF_SECT_SCHEDULE;
}

/* The rule for NAME of [entrypoint NAME], [schedule NAME] and the
 * entrypoint key of a schedule: what fits the channel's text field. */
static bool
name_valid(const char *s, size_t n)
{
	if (n == 0 || n > CONF_ENTRYPOINT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (isspace((unsigned char)s[i]) ||
		    (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static bool
sections_match(const struct raw_section *s, enum conf_section_kind kind,
	       const char *name)
{
	if (s->kind != kind)
		return false;
	if (!kind_named(kind))
		return true;
	return strcmp(s->name, name) == 0;
}

/* The section kind nearest to an unknown word, for "did you mean". */
static const char *
suggest_section(const char *word)
{
	static const char *const kinds[] = {"pgq", "database", "entrypoint",
					    "schedule"};
	const char *best = NULL;
	size_t bestd = 3;

	for (size_t i = 0; i < PGQ_NELEM(kinds); i++) {
		size_t d = conf_distance(word, kinds[i], 2);

		if (d < bestd && d < strlen(kinds[i])) {
			bestd = d;
			best = kinds[i];
		}
	}
	return best;
}

/* A [header] line: l starts with '[' and is trimmed. */
static void
section_line(struct parser *ps, const char *l, size_t n)
{
	const char *close = memchr(l, ']', n);
	const char *in, *arg, *rest;
	size_t inn, kindn, argn, restn;
	enum conf_section_kind kind;
	char *shown = NULL, *name = NULL;

	ps->where = IN_SKIPPED;
	if (close == NULL) {
		shown = printable(l, n);
		conf_error_add(ps->errs, ps->file, ps->line, NULL, shown,
			       "syntax error: section header without \"]\"");
		goto out;
	}
	rest = close + 1;
	restn = n - (size_t)(rest - l);
	trim(&rest, &restn);
	if (restn > 0 && *rest != ';' && *rest != '#') {
		shown = printable(l, n);
		conf_error_add(ps->errs, ps->file, ps->line, NULL, shown,
			       "syntax error: text after the section header");
		goto out;
	}
	in = l + 1;
	inn = (size_t)(close - in);
	trim(&in, &inn);
	for (kindn = 0; kindn < inn && !isspace((unsigned char)in[kindn]);
	     kindn++)
		;
	arg = in + kindn;
	argn = inn - kindn;
	trim(&arg, &argn);
	shown = printable(in, kindn);
	if (strcmp(shown, "pgq") == 0) {
		kind = CONF_SECT_PGQ;
	} else if (strcmp(shown, "database") == 0) {
		kind = CONF_SECT_DATABASE;
	} else if (strcmp(shown, "entrypoint") == 0) {
		kind = CONF_SECT_ENTRYPOINT;
	} else if (strcmp(shown, "schedule") == 0) {
		kind = CONF_SECT_SCHEDULE;
	} else {
		const char *s = suggest_section(shown);

		if (s != NULL)
			conf_error_add(
				ps->errs, ps->file, ps->line, NULL, NULL,
				"unknown section [%s]; did you mean [%s]?",
				shown, s);
		else
			conf_error_add(
				ps->errs, ps->file, ps->line, NULL, NULL,
				"unknown section [%s]; sections are [pgq], "
				"[database], [entrypoint NAME] and "
				"[schedule NAME]",
				shown);
		goto out;
	}
	name = printable(arg, argn);
	if (!kind_named(kind) && argn > 0) {
		conf_error_add(ps->errs, ps->file, ps->line, NULL, name,
			       "section [%s] takes no name", shown);
		goto out;
	}
	if (kind_named(kind) && !name_valid(arg, argn)) {
		conf_error_add(ps->errs, ps->file, ps->line, NULL,
			       argn > 0 ? name : NULL,
			       "[%s NAME]: NAME must be 1..%d bytes "
			       "without spaces or control characters",
			       shown, CONF_ENTRYPOINT_NAME_MAX);
		goto out;
	}
	for (size_t i = 0; i < ps->nsections; i++) {
		if (sections_match(&ps->sections[i], kind, name)) {
			conf_error_add(
				ps->errs, ps->file, ps->line, NULL, NULL,
				"duplicate section [%s%s%s], first on line %u",
				shown, argn ? " " : "", name,
				ps->sections[i].line);
			goto out;
		}
	}
	if (ps->nsections == ps->cap) {
		ps->cap = ps->cap ? ps->cap * 2 : 4;
		ps->sections = xrealloc(ps->sections, ps->cap,
					sizeof(ps->sections[0]));
	}
	ps->sections[ps->nsections] = (struct raw_section){
		.kind = kind,
		.name = kind_named(kind) ? name : NULL,
		.line = ps->line,
	};
	if (kind_named(kind))
		name = NULL;
	ps->cur = ps->nsections++;
	ps->where = IN_SECTION;
out:
	free(shown);
	free(name);
}

/*
 * Reads the lines after a key line that ended in a backslash: each is value
 * text (leading blanks and an inline comment dropped); pieces are joined with
 * one space; a piece that ends in a backslash continues further.
 */
static void
read_continuation(struct parser *ps)
{
	size_t len = 0, cap = 64;
	char *cont = xmalloc(cap);
	bool more = true;

	cont[0] = '\0';
	while (more) {
		const char *l;
		size_t n, raw;

		if (!next_line(ps, &l, &n)) {
			conf_error_add(ps->errs, ps->file, ps->key_line, NULL,
				       NULL,
				       "backslash at the end of the last line: "
				       "the value "
				       "continues past the end of the file");
			ps->cont_broken = true;
			break;
		}
		raw = n;
		if (line_too_long(ps, raw, CONF_LINE_MAX)) {
			ps->cont_broken = true;
			break;
		}
		trim(&l, &n);
		if (n > 0 && (*l == ';' || *l == '#')) {
			n = 0;
		} else {
			size_t c = scan_chars_or_comment(l, n, NULL);

			if (c < n)
				ps->comment_cut = true;
			n = c;
			trim(&l, &n);
		}
		more = n > 0 && l[n - 1] == '\\';
		if (more) {
			n--;
			trim(&l, &n);
		}
		if (n == 0)
			continue;
		while (len + n + 2 > cap) {
			cap *= 2;
			cont = xrealloc(cont, cap, 1);
		}
		if (len > 0)
			cont[len++] = ' ';
		memcpy(cont + len, l, n);
		len += n;
		cont[len] = '\0';
	}
	ps->cont = cont;
}

/*
 * inih's reader: hands it key lines only, trimmed, without the inline
 * comment and the continuation backslash, so that inih never meets a line
 * longer than its buffer, a continuation or a section it would track on its
 * own. Everything else is handled (and every error reported) here.
 */
static char *
read_key_line(char *str, int num, void *stream)
{
	struct parser *ps = stream;
	const char *l;
	size_t n;

	free(ps->cont);
	ps->cont = NULL;
	while (next_line(ps, &l, &n)) {
		size_t raw = n, eq, c, out;
		const char *v;
		size_t vn;
		bool more;

		trim(&l, &n);
		if (n == 0 || *l == ';' || *l == '#')
			continue;
		if (line_too_long(ps, raw, CONF_LINE_MAX))
			continue;
		if (*l == '[') {
			section_line(ps, l, n);
			continue;
		}
		eq = scan_chars_or_comment(l, n, "=:");
		if (eq == n || (l[eq] != '=' && l[eq] != ':')) {
			char *shown = printable(l, n);

			conf_error_add(
				ps->errs, ps->file, ps->line, NULL, shown,
				"syntax error: expected \"key = value\" or "
				"\"[section]\"");
			free(shown);
			continue;
		}
		v = l + eq + 1;
		vn = n - eq - 1;
		c = scan_chars_or_comment(v, vn, NULL);
		ps->comment_cut = c < vn;
		vn = c;
		while (vn > 0 && isspace((unsigned char)v[vn - 1]))
			vn--;
		more = vn > 0 && v[vn - 1] == '\\';
		if (more)
			vn--;
		out = (size_t)(v - l) + vn;
		/* Cannot happen with Debian's 200 bytes; kept for others. */
		if (num < 3 || line_too_long(ps, out, (size_t)num - 2))
			continue;
		memcpy(str, l, out);
		str[out] = '\n';
		str[out + 1] = '\0';
		ps->key_line = ps->line;
		ps->cont_broken = false;
		if (more)
			read_continuation(ps);
		return str;
	}
	return NULL;
}

/* The known key nearest to name, for "did you mean". */
static const struct conf_key *
suggest_key(enum conf_section_kind kind, const char *name)
{
	const struct conf_key *best = NULL;
	size_t bestd = 3;

	for (size_t i = 0; i < conf_nkeys; i++) {
		size_t d;

		if (conf_keys[i].section != kind)
			continue;
		d = conf_distance(name, conf_keys[i].name, 2);
		if (d < bestd && d < strlen(conf_keys[i].name)) {
			bestd = d;
			best = &conf_keys[i];
		}
	}
	return best;
}

static void
unknown_key(struct parser *ps, const struct raw_section *sec, const char *name,
	    unsigned line)
{
	const char *kname = conf_section_kind_name(sec->kind);
	const struct conf_key *s = suggest_key(sec->kind, name);
	char *shown = printable(name, strlen(name));

	if (s != NULL) {
		conf_error_add(ps->errs, ps->file, line, shown, NULL,
			       "unknown key in [%s]; did you mean \"%s\"?",
			       kname, s->name);
		goto out;
	}
	for (size_t i = 0; i < conf_nkeys; i++) {
		if (strcmp(conf_keys[i].name, name) == 0) {
			conf_error_add(
				ps->errs, ps->file, line, shown, NULL,
				"unknown key in [%s]; it belongs in [%s%s]",
				kname,
				conf_section_kind_name(conf_keys[i].section),
				kind_named(conf_keys[i].section) ? " NAME"
								 : "");
			goto out;
		}
	}
	conf_error_add(ps->errs, ps->file, line, shown, NULL,
		       "unknown key in [%s]", kname);
out:
	free(shown);
}

/* inih's handler: one key line (the reader said which) with its value. */
static int
on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parser *ps = user;
	unsigned line = ps->key_line;
	struct raw_section *sec;
	const struct conf_key *key;
	char *full;

	(void)section;
	if (ps->cont != NULL)
		full = xasprintf("%s%s%s", value,
				 value[0] != '\0' && ps->cont[0] != '\0' ? " "
									 : "",
				 ps->cont);
	else
		full = xstrdup(value);
	free(ps->cont);
	ps->cont = NULL;
	if (name[0] == '\0') {
		conf_error_add(ps->errs, ps->file, line, NULL, NULL,
			       "syntax error: no key name before \"=\"");
		goto out;
	}
	if (ps->where == IN_SKIPPED)
		goto out;
	if (ps->where == IN_NONE) {
		char *shown = printable(name, strlen(name));

		conf_error_add(ps->errs, ps->file, line, shown, NULL,
			       "key before the first [section]");
		free(shown);
		goto out;
	}
	sec = &ps->sections[ps->cur];
	key = conf_key_find(sec->kind, name);
	if (key == NULL) {
		unknown_key(ps, sec, name, line);
		goto out;
	}
	for (size_t i = 0; i < sec->nentries; i++) {
		if (sec->entries[i].key == key) {
			conf_error_add(ps->errs, ps->file, line, key->name,
				       NULL,
				       "duplicate key, first set on line %u",
				       sec->entries[i].line);
			goto out;
		}
	}
	if (sec->nentries == sec->cap) {
		sec->cap = sec->cap ? sec->cap * 2 : 8;
		sec->entries = xrealloc(sec->entries, sec->cap,
					sizeof(sec->entries[0]));
	}
	sec->entries[sec->nentries++] = (struct raw_entry){
		.key = key,
		.value = full,
		.line = line,
		.comment_cut = ps->comment_cut,
		.broken = ps->cont_broken,
	};
	full = NULL;
out:
	free(full);
	return 1;
}

static void
parser_clear(struct parser *ps)
{
	for (size_t i = 0; i < ps->nsections; i++) {
		struct raw_section *s = &ps->sections[i];

		for (size_t j = 0; j < s->nentries; j++)
			free(s->entries[j].value);
		free(s->entries);
		free(s->name);
	}
	free(ps->sections);
	free(ps->cont);
}

/* ---- values ---- */

/* Reports a bad value; says so when an inline comment shortened it. */
static void value_error_hint(struct parser *ps, const struct raw_entry *e,
			     const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
value_error_hint(struct parser *ps, const struct raw_entry *e, const char *hint,
		 const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	/* A connection string may hold a password: never echo it. */
	bool secret = e->key->type == CONF_T_DSN;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (hint == NULL && e->comment_cut)
		hint = "note: \" ;\" starts a comment, removed from the value";
	conf_error_hint(ps->errs, ps->file, e->line, e->key->name,
			secret ? NULL : e->value, hint, "%s", msg);
}

#define value_error(ps, e, ...) value_error_hint(ps, e, NULL, __VA_ARGS__)

/* Digits, an optional fraction, optional blanks and letters: no signs,
 * exponents, hex or words that strtod would also take. */
static bool
plain_number(const char *s, bool unit_allowed)
{
	size_t i = 0, digits = 0;

	while (isspace((unsigned char)s[i]))
		i++;
	for (; isdigit((unsigned char)s[i]); i++)
		digits++;
	if (s[i] == '.')
		for (i++; isdigit((unsigned char)s[i]); i++)
			digits++;
	if (digits == 0)
		return false;
	while (isspace((unsigned char)s[i]))
		i++;
	if (unit_allowed)
		while (isalpha((unsigned char)s[i]))
			i++;
	while (isspace((unsigned char)s[i]))
		i++;
	return s[i] == '\0';
}

/* Where a program without a '/' would be found, for "did you mean". */
static char *
find_in_path(const char *prog)
{
	const char *path = getenv("PATH");
	const char *p;

	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p != '\0';) {
		size_t n = strcspn(p, ":");

		if (n > 0 && p[0] == '/') {
			char *full = xasprintf("%.*s/%s", (int)n, p, prog);
			struct stat st;

			if (stat(full, &st) == 0 && S_ISREG(st.st_mode) &&
			    access(full, X_OK) == 0)
				return full;
			free(full);
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return NULL;
}

static int
check_file(struct parser *ps, const struct raw_entry *e, const char *path,
	   int mode)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		value_error(ps, e, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		value_error(ps, e, "%s: not a regular file", path);
		return -1;
	}
	if (access(path, mode) != 0) {
		value_error(ps, e, "%s: %s: %s", path,
			    mode == X_OK ? "not executable" : "not readable",
			    strerror(errno));
		return -1;
	}
	return 0;
}

static int
parse_command(struct parser *ps, const struct raw_entry *e,
	      struct conf_entrypoint *ep)
{
	char **argv = NULL;
	size_t argc;
	const char *why;

	if (conf_split_command(e->value, &argv, &argc, &why) != 0) {
		value_error(ps, e, "%s", why);
		return -1;
	}
	if (argv[0][0] != '/') {
		char *found =
			strchr(argv[0], '/') ? NULL : find_in_path(argv[0]);

		char *hint =
			found ? xasprintf("did you mean %s?", found) : NULL;

		value_error_hint(ps, e, hint,
				 "program must be an absolute path");
		free(hint);
		free(found);
		goto fail;
	}
	if (check_file(ps, e, argv[0], X_OK) != 0)
		goto fail;
	free(ep->command);
	conf_argv_free(ep->argv);
	ep->command = xstrdup(e->value);
	ep->argv = argv;
	ep->argc = argc;
	return 0;
fail:
	conf_argv_free(argv);
	return -1;
}

/* A schedule's cron: the text, its canonical form and the parsed spec. */
static int
parse_cron(struct parser *ps, const struct raw_entry *e,
	   struct conf_schedule *sc)
{
	struct cron spec;
	char why[200];

	if (cron_parse(e->value, &spec, why, sizeof(why)) != 0) {
		value_error(ps, e, "%s", why);
		return -1;
	}
	free(sc->cron);
	free(sc->expression);
	sc->cron = xstrdup(e->value);
	sc->expression = cron_normalize(e->value);
	sc->spec = spec;
	return 0;
}

/* A user name (or numeric id) the system knows, now. */
static bool
user_known(const char *v)
{
	char buf[4096], *end;
	struct passwd pw, *res = NULL;
	unsigned long id;

	if (v[0] == '\0')
		return false;
	if (getpwnam_r(v, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		return true;
	errno = 0;
	id = strtoul(v, &end, 10);
	if (!isdigit((unsigned char)v[0]) || *end != '\0' || errno != 0 ||
	    id > UINT_MAX)
		return false;
	return getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &res) == 0 &&
	       res != NULL;
}

static bool
group_known(const char *v)
{
	char buf[16384], *end;
	struct group gr, *res = NULL;
	unsigned long id;

	if (v[0] == '\0')
		return false;
	if (getgrnam_r(v, &gr, buf, sizeof(buf), &res) == 0 && res != NULL)
		return true;
	errno = 0;
	id = strtoul(v, &end, 10);
	if (!isdigit((unsigned char)v[0]) || *end != '\0' || errno != 0 ||
	    id > UINT_MAX)
		return false;
	return getgrgid_r((gid_t)id, &gr, buf, sizeof(buf), &res) == 0 &&
	       res != NULL;
}

/* One or more names matching ^[A-Za-z_][A-Za-z0-9_]*$, blank-separated. */
static bool
env_names_valid(const char *v)
{
	size_t words = 0;

	while (*v != '\0') {
		size_t n;

		while (isspace((unsigned char)*v))
			v++;
		if (*v == '\0')
			break;
		n = strcspn(v, " \t");
		if (isdigit((unsigned char)v[0]))
			return false;
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)v[i]) && v[i] != '_')
				return false;
		v += n;
		words++;
	}
	return words > 0;
}

/* Parses e->value into its field in base; 0, or -1 after reporting. */
static int
parse_value(struct parser *ps, const struct raw_entry *e, void *base)
{
	const struct conf_key *k = e->key;
	void *f = CONF_FIELD(base, k);
	const char *v = e->value;
	char range[80];

	switch (k->type) {
	case CONF_T_UINT:
	case CONF_T_INT: {
		long long n;

		if (!parse_int_range(v, k->min, k->max, &n)) {
			value_error(ps, e, "must be %lld..%lld", k->min,
				    k->max);
			return -1;
		}
		if (k->type == CONF_T_UINT)
			*(unsigned *)f = (unsigned)n;
		else
			*(int *)f = (int)n;
		return 0;
	}
	case CONF_T_DURATION: {
		uint64_t ms;

		if (!plain_number(v, true) || !parse_duration_ms(v, &ms)) {
			value_error(ps, e,
				    "must be a duration like 500ms, 30s or 5m "
				    "(units "
				    "us, ms, s, m, h, d; none = seconds)");
			return -1;
		}
		if (ms < (uint64_t)k->min || ms > (uint64_t)k->max) {
			bool low = ms < (uint64_t)k->min;

			conf_format_ms((uint64_t)(low ? k->min : k->max), range,
				       sizeof(range));
			value_error(ps, e, "must be at %s %s",
				    low ? "least" : "most", range);
			return -1;
		}
		*(uint64_t *)f = ms;
		return 0;
	}
	case CONF_T_REAL: {
		char *end;
		double d;

		errno = 0;
		d = plain_number(v, false) ? strtod(v, &end) : NAN;
		if (errno != 0 || !isfinite(d) || d < (double)k->min ||
		    d > (double)k->max) {
			value_error(ps, e, "must be a number from %lld to %lld",
				    k->min, k->max);
			return -1;
		}
		*(double *)f = d;
		return 0;
	}
	case CONF_T_IDENT:
		if (!(k->min == 0 && v[0] == '\0') &&
		    !ident_valid(v, (size_t)k->max)) {
			value_error(
				ps, e,
				"must be %san identifier (a letter or _, then "
				"letters, digits or _) of at most %lld bytes",
				k->min == 0 ? "empty or " : "", k->max);
			return -1;
		}
		break;
	case CONF_T_PATH:
		if (v[0] != '\0' && v[0] != '/') {
			value_error(ps, e, "must be an absolute path");
			return -1;
		}
		break;
	case CONF_T_DSN:
		if (v[0] != '\0') {
			char *err = NULL;
			PQconninfoOption *opts = PQconninfoParse(v, &err);
			size_t n;

			if (opts == NULL) {
				if (err == NULL) {
					value_error(ps, e,
						    "invalid connection "
						    "string: out "
						    "of memory");
					return -1;
				}
				n = strlen(err);
				while (n > 0 &&
				       isspace((unsigned char)err[n - 1]))
					n--;
				value_error(ps, e,
					    "invalid connection string: %.*s",
					    (int)n, err);
				PQfreemem(err);
				return -1;
			}
			PQconninfoFree(opts);
		}
		break;
	case CONF_T_ENUM: {
		size_t i, len = 0;
		char words[128];

		for (i = 0; k->words[i] != NULL; i++) {
			if (strcmp(k->words[i], v) == 0) {
				int iv = (int)i;

				memcpy(f, &iv, sizeof(iv));
				return 0;
			}
			len += (size_t)snprintf(words + len,
						sizeof(words) - len, "%s%s",
						i ? ", " : "", k->words[i]);
		}
		value_error(ps, e, "must be one of %s", words);
		return -1;
	}
	case CONF_T_COMMAND:
		return parse_command(ps, e, base);
	case CONF_T_MODULE:
		if (v[0] != '/') {
			value_error(ps, e, "must be an absolute path");
			return -1;
		}
		if (check_file(ps, e, v, R_OK) != 0)
			return -1;
		break;
	case CONF_T_SYMBOL:
		if (!ident_valid(v, 255)) {
			value_error(ps, e, "must be a C identifier");
			return -1;
		}
		break;
	case CONF_T_NAME:
		if (!name_valid(v, strlen(v))) {
			value_error(ps, e,
				    "must be 1..%d bytes without spaces or "
				    "control characters",
				    CONF_ENTRYPOINT_NAME_MAX);
			return -1;
		}
		break;
	case CONF_T_CRON:
		return parse_cron(ps, e, base);
	case CONF_T_TEXT:
		break;
	case CONF_T_SIZE: {
		uint64_t b;

		if (!plain_number(v, true) || !parse_size_bytes(v, &b) ||
		    b < (uint64_t)k->min || b > (uint64_t)k->max) {
			value_error(ps, e,
				    "must be a size like 512M or 2G (units B, "
				    "k, M, G; none = bytes) up to 1024G");
			return -1;
		}
		*(uint64_t *)f = b;
		return 0;
	}
	case CONF_T_USER:
		if (!user_known(v)) {
			value_error(ps, e, "no such user");
			return -1;
		}
		break;
	case CONF_T_GROUP:
		if (!group_known(v)) {
			value_error(ps, e, "no such group");
			return -1;
		}
		break;
	case CONF_T_BOOL: {
		static const char *const yes[] = {"yes", "true", "on", "1"};
		static const char *const no[] = {"no", "false", "off", "0"};

		for (size_t i = 0; i < PGQ_NELEM(yes); i++) {
			if (strcasecmp(v, yes[i]) == 0 ||
			    strcasecmp(v, no[i]) == 0) {
				*(bool *)f = strcasecmp(v, yes[i]) == 0;
				return 0;
			}
		}
		value_error(ps, e, "must be yes or no");
		return -1;
	}
	case CONF_T_ENVNAMES:
		if (!env_names_valid(v)) {
			value_error(ps, e,
				    "must be environment variable names "
				    "(letters, digits and _, not starting "
				    "with a digit) separated by blanks");
			return -1;
		}
		break;
	}
	/* The string types land here. */
	free(*(char **)f);
	*(char **)f = xstrdup(v);
	return 0;
}

/* Sets every key of a section kind to its default in base. */
static void
set_defaults(struct parser *ps, enum conf_section_kind kind, void *base)
{
	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];
		struct raw_entry e = {.key = k, .line = 0};

		if (k->section != kind)
			continue;
		switch (k->type) {
		case CONF_T_IDENT:
		case CONF_T_PATH:
		case CONF_T_DSN:
		case CONF_T_MODULE:
		case CONF_T_SYMBOL:
		case CONF_T_COMMAND:
		case CONF_T_NAME:
		case CONF_T_CRON:
		case CONF_T_TEXT:
		case CONF_T_USER:
		case CONF_T_GROUP:
		case CONF_T_ENVNAMES:
			*(char **)CONF_FIELD(base, k) = xstrdup("");
			break;
		default:
			break;
		}
		if (k->def == NULL)
			continue;
		e.value = xstrdup(k->def);
		if (parse_value(ps, &e, base) != 0)
			fatalx("conf: bad default for %s: %s", k->name, k->def);
		free(e.value);
	}
}

/* Parses a section's entries into base; marks the ones that fail. */
static void
apply_entries(struct parser *ps, struct raw_section *sec, void *base)
{
	for (size_t i = 0; i < sec->nentries; i++) {
		struct raw_entry *e = &sec->entries[i];

		if (e->broken) {
			e->bad = true;
			continue;
		}
		e->bad = parse_value(ps, e, base) != 0;
	}
}

static const struct raw_entry *
entry_find(const struct raw_section *sec, const char *name)
{
	if (sec == NULL)
		return NULL;
	for (size_t i = 0; i < sec->nentries; i++)
		if (strcmp(sec->entries[i].key->name, name) == 0)
			return &sec->entries[i];
	return NULL;
}

/* True when name is unset or was parsed without error. */
static bool
entry_ok(const struct raw_section *sec, const char *name)
{
	const struct raw_entry *e = entry_find(sec, name);

	return e == NULL || !e->bad;
}

/* The line to blame for a cross-key problem: the first set key, else the
 * section header, else 0 (the whole file). */
static unsigned
blame_line(const struct raw_section *sec, const char *a, const char *b)
{
	const struct raw_entry *e = entry_find(sec, a);

	if (e == NULL && b != NULL)
		e = entry_find(sec, b);
	if (e != NULL)
		return e->line;
	return sec ? sec->line : 0;
}

static void
check_pgq(struct parser *ps, const struct raw_section *sec, struct conf *cf)
{
	bool ok = entry_ok(sec, "workers") && entry_ok(sec, "min_workers") &&
		  entry_ok(sec, "max_workers");
	const struct raw_entry *si;
	char a[32], b[32];

	if (ok && cf->min_workers > cf->max_workers) {
		conf_error_add(ps->errs, ps->file,
			       blame_line(sec, "min_workers", "max_workers"),
			       "min_workers", NULL,
			       "must not exceed max_workers, got %u > %u",
			       cf->min_workers, cf->max_workers);
	} else if (ok && (cf->workers < cf->min_workers ||
			  cf->workers > cf->max_workers)) {
		const char *key = entry_find(sec, "workers") ? "workers"
				  : cf->workers > cf->max_workers
					  ? "max_workers"
					  : "min_workers";

		conf_error_add(
			ps->errs, ps->file, blame_line(sec, key, NULL), key,
			NULL,
			"workers must be between min_workers and max_workers, "
			"got workers = %u with %u..%u",
			cf->workers, cf->min_workers, cf->max_workers);
	}
	if (entry_ok(sec, "respawn_backoff") &&
	    entry_ok(sec, "respawn_backoff_max") &&
	    cf->respawn_backoff_ms > cf->respawn_backoff_max_ms) {
		conf_format_ms(cf->respawn_backoff_ms, a, sizeof(a));
		conf_format_ms(cf->respawn_backoff_max_ms, b, sizeof(b));
		conf_error_add(
			ps->errs, ps->file,
			blame_line(sec, "respawn_backoff",
				   "respawn_backoff_max"),
			"respawn_backoff", NULL,
			"must not exceed respawn_backoff_max, got %s > %s", a,
			b);
	}
	if (entry_ok(sec, "log_target") && entry_ok(sec, "log_file") &&
	    cf->log_target == LOG_TARGET_FILE && cf->log_file[0] == '\0')
		conf_error_add(
			ps->errs, ps->file, blame_line(sec, "log_target", NULL),
			"log_target", NULL, "log_target = file needs log_file");
	si = entry_find(sec, "stats_interval");
	if (si != NULL && !si->bad && cf->stats_interval_ms > 0 &&
	    cf->stats_interval_ms < 100)
		conf_error_add(ps->errs, ps->file, si->line, "stats_interval",
			       si->value, "must be 0 (off) or at least 100ms");
	si = entry_find(sec, "group");
	if (si != NULL && !si->bad && entry_find(sec, "user") == NULL)
		conf_error_add(ps->errs, ps->file, si->line, "group", NULL,
			       "only applies with user");
	if (cf->channel[0] == '\0') {
		free(cf->channel);
		cf->channel = xasprintf("%sch_pgqueuer", cf->prefix);
	}
}

static void
build_entrypoint(struct parser *ps, struct raw_section *sec,
		 struct conf_entrypoint *ep)
{
	static const char *const handlers[] = {"command", "module", "builtin"};
	const struct raw_entry *first = NULL, *e;
	char a[32], b[32];

	ep->name = xstrdup(sec->name);
	ep->line = sec->line;
	set_defaults(ps, CONF_SECT_ENTRYPOINT, ep);
	apply_entries(ps, sec, ep);

	/* Exactly one handler kind; report the second in file order. */
	for (size_t i = 0; i < sec->nentries; i++) {
		e = &sec->entries[i];
		for (size_t h = 0; h < PGQ_NELEM(handlers); h++) {
			if (strcmp(e->key->name, handlers[h]) != 0)
				continue;
			if (first == NULL) {
				first = e;
				ep->kind = (enum conf_handler_kind)h;
			} else {
				conf_error_add(
					ps->errs, ps->file, e->line,
					e->key->name, NULL,
					"one handler per entrypoint: %s is "
					"already set on line %u",
					first->key->name, first->line);
			}
		}
	}
	if (first == NULL)
		conf_error_add(ps->errs, ps->file, sec->line, NULL, NULL,
			       "[entrypoint %s]: no handler; set one of "
			       "command, module "
			       "or builtin",
			       sec->name);
	e = entry_find(sec, "module");
	if (e != NULL && entry_find(sec, "function") == NULL)
		conf_error_add(
			ps->errs, ps->file, e->line, "module", NULL,
			"needs function (the name of the handler function)");
	e = entry_find(sec, "function");
	if (e != NULL && entry_find(sec, "module") == NULL)
		conf_error_add(ps->errs, ps->file, e->line, "function", NULL,
			       "only applies with module");
	e = entry_find(sec, "sleep");
	if (e != NULL && entry_ok(sec, "builtin") &&
	    !(entry_find(sec, "builtin") && ep->builtin == CONF_BUILTIN_SLEEP))
		conf_error_add(ps->errs, ps->file, e->line, "sleep", NULL,
			       "only applies with builtin = sleep");
	/* Keys of one handler kind; a bad value was reported already. */
	for (size_t i = 0; first != NULL && i < sec->nentries; i++) {
		static const char *const command_only[] = {
			"rlimit_as", "rlimit_cpu", "rlimit_nofile",
			"user",	     "group",	   "pass_env"};
		const char *name = sec->entries[i].key->name;

		if (sec->entries[i].bad)
			continue;
		if (strcmp(name, "cancel") == 0 &&
		    ep->kind != CONF_HANDLER_MODULE)
			conf_error_add(ps->errs, ps->file, sec->entries[i].line,
				       name, NULL, "only applies with module");
		for (size_t k = 0; k < PGQ_NELEM(command_only); k++)
			if (strcmp(name, command_only[k]) == 0 &&
			    ep->kind != CONF_HANDLER_COMMAND)
				conf_error_add(ps->errs, ps->file,
					       sec->entries[i].line, name, NULL,
					       "only applies with command");
	}
	if (entry_ok(sec, "retry_delay") && entry_ok(sec, "retry_max_delay") &&
	    ep->retry_delay_ms > ep->retry_max_delay_ms) {
		conf_format_ms(ep->retry_delay_ms, a, sizeof(a));
		conf_format_ms(ep->retry_max_delay_ms, b, sizeof(b));
		conf_error_add(
			ps->errs, ps->file,
			blame_line(sec, "retry_delay", "retry_max_delay"),
			"retry_delay", NULL,
			"must not exceed retry_max_delay, got %s > %s", a, b);
	}
	e = entry_find(sec, "requests_per_second");
	if (e != NULL && !e->bad && !(ep->requests_per_second > 0.0))
		value_error_hint(ps, e, "leave the key out for no rate limit",
				 "must be greater than 0");
	e = entry_find(sec, "burst");
	if (e != NULL && !e->bad &&
	    entry_find(sec, "requests_per_second") == NULL)
		conf_error_add(ps->errs, ps->file, e->line, "burst", NULL,
			       "only applies with requests_per_second");
	if (ep->burst == 0 && ep->requests_per_second > 0.0)
		ep->burst = (unsigned)ceil(ep->requests_per_second);
}

static void
build_schedule(struct parser *ps, struct raw_section *sec,
	       struct conf_schedule *sc)
{
	sc->name = xstrdup(sec->name);
	sc->line = sec->line;
	sc->expression = xstrdup("");
	set_defaults(ps, CONF_SECT_SCHEDULE, sc);
	apply_entries(ps, sec, sc);
	if (entry_find(sec, "entrypoint") == NULL) {
		free(sc->entrypoint);
		sc->entrypoint = xstrdup(sc->name);
	}
	if (entry_find(sec, "cron") == NULL)
		conf_error_add(ps->errs, ps->file, sec->line, NULL, NULL,
			       "[schedule %s]: cron is required (when the "
			       "job is enqueued: \"0 3 * * *\", "
			       "\"@hourly\", ...)",
			       sec->name);
}

static struct raw_section *
section_find(struct parser *ps, enum conf_section_kind kind)
{
	for (size_t i = 0; i < ps->nsections; i++)
		if (ps->sections[i].kind == kind)
			return &ps->sections[i];
	return NULL;
}

static void
build(struct parser *ps, struct conf *cf)
{
	struct raw_section *pgq = section_find(ps, CONF_SECT_PGQ);
	struct raw_section *db = section_find(ps, CONF_SECT_DATABASE);
	size_t n = 0;

	set_defaults(ps, CONF_SECT_PGQ, cf);
	set_defaults(ps, CONF_SECT_DATABASE, cf);
	if (pgq != NULL)
		apply_entries(ps, pgq, cf);
	if (db != NULL)
		apply_entries(ps, db, cf);
	check_pgq(ps, pgq, cf);

	for (size_t i = 0; i < ps->nsections; i++)
		if (ps->sections[i].kind == CONF_SECT_ENTRYPOINT)
			n++;
	cf->entrypoints = xcalloc(n ? n : 1, sizeof(cf->entrypoints[0]));
	for (size_t i = 0; i < ps->nsections; i++)
		if (ps->sections[i].kind == CONF_SECT_ENTRYPOINT)
			build_entrypoint(ps, &ps->sections[i],
					 &cf->entrypoints[cf->nentrypoints++]);
	if (n == 0)
		conf_error_add(ps->errs, ps->file, 0, NULL, NULL,
			       "no [entrypoint NAME] section; at least one is "
			       "required");

	n = 0;
	for (size_t i = 0; i < ps->nsections; i++)
		if (ps->sections[i].kind == CONF_SECT_SCHEDULE)
			n++;
	cf->schedules = xcalloc(n ? n : 1, sizeof(cf->schedules[0]));
	for (size_t i = 0; i < ps->nsections; i++)
		if (ps->sections[i].kind == CONF_SECT_SCHEDULE)
			build_schedule(ps, &ps->sections[i],
				       &cf->schedules[cf->nschedules++]);
	/* The table keeps one row per expression and entrypoint. */
	for (size_t j = 1; j < cf->nschedules; j++) {
		const struct conf_schedule *b = &cf->schedules[j];

		for (size_t i = 0; i < j && b->expression[0] != '\0'; i++) {
			const struct conf_schedule *a = &cf->schedules[i];

			if (strcmp(a->expression, b->expression) != 0 ||
			    strcmp(a->entrypoint, b->entrypoint) != 0)
				continue;
			conf_error_add(ps->errs, ps->file, b->line, NULL, NULL,
				       "[schedule %s]: same entrypoint and "
				       "cron as [schedule %s] on line %u",
				       b->name, a->name, a->line);
			break;
		}
	}
}

/* Orders errors from first..n by line (stable); whole-file ones last. */
static void
sort_errors(struct conf_errors *errs, size_t first)
{
	for (size_t i = first + 1; i < errs->n; i++) {
		struct conf_error x = errs->v[i];
		unsigned key = x.line ? x.line : UINT_MAX;
		size_t j = i;

		while (j > first && (errs->v[j - 1].line ? errs->v[j - 1].line
							 : UINT_MAX) > key) {
			errs->v[j] = errs->v[j - 1];
			j--;
		}
		errs->v[j] = x;
	}
}

int
conf_load_buffer(const char *name, const char *text, size_t len,
		 struct conf **out, struct conf_errors *errs)
{
	struct conf_errors local;
	struct parser ps = {0};
	struct conf *cf = NULL;
	size_t first;
	int rc = -1, r;

	*out = NULL;
	conf_errors_init(&local);
	if (errs == NULL)
		errs = &local;
	first = errs->n;
	ps.file = name;
	ps.buf = text;
	ps.len = len;
	ps.errs = errs;
	r = ini_parse_stream(read_key_line, &ps, on_key, &ps);
	/* The reader only hands inih lines it accepts; a failure here means
	 * inih and the reader disagree about a line. */
	if (r != 0)
		conf_error_add(errs, name, r > 0 ? ps.key_line : 0, NULL, NULL,
			       "inih rejected the file (code %d)", r);
	cf = xcalloc(1, sizeof(*cf));
	cf->path = xstrdup(name);
	build(&ps, cf);
	if (errs->n > first) {
		sort_errors(errs, first);
		goto out;
	}
	*out = cf;
	cf = NULL;
	rc = 0;
out:
	conf_free(cf);
	parser_clear(&ps);
	conf_errors_clear(&local);
	return rc;
}

int
conf_load(const char *path, struct conf **out, struct conf_errors *errs)
{
	struct conf_errors local;
	char *buf = NULL;
	size_t len = 0, cap = 4096;
	int fd, rc = -1;

	*out = NULL;
	conf_errors_init(&local);
	if (errs == NULL)
		errs = &local;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		conf_error_add(errs, path, 0, NULL, NULL, "cannot open: %s",
			       strerror(errno));
		goto out;
	}
	buf = xmalloc(cap);
	for (;;) {
		ssize_t r;

		if (len == cap) {
			if (cap >= CONF_FILE_MAX) {
				conf_error_add(
					errs, path, 0, NULL, NULL,
					"file too large: limit %zu bytes",
					CONF_FILE_MAX);
				goto out;
			}
			cap *= 2;
			buf = xrealloc(buf, cap, 1);
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			conf_error_add(errs, path, 0, NULL, NULL,
				       "cannot read: %s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	rc = conf_load_buffer(path, buf, len, out, errs);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	conf_errors_clear(&local);
	return rc;
}

/* Frees the string fields of a section kind's keys in base. */
static void
strings_free(enum conf_section_kind kind, void *base)
{
	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (k->section != kind)
			continue;
		switch (k->type) {
		case CONF_T_COMMAND:
		case CONF_T_MODULE:
		case CONF_T_SYMBOL:
		case CONF_T_IDENT:
		case CONF_T_PATH:
		case CONF_T_DSN:
		case CONF_T_NAME:
		case CONF_T_CRON:
		case CONF_T_TEXT:
		case CONF_T_USER:
		case CONF_T_GROUP:
		case CONF_T_ENVNAMES:
			free(*(char **)CONF_FIELD(base, k));
			break;
		default:
			break;
		}
	}
}

static void
schedule_clear(struct conf_schedule *sc)
{
	strings_free(CONF_SECT_SCHEDULE, sc);
	free(sc->expression);
	free(sc->name);
}

static void
entrypoint_clear(struct conf_entrypoint *ep)
{
	strings_free(CONF_SECT_ENTRYPOINT, ep);
	conf_argv_free(ep->argv);
	free(ep->name);
}

void
conf_free(struct conf *cf)
{
	if (cf == NULL)
		return;
	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (k->section == CONF_SECT_ENTRYPOINT ||
		    k->section == CONF_SECT_SCHEDULE)
			continue;
		switch (k->type) {
		case CONF_T_IDENT:
		case CONF_T_PATH:
		case CONF_T_DSN:
		case CONF_T_MODULE:
		case CONF_T_SYMBOL:
		case CONF_T_COMMAND:
		case CONF_T_USER:
		case CONF_T_GROUP:
			free(*(char **)CONF_FIELD(cf, k));
			break;
		default:
			break;
		}
	}
	for (size_t i = 0; i < cf->nentrypoints; i++)
		entrypoint_clear(&cf->entrypoints[i]);
	free(cf->entrypoints);
	for (size_t i = 0; i < cf->nschedules; i++)
		schedule_clear(&cf->schedules[i]);
	free(cf->schedules);
	free(cf->path);
	free(cf);
}

const struct conf_entrypoint *
conf_entrypoint_find(const struct conf *cf, const char *name)
{
	for (size_t i = 0; i < cf->nentrypoints; i++)
		if (strcmp(cf->entrypoints[i].name, name) == 0)
			return &cf->entrypoints[i];
	return NULL;
}

unsigned
conf_entrypoint_batch_size(const struct conf *cf,
			   const struct conf_entrypoint *ep)
{
	return ep->batch_size ? ep->batch_size : cf->batch_size;
}
