/*
 * The value types of pgq.ini, one entry of conf_types each: how a value is
 * read from the file and checked (with its file:line message), printed,
 * compared for a reload, copied and freed. The key table (keys.c) says which
 * type a key has; nothing else in conf/ looks at the type.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/ids.h"
#include "conf/conf_int.h"

/* The key's field in base, as its C type. */
#define FIELD(type, base, k)  (*(type *)CONF_FIELD(base, k))
#define CFIELD(type, base, k) (*(type const *)CONF_CFIELD(base, k))

/* The fields a command or cron key owns besides its own. */
#define EP(base)  ((struct conf_entrypoint *)(base))
#define CEP(base) ((const struct conf_entrypoint *)(base))
#define SC(base)  ((struct conf_schedule *)(base))
#define CSC(base) ((const struct conf_schedule *)(base))

void
conf_value_error(const struct conf_value *v, const char *hint, const char *fmt,
		 ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (hint == NULL && v->comment_cut)
		hint = "note: \" ;\" starts a comment, removed from the value";
	conf_error_hint(v->errs, v->file, v->line, v->key->name,
			conf_types[v->key->type].secret ? NULL : v->text, hint,
			"%s", msg);
}

bool
conf_name_valid(const char *s, size_t n)
{
	if (n == 0 || n > CONF_ENTRYPOINT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (isspace((unsigned char)s[i]) ||
		    (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* ---- helpers of the checks ---- */

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

/* path is a regular file this process may open with mode (R_OK, X_OK). */
static int
check_file(const struct conf_value *v, const char *path, int mode)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		conf_value_error(v, NULL, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		conf_value_error(v, NULL, "%s: not a regular file", path);
		return -1;
	}
	if (access(path, mode) != 0) {
		conf_value_error(v, NULL, "%s: %s: %s", path,
				 mode == X_OK ? "not executable"
					      : "not readable",
				 strerror(errno));
		return -1;
	}
	return 0;
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

/* ---- operations shared by several types ---- */

/* A scalar's init, equal and copy act on its conf_types[].size bytes. */
static void
scalar_init(const struct conf_key *k, void *base)
{
	memset(CONF_FIELD(base, k), 0, conf_types[k->type].size);
}

static bool
scalar_equal(const struct conf_key *k, const void *a, const void *b)
{
	return memcmp(CONF_CFIELD(a, k), CONF_CFIELD(b, k),
		      conf_types[k->type].size) == 0;
}

static void
scalar_copy(const struct conf_key *k, void *dst, const void *src)
{
	memcpy(CONF_FIELD(dst, k), CONF_CFIELD(src, k),
	       conf_types[k->type].size);
}

/* A scalar owns no memory. */
static void
scalar_clear(const struct conf_key *k, void *base)
{
	(void)k;
	(void)base;
}

/* For types whose every parsed value is valid. */
static int
valid_any(const struct conf_value *v, const void *base)
{
	(void)v;
	(void)base;
	return 0;
}

/* A string field is never NULL once initialised: "" when unset. */
static void
string_init(const struct conf_key *k, void *base)
{
	FIELD(char *, base, k) = xstrdup("");
}

static int
string_parse(const struct conf_value *v, void *base)
{
	FIELD(char *, base, v->key) = xstrdup(v->text);
	return 0;
}

static char *
string_print(const struct conf_key *k, const void *base)
{
	return xstrdup(CFIELD(char *, base, k));
}

static bool
string_equal(const struct conf_key *k, const void *a, const void *b)
{
	return strcmp(CFIELD(char *, a, k), CFIELD(char *, b, k)) == 0;
}

static void
string_copy(const struct conf_key *k, void *dst, const void *src)
{
	free(FIELD(char *, dst, k));
	FIELD(char *, dst, k) = xstrdup(CFIELD(char *, src, k));
}

static void
string_clear(const struct conf_key *k, void *base)
{
	free(FIELD(char *, base, k));
	FIELD(char *, base, k) = NULL;
}

/* ---- integers: unsigned and int ---- */

/* One message whether the text is no number or one out of range. */
static int
int_range_error(const struct conf_value *v)
{
	conf_value_error(v, NULL, "must be %lld..%lld", v->key->min,
			 v->key->max);
	return -1;
}

static int
uint_parse(const struct conf_value *v, void *base)
{
	long long n;

	if (!parse_int_range(v->text, 0, UINT_MAX, &n))
		return int_range_error(v);
	FIELD(unsigned, base, v->key) = (unsigned)n;
	return 0;
}

static int
uint_validate(const struct conf_value *v, const void *base)
{
	long long n = CFIELD(unsigned, base, v->key);

	if (n < v->key->min || n > v->key->max)
		return int_range_error(v);
	return 0;
}

static char *
uint_print(const struct conf_key *k, const void *base)
{
	return xasprintf("%u", CFIELD(unsigned, base, k));
}

static int
int_parse(const struct conf_value *v, void *base)
{
	long long n;

	if (!parse_int_range(v->text, INT_MIN, INT_MAX, &n))
		return int_range_error(v);
	FIELD(int, base, v->key) = (int)n;
	return 0;
}

static int
int_validate(const struct conf_value *v, const void *base)
{
	long long n = CFIELD(int, base, v->key);

	if (n < v->key->min || n > v->key->max)
		return int_range_error(v);
	return 0;
}

static char *
int_print(const struct conf_key *k, const void *base)
{
	return xasprintf("%d", CFIELD(int, base, k));
}

/* ---- durations: uint64_t milliseconds ---- */

static int
duration_parse(const struct conf_value *v, void *base)
{
	uint64_t ms;

	if (!plain_number(v->text, true) || !parse_duration_ms(v->text, &ms)) {
		conf_value_error(v, NULL,
				 "must be a duration like 500ms, 30s or 5m "
				 "(units us, ms, s, m, h, d; none = seconds)");
		return -1;
	}
	FIELD(uint64_t, base, v->key) = ms;
	return 0;
}

static int
duration_validate(const struct conf_value *v, const void *base)
{
	const struct conf_key *k = v->key;
	uint64_t ms = CFIELD(uint64_t, base, k);
	bool low = ms < (uint64_t)k->min;
	char bound[32];

	if (!low && ms <= (uint64_t)k->max)
		return 0;
	format_duration_ms((uint64_t)(low ? k->min : k->max), bound,
			   sizeof(bound));
	conf_value_error(v, NULL, "must be at %s %s", low ? "least" : "most",
			 bound);
	return -1;
}

static char *
duration_print(const struct conf_key *k, const void *base)
{
	char buf[32];

	format_duration_ms(CFIELD(uint64_t, base, k), buf, sizeof(buf));
	return xstrdup(buf);
}

/* ---- sizes: uint64_t bytes ---- */

/* One message whether the text is no size or one out of range. */
static int
size_error(const struct conf_value *v)
{
	conf_value_error(v, NULL,
			 "must be a size like 512M or 2G (units B, k, M, G; "
			 "none = bytes) up to 1024G");
	return -1;
}

static int
size_parse(const struct conf_value *v, void *base)
{
	uint64_t b;

	if (!plain_number(v->text, true) || !parse_size_bytes(v->text, &b))
		return size_error(v);
	FIELD(uint64_t, base, v->key) = b;
	return 0;
}

static int
size_validate(const struct conf_value *v, const void *base)
{
	uint64_t b = CFIELD(uint64_t, base, v->key);

	if (b < (uint64_t)v->key->min || b > (uint64_t)v->key->max)
		return size_error(v);
	return 0;
}

/* In the largest unit that divides the value: "512M", "1536", "0". */
static char *
size_print(const struct conf_key *k, const void *base)
{
	static const struct {
		uint64_t bytes;
		const char *unit;
	} units[] = {
		{1073741824, "G"},
		{1048576, "M"},
		{1024, "k"},
	};
	uint64_t b = CFIELD(uint64_t, base, k);

	for (size_t i = 0; b > 0 && i < PGQ_NELEM(units); i++)
		if (b % units[i].bytes == 0)
			return xasprintf(
				"%llu%s",
				(unsigned long long)(b / units[i].bytes),
				units[i].unit);
	return xasprintf("%llu", (unsigned long long)b);
}

/* ---- reals: double ---- */

/* One message whether the text is no number or one out of range. */
static int
real_error(const struct conf_value *v)
{
	conf_value_error(v, NULL, "must be a number from %lld to %lld",
			 v->key->min, v->key->max);
	return -1;
}

static int
real_parse(const struct conf_value *v, void *base)
{
	double d;

	errno = 0;
	d = plain_number(v->text, false) ? strtod(v->text, NULL) : NAN;
	if (errno != 0 || !isfinite(d))
		return real_error(v);
	FIELD(double, base, v->key) = d;
	return 0;
}

static int
real_validate(const struct conf_value *v, const void *base)
{
	double d = CFIELD(double, base, v->key);

	if (d < (double)v->key->min || d > (double)v->key->max)
		return real_error(v);
	return 0;
}

/* The shortest fixed notation that reads back the same: parse takes no
 * exponent. Every finite double has at most 1074 fraction digits. */
static char *
real_print(const struct conf_key *k, const void *base)
{
	double d = CFIELD(double, base, k);
	char *s = xasprintf("%.1f", d);

	for (int prec = 2; prec <= 1074 && strtod(s, NULL) != d; prec++) {
		free(s);
		s = xasprintf("%.*f", prec, d);
	}
	return s;
}

static bool
real_equal(const struct conf_key *k, const void *a, const void *b)
{
	return CFIELD(double, a, k) == CFIELD(double, b, k);
}

/* ---- words: an int-sized enum, the index in the key's words ---- */

/* "a, b, c" into buf. */
static void
enum_words(const struct conf_key *k, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; k->words[i] != NULL && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s",
					i ? ", " : "", k->words[i]);
}

static int
enum_error(const struct conf_value *v)
{
	char words[128];

	enum_words(v->key, words, sizeof(words));
	conf_value_error(v, NULL, "must be one of %s", words);
	return -1;
}

/* Enum fields are written and read as int (keys.c asserts the size). */
static int
enum_parse(const struct conf_value *v, void *base)
{
	for (int i = 0; v->key->words[i] != NULL; i++) {
		if (strcmp(v->key->words[i], v->text) == 0) {
			memcpy(CONF_FIELD(base, v->key), &i, sizeof(i));
			return 0;
		}
	}
	return enum_error(v);
}

/* The word of the value, or NULL when the value is none. */
static const char *
enum_word(const struct conf_key *k, const void *base)
{
	int value;

	memcpy(&value, CONF_CFIELD(base, k), sizeof(value));
	for (int i = 0; k->words[i] != NULL; i++)
		if (i == value)
			return k->words[i];
	return NULL;
}

static int
enum_validate(const struct conf_value *v, const void *base)
{
	return enum_word(v->key, base) != NULL ? 0 : enum_error(v);
}

static char *
enum_print(const struct conf_key *k, const void *base)
{
	const char *w = enum_word(k, base);

	return w != NULL ? xstrdup(w) : xstrdup("");
}

/* ---- bool ---- */

static int
bool_parse(const struct conf_value *v, void *base)
{
	bool b;

	if (!parse_bool(v->text, &b)) {
		conf_value_error(v, NULL, "must be yes or no");
		return -1;
	}
	FIELD(bool, base, v->key) = b;
	return 0;
}

static char *
bool_print(const struct conf_key *k, const void *base)
{
	return xstrdup(CFIELD(bool, base, k) ? "yes" : "no");
}

/* ---- checks of the string types ---- */

static int
ident_validate(const struct conf_value *v, const void *base)
{
	const struct conf_key *k = v->key;
	const char *s = CFIELD(char *, base, k);

	if ((k->min == 0 && s[0] == '\0') || ident_valid(s, (size_t)k->max))
		return 0;
	conf_value_error(v, NULL,
			 "must be %san identifier (a letter or _, then "
			 "letters, digits or _) of at most %lld bytes",
			 k->min == 0 ? "empty or " : "", k->max);
	return -1;
}

static int
path_validate(const struct conf_value *v, const void *base)
{
	const char *s = CFIELD(char *, base, v->key);

	if (s[0] == '\0' || s[0] == '/')
		return 0;
	conf_value_error(v, NULL, "must be an absolute path");
	return -1;
}

/* What libpq would say when connecting, said at load (never echoed). */
static int
dsn_validate(const struct conf_value *v, const void *base)
{
	const char *s = CFIELD(char *, base, v->key);
	PQconninfoOption *opts;
	char *err = NULL;
	size_t n;

	if (s[0] == '\0')
		return 0;
	opts = PQconninfoParse(s, &err);
	if (opts != NULL) {
		PQconninfoFree(opts);
		return 0;
	}
	if (err == NULL) {
		conf_value_error(v, NULL,
				 "invalid connection string: out of memory");
		return -1;
	}
	n = strlen(err);
	while (n > 0 && isspace((unsigned char)err[n - 1]))
		n--;
	conf_value_error(v, NULL, "invalid connection string: %.*s", (int)n,
			 err);
	PQfreemem(err);
	return -1;
}

/* The worker dlopens it later; an absent file is better said at load. */
static int
module_validate(const struct conf_value *v, const void *base)
{
	const char *s = CFIELD(char *, base, v->key);

	if (s[0] != '/') {
		conf_value_error(v, NULL, "must be an absolute path");
		return -1;
	}
	return check_file(v, s, R_OK);
}

static int
symbol_validate(const struct conf_value *v, const void *base)
{
	if (ident_valid(CFIELD(char *, base, v->key), 255))
		return 0;
	conf_value_error(v, NULL, "must be a C identifier");
	return -1;
}

static int
name_validate(const struct conf_value *v, const void *base)
{
	const char *s = CFIELD(char *, base, v->key);

	if (conf_name_valid(s, strlen(s)))
		return 0;
	conf_value_error(v, NULL,
			 "must be 1..%d bytes without spaces or control "
			 "characters",
			 CONF_ENTRYPOINT_NAME_MAX);
	return -1;
}

static int
user_validate(const struct conf_value *v, const void *base)
{
	char why[256];

	if (ids_user_exists(CFIELD(char *, base, v->key), why, sizeof(why)))
		return 0;
	conf_value_error(v, NULL, "%s", why);
	return -1;
}

static int
group_validate(const struct conf_value *v, const void *base)
{
	char why[256];

	if (ids_group_exists(CFIELD(char *, base, v->key), why, sizeof(why)))
		return 0;
	conf_value_error(v, NULL, "%s", why);
	return -1;
}

static int
envnames_validate(const struct conf_value *v, const void *base)
{
	if (env_names_valid(CFIELD(char *, base, v->key)))
		return 0;
	conf_value_error(v, NULL,
			 "must be environment variable names (letters, "
			 "digits and _, not starting with a digit) separated "
			 "by blanks");
	return -1;
}

/* ---- an entrypoint's command: the line as written, argv and argc ---- */

static void
command_init(const struct conf_key *k, void *base)
{
	FIELD(char *, base, k) = xstrdup("");
	EP(base)->argv = NULL;
	EP(base)->argc = 0;
}

static int
command_parse(const struct conf_value *v, void *base)
{
	const char *why;

	if (conf_split_command(v->text, &EP(base)->argv, &EP(base)->argc,
			       &why) != 0) {
		conf_value_error(v, NULL, "%s", why);
		return -1;
	}
	FIELD(char *, base, v->key) = xstrdup(v->text);
	return 0;
}

/* The worker execs argv[0] without a shell, so without a PATH search. */
static int
command_validate(const struct conf_value *v, const void *base)
{
	const char *prog = CEP(base)->argv[0];
	char *found, *hint;

	if (prog[0] == '/')
		return check_file(v, prog, X_OK);
	found = strchr(prog, '/') ? NULL : find_in_path(prog);
	hint = found ? xasprintf("did you mean %s?", found) : NULL;
	conf_value_error(v, hint, "program must be an absolute path");
	free(hint);
	free(found);
	return -1;
}

static char *
command_print(const struct conf_key *k, const void *base)
{
	return xstrdup(CFIELD(char *, base, k));
}

/* What runs is argv: "a  b" and "a b" are the same command. */
static bool
command_equal(const struct conf_key *k, const void *a, const void *b)
{
	char *const *x = CEP(a)->argv, *const *y = CEP(b)->argv;
	size_t i;

	(void)k;
	if (x == NULL || y == NULL)
		return x == y;
	for (i = 0; x[i] != NULL && y[i] != NULL; i++)
		if (strcmp(x[i], y[i]) != 0)
			return false;
	return x[i] == NULL && y[i] == NULL;
}

static void
command_copy(const struct conf_key *k, void *dst, const void *src)
{
	const struct conf_entrypoint *s = CEP(src);
	struct conf_entrypoint *d = EP(dst);

	string_copy(k, dst, src);
	conf_argv_free(d->argv);
	d->argv = NULL;
	if (s->argv != NULL) {
		d->argv = xcalloc(s->argc + 1, sizeof(d->argv[0]));
		for (size_t i = 0; i < s->argc; i++)
			d->argv[i] = xstrdup(s->argv[i]);
	}
	d->argc = s->argc;
}

static void
command_clear(const struct conf_key *k, void *base)
{
	string_clear(k, base);
	conf_argv_free(EP(base)->argv);
	EP(base)->argv = NULL;
	EP(base)->argc = 0;
}

/* ---- a schedule's cron: the text, its canonical form and the spec ---- */

static void
cron_key_init(const struct conf_key *k, void *base)
{
	FIELD(char *, base, k) = xstrdup("");
	SC(base)->expression = xstrdup("");
	memset(&SC(base)->spec, 0, sizeof(SC(base)->spec));
}

static int
cron_key_parse(const struct conf_value *v, void *base)
{
	char why[200];

	if (cron_parse(v->text, &SC(base)->spec, why, sizeof(why)) != 0) {
		conf_value_error(v, NULL, "%s", why);
		return -1;
	}
	FIELD(char *, base, v->key) = xstrdup(v->text);
	SC(base)->expression = cron_normalize(v->text);
	return 0;
}

static void
cron_key_copy(const struct conf_key *k, void *dst, const void *src)
{
	string_copy(k, dst, src);
	free(SC(dst)->expression);
	SC(dst)->expression = xstrdup(CSC(src)->expression);
	SC(dst)->spec = CSC(src)->spec;
}

static void
cron_key_clear(const struct conf_key *k, void *base)
{
	string_clear(k, base);
	free(SC(base)->expression);
	SC(base)->expression = NULL;
}

/* ---- the table ---- */

#define SCALAR(name, ctype, parse, validate, print, equal)                     \
	{                                                                      \
		name, false, sizeof(ctype), scalar_init, parse, validate,      \
			print, equal, scalar_copy, scalar_clear                \
	}
#define STRING(name, secret, validate)                                         \
	{                                                                      \
		name, secret, 0, string_init, string_parse, validate,          \
			string_print, string_equal, string_copy, string_clear  \
	}

const struct conf_type_ops conf_types[CONF_T_COUNT] = {
	[CONF_T_UINT] = SCALAR("unsigned", unsigned, uint_parse, uint_validate,
			       uint_print, scalar_equal),
	[CONF_T_INT] = SCALAR("int", int, int_parse, int_validate, int_print,
			      scalar_equal),
	[CONF_T_DURATION] =
		SCALAR("duration", uint64_t, duration_parse, duration_validate,
		       duration_print, scalar_equal),
	[CONF_T_REAL] = SCALAR("real", double, real_parse, real_validate,
			       real_print, real_equal),
	[CONF_T_IDENT] = STRING("identifier", false, ident_validate),
	[CONF_T_PATH] = STRING("path", false, path_validate),
	[CONF_T_DSN] = STRING("connection string", true, dsn_validate),
	[CONF_T_ENUM] = SCALAR("word", int, enum_parse, enum_validate,
			       enum_print, scalar_equal),
	[CONF_T_COMMAND] = {"command", false, 0, command_init, command_parse,
			    command_validate, command_print, command_equal,
			    command_copy, command_clear},
	[CONF_T_MODULE] = STRING("module", false, module_validate),
	[CONF_T_SYMBOL] = STRING("symbol", false, symbol_validate),
	[CONF_T_NAME] = STRING("name", false, name_validate),
	/* A reload compares the expression as written. */
	[CONF_T_CRON] = {"cron", false, 0, cron_key_init, cron_key_parse,
			 valid_any, string_print, string_equal, cron_key_copy,
			 cron_key_clear},
	[CONF_T_TEXT] = STRING("text", false, valid_any),
	[CONF_T_SIZE] = SCALAR("size", uint64_t, size_parse, size_validate,
			       size_print, scalar_equal),
	[CONF_T_USER] = STRING("user", false, user_validate),
	[CONF_T_GROUP] = STRING("group", false, group_validate),
	[CONF_T_ENVNAMES] =
		STRING("environment names", false, envnames_validate),
	[CONF_T_BOOL] = SCALAR("bool", bool, bool_parse, valid_any, bool_print,
			       scalar_equal),
};

int
conf_value_set(const struct conf_value *v, void *base)
{
	const struct conf_type_ops *t = &conf_types[v->key->type];
	/* The value is parsed apart from base, so that a bad one leaves the
	 * old value (the default) for the checks between keys. */
	union {
		struct conf cf;
		struct conf_entrypoint ep;
		struct conf_schedule sc;
	} scratch;
	int rc = -1;

	memset(&scratch, 0, sizeof(scratch));
	if (t->parse(v, &scratch) == 0 && t->validate(v, &scratch) == 0) {
		t->copy(v->key, base, &scratch);
		rc = 0;
	}
	t->clear(v->key, &scratch);
	return rc;
}
