/*
 * The schema verbs: install, uninstall, upgrade, verify, durability, autovac
 * run the scripts of sql/ on a connection; `sql` prints the same scripts
 * without connecting, for review or for psql.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const struct cli_opt no_opts[] = {{NULL, NULL, NULL}};

static int
parse_durability(const struct cli *c, const char *s, enum sql_durability *d)
{
	if (!sql_durability_parse(s, d))
		return cli_usage_error(
			c,
			"durability: must be durable, balanced or "
			"volatile, got \"%s\"",
			s);
	return 0;
}

/* Parses a verb that takes only the options in opts and no arguments. */
static int
parse_no_args(struct cli *c, const struct cli_verb *v,
	      const struct cli_opt *opts, int argc, char **argv)
{
	int npos, rc;

	rc = cli_parse(c, v, opts, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos > 0)
		return cli_usage_error(c, "unexpected argument '%s'", argv[0]);
	return -1;
}

/* Which operation a schema verb runs once connected. */
enum schema_op {
	SCHEMA_INSTALL,	   /* sql_install */
	SCHEMA_UNINSTALL,  /* sql_uninstall */
	SCHEMA_UPGRADE,	   /* sql_upgrade */
	SCHEMA_AUTOVAC,	   /* sql_autovac */
	SCHEMA_DURABILITY, /* sql_set_durability */
};

/* What the slot index build of an upgrade holds, for pgq(1) and --plan. */
#define SLOT_INDEX_LOCK                                                        \
	"holds a SHARE lock on %s while it reads the table: reads go on, "     \
	"enqueues, claims and completions wait until it ends"

/*
 * Says, before an upgrade from 1.3, that the index build blocks writes
 * (stderr: stdout is the result). Returns 0, or -1 with err.
 */
static int
upgrade_note(const struct cli *c, PGconn *conn, struct pgq_error *err)
{
	enum sql_layout l;

	if (sql_layout(conn, &c->names, &l, err) == -1)
		return -1;
	if (l == SQL_LAYOUT_1_3 || l == SQL_LAYOUT_PARTIAL)
		cli_warnx(c,
			  "note: building %s_picked_slot_idx " SLOT_INDEX_LOCK,
			  c->names.queue_bare, c->names.queue);
	return 0;
}

static int
schema_run(struct cli *c, enum schema_op op, enum sql_durability d)
{
	struct pgq_error err;
	struct pgq *q;
	PGconn *conn;
	int rc, res = -1;

	rc = cli_connect(c, &q);
	if (rc != 0)
		return rc;
	conn = pgq_conn(q);
	switch (op) {
	case SCHEMA_INSTALL:
		res = sql_install(conn, &c->names, d, &err);
		break;
	case SCHEMA_UNINSTALL:
		res = sql_uninstall(conn, &c->names, &err);
		break;
	case SCHEMA_UPGRADE:
		res = upgrade_note(c, conn, &err);
		if (res == 0)
			res = sql_upgrade(conn, &c->names, &err);
		break;
	case SCHEMA_AUTOVAC:
		res = sql_autovac(conn, &c->names, &err);
		break;
	case SCHEMA_DURABILITY:
		res = sql_set_durability(conn, &c->names, d, &err);
		break;
	}
	if (res == -1) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	switch (op) {
	case SCHEMA_INSTALL:
		printf("installed %s, %s, %s, %s durability=%s\n",
		       c->names.queue, c->names.log, c->names.statistics,
		       c->names.schedules, sql_durability_name(d));
		break;
	case SCHEMA_UNINSTALL:
		printf("uninstalled %s and its objects\n", c->names.queue);
		break;
	case SCHEMA_UPGRADE:
		printf("upgraded %s to the current layout (PgQueuer 1.4)\n",
		       c->names.queue);
		break;
	case SCHEMA_AUTOVAC:
		printf("set autovacuum settings on %s, %s\n", c->names.queue,
		       c->names.log);
		break;
	case SCHEMA_DURABILITY:
		printf("durability of %s set to %s\n", c->names.queue,
		       sql_durability_name(d));
		break;
	}
	rc = CLI_EXIT_OK;
out:
	pgq_free(q);
	return rc;
}

static int
run_install(struct cli *c, int argc, char **argv)
{
	const char *durability = NULL;
	const struct cli_opt opts[] = {
		{"durability", &durability, NULL},
		{NULL, NULL, NULL},
	};
	enum sql_durability d = SQL_DURABLE;
	int rc;

	rc = parse_no_args(c, &cli_verb_install, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (durability != NULL && (rc = parse_durability(c, durability, &d)))
		return rc;
	return schema_run(c, SCHEMA_INSTALL, d);
}

static int
run_uninstall(struct cli *c, int argc, char **argv)
{
	int rc = parse_no_args(c, &cli_verb_uninstall, no_opts, argc, argv);

	return rc >= 0 ? rc : schema_run(c, SCHEMA_UNINSTALL, SQL_DURABLE);
}

static void print_script(const struct sql_script_text *t);

/*
 * upgrade --plan: the layout found and the statements an upgrade would
 * run, each a no-op where there is nothing to do; applies nothing.
 */
static int
upgrade_plan(struct cli *c)
{
	struct sql_script_text t;
	struct pgq_error err;
	enum sql_layout l;
	struct pgq *q;
	int rc;

	rc = cli_connect(c, &q);
	if (rc != 0)
		return rc;
	if (sql_layout(pgq_conn(q), &c->names, &l, &err) == -1) {
		rc = cli_db_error(c, &err);
		goto out;
	}
	if (l == SQL_LAYOUT_NONE) {
		cli_warnx(c, "%s does not exist: run pgq install",
			  c->names.queue);
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	printf("-- pgq upgrade --plan: %s has the %s layout; these "
	       "statements bring\n-- it to PgQueuer 1.4, each in a "
	       "transaction of its own and a no-op where\n-- there is "
	       "nothing to do. Nothing was applied.\n",
	       c->names.queue, sql_layout_name(l));
	if (l != SQL_LAYOUT_1_4)
		printf("-- note: upgrade.queue_slot_idx " SLOT_INDEX_LOCK ".\n",
		       c->names.queue);
	sql_script_render(SQL_SCRIPT_UPGRADE, &c->names, SQL_DURABLE, &t);
	print_script(&t);
	sql_script_clear(&t);
	rc = CLI_EXIT_OK;
out:
	pgq_free(q);
	return rc;
}

static int
run_upgrade(struct cli *c, int argc, char **argv)
{
	bool plan = false;
	const struct cli_opt opts[] = {
		{"plan", NULL, &plan},
		{NULL, NULL, NULL},
	};
	int rc = parse_no_args(c, &cli_verb_upgrade, opts, argc, argv);

	if (rc >= 0)
		return rc;
	return plan ? upgrade_plan(c)
		    : schema_run(c, SCHEMA_UPGRADE, SQL_DURABLE);
}

static int
run_autovac(struct cli *c, int argc, char **argv)
{
	int rc = parse_no_args(c, &cli_verb_autovac, no_opts, argc, argv);

	return rc >= 0 ? rc : schema_run(c, SCHEMA_AUTOVAC, SQL_DURABLE);
}

static int
run_durability(struct cli *c, int argc, char **argv)
{
	enum sql_durability d;
	int npos, rc;

	rc = cli_parse(c, &cli_verb_durability, no_opts, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos != 1)
		return cli_usage_error(
			c, npos == 0 ? "missing LEVEL (durable, balanced or "
				       "volatile)"
				     : "too many arguments");
	if ((rc = parse_durability(c, argv[0], &d)))
		return rc;
	return schema_run(c, SCHEMA_DURABILITY, d);
}

static int
run_verify(struct cli *c, int argc, char **argv)
{
	const char *expect = NULL;
	const struct cli_opt opts[] = {
		{"expect", &expect, NULL},
		{NULL, NULL, NULL},
	};
	enum sql_layout layout = SQL_LAYOUT_NONE;
	struct pgq_error err;
	char *report = NULL;
	struct pgq *q;
	bool present;
	int rc, res;

	rc = parse_no_args(c, &cli_verb_verify, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (expect == NULL)
		return cli_usage_error(c,
				       "--expect present|absent is required");
	if (strcmp(expect, "present") == 0)
		present = true;
	else if (strcmp(expect, "absent") == 0)
		present = false;
	else
		return cli_usage_error(
			c, "--expect: must be present or absent, got \"%s\"",
			expect);
	rc = cli_connect(c, &q);
	if (rc != 0)
		return rc;
	res = sql_verify(pgq_conn(q), &c->names, present, &report, &err);
	if (res == 0 && present &&
	    sql_layout(pgq_conn(q), &c->names, &layout, &err) == -1)
		res = -1;
	if (res == -1) {
		rc = cli_db_error(c, &err);
	} else if (res == 0 && present) {
		printf("every object of %s is present: %s layout%s\n",
		       c->names.queue, sql_layout_name(layout),
		       layout == SQL_LAYOUT_1_4
			       ? ""
			       : " (pgq upgrade brings it to 1.4, which "
				 "PgQueuer 1.4 workers and pgq's limits need)");
		rc = CLI_EXIT_OK;
	} else if (res == 0) {
		printf("every object of %s is %s\n", c->names.queue, expect);
		rc = CLI_EXIT_OK;
	} else {
		if (report != NULL) {
			size_t len = strlen(report);

			fputs(report, stdout);
			if (len > 0 && report[len - 1] != '\n')
				fputc('\n', stdout);
		}
		rc = CLI_EXIT_FAIL;
	}
	free(report);
	pgq_free(q);
	return rc;
}

/* Prints one rendered script, each step ending with ";" and a newline. */
static void
print_script(const struct sql_script_text *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const char *step = t->steps[i];
		size_t len = strlen(step);

		/* the steps may or may not carry their own terminator */
		while (len > 0 &&
		       (step[len - 1] == ';' || step[len - 1] == ' ' ||
			step[len - 1] == '\n' || step[len - 1] == '\t'))
			len--;
		while (len > 0 && (*step == '\n' || *step == ' ')) {
			step++;
			len--;
		}
		if (len == 0)
			continue;
		if (t->labels != NULL && t->labels[i] != NULL &&
		    t->labels[i][0] != '\0')
			printf("-- %s\n", t->labels[i]);
		printf("%.*s;\n", (int)len, step);
	}
}

static int
run_sql(struct cli *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		enum sql_script script;
	} scripts[] = {
		{"install", SQL_SCRIPT_INSTALL},
		{"uninstall", SQL_SCRIPT_UNINSTALL},
		{"upgrade", SQL_SCRIPT_UPGRADE},
		{"autovac", SQL_SCRIPT_AUTOVAC},
		{"durability", SQL_SCRIPT_DURABILITY},
	};
	const char *durability = NULL;
	const struct cli_opt opts[] = {
		{"durability", &durability, NULL},
		{NULL, NULL, NULL},
	};
	enum sql_durability d = SQL_DURABLE;
	struct sql_script_text t;
	size_t k;
	int npos, rc, want;

	rc = cli_parse(c, &cli_verb_sql, opts, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos == 0)
		return cli_usage_error(c, "missing what to print: install, "
					  "uninstall, upgrade, autovac or "
					  "durability LEVEL");
	for (k = 0; k < PGQ_NELEM(scripts); k++)
		if (strcmp(argv[0], scripts[k].name) == 0)
			break;
	if (k == PGQ_NELEM(scripts))
		return cli_usage_error(c, "unknown script '%s'", argv[0]);
	want = scripts[k].script == SQL_SCRIPT_DURABILITY ? 2 : 1;
	if (npos < want)
		return cli_usage_error(c, "sql durability needs a LEVEL");
	if (npos > want)
		return cli_usage_error(c, "unexpected argument '%s'",
				       argv[want]);
	if (durability != NULL && scripts[k].script != SQL_SCRIPT_INSTALL)
		return cli_usage_error(c, "--durability applies to sql install "
					  "only");
	if (durability != NULL && (rc = parse_durability(c, durability, &d)))
		return rc;
	if (want == 2 && (rc = parse_durability(c, argv[1], &d)))
		return rc;
	/* names only: the SQL is printed, no connection is made */
	rc = cli_resolve(c);
	if (rc != 0)
		return rc;
	sql_script_render(scripts[k].script, &c->names, d, &t);
	print_script(&t);
	sql_script_clear(&t);
	return CLI_EXIT_OK;
}

const struct cli_verb cli_verb_install = {
	.name = "install",
	.synopsis = "[--durability LEVEL]",
	.summary = "create the queue's tables, enum, function and trigger",
	.help = "Options:\n"
		"  --durability LEVEL  durable (default: every table logged),\n"
		"                      balanced (log and statistics unlogged) "
		"or\n"
		"                      volatile (every table unlogged)\n",
	.run = run_install,
};

const struct cli_verb cli_verb_uninstall = {
	.name = "uninstall",
	.synopsis = "",
	.summary = "drop everything install created (jobs included)",
	.help = "",
	.run = run_uninstall,
};

const struct cli_verb cli_verb_upgrade = {
	.name = "upgrade",
	.synopsis = "[--plan]",
	.summary = "bring an older layout up to PgQueuer 1.4's (idempotent)",
	.help = "Options:\n"
		"  --plan  print the layout found and the statements, apply "
		"nothing\n"
		"\n"
		"From PgQueuer 1.3, the build of the slot index holds a SHARE "
		"lock on the\n"
		"queue table: enqueues, claims and completions wait until it "
		"ends.\n",
	.run = run_upgrade,
};

const struct cli_verb cli_verb_verify = {
	.name = "verify",
	.synopsis = "--expect present|absent",
	.summary = "check that every queue object exists, or that none does",
	.help = "Options:\n"
		"  --expect present|absent  what to check for (required)\n"
		"\n"
		"Exits 0 when the database is as expected, 1 with one line per "
		"object\n"
		"that is not. A present queue may have PgQueuer 1.3's layout "
		"or "
		"1.4's;\n"
		"the output says which.\n",
	.run = run_verify,
};

const struct cli_verb cli_verb_sql = {
	.name = "sql",
	.synopsis = "install|uninstall|upgrade|autovac|durability LEVEL "
		    "[--durability LEVEL]",
	.summary = "print the SQL of a schema operation without connecting",
	.help = "Options:\n"
		"  --durability LEVEL  for install: durable (default), "
		"balanced "
		"or volatile\n"
		"\n"
		"Each statement ends with ';' and a newline, after a '--' "
		"comment that\n"
		"names the step. Run it as one transaction with psql -1 -f "
		"FILE.\n",
	.run = run_sql,
};

const struct cli_verb cli_verb_durability = {
	.name = "durability",
	.synopsis = "durable|balanced|volatile",
	.summary = "switch the tables between logged and unlogged",
	.help = "",
	.run = run_durability,
};

const struct cli_verb cli_verb_autovac = {
	.name = "autovac",
	.synopsis = "",
	.summary = "apply autovacuum settings suited to the hot queue tables",
	.help = "",
	.run = run_autovac,
};
