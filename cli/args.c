/*
 * What every verb shares: option parsing (verb options, global options after
 * the verb, --help, "--"), resolution of names and DSN from options and the
 * environment, the checked connection, and error messages mapped onto the
 * exit codes of pgq(1).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "driver/driver.h"

static void vwarnx(const struct cli *c, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
vwarnx(const struct cli *c, const char *fmt, va_list ap)
{
	fflush(stdout);
	if (c != NULL && c->verb != NULL)
		fprintf(stderr, "pgq: %s: ", c->verb);
	else
		fputs("pgq: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
cli_warnx(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnx(c, fmt, ap);
	va_end(ap);
}

int
cli_usage_error(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnx(c, fmt, ap);
	va_end(ap);
	if (c != NULL && c->verb != NULL)
		fprintf(stderr, "Try 'pgq %s --help' for more information.\n",
			c->verb);
	else
		fputs("Try 'pgq --help' for more information.\n", stderr);
	return CLI_EXIT_USAGE;
}

/*
 * Writes s on one line: libpq's connection messages span several lines with
 * tab-indented continuations, which would break "one line per error".
 */
static void
put_one_line(const char *s)
{
	bool space = false;

	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\r' || *p == '\t') {
			space = true;
			continue;
		}
		if (space)
			fputc(' ', stderr);
		space = false;
		fputc(*p, stderr);
	}
}

int
cli_db_error(const struct cli *c, const struct pgq_error *err)
{
	fflush(stdout);
	fprintf(stderr, "pgq: %s failed: ", c->verb != NULL ? c->verb : "pgq");
	put_one_line(err->message[0] != '\0' ? err->message : "unknown error");
	if (err->sqlstate[0] != '\0')
		fprintf(stderr, " (SQLSTATE %s)", err->sqlstate);
	if (err->hint[0] != '\0') {
		fputs("; hint: ", stderr);
		put_one_line(err->hint);
	}
	fputc('\n', stderr);
	return err->klass == PGQ_ERR_INVALID ? CLI_EXIT_USAGE : CLI_EXIT_DB;
}

bool
cli_parse_id(const char *s, int64_t *out)
{
	long long v;

	if (!parse_int_range(s, 1, INT64_MAX, &v))
		return false;
	*out = (int64_t)v;
	return true;
}

/* The global options taking a value, and where each is stored. */
static const char **
global_slot(struct cli *c, const char *name, size_t len)
{
	static const char *const names[] = {"dsn", "prefix", "schema",
					    "channel"};
	const char **slots[] = {&c->dsn, &c->prefix, &c->schema, &c->channel};

	for (size_t k = 0; k < PGQ_NELEM(names); k++)
		if (strlen(names[k]) == len &&
		    strncmp(names[k], name, len) == 0)
			return slots[k];
	return NULL;
}

enum cli_global
cli_global_option(struct cli *c, int argc, char **argv, int *i)
{
	const char *arg = argv[*i], *name, *eq;
	const char **slot;
	size_t len;

	if (strncmp(arg, "--", 2) != 0)
		return CLI_GLOBAL_NONE;
	name = arg + 2;
	eq = strchr(name, '=');
	len = eq != NULL ? (size_t)(eq - name) : strlen(name);
	slot = global_slot(c, name, len);
	if (slot == NULL)
		return CLI_GLOBAL_NONE;
	if (eq != NULL) {
		*slot = eq + 1;
	} else if (*i + 1 < argc) {
		*slot = argv[++*i];
	} else {
		(void)cli_usage_error(c, "option --%s needs a value", name);
		return CLI_GLOBAL_ERROR;
	}
	return CLI_GLOBAL_TAKEN;
}

void
cli_print_verb_help(const struct cli_verb *v)
{
	printf("usage: pgq [global options] %s%s%s\n\n%s\n", v->name,
	       v->synopsis[0] != '\0' ? " " : "", v->synopsis, v->summary);
	if (v->help != NULL && v->help[0] != '\0')
		printf("\n%s", v->help);
	printf("\n"
	       "Global options (also accepted after the verb):\n"
	       "  --dsn DSN        connection string or URI (else PGQUEUER_DSN,"
	       " PGDSN,\n"
	       "                   then the libpq variables PGHOST, PGPORT, "
	       "...)\n"
	       "  --prefix PREFIX  prefix of every object name (else "
	       "PGQUEUER_PREFIX)\n"
	       "  --schema SCHEMA  schema of the tables (else "
	       "PGQUEUER_SCHEMA)\n"
	       "  --channel NAME   notification channel (default: PREFIX + "
	       "ch_pgqueuer)\n"
	       "  -h, --help       show this help\n"
	       "\n"
	       "See pgq(1) for exit codes and examples.\n");
}

int
cli_parse(struct cli *c, const struct cli_verb *v, const struct cli_opt *opts,
	  int argc, char **argv, int *npos)
{
	bool opts_done = false;
	int n = 0;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *name, *eq;
		const struct cli_opt *o = NULL;
		size_t len;

		if (!opts_done && strcmp(arg, "--") == 0) {
			opts_done = true;
			continue;
		}
		/* "-" alone is an argument (standard input), not an option */
		if (opts_done || arg[0] != '-' || arg[1] == '\0') {
			argv[n++] = argv[i];
			continue;
		}
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			cli_print_verb_help(v);
			return CLI_EXIT_OK;
		}
		switch (cli_global_option(c, argc, argv, &i)) {
		case CLI_GLOBAL_TAKEN:
			continue;
		case CLI_GLOBAL_ERROR:
			return CLI_EXIT_USAGE;
		case CLI_GLOBAL_NONE:
			break;
		}
		if (arg[1] != '-')
			return cli_usage_error(
				c,
				"unknown option %s (use -- before "
				"an argument that starts with -)",
				arg);
		name = arg + 2;
		eq = strchr(name, '=');
		len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		for (const struct cli_opt *p = opts;
		     p != NULL && p->name != NULL; p++)
			if (strlen(p->name) == len &&
			    strncmp(p->name, name, len) == 0)
				o = p;
		if (o == NULL)
			return cli_usage_error(c, "unknown option --%.*s",
					       (int)len, name);
		if (o->flag != NULL) {
			if (eq != NULL)
				return cli_usage_error(
					c, "option --%s takes no value",
					o->name);
			*o->flag = true;
		} else if (eq != NULL) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			return cli_usage_error(c, "option --%s needs a value",
					       o->name);
		}
	}
	*npos = n;
	return -1;
}

/*
 * Copies libpq's complaint about a connection string with every quoted
 * fragment hidden, because a fragment may be (part of) the password. Only
 * the name in "invalid connection option" stays: it is a keyword, not a value.
 */
static void
scrub_conninfo_error(char *dst, size_t len, const char *msg)
{
	bool keep = strncmp(msg, "invalid connection option", 25) == 0;
	bool quoted = false;
	size_t o = 0;

	for (const char *p = msg; *p != '\0' && o + 4 < len; p++) {
		if (*p == '\n')
			break;
		if (*p == '"') {
			quoted = !quoted;
			dst[o++] = '"';
			if (quoted && !keep) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			continue;
		}
		if (!quoted || keep)
			dst[o++] = *p;
	}
	dst[o] = '\0';
}

static int
resolve_dsn(struct cli *c)
{
	const char *dsn = c->dsn, *source = "--dsn";
	PQconninfoOption *parsed;
	char *msg = NULL;
	char clean[256];

	if (dsn == NULL)
		dsn = driver_conninfo(NULL, &source);
	if (dsn[0] == '\0') {
		/* "" makes the driver use the libpq variables only */
		c->conninfo = "";
		return 0;
	}
	parsed = PQconninfoParse(dsn, &msg);
	if (parsed == NULL) {
		if (msg != NULL)
			scrub_conninfo_error(clean, sizeof(clean), msg);
		else
			snprintf(clean, sizeof(clean), "out of memory");
		PQfreemem(msg);
		if (c->dsn != NULL)
			return cli_usage_error(
				c, "--dsn: not a valid connection string: %s",
				clean);
		cli_warnx(c, "%s: not a valid connection string: %s", source,
			  clean);
		return CLI_EXIT_CONFIG;
	}
	PQconninfoFree(parsed);
	c->conninfo = dsn;
	return 0;
}

int
cli_resolve(struct cli *c)
{
	const char *prefix = c->prefix, *schema = c->schema;
	struct sql_names tmp;
	struct pgq_error err;

	/* Options first: a bad one is a usage error. */
	if (sql_names_init(&tmp, c->prefix, c->schema, c->channel, &err) == -1)
		return cli_usage_error(c, "%s", err.message);
	if (prefix == NULL)
		prefix = getenv("PGQUEUER_PREFIX");
	if (schema == NULL)
		schema = getenv("PGQUEUER_SCHEMA");
	if (sql_names_init(&c->names, prefix, schema, c->channel, &err) == -1) {
		const char *var = "PGQUEUER_SCHEMA";

		if (c->prefix == NULL && sql_names_init(&tmp, prefix, c->schema,
							c->channel, &err) == -1)
			var = "PGQUEUER_PREFIX";
		cli_warnx(c, "%s: %s", var, err.message);
		return CLI_EXIT_CONFIG;
	}
	return resolve_dsn(c);
}

/*
 * Server notices in pgq's own format and on one line. Below WARNING they are
 * dropped: they narrate idempotent steps ("already exists, skipping").
 */
static void
notice_receiver(void *arg, const PGresult *res)
{
	const struct cli *c = arg;
	const char *sev =
		PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (sev == NULL || msg == NULL || strcmp(sev, "NOTICE") == 0 ||
	    strcmp(sev, "INFO") == 0 || strcmp(sev, "LOG") == 0 ||
	    strcmp(sev, "DEBUG") == 0)
		return;
	fflush(stdout);
	fprintf(stderr,
		"pgq: %s: server %s: ", c->verb != NULL ? c->verb : "pgq", sev);
	put_one_line(msg);
	fputc('\n', stderr);
}

int
cli_connect(struct cli *c, struct pgq **q)
{
	struct pgq_options opt;
	struct pgq_error err;
	int rc;

	*q = NULL;
	rc = cli_resolve(c);
	if (rc != 0)
		return rc;
	opt.prefix = c->names.prefix;
	opt.schema = c->names.schema;
	opt.channel = c->names.channel;
	*q = pgq_connect(c->conninfo, &opt, PGQ_ROLE_PRODUCER, &err);
	if (*q == NULL)
		return cli_db_error(c, &err);
	PQsetNoticeReceiver(pgq_conn(*q), notice_receiver, c);
	return 0;
}
