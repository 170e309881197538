/*
 * PgQueuer compatibility. PgQueuer's own statements (tests/compat/, its
 * 1.3 and 1.4 forms, rendered here with PgQueuer's naming rules, not pgq's)
 * run against queues that pgq installed, and pgq's statements against
 * queues built by PgQueuer's install, with and without a prefix and a
 * schema; the catalogs of both compared object for object; and one
 * concurrency limit held across pgq's claimers and PgQueuer 1.4's.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "driver/driver.h"
#include "pgq.h"
#include "sql/sql.h"
#include "tests/harness/harness.h"

#define OWNER_A "00000000-0000-4000-8000-00000000000a"
#define OWNER_B "00000000-0000-4000-8000-00000000000b"

TestSuite(compat, .timeout = 180);

/* ---- fixtures: PgQueuer's statements as test data ---- */

struct section {
	char *name;
	char *text;
};

struct fixture {
	struct section *s;
	size_t n;
};

/*
 * Reads tests/compat/file: the text after each "-- name: x" line up to the
 * next one is section x, kept verbatim (the lines before the first are the
 * file's header).
 */
static void
fixture_load(struct fixture *f, const char *file)
{
	const char *top = getenv("PGQ_TOP_SRCDIR");
	char path[1024], line[4096];
	FILE *fp;

	memset(f, 0, sizeof(*f));
	snprintf(path, sizeof(path), "%s/tests/compat/%s",
		 top != NULL ? top : "..", file);
	fp = fopen(path, "r");
	cr_assert_not_null(fp, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), fp) != NULL) {
		struct section *cur;
		size_t old, add = strlen(line);

		if (strncmp(line, "-- name: ", 9) == 0) {
			line[strcspn(line, "\n")] = '\0';
			f->s = xrealloc(f->s, f->n + 1, sizeof(*f->s));
			f->s[f->n].name = xstrdup(line + 9);
			f->s[f->n].text = xstrdup("");
			f->n++;
			continue;
		}
		if (f->n == 0)
			continue;
		cur = &f->s[f->n - 1];
		old = strlen(cur->text);
		cur->text = xrealloc(cur->text, old + add + 1, 1);
		memcpy(cur->text + old, line, add + 1);
	}
	fclose(fp);
	cr_assert_gt(f->n, 0, "%s has no section", path);
}

static void
fixture_free(struct fixture *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->s[i].name);
		free(f->s[i].text);
	}
	free(f->s);
	memset(f, 0, sizeof(*f));
}

static const char *
fixture_get(const struct fixture *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->s[i].name, name) == 0)
			return f->s[i].text;
	cr_assert_fail("no section %s", name);
	return NULL;
}

/* ---- names: PgQueuer's rules, kept apart from sql/names.c ---- */

/* A queue's prefix and schema (NULL = none), for both tools. */
struct variant {
	const char *prefix;
	const char *schema;
};

static const struct variant variants[] = {
	{NULL, NULL},
	{"App_", "jobs"},
};

/*
 * DBSettings: every name is the prefix, then PgQueuer's base name; the
 * tables, the enum and the function are qualified with the schema, the
 * index names and the trigger never are; the channel is a literal.
 */
static const struct {
	const char *field;
	const char *base;
} pq_fields[] = {
	{"queue_table", "pgqueuer"},
	{"queue_table_log", "pgqueuer_log"},
	{"statistics_table", "pgqueuer_statistics"},
	{"schedules_table", "pgqueuer_schedules"},
	{"queue_status_type", "pgqueuer_status"},
	{"function", "fn_pgqueuer_changed"},
	{"trigger", "tg_pgqueuer_changed"},
	{"legacy_statistics_status_type", "pgqueuer_statistics_status"},
};

/* The value of placeholder key (without braces) for v; NULL if unknown. */
static char *
pq_value(const char *key, const struct variant *v)
{
	const char *prefix = v->prefix != NULL ? v->prefix : "";
	const char *field = NULL;
	bool qualified = false;

	if (strcmp(key, "self.settings.channel") == 0)
		return xasprintf("%sch_pgqueuer", prefix);
	if (strncmp(key, "durability_policy.", 18) == 0)
		return xstrdup(""); /* durable: every table logged */
	if (strncmp(key, "qn.", 3) == 0) {
		field = key + 3;
		qualified = true;
	} else if (strncmp(key, "self.qualified.", 15) == 0) {
		field = key + 15;
		qualified = true;
	} else if (strncmp(key, "s.qualify(s.", 12) == 0) {
		field = "legacy_statistics_status_type";
		qualified = true;
	} else if (strncmp(key, "s.", 2) == 0) {
		field = key + 2;
	}
	for (size_t i = 0; field != NULL && i < PGQ_NELEM(pq_fields); i++) {
		if (strcmp(field, pq_fields[i].field) != 0)
			continue;
		if (qualified && v->schema != NULL)
			return xasprintf("%s.%s%s", v->schema, prefix,
					 pq_fields[i].base);
		return xasprintf("%s%s", prefix, pq_fields[i].base);
	}
	return NULL;
}

/* text with every known {placeholder} replaced for v; fresh string. */
static char *
pq_render(const char *text, const struct variant *v)
{
	size_t cap = strlen(text) * 2 + 256, len = 0;
	char *out = xmalloc(cap);

	while (*text != '\0') {
		const char *end = *text == '{' ? strchr(text, '}') : NULL;
		char key[128], *val = NULL;
		size_t add;

		if (end != NULL && (size_t)(end - text) < sizeof(key)) {
			memcpy(key, text + 1, (size_t)(end - text) - 1);
			key[end - text - 1] = '\0';
			val = pq_value(key, v);
		}
		add = val != NULL ? strlen(val) : 1;
		if (len + add + 1 > cap) {
			cap = (len + add + 1) * 2;
			out = xrealloc(out, cap, 1);
		}
		if (val != NULL) {
			memcpy(out + len, val, add);
			text = end + 1;
			free(val);
		} else {
			out[len] = *text++;
		}
		len += add;
	}
	out[len] = '\0';
	return out;
}

/* pgq's names for v. */
static void
pgq_names(struct sql_names *n, const struct variant *v)
{
	struct pgq_error err;

	cr_assert_eq(sql_names_init(n, v->prefix, v->schema, NULL, &err), 0,
		     "%s", err.message);
}

/* ---- running statements ---- */

/* PgQueuer's DDL says what it skips ("... does not exist, skipping"). */
static void
quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* A fresh database with v's schema (and nothing installed); conninfo. */
static const char *
fresh_db(const struct variant *v, PGconn **c)
{
	const char *dsn = harness_db_new(false);

	*c = harness_connect(dsn);
	PQsetNoticeProcessor(*c, quiet, NULL);
	if (v->schema != NULL)
		PQclear(harness_query(*c, "CREATE SCHEMA %s", v->schema));
	return dsn;
}

/* What a failed statement said. */
struct failure {
	char sqlstate[6];
	char constraint[64];
	char message[512];
};

/*
 * Runs sql with text parameters; the result, or NULL with *why filled (why
 * may be NULL). Never fails the test: threads use it too.
 */
static PGresult *
try_sql(PGconn *c, const char *sql, int np, const char *const *v,
	struct failure *why)
{
	/* Without parameters, the simple protocol: PgQueuer's DDL goes as
	 * one multi-statement string. */
	PGresult *r =
		np == 0 ? PQexec(c, sql)
			: PQexecParams(c, sql, np, NULL, v, NULL, NULL, 0);
	const char *f;

	if (PQresultStatus(r) == PGRES_TUPLES_OK ||
	    PQresultStatus(r) == PGRES_COMMAND_OK)
		return r;
	if (why != NULL) {
		memset(why, 0, sizeof(*why));
		f = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		snprintf(why->sqlstate, sizeof(why->sqlstate), "%s",
			 f != NULL ? f : "");
		f = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
		snprintf(why->constraint, sizeof(why->constraint), "%s",
			 f != NULL ? f : "");
		snprintf(why->message, sizeof(why->message), "%s",
			 PQresultErrorMessage(r));
	}
	PQclear(r);
	return NULL;
}

/* PgQueuer's statement name of fixture f, rendered for v; must succeed. */
static PGresult *
pq_run(PGconn *c, const struct fixture *f, const char *name,
       const struct variant *v, int np, const char *const *vals)
{
	char *sql = pq_render(fixture_get(f, name), v);
	struct failure why;
	PGresult *r = try_sql(c, sql, np, vals, &why);

	free(sql);
	cr_assert_not_null(r, "PgQueuer's %s: %s", name, why.message);
	return r;
}

/* Every section of an install fixture, rendered for v, as one transaction
 * (PgQueuer sends its install as one multi-statement string). */
static void
pq_install(PGconn *c, const char *file, const struct variant *v)
{
	struct fixture f;

	fixture_load(&f, file);
	PQclear(harness_query(c, "BEGIN"));
	for (size_t i = 0; i < f.n; i++)
		PQclear(pq_run(c, &f, f.s[i].name, v, 0, NULL));
	PQclear(harness_query(c, "COMMIT"));
	fixture_free(&f);
}

/* pgq's statement s for names n; must succeed. */
static PGresult *
pgq_run(PGconn *c, const struct sql_names *n, enum sql_stmt s, int np,
	const char *const *vals)
{
	char *sql = sql_stmt_render(s, n);
	struct failure why;
	PGresult *r = try_sql(c, sql, np, vals, &why);

	free(sql);
	cr_assert_not_null(r, "pgq's %s: %s", sql_stmt_name(s), why.message);
	return r;
}

static long long
num(PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* ---- catalogs ---- */

/*
 * Every object of schema, one sorted line each: columns with type,
 * nullability, default and identity; index definitions; enum labels in
 * order; triggers by their full definition; functions with language and
 * result type; relations with kind and persistence. pgq's own additions
 * (the limits table and the payload function) are left out, and so is the
 * text of the notify function, which differs between the tools while its
 * notifications are the same (compared below).
 */
static char *
catalog(PGconn *c, const char *schema)
{
	PGresult *r = harness_query(
		c,
		"SELECT x FROM ("
		" SELECT format('column %%s.%%s %%s null=%%s default=%%s "
		"identity=%%s', table_name, column_name, CASE WHEN data_type = "
		"'USER-DEFINED' THEN udt_name ELSE data_type END, is_nullable, "
		"coalesce(column_default, '-'), is_identity)"
		" FROM information_schema.columns WHERE table_schema = '%s'"
		" UNION ALL SELECT 'index ' || indexdef FROM pg_indexes"
		" WHERE schemaname = '%s'"
		" UNION ALL SELECT format('enum %%s %%s', t.typname,"
		" (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)"
		" FROM pg_enum e WHERE e.enumtypid = t.oid))"
		" FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
		" WHERE n.nspname = '%s' AND t.typtype = 'e'"
		" UNION ALL SELECT 'trigger ' || pg_get_triggerdef(g.oid)"
		" FROM pg_trigger g JOIN pg_class r ON r.oid = g.tgrelid"
		" JOIN pg_namespace n ON n.oid = r.relnamespace"
		" WHERE NOT g.tgisinternal AND n.nspname = '%s'"
		" UNION ALL SELECT format('function %%s %%s %%s',"
		" p.oid::regprocedure, l.lanname, p.prorettype::regtype)"
		" FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
		" JOIN pg_namespace n ON n.oid = p.pronamespace"
		" WHERE n.nspname = '%s'"
		" UNION ALL SELECT format('relation %%s %%s %%s', r.relname,"
		" r.relkind, r.relpersistence) FROM pg_class r"
		" JOIN pg_namespace n ON n.oid = r.relnamespace"
		" WHERE n.nspname = '%s'"
		") u(x) WHERE x !~ '_pgq_(limits|payload_check)'"
		" ORDER BY x COLLATE \"C\"",
		schema, schema, schema, schema, schema, schema);
	size_t len = 1, off = 0;
	char *out;

	for (int i = 0; i < PQntuples(r); i++)
		len += strlen(PQgetvalue(r, i, 0)) + 1;
	out = xcalloc(1, len);
	for (int i = 0; i < PQntuples(r); i++) {
		size_t l = strlen(PQgetvalue(r, i, 0));

		memcpy(out + off, PQgetvalue(r, i, 0), l);
		off += l;
		out[off++] = '\n';
	}
	PQclear(r);
	return out;
}

/* Nothing of either tool is left in schema. */
static void
expect_no_objects(PGconn *c, const char *schema)
{
	char *cat = catalog(c, schema);

	cr_expect_str_eq(cat, "", "in %s", schema);
	free(cat);
}

static const char *
schema_of(const struct variant *v)
{
	return v->schema != NULL ? v->schema : "public";
}

/* ---- the catalog ---- */

Test(compat, pgq_install_is_pgqueuer_14s_install_object_for_object)
{
	for (size_t i = 0; i < PGQ_NELEM(variants); i++) {
		const struct variant *v = &variants[i];
		struct sql_names n;
		struct pgq_error err;
		char *theirs, *ours, *report = NULL;
		PGconn *c;

		(void)fresh_db(v, &c);
		pq_install(c, "pgqueuer-1.4-install.sql", v);
		theirs = catalog(c, schema_of(v));
		pgq_names(&n, v);
		/* pgq sees PgQueuer's queue as complete, and as 1.4. */
		cr_expect_eq(sql_verify(c, &n, true, &report, &err), 0,
			     "prefix %s: %s", v->prefix, report);
		free(report);
		cr_expect_eq(sql_verify(c, &n, false, &report, &err), 1);
		free(report);
		PQfinish(c);

		(void)fresh_db(v, &c);
		cr_assert_eq(sql_install(c, &n, SQL_DURABLE, &err), 0, "%s",
			     err.message);
		ours = catalog(c, schema_of(v));
		cr_expect_str_eq(ours, theirs, "prefix %s schema %s", v->prefix,
				 v->schema);
		cr_expect_not_null(strstr(ours, "picked_slot_idx"));
		if (v->schema != NULL)
			expect_no_objects(c, "public");
		free(theirs);
		free(ours);
		PQfinish(c);
	}
}

/* A PgQueuer 1.3 queue for v, and what pgq's upgrade makes of it. */
static char *
upgraded_by_pgq(const struct variant *v)
{
	struct sql_names n;
	struct pgq_error err;
	enum sql_layout l;
	char *report = NULL, *once, *twice;
	PGconn *c;

	(void)fresh_db(v, &c);
	pq_install(c, "pgqueuer-1.3-install.sql", v);
	pgq_names(&n, v);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 0, "%s", report);
	free(report);
	cr_assert_eq(sql_layout(c, &n, &l, &err), 0);
	cr_expect_eq(l, SQL_LAYOUT_1_3);
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	cr_assert_eq(sql_layout(c, &n, &l, &err), 0);
	cr_expect_eq(l, SQL_LAYOUT_1_4);
	once = catalog(c, schema_of(v));
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	twice = catalog(c, schema_of(v));
	cr_expect_str_eq(twice, once, "a second upgrade changed the catalog");
	free(twice);
	PQfinish(c);
	return once;
}

Test(compat, pgq_upgrade_takes_pgqueuer_13_where_pgqueuers_upgrade_does)
{
	for (size_t i = 0; i < PGQ_NELEM(variants); i++) {
		const struct variant *v = &variants[i];
		struct fixture up;
		char *ours = upgraded_by_pgq(v), *theirs, *fresh;
		PGconn *c;

		fixture_load(&up, "pgqueuer-1.4-upgrade.sql");
		(void)fresh_db(v, &c);
		pq_install(c, "pgqueuer-1.3-install.sql", v);
		PQclear(pq_run(c, &up, "slot_column", v, 0, NULL));
		PQclear(pq_run(c, &up, "slot_index", v, 0, NULL));
		theirs = catalog(c, schema_of(v));
		PQfinish(c);
		(void)fresh_db(v, &c);
		pq_install(c, "pgqueuer-1.4-install.sql", v);
		fresh = catalog(c, schema_of(v));
		PQfinish(c);
		cr_expect_str_eq(ours, theirs, "prefix %s", v->prefix);
		cr_expect_str_eq(ours, fresh, "prefix %s", v->prefix);
		fixture_free(&up);
		free(ours);
		free(theirs);
		free(fresh);
	}
}

Test(compat, either_uninstall_leaves_nothing_of_the_other)
{
	for (size_t i = 0; i < PGQ_NELEM(variants); i++) {
		const struct variant *v = &variants[i];
		struct sql_names n;
		struct pgq_error err;
		struct fixture up;
		char *report = NULL;
		PGconn *c;

		/* PgQueuer's install, pgq's uninstall. */
		(void)fresh_db(v, &c);
		pq_install(c, "pgqueuer-1.4-install.sql", v);
		pgq_names(&n, v);
		cr_assert_eq(sql_uninstall(c, &n, &err), 0, "%s", err.message);
		expect_no_objects(c, schema_of(v));
		cr_expect_eq(sql_verify(c, &n, false, &report, &err), 0, "%s",
			     report);
		free(report);

		/* pgq's install, PgQueuer's uninstall: only pgq's own two
		 * objects stay, which PgQueuer does not know. */
		cr_assert_eq(sql_install(c, &n, SQL_DURABLE, &err), 0);
		fixture_load(&up, "pgqueuer-1.4-upgrade.sql");
		PQclear(pq_run(c, &up, "uninstall", v, 0, NULL));
		expect_no_objects(c, schema_of(v));
		cr_expect_eq(
			harness_scalar(c,
				       "SELECT count(*) FROM pg_proc p "
				       "JOIN pg_namespace s ON s.oid = "
				       "p.pronamespace WHERE s.nspname = "
				       "'%s' AND p.proname LIKE '%%changed'",
				       schema_of(v)),
			0, "a notify function stayed");
		cr_assert_eq(sql_uninstall(c, &n, &err), 0, "%s", err.message);
		cr_expect_eq(harness_scalar(c,
					    "SELECT count(*) FROM pg_class r "
					    "JOIN pg_namespace s ON s.oid = "
					    "r.relnamespace WHERE s.nspname = "
					    "'%s'",
					    schema_of(v)),
			     0);
		cr_expect_eq(sql_verify(c, &n, false, &report, &err), 0, "%s",
			     report);
		free(report);
		fixture_free(&up);
		PQfinish(c);
	}
}

/* ---- statements across the tools ---- */

/* The next notification on l within 10 s; its payload (caller frees). */
static char *
next_notify(PGconn *l)
{
	uint64_t deadline = clock_mono_ms() + 10000;

	for (;;) {
		PGnotify *nt;
		struct pollfd pfd;
		uint64_t now;

		cr_assert_eq(PQconsumeInput(l), 1, "%s", PQerrorMessage(l));
		if ((nt = PQnotifies(l)) != NULL) {
			char *p = xstrdup(nt->extra);

			PQfreemem(nt);
			return p;
		}
		now = clock_mono_ms();
		cr_assert_lt(now, deadline, "no notification");
		pfd.fd = PQsocket(l);
		pfd.events = POLLIN;
		pfd.revents = 0;
		(void)poll(&pfd, 1, (int)(deadline - now));
	}
}

/*
 * A table_changed_event as the other tool's listener reads it: every
 * member PgQueuer's TableChangedEvent has, with these values.
 */
static void
expect_table_event(const char *payload, const char *channel,
		   const char *operation, const char *table)
{
	json_error_t jerr;
	json_t *o = json_loads(payload, 0, &jerr);
	struct driver_event ev;

	cr_assert_not_null(o, "not JSON: %s", payload);
	cr_expect_str_eq(json_string_value(json_object_get(o, "channel")),
			 channel);
	cr_expect_str_eq(json_string_value(json_object_get(o, "operation")),
			 operation);
	cr_expect_str_eq(json_string_value(json_object_get(o, "table")), table);
	cr_expect_str_eq(json_string_value(json_object_get(o, "type")),
			 "table_changed_event");
	cr_expect(json_is_string(json_object_get(o, "sent_at")));
	json_decref(o);
	memset(&ev, 0, sizeof(ev));
	cr_assert_eq(driver_event_parse(payload, &ev, NULL, 0), 0);
	cr_expect_eq(ev.type, DRIVER_EVENT_TABLE_CHANGED);
	driver_event_clear(&ev);
}

/*
 * PgQueuer's enqueue of n jobs of eps (an array literal) with priorities
 * prio and headers (each JSON text: "null" when none, as PgQueuer sends).
 */
static void
pq_enqueue(PGconn *c, const struct fixture *f, const struct variant *v,
	   const char *prio, const char *eps, const char *headers, int n)
{
	char nulls[128] = "{", after[256] = "{";
	const char *vals[6] = {prio, eps, nulls, after, nulls, headers};
	PGresult *r;

	for (int i = 0; i < n; i++) {
		strcat(nulls, i > 0 ? ",NULL" : "NULL");
		strcat(after, i > 0 ? ",\"0 seconds\"" : "\"0 seconds\"");
	}
	strcat(nulls, "}");
	strcat(after, "}");
	r = pq_run(c, f, "enqueue", v, 6, vals);
	cr_expect_eq(PQntuples(r), n);
	PQclear(r);
}

/* The id of the job of the queue with priority prio. */
static long long
job_of(PGconn *c, const struct sql_names *n, int prio)
{
	return harness_scalar(c, "SELECT id FROM %s WHERE priority = %d",
			      n->queue, prio);
}

static const char *
job_state(PGconn *c, const struct sql_names *n, long long id)
{
	return harness_text(c,
			    "SELECT coalesce((SELECT concat_ws(' ', status, "
			    "attempts, coalesce(queue_manager_id::text, '-')) "
			    "FROM %s WHERE id = %lld), 'gone')",
			    n->queue, id);
}

/*
 * Picked: 5 and 3 by B (PgQueuer), 1 by A (pgq). PgQueuer's heartbeat,
 * completion, hold, retry and cancel next to pgq's requeue, claim, hold,
 * complete and cancel: each sees what the other wrote.
 */
static void
pq_then_pgq_writes(PGconn *c, const struct fixture *f,
		   const struct sql_names *n, const struct variant *v)
{
	long long j5 = job_of(c, n, 5), j3 = job_of(c, n, 3),
		  j1 = job_of(c, n, 1);
	char both[64], one[32], three[32];
	const char *own[4] = {OWNER_A, one, "{successful}", "{NULL}"};
	const char *cv[4] = {"{ep}", "10", "30 seconds", OWNER_A};
	const char *nul[1] = {NULL};
	PGresult *r;

	snprintf(both, sizeof(both), "{%lld,%lld}", j5, j3);
	snprintf(one, sizeof(one), "{%lld}", j1);
	snprintf(three, sizeof(three), "{%lld}", j3);
	PQclear(harness_query(c,
			      "UPDATE %s SET heartbeat = now() - "
			      "interval '1 minute'",
			      n->queue));
	{
		const char *hv[1] = {both};

		r = pq_run(c, f, "heartbeat", v, 1, hv);
		cr_expect_str_eq(PQcmdTuples(r), "2");
		PQclear(r);
	}
	{
		const char *lv[3] = {both, "{successful,failed}",
				     "{NULL,NULL}"};

		PQclear(pq_run(c, f, "log_job", v, 3, lv));
	}
	cr_expect_str_eq(job_state(c, n, j5), "gone");
	cr_expect_str_eq(job_state(c, n, j3), "failed 0 -");
	cr_expect_str_eq(harness_text(c,
				      "SELECT string_agg(status::text, ',' "
				      "ORDER BY id) FROM %s WHERE job_id = "
				      "%lld",
				      n->log, j5),
			 "queued,picked,successful");
	/* pgq requeues what PgQueuer held. */
	r = pgq_run(c, n, SQL_REQUEUE, 1, nul);
	cr_expect_eq(PQntuples(r), 1);
	PQclear(r);
	cr_expect_str_eq(job_state(c, n, j3), "queued 0 -");
	/* PgQueuer retries a job pgq holds: its old owner's completion is
	 * refused, its next claim sees the attempt. */
	{
		char id[32];
		const char *rv[3] = {id, "0 seconds", NULL};

		snprintf(id, sizeof(id), "%lld", j1);
		PQclear(pq_run(c, f, "retry", v, 3, rv));
	}
	r = pgq_run(c, n, SQL_COMPLETE, 4, own);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	r = pgq_run(c, n, SQL_CLAIM, 4, cv);
	cr_expect_eq(PQntuples(r), 2);
	PQclear(r);
	cr_expect_str_eq(job_state(c, n, j1), "picked 1 " OWNER_A);
	/* pgq holds it, PgQueuer requeues it, PgQueuer cancels it. */
	{
		const char *hv[3] = {OWNER_A, one, "{NULL}"};
		const char *qv[1] = {one};
		const char *kv[3] = {one, "{canceled}", "{NULL}"};

		PQclear(pgq_run(c, n, SQL_HOLD, 3, hv));
		cr_expect_str_eq(job_state(c, n, j1), "failed 1 -");
		PQclear(pq_run(c, f, "requeue", v, 1, qv));
		cr_expect_str_eq(job_state(c, n, j1), "queued 0 -");
		PQclear(pq_run(c, f, "log_job", v, 3, kv));
		cr_expect_str_eq(job_state(c, n, j1), "gone");
	}
	/* pgq's cancellation of a running job: PgQueuer's shape. */
	{
		const char *kv[1] = {three};

		r = pgq_run(c, n, SQL_CANCEL, 1, kv);
		cr_expect_eq(PQntuples(r), 0, "a picked job is its owner's");
		PQclear(r);
		own[1] = three;
		r = pgq_run(c, n, SQL_COMPLETE, 4, own);
		cr_expect_eq(PQntuples(r), 1);
		PQclear(r);
	}
	r = pq_run(c, f, "queue_size", v, 0, NULL);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
}

/* PgQueuer's scheduler and pgq's take turns on one schedule row. */
static void
pq_pgq_schedules(PGconn *c, const struct fixture *f, const struct sql_names *n,
		 const struct variant *v)
{
	const char *iv[3] = {"{\"* * * * *\"}", "{tick}", "{\"0 seconds\"}"};
	const char *cv[2] = {"{\"* * * * *\"}", "{tick}"};
	char id[32], ids[40], token[64], next[32];
	const char *fv[5] = {id, token, next, NULL, "tick-schedule"};
	PGresult *r;

	PQclear(pq_run(c, f, "schedule_insert", v, 3, iv));
	r = pgq_run(c, n, SQL_SCHEDULE_LIST, 0, NULL);
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_str_eq(PQgetvalue(r, 0, 3), "queued");
	snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
	snprintf(ids, sizeof(ids), "{%s}", id);
	PQclear(r);
	/* PgQueuer claims it: pgq keeps off while its heartbeat is fresh. */
	r = pq_run(c, f, "schedule_fetch", v, 3, iv);
	cr_expect_eq(PQntuples(r), 1);
	PQclear(r);
	r = pgq_run(c, n, SQL_SCHEDULE_CLAIM, 2, cv);
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_str_eq(PQgetvalue(r, 0, 3), "f");
	PQclear(r);
	/* PgQueuer is done; pgq claims the due row and fires it. */
	{
		const char *qv[1] = {ids};

		PQclear(pq_run(c, f, "schedule_queued", v, 1, qv));
	}
	r = pgq_run(c, n, SQL_SCHEDULE_CLAIM, 2, cv);
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_str_eq(PQgetvalue(r, 0, 3), "t");
	snprintf(token, sizeof(token), "%s", PQgetvalue(r, 0, 7));
	snprintf(next, sizeof(next), "%lld",
		 (long long)strtod(PQgetvalue(r, 0, 9), NULL) + 60);
	PQclear(r);
	r = pgq_run(c, n, SQL_SCHEDULE_FIRE, 5, fv);
	cr_expect_eq(PQntuples(r), 1, "fired");
	PQclear(r);
	cr_expect_str_eq(harness_text(c, "SELECT status FROM %s", n->schedules),
			 "queued");
	{
		const char *dv[2] = {ids, "{}"};

		PQclear(pq_run(c, f, "schedule_delete", v, 2, dv));
	}
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM %s", n->schedules),
		     0);
}

/*
 * PgQueuer's fold and pgq's statistics, pgq's fold and PgQueuer's reader;
 * a schedule handed back and forth.
 */
static void
pq_statistics_and_schedules(PGconn *c, const struct fixture *f,
			    const struct sql_names *n, const struct variant *v)
{
	const char *win[1] = {"1 hour"};
	const char *ev[7] = {"{ep}",   "{NULL}", "{0}",	 "{NULL}",
			     "{NULL}", "{NULL}", "false"};
	const char *lsv[2] = {"1 hour", "100"};
	long long done = harness_scalar(c,
					"SELECT count(*) FROM %s WHERE "
					"status = 'successful'",
					n->log);
	long long queued;
	PGresult *r;

	PQclear(pq_run(c, f, "aggregate", v, 0, NULL));
	cr_expect_eq(harness_scalar(c,
				    "SELECT count(*) FROM %s WHERE NOT "
				    "aggregated",
				    n->log),
		     0);
	r = pgq_run(c, n, SQL_STATS, 1, win);
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_str_eq(PQgetvalue(r, 0, 0), "ep");
	cr_expect_eq(num(r, 0, 3), done, "successful");
	PQclear(r);
	PQclear(pgq_run(c, n, SQL_ENQUEUE, 7, ev));
	queued = harness_scalar(c,
				"SELECT count(*) FROM %s WHERE status = "
				"'queued'",
				n->log);
	PQclear(pgq_run(c, n, SQL_AGGREGATE, 0, NULL));
	r = pq_run(c, f, "log_statistics", v, 2, lsv);
	cr_expect_eq(harness_scalar(c,
				    "SELECT sum(count) FROM %s WHERE status = "
				    "'queued'",
				    n->statistics),
		     queued);
	cr_expect_gt(PQntuples(r), 0);
	PQclear(r);
	pq_pgq_schedules(c, f, n, v);
}

Test(compat, pgqueuer_14_statements_run_on_a_queue_pgq_installed)
{
	for (size_t i = 0; i < PGQ_NELEM(variants); i++) {
		const struct variant *v = &variants[i];
		struct sql_names n;
		struct pgq_error err;
		struct fixture f;
		PGconn *c, *l;
		PGresult *r;
		const char *dsn = fresh_db(v, &c);
		char *p;

		pgq_names(&n, v);
		cr_assert_eq(sql_install(c, &n, SQL_DURABLE, &err), 0);
		fixture_load(&f, "pgqueuer-1.4-queries.sql");
		l = harness_connect(dsn);
		PQclear(harness_query(l, "LISTEN \"%s\"", n.channel));

		/* PgQueuer enqueues; pgq's trigger tells its listeners. */
		pq_enqueue(c, &f, v, "{5,1}", "{ep,ep}",
			   "{\"null\",\"{\\\"k\\\": \\\"v\\\"}\"}", 2);
		p = next_notify(l);
		expect_table_event(p, n.channel, "insert", n.queue_bare);
		free(p);
		{
			const char *ev[7] = {"{ep}",   "{NULL}", "{3}",
					     "{NULL}", "{NULL}", "{NULL}",
					     "false"};

			PQclear(pgq_run(c, &n, SQL_ENQUEUE, 7, ev));
		}
		cr_expect_eq(harness_scalar(c,
					    "SELECT count(*) FROM %s WHERE "
					    "headers = 'null'::jsonb",
					    n.queue),
			     2, "both tools write absent headers as JSON null");

		/* PgQueuer's dequeue takes the two best: its own and pgq's. */
		{
			const char *dv[4] = {"2", "{ep}", OWNER_B,
					     "30 seconds"};

			r = pq_run(c, &f, "dequeue", v, 4, dv);
			cr_assert_eq(PQntuples(r), 2);
			cr_expect_str_eq(
				PQgetvalue(r, 1, PQfnumber(r, "headers")),
				"null");
			cr_expect(PQgetisnull(r, 0, PQfnumber(r, "slot")));
			PQclear(r);
		}
		/* pgq's claim takes the third, and reads its headers. */
		{
			const char *cv[4] = {"{ep}", "10", "30 seconds",
					     OWNER_A};

			r = pgq_run(c, &n, SQL_CLAIM, 4, cv);
			cr_assert_eq(PQntuples(r), 1);
			cr_expect_str_eq(PQgetvalue(r, 0, 5), "{\"k\": \"v\"}");
			PQclear(r);
		}
		pq_then_pgq_writes(c, &f, &n, v);
		pq_statistics_and_schedules(c, &f, &n, v);
		fixture_free(&f);
		PQfinish(l);
		PQfinish(c);
	}
}

Test(compat, cancellation_events_read_the_same_in_both_tools)
{
	struct sql_names n;
	struct fixture f;
	struct driver_event ev;
	const char *dsn = harness_db_new(true);
	PGconn *c = harness_connect(dsn), *l = harness_connect(dsn);
	const char *kv[1] = {"{3,5}"};
	json_error_t jerr;
	json_t *o, *ids;
	char *p;

	/* PgQueuer's payload, read by pgq. */
	fixture_load(&f, "pgqueuer-1.4-queries.sql");
	memset(&ev, 0, sizeof(ev));
	cr_assert_eq(driver_event_parse(fixture_get(&f, "cancellation_event"),
					&ev, NULL, 0),
		     0);
	cr_expect_eq(ev.type, DRIVER_EVENT_CANCELLATION);
	cr_assert_eq(ev.nids, 2);
	cr_expect_eq(ev.ids[0], 3);
	cr_expect_eq(ev.ids[1], 5);
	driver_event_clear(&ev);
	fixture_free(&f);

	/* pgq's, with every member PgQueuer's CancellationEvent has. */
	pgq_names(&n, &variants[0]);
	PQclear(harness_query(l, "LISTEN ch_pgqueuer"));
	PQclear(pgq_run(c, &n, SQL_CANCEL, 1, kv));
	p = next_notify(l);
	o = json_loads(p, 0, &jerr);
	cr_assert_not_null(o, "%s", p);
	cr_expect_str_eq(json_string_value(json_object_get(o, "channel")),
			 "ch_pgqueuer");
	cr_expect_str_eq(json_string_value(json_object_get(o, "type")),
			 "cancellation_event");
	cr_expect(json_is_string(json_object_get(o, "sent_at")));
	cr_expect(json_is_string(json_object_get(o, "received_at")));
	ids = json_object_get(o, "ids");
	cr_assert(json_is_array(ids));
	cr_expect_eq(json_array_size(ids), 2);
	cr_expect_eq(json_integer_value(json_array_get(ids, 1)), 5);
	json_decref(o);
	free(p);
	PQfinish(l);
	PQfinish(c);
}

/* Statements pgq runs only where its limits table is (pgq upgrade). */
static bool
needs_limits_table(enum sql_stmt s)
{
	return s == SQL_LIMIT_LOCK || s == SQL_CLAIM_LIMITED ||
	       s == SQL_ENQUEUE_CHECKED || s == SQL_PAYLOAD_LIMITS;
}

/* Prepares every statement of pgq; those in need of the limits table
 * prepare only when with_limits. */
static void
prepare_all(PGconn *c, const struct sql_names *n, bool with_limits)
{
	for (int s = 0; s < SQL_STMT_COUNT; s++) {
		char *sql = sql_stmt_render((enum sql_stmt)s, n);
		char name[64];
		PGresult *r;
		bool ok;

		snprintf(name, sizeof(name), "t_%d", s);
		r = PQprepare(c, name, sql, 0, NULL);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (with_limits || !needs_limits_table((enum sql_stmt)s))
			cr_expect(ok, "%s: %s", sql_stmt_name((enum sql_stmt)s),
				  PQresultErrorMessage(r));
		else
			cr_expect(!ok, "%s prepared without the limits table",
				  sql_stmt_name((enum sql_stmt)s));
		PQclear(r);
		free(sql);
	}
	PQclear(harness_query(c, "DEALLOCATE ALL"));
}

/* pgq's claim, heartbeat, retry, complete, hold, requeue, cancel and
 * recovery on a queue PgQueuer built, read back with PgQueuer's dequeue. */
static void
pgq_writes_on_pq_queue(PGconn *c, const struct fixture *f,
		       const struct sql_names *n, const struct variant *v)
{
	const char *cv[4] = {"{ep}", "10", "30 seconds", OWNER_A};
	const char *hb[1] = {"{" OWNER_A "}"};
	char ids[64];
	const char *rt[5] = {OWNER_A, ids, "{NULL}", "{NULL}", "{NULL}"};
	const char *dv[4] = {"1", "{ep}", OWNER_B, "30 seconds"};
	PGresult *r;
	long long a, b;

	/* PgQueuer's worker takes the best job pgq enqueued. */
	r = pq_run(c, f, "dequeue", v, 4, dv);
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_eq(num(r, 0, PQfnumber(r, "priority")), 9);
	PQclear(r);
	r = pgq_run(c, n, SQL_CLAIM, 4, cv);
	cr_assert_eq(PQntuples(r), 2);
	a = num(r, 0, 0);
	b = num(r, 1, 0);
	cr_expect(PQgetisnull(r, 1, 5), "no headers: %s", PQgetvalue(r, 1, 5));
	PQclear(r);
	r = pgq_run(c, n, SQL_HEARTBEAT, 1, hb);
	cr_expect_str_eq(PQcmdTuples(r), "2");
	PQclear(r);
	snprintf(ids, sizeof(ids), "{%lld}", a);
	PQclear(pgq_run(c, n, SQL_RETRY, 5, rt));
	cr_expect_str_eq(job_state(c, n, a), "queued 1 -");
	snprintf(ids, sizeof(ids), "{%lld}", b);
	{
		const char *hv[3] = {OWNER_A, ids, "{NULL}"};
		const char *qv[1] = {ids};

		PQclear(pgq_run(c, n, SQL_HOLD, 3, hv));
		cr_expect_str_eq(job_state(c, n, b), "failed 0 -");
		PQclear(pgq_run(c, n, SQL_REQUEUE, 1, qv));
		PQclear(pgq_run(c, n, SQL_CANCEL, 1, qv));
		cr_expect_str_eq(job_state(c, n, b), "gone");
	}
	/* a dies holding a; the recovery puts it back for PgQueuer. */
	r = pgq_run(c, n, SQL_CLAIM, 4, cv);
	cr_expect_eq(PQntuples(r), 1);
	PQclear(r);
	{
		const char *rv[7] = {OWNER_A, "{ep}", "{5}", "{f}",
				     "5",     "f",    "null"};

		r = pgq_run(c, n, SQL_RECOVER, 7, rv);
		cr_expect_eq(PQntuples(r), 1);
		PQclear(r);
	}
	cr_expect_str_eq(job_state(c, n, a), "queued 2 -");
	r = pq_run(c, f, "dequeue", v, 4, dv);
	cr_expect_eq(PQntuples(r), 1);
	cr_expect_eq(num(r, 0, 0), a);
	PQclear(r);
}

Test(compat, pgq_statements_run_on_queues_pgqueuer_installed)
{
	static const char *const installs[] = {"pgqueuer-1.3-install.sql",
					       "pgqueuer-1.4-install.sql"};

	for (size_t k = 0; k < PGQ_NELEM(installs); k++)
		for (size_t i = 0; i < PGQ_NELEM(variants); i++) {
			const struct variant *v = &variants[i];
			const char *ev[7] = {"{ep,ep,ep}",
					     "{NULL,NULL,NULL}",
					     "{9,1,2}",
					     "{NULL,NULL,NULL}",
					     "{NULL,NULL,NULL}",
					     "{NULL,NULL,NULL}",
					     "false"};
			struct sql_names n;
			struct pgq_error err;
			struct fixture f;
			enum sql_layout l;
			PGconn *c, *li;
			const char *dsn = fresh_db(v, &c);
			char *p;

			pq_install(c, installs[k], v);
			pgq_names(&n, v);
			fixture_load(&f, "pgqueuer-1.4-queries.sql");
			prepare_all(c, &n, false);
			li = harness_connect(dsn);
			PQclear(harness_query(li, "LISTEN \"%s\"", n.channel));
			PQclear(pgq_run(c, &n, SQL_ENQUEUE, 7, ev));
			/* PgQueuer's trigger tells pgq's listener. */
			p = next_notify(li);
			expect_table_event(p, n.channel, "insert",
					   n.queue_bare);
			free(p);
			pgq_writes_on_pq_queue(c, &f, &n, v);
			pq_statistics_and_schedules(c, &f, &n, v);
			/* pgq upgrade adds its limits table (and 1.4). */
			cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s",
				     err.message);
			cr_assert_eq(sql_layout(c, &n, &l, &err), 0);
			cr_expect_eq(l, SQL_LAYOUT_1_4, "%s", installs[k]);
			prepare_all(c, &n, true);
			fixture_free(&f);
			PQfinish(li);
			PQfinish(c);
		}
}

/* ---- one concurrency limit across both tools ---- */

/* PgQueuer's limited dequeue, rendered for the default names. */
static char *
pq_sql(const char *file, const char *name)
{
	struct fixture f;
	char *sql;

	fixture_load(&f, file);
	sql = pq_render(fixture_get(&f, name), &variants[0]);
	fixture_free(&f);
	return sql;
}

/*
 * PgQueuer's dequeue (sql) of up to batch jobs of ep for owner, the
 * entrypoint's limit being limit. NULL with why on an error.
 */
static PGresult *
pq_dequeue(PGconn *c, const char *sql, int batch, const char *ep,
	   const char *owner, int limit, struct failure *why)
{
	char b[16], e[80], l[24];
	const char *v[5] = {b, e, owner, "30 seconds", l};

	snprintf(b, sizeof(b), "%d", batch);
	snprintf(e, sizeof(e), "{%s}", ep);
	snprintf(l, sizeof(l), "{%d}", limit);
	return try_sql(c, sql, 5, v, why);
}

/* pgq's two statements of a limited claim. */
struct pgq_claim_sql {
	char *lock;
	char *claim;
};

static void
pgq_claim_sql_init(struct pgq_claim_sql *s, const struct sql_names *n)
{
	s->lock = sql_stmt_render(SQL_LIMIT_LOCK, n);
	s->claim = sql_stmt_render(SQL_CLAIM_LIMITED, n);
}

static void
pgq_claim_sql_clear(struct pgq_claim_sql *s)
{
	free(s->lock);
	free(s->claim);
}

/*
 * pgq's limited claim as its consumer runs it (BEGIN, LIMIT_LOCK,
 * CLAIM_LIMITED of one job, then COMMIT unless keep_open). Returns the jobs
 * claimed (the id in *id), or -1 with why, rolled back.
 */
static int
pgq_claim(PGconn *c, const struct pgq_claim_sql *s, const char *ep, int limit,
	  const char *owner, bool keep_open, long long *id, struct failure *why)
{
	char l[16];
	const char *lv[4] = {ep, l, "0", "0"};
	const char *cv[8] = {ep,  "1",		l,     "0",
			     "0", "30 seconds", owner, "false"};
	PGresult *r;
	int got = -1;

	snprintf(l, sizeof(l), "%d", limit);
	PQclear(PQexec(c, "BEGIN"));
	if ((r = try_sql(c, s->lock, 4, lv, why)) == NULL)
		goto out;
	PQclear(r);
	if ((r = try_sql(c, s->claim, 8, cv, why)) == NULL)
		goto out;
	got = PQgetisnull(r, 0, 0) ? 0 : 1;
	if (got == 1 && id != NULL)
		*id = num(r, 0, 0);
	PQclear(r);
out:
	if (got == -1 || !keep_open)
		PQclear(PQexec(c, got == -1 ? "ROLLBACK" : "COMMIT"));
	return got;
}

/* Waits (10 s at most) until backend pid waits for a lock. */
static void
wait_for_lock_wait(PGconn *watch, int pid)
{
	uint64_t end = clock_mono_ms() + 10000;

	while (harness_scalar(watch,
			      "SELECT count(*) FROM pg_stat_activity WHERE "
			      "pid = %d AND wait_event_type = 'Lock'",
			      pid) == 0) {
		struct timespec ts = {0, 2000000};

		cr_assert_lt(clock_mono_ms(), end, "pid %d never waited", pid);
		nanosleep(&ts, NULL);
	}
}

static long long
picked_of(PGconn *c, const char *ep)
{
	return harness_scalar(c,
			      "SELECT count(*) FROM pgqueuer WHERE status = "
			      "'picked' AND entrypoint = '%s'",
			      ep);
}

Test(compat, jobs_picked_before_the_upgrade_count_for_both_tools)
{
	const struct variant *v = &variants[0];
	char *old = pq_sql("pgqueuer-1.3-queries.sql", "dequeue_limited");
	char *now = pq_sql("pgqueuer-1.4-queries.sql", "dequeue_limited");
	struct pgq_claim_sql s;
	struct sql_names n;
	struct pgq_error err;
	struct failure why;
	struct fixture f;
	long long legacy, id = 0;
	PGresult *r;
	PGconn *c;

	(void)fresh_db(v, &c);
	pq_install(c, "pgqueuer-1.3-install.sql", v);
	fixture_load(&f, "pgqueuer-1.4-queries.sql");
	pq_enqueue(c, &f, v, "{0,0,0}", "{lim,lim,lim}",
		   "{\"null\",\"null\",\"null\"}", 3);
	/* A PgQueuer 1.3 worker has one running when the upgrade comes. */
	r = pq_dequeue(c, old, 1, "lim", OWNER_B, 2, &why);
	cr_assert_not_null(r, "%s", why.message);
	cr_assert_eq(PQntuples(r), 1);
	legacy = num(r, 0, 0);
	PQclear(r);
	pgq_names(&n, v);
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	cr_expect_str_eq(harness_text(c,
				      "SELECT coalesce(slot::text, '-') "
				      "FROM pgqueuer WHERE id = %lld",
				      legacy),
			 "-");
	/* Both tools count it: one more for PgQueuer 1.4, none for pgq. */
	r = pq_dequeue(c, now, 5, "lim", OWNER_B, 2, &why);
	cr_assert_not_null(r, "%s", why.message);
	cr_expect_eq(PQntuples(r), 1);
	cr_expect_str_eq(PQgetvalue(r, 0, PQfnumber(r, "slot")), "0");
	PQclear(r);
	pgq_claim_sql_init(&s, &n);
	cr_expect_eq(pgq_claim(c, &s, "lim", 2, OWNER_A, false, NULL, &why), 0);
	cr_expect_eq(picked_of(c, "lim"), 2);
	/* It ends: pgq takes its place, in the next free slot. */
	{
		char ids[32];
		const char *lv[3] = {ids, "{successful}", "{NULL}"};

		snprintf(ids, sizeof(ids), "{%lld}", legacy);
		PQclear(pq_run(c, &f, "log_job", v, 3, lv));
	}
	cr_expect_eq(pgq_claim(c, &s, "lim", 2, OWNER_A, false, &id, &why), 1);
	cr_expect_str_eq(harness_text(c,
				      "SELECT slot FROM pgqueuer WHERE id = "
				      "%lld",
				      id),
			 "1");
	r = pq_dequeue(c, now, 5, "lim", OWNER_B, 2, &why);
	cr_assert_not_null(r, "%s", why.message);
	cr_expect_eq(PQntuples(r), 0);
	PQclear(r);
	cr_expect_eq(picked_of(c, "lim"), 2);
	pgq_claim_sql_clear(&s);
	fixture_free(&f);
	free(old);
	free(now);
	PQfinish(c);
}

/* Adds n queued jobs of ep with priority prio (pgq's default names). */
static void
add_jobs(PGconn *c, const char *ep, int n, int prio)
{
	PQclear(harness_query(c,
			      "INSERT INTO pgqueuer (priority, status, "
			      "entrypoint, headers) SELECT %d, 'queued', '%s', "
			      "'null' FROM generate_series(1, %d)",
			      prio, ep, n));
}

/* The one result of what was sent on c; NULL with why on an error. */
static PGresult *
result_of(PGconn *c, struct failure *why)
{
	PGresult *r = PQgetResult(c), *extra;
	const char *f;

	while ((extra = PQgetResult(c)) != NULL)
		PQclear(extra);
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	memset(why, 0, sizeof(*why));
	f = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	snprintf(why->sqlstate, sizeof(why->sqlstate), "%s", f ? f : "");
	f = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
	snprintf(why->constraint, sizeof(why->constraint), "%s", f ? f : "");
	snprintf(why->message, sizeof(why->message), "%s",
		 PQresultErrorMessage(r));
	PQclear(r);
	return NULL;
}

Test(compat, the_later_of_two_claims_of_one_slot_fails_in_either_order)
{
	const char *dsn = harness_db_new(true);
	PGconn *a = harness_connect(dsn), *b = harness_connect(dsn),
	       *watch = harness_connect(dsn);
	char *deq = pq_sql("pgqueuer-1.4-queries.sql", "dequeue_limited");
	struct pgq_claim_sql s;
	struct sql_names n;
	struct failure why;
	long long id = 0;
	char bv0[8] = "1", bv1[16] = "{lim}", bv4[16] = "{1}";
	const char *bv[5] = {bv0, bv1, OWNER_B, "30 seconds", bv4};
	PGresult *r;

	pgq_names(&n, &variants[0]);
	pgq_claim_sql_init(&s, &n);
	add_jobs(watch, "lim", 3, 0);
	/* a1: pgq takes slot 0 of limit 1 and holds its transaction. */
	cr_assert_eq(pgq_claim(a, &s, "lim", 1, OWNER_A, true, &id, &why), 1,
		     "%s", why.message);
	/* A job of higher priority arrives: PgQueuer's window is that one,
	 * which nobody has locked, and its count cannot see pgq's claim. */
	add_jobs(watch, "lim", 1, 9);
	/* b1: PgQueuer's dequeue picks slot 0 too, and waits for a. */
	cr_assert_eq(PQsendQueryParams(b, deq, 5, NULL, bv, NULL, NULL, 0), 1);
	wait_for_lock_wait(watch, PQbackendPID(b));
	/* a2: commit; b loses the race on the slot index. */
	PQclear(harness_query(a, "COMMIT"));
	r = result_of(b, &why);
	cr_expect_null(r, "PgQueuer claimed past the limit");
	PQclear(r);
	cr_expect_str_eq(why.sqlstate, "23505");
	cr_expect_str_eq(why.constraint, "pgqueuer_picked_slot_idx");
	cr_expect_eq(picked_of(watch, "lim"), 1);

	/* The other way round: PgQueuer holds slot 0 (its job done and
	 * the other released first), pgq's claim waits, then loses. */
	PQclear(harness_query(watch, "DELETE FROM pgqueuer WHERE id = %lld",
			      id));
	PQclear(harness_query(b, "BEGIN"));
	r = pq_dequeue(b, deq, 1, "lim", OWNER_B, 1, &why);
	cr_assert_not_null(r, "%s", why.message);
	cr_assert_eq(PQntuples(r), 1);
	cr_expect_str_eq(PQgetvalue(r, 0, PQfnumber(r, "slot")), "0");
	PQclear(r);
	{
		const char *lv[4] = {"lim", "1", "0", "0"};
		const char *cv[8] = {"lim", "1",	  "1",	   "0",
				     "0",   "30 seconds", OWNER_A, "false"};

		PQclear(harness_query(a, "BEGIN"));
		r = try_sql(a, s.lock, 4, lv, &why);
		cr_assert_not_null(r, "%s", why.message);
		PQclear(r);
		cr_assert_eq(PQsendQueryParams(a, s.claim, 8, NULL, cv, NULL,
					       NULL, 0),
			     1);
	}
	wait_for_lock_wait(watch, PQbackendPID(a));
	PQclear(harness_query(b, "COMMIT"));
	r = result_of(a, &why);
	cr_expect_null(r, "pgq claimed past the limit");
	PQclear(r);
	cr_expect_str_eq(why.sqlstate, "23505");
	cr_expect_str_eq(why.constraint, "pgqueuer_picked_slot_idx");
	PQclear(harness_query(a, "ROLLBACK"));
	cr_expect_eq(picked_of(watch, "lim"), 1);
	pgq_claim_sql_clear(&s);
	free(deq);
	PQfinish(a);
	PQfinish(b);
	PQfinish(watch);
}

/* ---- libpgq consumers beside PgQueuer's claimers ---- */

/* What a consumer logged, kept for the test to read. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[8192];
static atomic_int log_warnings;

static void
keep_log(void *arg, enum pgq_log_level level, const char *message)
{
	(void)arg;
	if (level <= PGQ_LOG_WARN)
		atomic_fetch_add(&log_warnings, 1);
	pthread_mutex_lock(&log_mu);
	if (strlen(log_text) + strlen(message) + 2 < sizeof(log_text)) {
		strcat(log_text, message);
		strcat(log_text, "\n");
	}
	pthread_mutex_unlock(&log_mu);
}

static bool
logged(const char *what)
{
	bool found;

	pthread_mutex_lock(&log_mu);
	found = strstr(log_text, what) != NULL;
	pthread_mutex_unlock(&log_mu);
	return found;
}

static atomic_long handled;

static enum pgq_outcome
count_job(const struct pgq_job *job, void *resources, struct pgq_result *res)
{
	(void)job;
	(void)resources;
	(void)res;
	atomic_fetch_add(&handled, 1);
	return PGQ_OUTCOME_SUCCESS;
}

struct drainer {
	pthread_t t;
	char dsn[300];
	int rc;
	char why[600];
};

/* One libpgq consumer draining "lim" (limit 1), its log kept. */
static void *
drainer_main(void *arg)
{
	struct drainer *d = arg;
	struct pgq_entrypoint_options o;
	struct pgq_error err;
	struct pgq *q = pgq_connect(d->dsn, NULL, PGQ_ROLE_CONSUMER, &err);
	struct pgq_consumer *c = NULL;

	d->rc = -1;
	pgq_entrypoint_options_init(&o);
	o.concurrency_limit = 1;
	if (q == NULL || (c = pgq_consumer_new(q, NULL, &err)) == NULL ||
	    pgq_consumer_add(c, "lim", count_job, &o, &err) == -1)
		goto out;
	pgq_consumer_set_log(c, keep_log, NULL);
	d->rc = pgq_consumer_drain(c, &err);
out:
	if (d->rc == -1)
		snprintf(d->why, sizeof(d->why), "%s", err.message);
	pgq_consumer_free(c);
	pgq_free(q);
	return NULL;
}

Test(compat, a_consumer_that_loses_a_slot_race_claims_nothing_and_goes_on)
{
	const char *dsn = harness_db_new(true);
	PGconn *b = harness_connect(dsn), *watch = harness_connect(dsn);
	char *deq = pq_sql("pgqueuer-1.4-queries.sql", "dequeue_limited");
	struct fixture f;
	struct failure why;
	struct drainer d;
	long long mine, pid = 0;
	uint64_t end;
	PGresult *r;

	memset(&d, 0, sizeof(d));
	log_text[0] = '\0';
	atomic_store(&log_warnings, 0);
	atomic_store(&handled, 0);
	add_jobs(watch, "lim", 3, 0);
	/* PgQueuer holds slot 0 of limit 1, not yet committed. */
	PQclear(harness_query(b, "BEGIN"));
	r = pq_dequeue(b, deq, 1, "lim", OWNER_B, 1, &why);
	cr_assert_not_null(r, "%s", why.message);
	cr_assert_eq(PQntuples(r), 1);
	mine = num(r, 0, 0);
	PQclear(r);
	/* The consumer's claim takes slot 0 as well, and waits. */
	snprintf(d.dsn, sizeof(d.dsn), "%s application_name=compat_drainer",
		 dsn);
	cr_assert_eq(pthread_create(&d.t, NULL, drainer_main, &d), 0);
	for (end = clock_mono_ms() + 10000; pid == 0;) {
		struct timespec ts = {0, 2000000};

		cr_assert_lt(clock_mono_ms(), end, "the consumer never waited");
		pid = harness_scalar(watch,
				     "SELECT coalesce(max(pid), 0) FROM "
				     "pg_stat_activity WHERE application_name "
				     "= 'compat_drainer' AND wait_event_type = "
				     "'Lock'");
		if (pid == 0)
			nanosleep(&ts, NULL);
	}
	/* PgQueuer commits: the consumer lost; an empty claim, no error. */
	PQclear(harness_query(b, "COMMIT"));
	for (end = clock_mono_ms() + 10000; !logged("lost a slot race");) {
		struct timespec ts = {0, 2000000};

		cr_assert_lt(clock_mono_ms(), end, "no lost race: %s",
			     log_text);
		nanosleep(&ts, NULL);
	}
	/* PgQueuer's job ends; the consumer, looking again, runs the rest. */
	fixture_load(&f, "pgqueuer-1.4-queries.sql");
	{
		char ids[32];
		const char *lv[3] = {ids, "{successful}", "{NULL}"};

		snprintf(ids, sizeof(ids), "{%lld}", mine);
		PQclear(pq_run(watch, &f, "log_job", &variants[0], 3, lv));
	}
	pthread_join(d.t, NULL);
	cr_expect_eq(d.rc, 0, "%s", d.why);
	cr_expect_eq(atomic_load(&handled), 2);
	cr_expect_eq(atomic_load(&log_warnings), 0, "%s", log_text);
	cr_expect_eq(harness_scalar(watch, "SELECT count(*) FROM pgqueuer"), 0);
	fixture_free(&f);
	free(deq);
	PQfinish(b);
	PQfinish(watch);
}

/*
 * The limit test: claimers of both tools on one entrypoint, a sampler
 * counting its picked rows from a connection of its own. Time is counted
 * in samples: jobs run until the next tick (every MIX_TICK samples, at
 * least one sample away), so that the slots free together; a sample later
 * the idle PgQueuer claimers try again, and a producer adds a job of a
 * higher priority, whose notification wakes the idle pgq consumers: all
 * claimers race for the free slots at once, while the order of the
 * candidates changes under them (PgQueuer's #777 case, which its windowing
 * alone does not cover).
 */
struct mix {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const char *dsn;
	long samples; /* taken so far */
	long max;     /* most picked rows in one sample */
	long at_limit;
	long queued_last; /* queued jobs at the last sample */
	bool stop;
	atomic_long pgq_ran, pq_ran, pgq_lost, pq_lost;
	atomic_int warnings, deadlocks;
	char why[600]; /* the first unexpected error */
};

enum { MIX_SAMPLES = 3000, MIX_LIMIT = 2, MIX_TICK = 4 };

static void
mix_fail(struct mix *m, const char *who, const char *msg)
{
	pthread_mutex_lock(&m->mu);
	if (m->why[0] == '\0')
		snprintf(m->why, sizeof(m->why), "%s: %s", who, msg);
	m->stop = true;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

/*
 * Until offset samples after the next tick at least one sample away (so
 * that what runs is seen running), the test stops, or 10 s passed. Returns
 * the tick.
 */
static long
mix_wait(struct mix *m, long offset)
{
	struct timespec until;
	long target;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&m->mu);
	target = (m->samples / MIX_TICK + 1) * MIX_TICK + offset;
	if (target - m->samples < 2)
		target += MIX_TICK;
	while (m->samples < target && !m->stop)
		if (pthread_cond_timedwait(&m->cv, &m->mu, &until) != 0)
			break;
	pthread_mutex_unlock(&m->mu);
	return (target - offset) / MIX_TICK;
}

static bool
mix_stopping(struct mix *m)
{
	bool s;

	pthread_mutex_lock(&m->mu);
	s = m->stop;
	pthread_mutex_unlock(&m->mu);
	return s;
}

static void *
mix_sampler(void *arg)
{
	struct mix *m = arg;
	PGconn *c = PQconnectdb(m->dsn);
	struct failure why;

	while (!mix_stopping(m)) {
		PGresult *r = try_sql(
			c,
			"SELECT count(*) FILTER (WHERE status = 'picked'), "
			"count(*) FILTER (WHERE status = 'queued') FROM "
			"pgqueuer WHERE entrypoint = 'lim'",
			0, NULL, &why);
		long n;

		if (r == NULL) {
			mix_fail(m, "sampler", why.message);
			break;
		}
		n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
		pthread_mutex_lock(&m->mu);
		if (n > m->max)
			m->max = n;
		if (n == MIX_LIMIT)
			m->at_limit++;
		m->queued_last = strtol(PQgetvalue(r, 0, 1), NULL, 10);
		if (++m->samples >= MIX_SAMPLES)
			m->stop = true;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
		PQclear(r);
	}
	PQfinish(c);
	return NULL;
}

/* At each tick, one job of a priority above all before it. */
static void *
mix_producer(void *arg)
{
	struct mix *m = arg;
	PGconn *c = PQconnectdb(m->dsn);
	struct failure why;

	while (!mix_stopping(m)) {
		char prio[24];
		const char *v[1] = {prio};
		PGresult *r;

		snprintf(prio, sizeof(prio), "%ld", mix_wait(m, 1));
		r = try_sql(c,
			    "INSERT INTO pgqueuer (priority, status, "
			    "entrypoint, headers) VALUES ($1, 'queued', "
			    "'lim', 'null')",
			    1, v, &why);
		if (r == NULL) {
			mix_fail(m, "producer", why.message);
			break;
		}
		PQclear(r);
	}
	PQfinish(c);
	return NULL;
}

/* A pgq job: runs until the next tick. */
static enum pgq_outcome
mix_pgq_job(const struct pgq_job *job, void *resources, struct pgq_result *res)
{
	struct mix *m = resources;

	(void)job;
	(void)res;
	(void)mix_wait(m, 0);
	atomic_fetch_add(&m->pgq_ran, 1);
	return PGQ_OUTCOME_SUCCESS;
}

/*
 * A consumer's warnings fail the test, but for a deadlock: a claim that
 * locked a row its stale snapshot still saw queued (SKIP LOCKED keeps the
 * lock of a row that fails the recheck) and then waits for the slot of a
 * job being completed, while that completion waits for the row. PostgreSQL
 * ends one of them; a consumer writes its outcomes again later.
 */
static void
mix_log(void *arg, enum pgq_log_level level, const char *message)
{
	struct mix *m = arg;

	if (level > PGQ_LOG_WARN)
		return;
	if (strstr(message, "sqlstate=40P01") != NULL ||
	    strstr(message, "deadlock detected") != NULL) {
		atomic_fetch_add(&m->deadlocks, 1);
		return;
	}
	atomic_fetch_add(&m->warnings, 1);
	mix_fail(m, "pgq consumer", message);
}

struct mix_pgq {
	pthread_t t;
	struct mix *m;
	struct pgq *q;
	struct pgq_consumer *c;
	int rc;
	char why[600];
};

static void *
mix_pgq_main(void *arg)
{
	struct mix_pgq *w = arg;
	struct pgq_error err;

	w->rc = pgq_consumer_run(w->c, &err);
	if (w->rc == -1)
		snprintf(w->why, sizeof(w->why), "%s", err.message);
	return NULL;
}

/* A pgq consumer of "lim" with the limit, polling often: deletions (the
 * other tool's completions) wake nobody. */
static void
mix_pgq_new(struct mix_pgq *w, struct mix *m)
{
	struct pgq_entrypoint_options o;
	struct pgq_consumer_options co;
	struct pgq_error err;

	memset(w, 0, sizeof(*w));
	w->m = m;
	w->q = pgq_connect(m->dsn, NULL, PGQ_ROLE_CONSUMER, &err);
	cr_assert_not_null(w->q, "%s", err.message);
	w->c = pgq_consumer_new(w->q, m, &err);
	cr_assert_not_null(w->c, "%s", err.message);
	pgq_consumer_options_init(&co);
	co.poll_interval_ms = 10;
	cr_assert_eq(pgq_consumer_set_options(w->c, &co, &err), 0);
	pgq_entrypoint_options_init(&o);
	o.concurrency_limit = MIX_LIMIT;
	cr_assert_eq(pgq_consumer_add(w->c, "lim", mix_pgq_job, &o, &err), 0,
		     "%s", err.message);
	pgq_consumer_set_log(w->c, mix_log, m);
}

/*
 * pgq's claim run through its statements as the consumer sends them
 * (LIMIT_LOCK, CLAIM_LIMITED, COMMIT; COMPLETE), in the schedule that gives
 * the race its widest window: the lock taken, the claim waits for the
 * moment the idle PgQueuer claimers try too.
 */
struct mix_raw {
	pthread_t t;
	struct mix *m;
	char owner[40];
};

static void *
mix_raw_main(void *arg)
{
	struct mix_raw *w = arg;
	PGconn *c = PQconnectdb(w->m->dsn);
	struct sql_names n;
	struct pgq_error err;
	char *lock, *claim, *done;
	const char *lv[4] = {"lim", "2", "0", "0"};
	const char *cv[8] = {"lim", "1",	  "2",	    "0",
			     "0",   "30 seconds", w->owner, "false"};
	struct failure why;

	if (sql_names_init(&n, NULL, NULL, NULL, &err) == -1) {
		mix_fail(w->m, "pgq names", err.message);
		PQfinish(c);
		return NULL;
	}
	lock = sql_stmt_render(SQL_LIMIT_LOCK, &n);
	claim = sql_stmt_render(SQL_CLAIM_LIMITED, &n);
	done = sql_stmt_render(SQL_COMPLETE, &n);
	while (!mix_stopping(w->m)) {
		char ids[32];
		const char *dv[4] = {w->owner, ids, "{successful}", "{NULL}"};
		PGresult *r;
		bool got;

		PQclear(PQexec(c, "BEGIN"));
		if ((r = try_sql(c, lock, 4, lv, &why)) != NULL) {
			PQclear(r);
			(void)mix_wait(w->m, 1);
			r = try_sql(c, claim, 8, cv, &why);
		}
		if (r == NULL) {
			PQclear(PQexec(c, "ROLLBACK"));
			if (strcmp(why.sqlstate, "40P01") == 0 ||
			    strcmp(why.constraint,
				   "pgqueuer_picked_slot_idx") == 0) {
				atomic_fetch_add(&w->m->pgq_lost, 1);
				continue;
			}
			mix_fail(w->m, "pgq claim", why.message);
			break;
		}
		got = !PQgetisnull(r, 0, 0);
		snprintf(ids, sizeof(ids), "{%s}", PQgetvalue(r, 0, 0));
		PQclear(r);
		PQclear(PQexec(c, "COMMIT"));
		if (!got)
			continue;
		(void)mix_wait(w->m, 0);
		while ((r = try_sql(c, done, 4, dv, &why)) == NULL &&
		       strcmp(why.sqlstate, "40P01") == 0)
			atomic_fetch_add(&w->m->deadlocks, 1);
		if (r == NULL) {
			mix_fail(w->m, "pgq complete", why.message);
			break;
		}
		PQclear(r);
		atomic_fetch_add(&w->m->pgq_ran, 1);
	}
	free(lock);
	free(claim);
	free(done);
	PQfinish(c);
	return NULL;
}

struct mix_pq {
	pthread_t t;
	struct mix *m;
	char owner[40];
	char *dequeue, *log_job;
};

/* A PgQueuer 1.4 worker: its dequeue for a limited entrypoint (batch 2),
 * its completion; a lost slot race is an empty batch, as in Queries. */
static void *
mix_pq_main(void *arg)
{
	struct mix_pq *w = arg;
	PGconn *c = PQconnectdb(w->m->dsn);
	struct failure why;

	while (!mix_stopping(w->m)) {
		PGresult *r = pq_dequeue(c, w->dequeue, 2, "lim", w->owner,
					 MIX_LIMIT, &why);
		char ids[64] = "{";
		const char *lv[3] = {ids, NULL, NULL};
		int n;

		if (r == NULL &&
		    (strcmp(why.sqlstate, "40P01") == 0 ||
		     strcmp(why.constraint, "pgqueuer_picked_slot_idx") == 0)) {
			atomic_fetch_add(&w->m->pq_lost, 1);
			(void)mix_wait(w->m, 1);
			continue;
		}
		if (r == NULL) {
			mix_fail(w->m, "PgQueuer dequeue", why.message);
			break;
		}
		n = PQntuples(r);
		for (int i = 0; i < n; i++)
			snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids),
				 "%s%s", i > 0 ? "," : "", PQgetvalue(r, i, 0));
		strcat(ids, "}");
		PQclear(r);
		(void)mix_wait(w->m, n > 0 ? 0 : 1);
		if (n == 0)
			continue;
		lv[1] = n == 1 ? "{successful}" : "{successful,successful}";
		lv[2] = n == 1 ? "{NULL}" : "{NULL,NULL}";
		/* PgQueuer's completion buffer writes again what failed (a
		 * deadlock: see mix_log). */
		while ((r = try_sql(c, w->log_job, 3, lv, &why)) == NULL &&
		       strcmp(why.sqlstate, "40P01") == 0)
			atomic_fetch_add(&w->m->deadlocks, 1);
		if (r == NULL) {
			mix_fail(w->m, "PgQueuer log_job", why.message);
			break;
		}
		PQclear(r);
		atomic_fetch_add(&w->m->pq_ran, n);
	}
	PQfinish(c);
	return NULL;
}

Test(compat, eight_claimers_of_both_tools_never_pass_a_limit_of_two)
{
	/* libpgq consumers, pgq's statements alone, PgQueuer 1.4 workers. */
	enum { PGQ_WORKERS = 2, RAW_WORKERS = 2, PQ_WORKERS = 4, JOBS = 6000 };
	struct mix m;
	struct mix_pgq pw[PGQ_WORKERS];
	struct mix_raw rw[RAW_WORKERS];
	struct mix_pq qw[PQ_WORKERS];
	pthread_t sampler, producer;
	PGconn *c;

	memset(&m, 0, sizeof(m));
	pthread_mutex_init(&m.mu, NULL);
	pthread_cond_init(&m.cv, NULL);
	m.dsn = harness_db_new(true);
	c = harness_connect(m.dsn);
	add_jobs(c, "lim", JOBS, 0);
	for (int i = 0; i < PGQ_WORKERS; i++)
		mix_pgq_new(&pw[i], &m);
	for (int i = 0; i < RAW_WORKERS; i++) {
		rw[i].m = &m;
		snprintf(rw[i].owner, sizeof(rw[i].owner),
			 "00000000-0000-4000-8000-0000000001%02d", i);
	}
	for (int i = 0; i < PQ_WORKERS; i++) {
		qw[i].m = &m;
		snprintf(qw[i].owner, sizeof(qw[i].owner),
			 "00000000-0000-4000-8000-0000000002%02d", i);
		qw[i].dequeue =
			pq_sql("pgqueuer-1.4-queries.sql", "dequeue_limited");
		qw[i].log_job = pq_sql("pgqueuer-1.4-queries.sql", "log_job");
	}
	cr_assert_eq(pthread_create(&sampler, NULL, mix_sampler, &m), 0);
	cr_assert_eq(pthread_create(&producer, NULL, mix_producer, &m), 0);
	for (int i = 0; i < PGQ_WORKERS; i++)
		cr_assert_eq(
			pthread_create(&pw[i].t, NULL, mix_pgq_main, &pw[i]),
			0);
	for (int i = 0; i < RAW_WORKERS; i++)
		cr_assert_eq(
			pthread_create(&rw[i].t, NULL, mix_raw_main, &rw[i]),
			0);
	for (int i = 0; i < PQ_WORKERS; i++)
		cr_assert_eq(
			pthread_create(&qw[i].t, NULL, mix_pq_main, &qw[i]), 0);
	pthread_join(sampler, NULL);
	pthread_join(producer, NULL);
	for (int i = 0; i < RAW_WORKERS; i++)
		pthread_join(rw[i].t, NULL);
	for (int i = 0; i < PQ_WORKERS; i++) {
		pthread_join(qw[i].t, NULL);
		free(qw[i].dequeue);
		free(qw[i].log_job);
	}
	for (int i = 0; i < PGQ_WORKERS; i++) {
		pgq_consumer_stop(pw[i].c);
		pthread_join(pw[i].t, NULL);
		cr_expect_eq(pw[i].rc, 0, "consumer %d: %s", i, pw[i].why);
		pgq_consumer_free(pw[i].c);
		pgq_free(pw[i].q);
	}
	cr_log_info("samples %ld, most picked %ld, at the limit %ld; jobs run "
		    "by pgq %ld, by PgQueuer %ld; slot races lost by pgq %ld, "
		    "by PgQueuer %ld; completions deadlocked %d",
		    m.samples, m.max, m.at_limit, atomic_load(&m.pgq_ran),
		    atomic_load(&m.pq_ran), atomic_load(&m.pgq_lost),
		    atomic_load(&m.pq_lost), atomic_load(&m.deadlocks));
	cr_expect_str_eq(m.why, "");
	cr_expect_geq(m.samples, MIX_SAMPLES);
	cr_expect_leq(m.max, MIX_LIMIT, "%ld picked at once", m.max);
	/* The test could have seen the limit broken: it was reached, both
	 * tools ran jobs, and jobs were left to claim to the end. */
	cr_expect_gt(m.at_limit, 0);
	cr_expect_gt(atomic_load(&m.pgq_ran), 0);
	cr_expect_gt(atomic_load(&m.pq_ran), 0);
	cr_expect_gt(m.queued_last, 0);
	cr_expect_eq(atomic_load(&m.warnings), 0);
	cr_expect_eq(picked_of(c, "lim"), 0, "a job was left picked");
	pthread_cond_destroy(&m.cv);
	pthread_mutex_destroy(&m.mu);
	PQfinish(c);
}
