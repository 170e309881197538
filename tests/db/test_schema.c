/*
 * The installed catalog against PgQueuer 1.4's: columns, types, defaults,
 * enum order, index definitions, the statement-level trigger and its
 * notifications; install with prefix and schema, uninstall, verify both
 * ways and the layout it finds (1.3 or 1.4), upgrade (idempotent, from 1.3
 * and older layouts, and from the trigger names older pgq gave a prefixed
 * queue) and durability. tests/db/test_compat.c holds the comparisons with
 * PgQueuer's own statements.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "sql/sql.h"
#include "tests/harness/harness.h"

/* Every row of a one-column query, each followed by a newline; caller frees. */
static char *
rows_text(PGconn *c, const char *sql)
{
	PGresult *r = harness_query(c, "%s", sql);
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

/*
 * The catalog of everything in schema, one sorted line per fact: columns
 * (by name, so that a layout upgraded by ADD COLUMN compares equal) with
 * type, nullability, default and identity; index definitions; enum labels
 * in order; triggers with their type bits and function; functions with
 * language and a digest of their source; relations with kind and
 * persistence.
 */
static char *
catalog_src(PGconn *c, const char *schema, bool with_source)
{
	char *sql, *out;

	sql = xasprintf(
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
		" UNION ALL SELECT format('trigger %%s %%s %%s %%s', g.tgname,"
		" g.tgrelid::regclass, g.tgtype, g.tgfoid::regprocedure)"
		" FROM pg_trigger g JOIN pg_class r ON r.oid = g.tgrelid"
		" JOIN pg_namespace n ON n.oid = r.relnamespace"
		" WHERE NOT g.tgisinternal AND n.nspname = '%s'"
		" UNION ALL SELECT format('function %%s %%s %%s',"
		" p.oid::regprocedure, l.lanname, CASE WHEN %s THEN "
		"md5(p.prosrc)"
		" ELSE '-' END)"
		" FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
		" JOIN pg_namespace n ON n.oid = p.pronamespace"
		" WHERE n.nspname = '%s'"
		" UNION ALL SELECT format('relation %%s %%s %%s', r.relname,"
		" r.relkind, r.relpersistence) FROM pg_class r"
		" JOIN pg_namespace n ON n.oid = r.relnamespace"
		" WHERE n.nspname = '%s'"
		") u(x) ORDER BY x COLLATE \"C\"",
		schema, schema, schema, schema, with_source ? "true" : "false",
		schema, schema);
	out = rows_text(c, sql);
	free(sql);
	return out;
}

static char *
catalog(PGconn *c, const char *schema)
{
	return catalog_src(c, schema, true);
}

static int
cmp_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of text sorted bytewise, in a fresh string. */
static char *
sort_lines(const char *text)
{
	char *copy = xstrdup(text), *save = NULL, *tok, *out;
	char **lines = NULL;
	size_t n = 0, off = 0;

	for (tok = strtok_r(copy, "\n", &save); tok != NULL;
	     tok = strtok_r(NULL, "\n", &save)) {
		lines = xrealloc(lines, n + 1, sizeof(*lines));
		lines[n++] = tok;
	}
	if (n > 0)
		qsort(lines, n, sizeof(*lines), cmp_line);
	out = xcalloc(1, strlen(text) + 2);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(lines[i]);

		memcpy(out + off, lines[i], l);
		off += l;
		out[off++] = '\n';
	}
	free(lines);
	free(copy);
	return out;
}

/* text with "ins" inserted before every "word"; fresh string. */
static char *
insert_before(const char *text, const char *word, const char *ins)
{
	size_t wl = strlen(word), il = strlen(ins), n = 0;
	const char *p;
	char *out, *o;

	for (p = text; (p = strstr(p, word)) != NULL; p += wl)
		n++;
	out = xmalloc(strlen(text) + n * il + 1);
	for (o = out, p = text; *p != '\0';) {
		if (strncmp(p, word, wl) == 0) {
			memcpy(o, ins, il);
			o += il;
			memcpy(o, word, wl);
			o += wl;
			p += wl;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

/* text with every "from" replaced by "to"; fresh string. */
static char *
replace_all(const char *text, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	const char *p;
	char *out, *o;

	for (p = text; (p = strstr(p, from)) != NULL; p += fl)
		n++;
	out = xmalloc(strlen(text) + n * tl + 1);
	for (o = out, p = text; *p != '\0';) {
		if (strncmp(p, from, fl) == 0) {
			memcpy(o, to, tl);
			o += tl;
			p += fl;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; s != NULL && *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return n;
}

/*
 * Collects the notifications arriving on l until one whose payload is
 * until (a sentinel sent after the statements under test: notifications
 * are delivered in commit order), with a deadline. Returns how many came
 * before it; their payloads go to got[] (caller frees).
 */
static int
collect(PGconn *l, const char *until, char **got, int max)
{
	uint64_t deadline = clock_mono_ms() + 10000;
	int n = 0;

	for (;;) {
		PGnotify *nt;
		struct pollfd pfd;
		uint64_t now;

		cr_assert_eq(PQconsumeInput(l), 1, "%s", PQerrorMessage(l));
		while ((nt = PQnotifies(l)) != NULL) {
			bool stop = strcmp(nt->extra, until) == 0;

			if (!stop && n < max)
				got[n] = xstrdup(nt->extra);
			if (!stop)
				n++;
			PQfreemem(nt);
			if (stop)
				return n;
		}
		now = clock_mono_ms();
		cr_assert_lt(now, deadline, "no notification %s", until);
		pfd.fd = PQsocket(l);
		pfd.events = POLLIN;
		pfd.revents = 0;
		(void)poll(&pfd, 1, (int)(deadline - now));
	}
}

/* Sends the sentinel from w, in its own transaction. */
static void
sentinel(PGconn *w, const char *channel, const char *payload)
{
	PQclear(harness_query(w, "SELECT pg_notify('%s', '%s')", channel,
			      payload));
}

/* The string member key of a JSON object payload ("" when absent). */
static void
expect_member(json_t *obj, const char *key, const char *want)
{
	json_t *v = json_object_get(obj, key);

	cr_assert_not_null(v, "member %s missing", key);
	cr_expect_str_eq(json_string_value(v), want, "member %s", key);
}

static void
names(struct sql_names *n, const char *prefix, const char *schema)
{
	struct pgq_error err;

	cr_assert_eq(sql_names_init(n, prefix, schema, NULL, &err), 0);
}

static void
install(PGconn *c, const char *prefix, const char *schema,
	enum sql_durability d)
{
	struct sql_names n;
	struct pgq_error err;

	cr_assert_eq(sql_names_init(&n, prefix, schema, NULL, &err), 0);
	cr_assert_eq(sql_install(c, &n, d, &err), 0, "install: %s",
		     err.message);
}

static PGconn *
fresh_db(void)
{
	return harness_connect(harness_db_new(false));
}

/* PgQueuer 1.4's columns, in table order (1.3 has all but slot). */
static const char expected_columns[] =
	"pgqueuer 1 id bigint NO nextval('pgqueuer_id_seq'::regclass) NO\n"
	"pgqueuer 2 priority integer NO - NO\n"
	"pgqueuer 3 queue_manager_id uuid YES - NO\n"
	"pgqueuer 4 created timestamp with time zone NO now() NO\n"
	"pgqueuer 5 updated timestamp with time zone NO now() NO\n"
	"pgqueuer 6 heartbeat timestamp with time zone NO now() NO\n"
	"pgqueuer 7 execute_after timestamp with time zone NO now() NO\n"
	"pgqueuer 8 status pgqueuer_status NO - NO\n"
	"pgqueuer 9 entrypoint text NO - NO\n"
	"pgqueuer 10 dedupe_key text YES - NO\n"
	"pgqueuer 11 payload bytea YES - NO\n"
	"pgqueuer 12 headers jsonb YES - NO\n"
	"pgqueuer 13 attempts integer NO 0 NO\n"
	"pgqueuer 14 slot bigint YES - NO\n"
	"pgqueuer_log 1 id bigint NO - YES\n"
	"pgqueuer_log 2 created timestamp with time zone NO now() NO\n"
	"pgqueuer_log 3 job_id bigint NO - NO\n"
	"pgqueuer_log 4 status pgqueuer_status NO - NO\n"
	"pgqueuer_log 5 priority integer NO - NO\n"
	"pgqueuer_log 6 entrypoint text NO - NO\n"
	"pgqueuer_log 7 traceback jsonb YES - NO\n"
	"pgqueuer_log 8 aggregated boolean YES false NO\n"
	"pgqueuer_schedules 1 id bigint NO "
	"nextval('pgqueuer_schedules_id_seq'::regclass) NO\n"
	"pgqueuer_schedules 2 expression text NO - NO\n"
	"pgqueuer_schedules 3 entrypoint text NO - NO\n"
	"pgqueuer_schedules 4 heartbeat timestamp with time zone NO now() NO\n"
	"pgqueuer_schedules 5 created timestamp with time zone NO now() NO\n"
	"pgqueuer_schedules 6 updated timestamp with time zone NO now() NO\n"
	"pgqueuer_schedules 7 next_run timestamp with time zone NO now() NO\n"
	"pgqueuer_schedules 8 last_run timestamp with time zone YES - NO\n"
	"pgqueuer_schedules 9 status pgqueuer_status YES "
	"'queued'::pgqueuer_status NO\n"
	"pgqueuer_statistics 1 id bigint NO "
	"nextval('pgqueuer_statistics_id_seq'::regclass) NO\n"
	"pgqueuer_statistics 2 created timestamp with time zone NO "
	"date_trunc('sec'::text, (now() AT TIME ZONE 'UTC'::text)) NO\n"
	"pgqueuer_statistics 3 count bigint NO - NO\n"
	"pgqueuer_statistics 4 priority integer NO - NO\n"
	"pgqueuer_statistics 5 status pgqueuer_status NO - NO\n"
	"pgqueuer_statistics 6 entrypoint text NO - NO\n";

/* PgQueuer 1.4's indexes, by name (1.3 has all but _picked_slot_idx). */
static const char expected_indexes[] =
	"pgqueuer_ep_ea_idx: CREATE INDEX pgqueuer_ep_ea_idx ON "
	"public.pgqueuer "
	"USING btree (entrypoint, execute_after) WHERE (status = "
	"'queued'::pgqueuer_status)\n"
	"pgqueuer_ep_prio_id_idx: CREATE INDEX pgqueuer_ep_prio_id_idx ON "
	"public.pgqueuer USING btree (entrypoint, priority DESC, id) WHERE "
	"(status = 'queued'::pgqueuer_status)\n"
	"pgqueuer_log_created: CREATE INDEX pgqueuer_log_created ON "
	"public.pgqueuer_log USING btree (created)\n"
	"pgqueuer_log_job_id_status: CREATE INDEX pgqueuer_log_job_id_status "
	"ON public.pgqueuer_log USING btree (job_id, created DESC)\n"
	"pgqueuer_log_not_aggregated: CREATE INDEX pgqueuer_log_not_aggregated "
	"ON public.pgqueuer_log USING btree ((1)) WHERE (NOT aggregated)\n"
	"pgqueuer_log_pkey: CREATE UNIQUE INDEX pgqueuer_log_pkey ON "
	"public.pgqueuer_log USING btree (id)\n"
	"pgqueuer_log_status: CREATE INDEX pgqueuer_log_status ON "
	"public.pgqueuer_log USING btree (status)\n"
	"pgqueuer_picked_slot_idx: CREATE UNIQUE INDEX "
	"pgqueuer_picked_slot_idx "
	"ON public.pgqueuer USING btree (entrypoint, slot) WHERE ((status = "
	"'picked'::pgqueuer_status) AND (slot IS NOT NULL))\n"
	"pgqueuer_pkey: CREATE UNIQUE INDEX pgqueuer_pkey ON public.pgqueuer "
	"USING btree (id)\n"
	"pgqueuer_priority_id_id1_idx: CREATE INDEX "
	"pgqueuer_priority_id_id1_idx "
	"ON public.pgqueuer USING btree (priority, id DESC) INCLUDE (id) WHERE "
	"(status = 'queued'::pgqueuer_status)\n"
	"pgqueuer_queue_manager_id_idx: CREATE INDEX "
	"pgqueuer_queue_manager_id_idx ON public.pgqueuer USING btree "
	"(queue_manager_id) WHERE (queue_manager_id IS NOT NULL)\n"
	"pgqueuer_schedules_expression_entrypoint_key: CREATE UNIQUE INDEX "
	"pgqueuer_schedules_expression_entrypoint_key ON "
	"public.pgqueuer_schedules USING btree (expression, entrypoint)\n"
	"pgqueuer_schedules_pkey: CREATE UNIQUE INDEX pgqueuer_schedules_pkey "
	"ON public.pgqueuer_schedules USING btree (id)\n"
	"pgqueuer_statistics_pkey: CREATE UNIQUE INDEX "
	"pgqueuer_statistics_pkey "
	"ON public.pgqueuer_statistics USING btree (id)\n"
	"pgqueuer_statistics_unique_count: CREATE UNIQUE INDEX "
	"pgqueuer_statistics_unique_count ON public.pgqueuer_statistics USING "
	"btree (priority, date_trunc('sec'::text, (created AT TIME ZONE "
	"'UTC'::text)), status, entrypoint)\n"
	"pgqueuer_unique_dedupe_key: CREATE UNIQUE INDEX "
	"pgqueuer_unique_dedupe_key ON public.pgqueuer USING btree "
	"(dedupe_key) "
	"WHERE ((status = ANY (ARRAY['queued'::pgqueuer_status, "
	"'picked'::pgqueuer_status])) AND (dedupe_key IS NOT NULL))\n"
	"pgqueuer_updated_id_id1_idx: CREATE INDEX pgqueuer_updated_id_id1_idx "
	"ON public.pgqueuer USING btree (updated, id DESC) INCLUDE (id) WHERE "
	"(status = 'picked'::pgqueuer_status)\n";

Test(schema, install_gives_pgqueuer_catalog_exactly, .timeout = 60)
{
	PGconn *c = fresh_db();
	char *got;

	install(c, NULL, NULL, SQL_DURABLE);

	got = rows_text(c, "SELECT concat_ws(' ', table_name, "
			   "ordinal_position, column_name, "
			   "CASE WHEN data_type = 'USER-DEFINED' THEN udt_name "
			   "ELSE data_type END, is_nullable, "
			   "coalesce(column_default, '-'), "
			   "is_identity) FROM information_schema.columns "
			   "WHERE table_schema = 'public' "
			   "AND table_name <> 'pgqueuer_pgq_limits' "
			   "ORDER BY table_name, ordinal_position");
	cr_expect_str_eq(got, expected_columns);
	free(got);

	got = rows_text(c, "SELECT indexname || ': ' || indexdef "
			   "FROM pg_indexes WHERE schemaname = 'public' "
			   "AND tablename <> 'pgqueuer_pgq_limits' "
			   "ORDER BY indexname");
	cr_expect_str_eq(got, expected_indexes);
	free(got);

	/* pgq's additions: the limits table, keyed by entrypoint. */
	got = rows_text(c, "SELECT concat_ws(' ', column_name, data_type, "
			   "is_nullable, coalesce(column_default, '-')) "
			   "FROM information_schema.columns WHERE "
			   "table_name = 'pgqueuer_pgq_limits' "
			   "ORDER BY ordinal_position");
	cr_expect_str_eq(got, "entrypoint text NO -\n"
			      "concurrency_limit integer NO 0\n"
			      "rate double precision NO 0\n"
			      "burst double precision NO 0\n"
			      "tokens double precision NO 0\n"
			      "refilled timestamp with time zone NO now()\n"
			      "updated timestamp with time zone NO now()\n"
			      "max_payload bigint YES -\n");
	free(got);
	/* And the function the checked enqueue raises max_payload with. */
	cr_expect_str_eq(
		harness_text(
			c, "SELECT l.lanname || ' ' || "
			   "format_type(p.prorettype, NULL) FROM pg_proc p "
			   "JOIN pg_language l ON l.oid = p.prolang WHERE "
			   "p.oid = 'pgqueuer_pgq_payload_check(text, bigint, "
			   "bigint)'::regprocedure"),
		"plpgsql integer");
	cr_expect_str_eq(harness_text(c, "SELECT string_agg(indexname, ',') "
					 "FROM pg_indexes WHERE tablename = "
					 "'pgqueuer_pgq_limits'"),
			 "pgqueuer_pgq_limits_pkey");

	cr_expect_str_eq(
		harness_text(c, "SELECT string_agg(enumlabel, ',' ORDER BY "
				"enumsortorder) FROM pg_enum WHERE enumtypid = "
				"'pgqueuer_status'::regtype"),
		"queued,picked,successful,exception,canceled,deleted,failed");

	/* Statement level (no ROW bit 1), AFTER (no BEFORE bit 2), and the
	 * events INSERT 4, DELETE 8, UPDATE 16, TRUNCATE 32. */
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT tgname || ' ' || tgtype || ' ' || "
			     "tgfoid::regprocedure || ' ' || tgenabled::text "
			     "FROM pg_trigger WHERE tgrelid = "
			     "'pgqueuer'::regclass AND NOT tgisinternal"),
		"tg_pgqueuer_changed 60 fn_pgqueuer_changed() O");
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT string_agg(event_manipulation || ' ' || "
			     "action_timing || ' ' || action_orientation, ',' "
			     "ORDER BY event_manipulation) FROM "
			     "information_schema.triggers WHERE trigger_name = "
			     "'tg_pgqueuer_changed'"),
		"DELETE AFTER STATEMENT,INSERT AFTER STATEMENT,"
		"UPDATE AFTER STATEMENT");
	cr_expect_str_eq(
		harness_text(c,
			     "SELECT l.lanname || ' ' || "
			     "format_type(p.prorettype, NULL) FROM pg_proc p "
			     "JOIN pg_language l ON l.oid = p.prolang WHERE "
			     "p.oid = 'fn_pgqueuer_changed()'::regprocedure"),
		"plpgsql trigger");

	/* PgQueuer's four tables and pgq's limits table, all logged, and
	 * nothing else but their indexes and sequences. */
	cr_expect_str_eq(
		harness_text(
			c,
			"SELECT string_agg(relname || ':' || "
			"relpersistence::text, ',' ORDER BY relname) FROM "
			"pg_class WHERE relnamespace = 'public'::regnamespace "
			"AND relkind = 'r'"),
		"pgqueuer:p,pgqueuer_log:p,pgqueuer_pgq_limits:p,"
		"pgqueuer_schedules:p,pgqueuer_statistics:p");
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pg_constraint "
				       "WHERE contype = 'f'"),
		     0, "no foreign key");
	PQfinish(c);
}

Test(schema, install_with_prefix_names_every_object, .timeout = 60)
{
	PGconn *c = fresh_db();
	char *plain, *prefixed, *expected, *a, *b;
	struct sql_names n;
	struct pgq_error err;
	char *report = NULL;

	install(c, "App_", NULL, SQL_DURABLE);
	prefixed = catalog_src(c, "public", false);
	names(&n, "App_", NULL);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 0, "%s", report);
	free(report);
	PQfinish(c);

	c = fresh_db();
	install(c, NULL, NULL, SQL_DURABLE);
	plain = catalog_src(c, "public", false);
	/* The same catalog with every name prefixed (lower case): in front
	 * of the whole name, function and trigger too, as PgQueuer does. */
	a = insert_before(plain, "pgqueuer", "app_");
	b = replace_all(a, "fn_app_pgqueuer", "app_fn_pgqueuer");
	expected = replace_all(b, "tg_app_pgqueuer", "app_tg_pgqueuer");
	free(a);
	free(b);
	a = sort_lines(expected);
	b = sort_lines(prefixed);
	cr_expect_str_eq(b, a);
	cr_expect_str_neq(plain, prefixed);
	free(a);
	free(b);
	free(expected);
	free(plain);
	free(prefixed);

	/* The prefixed objects are absent here, the plain ones present. */
	cr_expect_eq(sql_verify(c, &n, false, &report, &err), 0, "%s", report);
	free(report);
	PQfinish(c);
}

Test(schema, install_into_schema_keeps_public_empty, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n, plain;
	struct pgq_error err;
	char *report = NULL, *pub;
	long long in_jobs;

	PQclear(harness_query(c, "CREATE SCHEMA jobs"));
	install(c, NULL, "jobs", SQL_DURABLE);
	names(&n, NULL, "jobs");
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 0, "%s", report);
	free(report);
	names(&plain, NULL, NULL);
	cr_expect_eq(sql_verify(c, &plain, false, &report, &err), 0, "%s",
		     report);
	free(report);

	pub = catalog(c, "public");
	cr_expect_str_eq(pub, "");
	free(pub);
	in_jobs = harness_scalar(c, "SELECT count(*) FROM pg_class WHERE "
				    "relnamespace = 'jobs'::regnamespace");
	/* 4 tables; 7 + 4 + 1 indexes, 4 primary keys, 1 unique
	 * constraint; 3 serial and 1 identity sequences; pgq's limits table
	 * and its primary key */
	cr_expect_eq(in_jobs, 4 + 17 + 4 + 2,
		     "tables, indexes, sequences: %lld", in_jobs);
	cr_expect_eq(
		harness_scalar(c, "SELECT count(*) FROM pg_proc WHERE oid = "
				  "'jobs.fn_pgqueuer_changed()'::regprocedure"),
		1);
	cr_expect_eq(harness_scalar(
			     c, "SELECT tgtype FROM pg_trigger WHERE tgrelid = "
				"'jobs.pgqueuer'::regclass AND tgname = "
				"'tg_pgqueuer_changed'"),
		     60);
	cr_expect_eq(
		harness_scalar(
			c, "SELECT count(*) FROM pg_type WHERE typnamespace = "
			   "'jobs'::regnamespace AND typtype = 'e'"),
		1);
	PQfinish(c);
}

Test(schema, install_into_missing_schema_fails_and_says_so, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;

	names(&n, NULL, "nosuch");
	cr_expect_eq(sql_install(c, &n, SQL_DURABLE, &err), -1);
	cr_expect_not_null(strstr(err.message, "schema \"nosuch\" does not "
					       "exist"),
			   "%s", err.message);
	cr_expect_not_null(strstr(err.hint, "CREATE SCHEMA nosuch"), "%s",
			   err.hint);
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pg_namespace "
				       "WHERE nspname = 'nosuch'"),
		     0, "a schema was created");
	PQfinish(c);
}

Test(schema, install_is_all_or_nothing_and_names_the_failing_step,
     .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *cat;

	PQclear(harness_query(c, "CREATE TABLE pgqueuer_schedules (x int)"));
	names(&n, NULL, NULL);
	cr_assert_eq(sql_install(c, &n, SQL_DURABLE, &err), -1);
	cr_expect_eq(strncmp(err.message, "install.schedules: ", 19), 0, "%s",
		     err.message);
	cr_expect_str_eq(err.sqlstate, "42P07");
	cat = catalog(c, "public");
	cr_expect_str_eq(
		cat, "column pgqueuer_schedules.x integer null=YES default=- "
		     "identity=NO\nrelation pgqueuer_schedules r p\n");
	free(cat);
	cr_expect_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	PQfinish(c);
}

Test(schema, uninstall_leaves_nothing, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *report = NULL, *cat;

	install(c, NULL, NULL, SQL_DURABLE);
	PQclear(harness_query(
		c, "INSERT INTO pgqueuer (priority, status, entrypoint) "
		   "VALUES (1, 'queued', 'e')"));
	names(&n, NULL, NULL);
	cr_assert_eq(sql_uninstall(c, &n, &err), 0, "%s", err.message);
	cat = catalog(c, "public");
	cr_expect_str_eq(cat, "");
	free(cat);
	cr_expect_eq(sql_verify(c, &n, false, &report, &err), 0);
	cr_expect_null(report);
	/* Uninstalling again is harmless. */
	cr_expect_eq(sql_uninstall(c, &n, &err), 0, "%s", err.message);
	PQfinish(c);
}

Test(schema, verify_reports_one_line_per_mismatch, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *report = NULL;

	names(&n, NULL, NULL);
	/* Empty database. */
	cr_expect_eq(sql_verify(c, &n, false, &report, &err), 0);
	cr_expect_null(report);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 1);
	cr_assert_not_null(report);
	cr_expect_eq(count_lines(report), 7, "%s", report);
	cr_expect_not_null(strstr(report, "table pgqueuer_log: missing\n"));
	cr_expect_not_null(strstr(report, "type pgqueuer_status: missing\n"));
	cr_expect_not_null(strstr(
		report, "trigger tg_pgqueuer_changed on pgqueuer: missing\n"));
	free(report);

	/* Installed. */
	install(c, NULL, NULL, SQL_DURABLE);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 0, "%s", report);
	cr_expect_null(report);
	cr_expect_eq(sql_verify(c, &n, false, &report, &err), 1);
	cr_assert_not_null(report);
	/* type, 4 tables, 7 + 4 + 1 indexes, function, trigger */
	cr_expect_eq(count_lines(report), 19, "%s", report);
	cr_expect_not_null(
		strstr(report,
		       "index pgqueuer_ep_ea_idx: present, expected absent\n"));
	free(report);

	/* Damaged. */
	PQclear(harness_query(c, "ALTER TABLE pgqueuer DROP COLUMN attempts"));
	PQclear(harness_query(c, "DROP INDEX pgqueuer_ep_ea_idx"));
	PQclear(harness_query(c, "ALTER TABLE pgqueuer ALTER COLUMN headers "
				 "TYPE json"));
	PQclear(harness_query(c,
			      "DROP TRIGGER tg_pgqueuer_changed ON pgqueuer"));
	PQclear(harness_query(
		c,
		"CREATE TRIGGER tg_pgqueuer_changed AFTER INSERT ON pgqueuer "
		"FOR EACH ROW EXECUTE FUNCTION fn_pgqueuer_changed()"));
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 1);
	cr_assert_not_null(report);
	cr_expect_str_eq(
		report,
		"column pgqueuer.headers: type json, expected jsonb\n"
		"column pgqueuer.attempts: missing\n"
		"index pgqueuer_ep_ea_idx: missing\n"
		"trigger tg_pgqueuer_changed on pgqueuer: not AFTER INSERT OR "
		"UPDATE OR DELETE OR TRUNCATE FOR EACH STATEMENT (tgtype 5)\n");
	free(report);
	PQfinish(c);
}

Test(schema, upgrade_twice_changes_nothing, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *before, *after;
	long long trigger_oid;

	install(c, NULL, NULL, SQL_DURABLE);
	before = catalog(c, "public");
	trigger_oid = harness_scalar(c, "SELECT oid FROM pg_trigger WHERE "
					"tgname = 'tg_pgqueuer_changed'");
	names(&n, NULL, NULL);
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	after = catalog(c, "public");
	cr_expect_str_eq(after, before);
	cr_expect_eq(harness_scalar(c, "SELECT oid FROM pg_trigger WHERE "
				       "tgname = 'tg_pgqueuer_changed'"),
		     trigger_oid, "the trigger was recreated");
	free(before);
	free(after);
	PQfinish(c);
}

Test(schema, upgrade_restores_what_an_older_layout_lacks, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *want, *got, *report = NULL;

	install(c, NULL, NULL, SQL_DURABLE);
	want = catalog(c, "public");
	PQclear(harness_query(c, "ALTER TABLE pgqueuer DROP COLUMN dedupe_key, "
				 "DROP COLUMN headers, DROP COLUMN attempts, "
				 "DROP COLUMN heartbeat, DROP COLUMN slot"));
	PQclear(harness_query(c, "DROP INDEX pgqueuer_ep_ea_idx, "
				 "pgqueuer_ep_prio_id_idx, "
				 "pgqueuer_log_job_id_status, "
				 "pgqueuer_statistics_unique_count"));
	PQclear(harness_query(c, "ALTER TABLE pgqueuer_log DROP COLUMN "
				 "traceback"));
	PQclear(harness_query(c, "DROP TABLE pgqueuer_schedules"));
	PQclear(harness_query(c, "DROP TRIGGER tg_pgqueuer_changed ON "
				 "pgqueuer"));
	names(&n, NULL, NULL);
	cr_assert_eq(sql_verify(c, &n, true, &report, &err), 1);
	free(report);
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	got = catalog(c, "public");
	cr_expect_str_eq(got, want);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 0, "%s", report);
	free(report);
	free(want);
	free(got);
	PQfinish(c);
}

Test(schema, upgrade_brings_an_early_pgqueuer_layout_to_current, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *report = NULL;

	/* The shape of PgQueuer's first releases: two enum values, SERIAL
	 * ids, a separate statistics enum keyed also by time_in_queue, no
	 * log or schedules table. */
	PQclear(harness_query(
		c,
		"CREATE TYPE pgqueuer_status AS ENUM ('queued', 'picked');"
		"CREATE TABLE pgqueuer (id SERIAL PRIMARY KEY, priority INT "
		"NOT "
		"NULL, created TIMESTAMPTZ DEFAULT NOW() NOT NULL, updated "
		"TIMESTAMPTZ DEFAULT NOW() NOT NULL, status pgqueuer_status "
		"NOT "
		"NULL, entrypoint TEXT NOT NULL, payload BYTEA);"
		"CREATE INDEX pgqueuer_priority_id_id1_idx ON pgqueuer "
		"(priority ASC, id DESC) INCLUDE (id) WHERE status = 'queued';"
		"CREATE TYPE pgqueuer_statistics_status AS ENUM ('exception', "
		"'successful', 'canceled');"
		"CREATE TABLE pgqueuer_statistics (id SERIAL PRIMARY KEY, "
		"created TIMESTAMPTZ NOT NULL DEFAULT DATE_TRUNC('sec', "
		"NOW() AT TIME ZONE 'UTC'), count BIGINT NOT NULL, "
		"priority INT NOT NULL, time_in_queue INTERVAL NOT NULL, "
		"status pgqueuer_statistics_status NOT NULL, "
		"entrypoint TEXT NOT NULL);"
		"CREATE UNIQUE INDEX pgqueuer_statistics_unique_count ON "
		"pgqueuer_statistics (priority, DATE_TRUNC('sec', created AT "
		"TIME ZONE 'UTC'), DATE_TRUNC('sec', time_in_queue), status, "
		"entrypoint);"
		"INSERT INTO pgqueuer (priority, status, entrypoint) "
		"VALUES (3, 'queued', 'old');"
		"INSERT INTO pgqueuer_statistics (created, count, priority, "
		"time_in_queue, status, entrypoint) VALUES "
		"('2024-01-01 10:00:00.2+00', 2, 0, '1 s', 'successful', "
		"'old'), "
		"('2024-01-01 10:00:00.7+00', 3, 0, '5 s', 'successful', "
		"'old'), "
		"('2024-01-01 10:00:01+00', 1, 0, '5 s', 'successful', "
		"'old')"));
	names(&n, NULL, NULL);
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 0, "%s", report);
	free(report);
	cr_expect_str_eq(
		harness_text(c, "SELECT string_agg(enumlabel, ',' ORDER BY "
				"enumsortorder) FROM pg_enum WHERE enumtypid = "
				"'pgqueuer_status'::regtype"),
		"queued,picked,successful,exception,canceled,deleted,failed");
	/* The rows survive with the new columns' defaults. */
	cr_expect_str_eq(
		harness_text(c, "SELECT entrypoint || attempts || status || "
				"(dedupe_key IS NULL) FROM pgqueuer"),
		"old0queuedtrue");
	/* Rows that differed only by time_in_queue are merged. */
	cr_expect_str_eq(harness_text(c, "SELECT string_agg(status::text || "
					 "count, ',' ORDER BY created) FROM "
					 "pgqueuer_statistics"),
			 "successful5,successful1");
	cr_expect_str_eq(harness_text(c,
				      "SELECT format_type(seqtypid, NULL) FROM "
				      "pg_sequence WHERE seqrelid = "
				      "'pgqueuer_id_seq'::regclass"),
			 "bigint");
	PQfinish(c);
}

Test(schema, durability_levels_set_relpersistence, .timeout = 60)
{
	static const struct {
		enum sql_durability d;
		const char *want; /* queue, log, schedules, statistics */
	} levels[] = {
		{SQL_BALANCED, "p,u,p,u"},
		{SQL_VOLATILE, "u,u,u,u"},
		{SQL_DURABLE, "p,p,p,p"},
		{SQL_BALANCED, "p,u,p,u"},
	};
	static const char *q = "SELECT string_agg(relpersistence::text, ',' "
			       "ORDER BY relname) FROM pg_class WHERE relname "
			       "IN ('pgqueuer', 'pgqueuer_log', "
			       "'pgqueuer_schedules', 'pgqueuer_statistics')";
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;

	names(&n, NULL, NULL);
	install(c, NULL, NULL, SQL_DURABLE);
	cr_expect_str_eq(harness_text(c, "%s", q), "p,p,p,p");
	for (size_t i = 0; i < PGQ_NELEM(levels); i++) {
		cr_assert_eq(sql_set_durability(c, &n, levels[i].d, &err), 0,
			     "%s", err.message);
		cr_expect_str_eq(harness_text(c, "%s", q), levels[i].want,
				 "level %s", sql_durability_name(levels[i].d));
	}
	PQfinish(c);

	c = fresh_db();
	install(c, NULL, NULL, SQL_VOLATILE);
	cr_expect_str_eq(harness_text(c, "%s", q), "u,u,u,u");
	PQfinish(c);
	c = fresh_db();
	install(c, NULL, NULL, SQL_BALANCED);
	cr_expect_str_eq(harness_text(c, "%s", q), "p,u,p,u");
	PQfinish(c);
}

Test(schema, autovac_sets_storage_parameters, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;

	names(&n, NULL, NULL);
	install(c, NULL, NULL, SQL_DURABLE);
	cr_assert_eq(sql_autovac(c, &n, &err), 0, "%s", err.message);
	cr_expect_not_null(
		strstr(harness_text(c, "SELECT array_to_string(reloptions, "
				       "',') FROM pg_class WHERE relname = "
				       "'pgqueuer'"),
		       "autovacuum_vacuum_scale_factor=0.01"));
	cr_expect_not_null(
		strstr(harness_text(c, "SELECT array_to_string(reloptions, "
				       "',') FROM pg_class WHERE relname = "
				       "'pgqueuer_log'"),
		       "autovacuum_vacuum_scale_factor=0.05"));
	PQfinish(c);
}

/* Checks one table_changed_event payload. */
static void
expect_event(const char *payload, const char *operation)
{
	json_error_t jerr;
	json_t *obj = json_loads(payload, 0, &jerr);

	cr_assert_not_null(obj, "not JSON: %s", payload);
	expect_member(obj, "channel", "ch_pgqueuer");
	expect_member(obj, "operation", operation);
	expect_member(obj, "table", "pgqueuer");
	expect_member(obj, "type", "table_changed_event");
	cr_expect(json_is_string(json_object_get(obj, "sent_at")), "%s",
		  payload);
	cr_expect_eq(json_object_size(obj), 5, "%s", payload);
	json_decref(obj);
}

Test(schema, trigger_notifies_once_per_statement_and_never_on_update,
     .timeout = 60)
{
	const char *conninfo = harness_db_new(true);
	PGconn *l = harness_connect(conninfo), *w = harness_connect(conninfo);
	char *got[8];
	int n;

	PQclear(harness_query(l, "LISTEN ch_pgqueuer"));

	PQclear(harness_query(
		w, "INSERT INTO pgqueuer (priority, status, entrypoint) "
		   "SELECT i, 'queued', 'e' FROM generate_series(1, 3) i"));
	sentinel(w, "ch_pgqueuer", "s1");
	n = collect(l, "s1", got, 8);
	cr_assert_eq(n, 1, "insert of 3 rows: %d notifications", n);
	expect_event(got[0], "insert");
	free(got[0]);

	PQclear(harness_query(w,
			      "UPDATE pgqueuer SET priority = priority + 1"));
	sentinel(w, "ch_pgqueuer", "s2");
	n = collect(l, "s2", got, 8);
	cr_expect_eq(n, 0, "update: %d notifications", n);
	for (int i = 0; i < n && i < 8; i++)
		free(got[i]);

	PQclear(harness_query(w, "DELETE FROM pgqueuer WHERE priority < 4"));
	sentinel(w, "ch_pgqueuer", "s3");
	n = collect(l, "s3", got, 8);
	cr_assert_eq(n, 1, "delete: %d notifications", n);
	expect_event(got[0], "delete");
	free(got[0]);

	PQclear(harness_query(w, "TRUNCATE pgqueuer"));
	sentinel(w, "ch_pgqueuer", "s4");
	n = collect(l, "s4", got, 8);
	cr_assert_eq(n, 1, "truncate: %d notifications", n);
	expect_event(got[0], "truncate");
	free(got[0]);

	PQfinish(w);
	PQfinish(l);
}

Test(schema, upgrade_with_prefix_and_schema_is_idempotent, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *before, *after, *report = NULL;

	PQclear(harness_query(c, "CREATE SCHEMA jobs"));
	install(c, "Q_", "jobs", SQL_BALANCED);
	names(&n, "Q_", "jobs");
	before = catalog(c, "jobs");
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	after = catalog(c, "jobs");
	cr_expect_str_eq(after, before);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 0, "%s", report);
	free(report);
	free(before);
	free(after);
	PQfinish(c);
}

Test(schema, upgrade_of_an_empty_database_says_to_install, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;

	names(&n, NULL, NULL);
	cr_expect_eq(sql_upgrade(c, &n, &err), -1);
	cr_expect_eq(err.klass, PGQ_ERR_UNDEFINED_TABLE, "%s: %s",
		     pgq_error_class_name(err.klass), err.message);
	cr_expect_eq(strncmp(err.message, "upgrade.", 8), 0, "%s", err.message);
	PQfinish(c);
}

/* The layout sql_layout finds. */
static enum sql_layout
layout(PGconn *c, const struct sql_names *n)
{
	struct pgq_error err;
	enum sql_layout l = SQL_LAYOUT_NONE;

	cr_assert_eq(sql_layout(c, n, &l, &err), 0, "%s", err.message);
	return l;
}

Test(schema, verify_accepts_the_13_and_14_layouts_and_says_which, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *report = NULL;

	names(&n, NULL, NULL);
	cr_expect_eq(layout(c, &n), SQL_LAYOUT_NONE);
	install(c, NULL, NULL, SQL_DURABLE);
	cr_expect_eq(layout(c, &n), SQL_LAYOUT_1_4);
	cr_expect_str_eq(sql_layout_name(SQL_LAYOUT_1_4), "PgQueuer 1.4");

	/* 1.3: no slot column, no slot index; still a valid queue. */
	PQclear(harness_query(c, "ALTER TABLE pgqueuer DROP COLUMN slot"));
	cr_expect_eq(layout(c, &n), SQL_LAYOUT_1_3);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 0, "%s", report);
	free(report);

	/* The column without its index: an upgrade that did not finish. */
	PQclear(harness_query(c, "ALTER TABLE pgqueuer ADD COLUMN slot "
				 "BIGINT"));
	cr_expect_eq(layout(c, &n), SQL_LAYOUT_PARTIAL);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 1);
	cr_expect_str_eq(report, "index pgqueuer_picked_slot_idx: missing (the "
				 "slot column is there: pgq upgrade builds "
				 "it)\n");
	free(report);

	/* A concurrent build that failed leaves an invalid index. */
	PQclear(harness_query(
		c, "INSERT INTO pgqueuer (priority, status, entrypoint, slot) "
		   "VALUES (0, 'picked', 'e', 0), (0, 'picked', 'e', 0)"));
	PQclear(PQexec(c, "CREATE UNIQUE INDEX CONCURRENTLY "
			  "pgqueuer_picked_slot_idx ON pgqueuer "
			  "(entrypoint, slot) WHERE status = 'picked' AND "
			  "slot IS NOT NULL"));
	cr_expect_eq(harness_scalar(c, "SELECT count(*) FROM pg_index WHERE "
				       "NOT indisvalid AND indexrelid = "
				       "'pgqueuer_picked_slot_idx'::regclass"),
		     1);
	cr_expect_eq(layout(c, &n), SQL_LAYOUT_PARTIAL);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 1);
	cr_expect_str_eq(report, "index pgqueuer_picked_slot_idx: invalid or "
				 "not unique (drop it and run pgq upgrade)\n");
	free(report);
	/* The upgrade keeps such an index (IF NOT EXISTS): it says so. */
	PQclear(harness_query(c, "DELETE FROM pgqueuer"));
	cr_expect_eq(sql_upgrade(c, &n, &err), -1);
	cr_expect_not_null(strstr(err.message, "invalid"), "%s", err.message);
	cr_expect_not_null(strstr(err.hint, "DROP INDEX "
					    "pgqueuer_picked_slot_idx"),
			   "%s", err.hint);
	PQclear(harness_query(c, "DROP INDEX pgqueuer_picked_slot_idx"));
	cr_expect_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	cr_expect_eq(layout(c, &n), SQL_LAYOUT_1_4);
	PQfinish(c);
}

Test(schema, upgrade_from_13_adds_the_slots_and_keeps_picked_jobs,
     .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *want, *got, *again;

	install(c, NULL, NULL, SQL_DURABLE);
	want = catalog(c, "public");
	PQclear(harness_query(c, "ALTER TABLE pgqueuer DROP COLUMN slot"));
	PQclear(harness_query(
		c, "INSERT INTO pgqueuer (priority, status, entrypoint, "
		   "queue_manager_id) VALUES (0, 'picked', 'e', "
		   "gen_random_uuid()), (0, 'queued', 'e', NULL)"));
	names(&n, NULL, NULL);
	cr_assert_eq(layout(c, &n), SQL_LAYOUT_1_3);
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	cr_expect_eq(layout(c, &n), SQL_LAYOUT_1_4);
	got = catalog(c, "public");
	cr_expect_str_eq(got, want);
	/* The job picked before keeps no slot; nothing else changed. */
	cr_expect_str_eq(harness_text(c, "SELECT string_agg(status || ':' || "
					 "coalesce(slot::text, '-'), ',' "
					 "ORDER BY id) FROM pgqueuer"),
			 "picked:-,queued:-");
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	again = catalog(c, "public");
	cr_expect_str_eq(again, want);
	free(want);
	free(got);
	free(again);
	PQfinish(c);
}

/* Gives the prefixed queue's function and trigger the names older pgq
 * gave them. */
static void
old_pgq_names(PGconn *c)
{
	PQclear(harness_query(c, "ALTER TRIGGER app_tg_pgqueuer_changed ON "
				 "app_pgqueuer RENAME TO "
				 "tg_app_pgqueuer_changed"));
	PQclear(harness_query(c, "ALTER FUNCTION app_fn_pgqueuer_changed() "
				 "RENAME TO fn_app_pgqueuer_changed"));
}

Test(schema, upgrade_renames_the_trigger_names_older_pgq_gave, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *want, *got, *report = NULL;

	install(c, "App_", NULL, SQL_DURABLE);
	want = catalog(c, "public");
	old_pgq_names(c);
	names(&n, "App_", NULL);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 1);
	cr_expect_str_eq(report,
			 "function app_fn_pgqueuer_changed: missing (found "
			 "fn_app_pgqueuer_changed, the name older pgq gave "
			 "it: pgq upgrade renames it)\n"
			 "trigger app_tg_pgqueuer_changed on app_pgqueuer: "
			 "missing (found tg_app_pgqueuer_changed, the name "
			 "older pgq gave it: pgq upgrade renames it)\n");
	free(report);
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	got = catalog(c, "public");
	cr_expect_str_eq(got, want);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 0, "%s", report);
	free(report);
	free(want);
	free(got);
	PQfinish(c);
}

Test(schema, upgrade_drops_the_second_trigger_older_pgq_added, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *want, *got, *report = NULL;

	/* PgQueuer's names were there, and an older pgq upgrade added its
	 * own function and trigger beside them. */
	install(c, "App_", NULL, SQL_DURABLE);
	want = catalog(c, "public");
	PQclear(harness_query(
		c, "CREATE FUNCTION fn_app_pgqueuer_changed() RETURNS "
		   "trigger AS $$ BEGIN RETURN NULL; END; $$ LANGUAGE plpgsql; "
		   "CREATE TRIGGER tg_app_pgqueuer_changed AFTER INSERT OR "
		   "UPDATE OR DELETE OR TRUNCATE ON app_pgqueuer FOR EACH "
		   "STATEMENT EXECUTE FUNCTION fn_app_pgqueuer_changed()"));
	names(&n, "App_", NULL);
	cr_expect_eq(sql_verify(c, &n, true, &report, &err), 1);
	cr_expect_str_eq(report, "trigger tg_app_pgqueuer_changed on "
				 "app_pgqueuer: present, expected absent (the "
				 "name older pgq gave it: pgq upgrade drops "
				 "it)\n");
	free(report);
	cr_assert_eq(sql_upgrade(c, &n, &err), 0, "%s", err.message);
	got = catalog(c, "public");
	cr_expect_str_eq(got, want);
	free(want);
	free(got);
	PQfinish(c);
}

Test(schema, uninstall_with_a_prefix_also_drops_the_old_function, .timeout = 60)
{
	PGconn *c = fresh_db();
	struct sql_names n;
	struct pgq_error err;
	char *cat, *report = NULL;

	install(c, "App_", NULL, SQL_DURABLE);
	old_pgq_names(c);
	names(&n, "App_", NULL);
	cr_assert_eq(sql_uninstall(c, &n, &err), 0, "%s", err.message);
	cat = catalog(c, "public");
	cr_expect_str_eq(cat, "");
	free(cat);
	cr_expect_eq(sql_verify(c, &n, false, &report, &err), 0, "%s", report);
	free(report);

	/* The old function left alone (its queue uninstalled by an older
	 * pgq, which kept PgQueuer's) is reported, then dropped. */
	PQclear(harness_query(c, "CREATE FUNCTION fn_app_pgqueuer_changed() "
				 "RETURNS trigger AS $$ BEGIN RETURN NULL; "
				 "END; $$ LANGUAGE plpgsql"));
	cr_expect_eq(sql_verify(c, &n, false, &report, &err), 1);
	cr_expect_str_eq(report, "function fn_app_pgqueuer_changed: present, "
				 "expected absent\n");
	free(report);
	cr_assert_eq(sql_uninstall(c, &n, &err), 0, "%s", err.message);
	cat = catalog(c, "public");
	cr_expect_str_eq(cat, "");
	free(cat);
	PQfinish(c);
}
