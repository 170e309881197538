/*
 * conf_load: reads pgq.ini whole, hands inih one key line at a time through
 * its own reader (so every line number is ours and no line is ever cut) and
 * collects the raw key = value entries of each section; conf_build (check.c)
 * then makes and checks a fresh struct conf, and every error is reported.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "conf/conf_int.h"

/* A configuration file is small; anything larger is a mistake. */
#define CONF_FILE_MAX ((size_t)1 << 20)

enum parser_where {
	IN_NONE = 0, /* before the first section header */
	IN_SECTION,  /* in raw.sections[cur] */
	IN_SKIPPED,  /* in a bad or duplicate section: keys are ignored */
};

struct parser {
	struct conf_raw raw; /* what the file holds, for conf_build */
	const char *buf;
	size_t len;
	size_t pos;
	unsigned line;	   /* physical lines read so far */
	unsigned key_line; /* line of the key line last handed to inih */
	char *cont;	   /* its continuation text, or NULL */
	bool comment_cut;  /* its value lost an inline comment */
	bool cont_broken;  /* one of its continuation lines was rejected */
	enum parser_where where;
	size_t cur;
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
		conf_error_add(ps->raw.errs, ps->raw.file, ps->line, NULL, NULL,
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
		ps->raw.errs, ps->raw.file, ps->line, NULL, NULL,
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

static bool
sections_match(const struct conf_raw_section *s, enum conf_section_kind kind,
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
		conf_error_add(ps->raw.errs, ps->raw.file, ps->line, NULL,
			       shown,
			       "syntax error: section header without \"]\"");
		goto out;
	}
	rest = close + 1;
	restn = n - (size_t)(rest - l);
	trim(&rest, &restn);
	if (restn > 0 && *rest != ';' && *rest != '#') {
		shown = printable(l, n);
		conf_error_add(ps->raw.errs, ps->raw.file, ps->line, NULL,
			       shown,
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
				ps->raw.errs, ps->raw.file, ps->line, NULL,
				NULL,
				"unknown section [%s]; did you mean [%s]?",
				shown, s);
		else
			conf_error_add(
				ps->raw.errs, ps->raw.file, ps->line, NULL,
				NULL,
				"unknown section [%s]; sections are [pgq], "
				"[database], [entrypoint NAME] and "
				"[schedule NAME]",
				shown);
		goto out;
	}
	name = printable(arg, argn);
	if (!kind_named(kind) && argn > 0) {
		conf_error_add(ps->raw.errs, ps->raw.file, ps->line, NULL, name,
			       "section [%s] takes no name", shown);
		goto out;
	}
	if (kind_named(kind) && !conf_name_valid(arg, argn)) {
		conf_error_add(ps->raw.errs, ps->raw.file, ps->line, NULL,
			       argn > 0 ? name : NULL,
			       "[%s NAME]: NAME must be 1..%d bytes "
			       "without spaces or control characters",
			       shown, CONF_ENTRYPOINT_NAME_MAX);
		goto out;
	}
	for (size_t i = 0; i < ps->raw.nsections; i++) {
		if (sections_match(&ps->raw.sections[i], kind, name)) {
			conf_error_add(
				ps->raw.errs, ps->raw.file, ps->line, NULL,
				NULL,
				"duplicate section [%s%s%s], first on line %u",
				shown, argn ? " " : "", name,
				ps->raw.sections[i].line);
			goto out;
		}
	}
	if (ps->raw.nsections == ps->raw.cap) {
		ps->raw.cap = ps->raw.cap ? ps->raw.cap * 2 : 4;
		ps->raw.sections = xrealloc(ps->raw.sections, ps->raw.cap,
					    sizeof(ps->raw.sections[0]));
	}
	ps->raw.sections[ps->raw.nsections] = (struct conf_raw_section){
		.kind = kind,
		.name = kind_named(kind) ? name : NULL,
		.line = ps->line,
	};
	if (kind_named(kind))
		name = NULL;
	ps->cur = ps->raw.nsections++;
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
			conf_error_add(ps->raw.errs, ps->raw.file, ps->key_line,
				       NULL, NULL,
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
				ps->raw.errs, ps->raw.file, ps->line, NULL,
				shown,
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
unknown_key(struct parser *ps, const struct conf_raw_section *sec,
	    const char *name, unsigned line)
{
	const char *kname = conf_section_kind_name(sec->kind);
	const struct conf_key *s = suggest_key(sec->kind, name);
	char *shown = printable(name, strlen(name));

	if (s != NULL) {
		conf_error_add(ps->raw.errs, ps->raw.file, line, shown, NULL,
			       "unknown key in [%s]; did you mean \"%s\"?",
			       kname, s->name);
		goto out;
	}
	for (size_t i = 0; i < conf_nkeys; i++) {
		if (strcmp(conf_keys[i].name, name) == 0) {
			conf_error_add(
				ps->raw.errs, ps->raw.file, line, shown, NULL,
				"unknown key in [%s]; it belongs in [%s%s]",
				kname,
				conf_section_kind_name(conf_keys[i].section),
				kind_named(conf_keys[i].section) ? " NAME"
								 : "");
			goto out;
		}
	}
	conf_error_add(ps->raw.errs, ps->raw.file, line, shown, NULL,
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
	struct conf_raw_section *sec;
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
		conf_error_add(ps->raw.errs, ps->raw.file, line, NULL, NULL,
			       "syntax error: no key name before \"=\"");
		goto out;
	}
	if (ps->where == IN_SKIPPED)
		goto out;
	if (ps->where == IN_NONE) {
		char *shown = printable(name, strlen(name));

		conf_error_add(ps->raw.errs, ps->raw.file, line, shown, NULL,
			       "key before the first [section]");
		free(shown);
		goto out;
	}
	sec = &ps->raw.sections[ps->cur];
	key = conf_key_find(sec->kind, name);
	if (key == NULL) {
		unknown_key(ps, sec, name, line);
		goto out;
	}
	for (size_t i = 0; i < sec->nentries; i++) {
		if (sec->entries[i].key == key) {
			conf_error_add(ps->raw.errs, ps->raw.file, line,
				       key->name, NULL,
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
	sec->entries[sec->nentries++] = (struct conf_raw_entry){
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
	for (size_t i = 0; i < ps->raw.nsections; i++) {
		struct conf_raw_section *s = &ps->raw.sections[i];

		for (size_t j = 0; j < s->nentries; j++)
			free(s->entries[j].value);
		free(s->entries);
		free(s->name);
	}
	free(ps->raw.sections);
	free(ps->cont);
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
	ps.raw.file = name;
	ps.buf = text;
	ps.len = len;
	ps.raw.errs = errs;
	r = ini_parse_stream(read_key_line, &ps, on_key, &ps);
	/* The reader only hands inih lines it accepts; a failure here means
	 * inih and the reader disagree about a line. */
	if (r != 0)
		conf_error_add(errs, name, r > 0 ? ps.key_line : 0, NULL, NULL,
			       "inih rejected the file (code %d)", r);
	cf = xcalloc(1, sizeof(*cf));
	cf->path = xstrdup(name);
	conf_build(&ps.raw, cf);
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

/* Frees the fields of a section kind's keys in base. */
static void
keys_clear(enum conf_section_kind kind, void *base)
{
	for (size_t i = 0; i < conf_nkeys; i++)
		if (conf_keys[i].section == kind)
			conf_types[conf_keys[i].type].clear(&conf_keys[i],
							    base);
}

void
conf_free(struct conf *cf)
{
	if (cf == NULL)
		return;
	keys_clear(CONF_SECT_PGQ, cf);
	keys_clear(CONF_SECT_DATABASE, cf);
	for (size_t i = 0; i < cf->nentrypoints; i++) {
		keys_clear(CONF_SECT_ENTRYPOINT, &cf->entrypoints[i]);
		free(cf->entrypoints[i].name);
	}
	free(cf->entrypoints);
	for (size_t i = 0; i < cf->nschedules; i++) {
		keys_clear(CONF_SECT_SCHEDULE, &cf->schedules[i]);
		free(cf->schedules[i].name);
	}
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
