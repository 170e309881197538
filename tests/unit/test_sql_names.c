/*
 * sql/ without a database: name validation and rendering (defaults, prefix,
 * schema, channel), refusal of injection-shaped names, and the statement and
 * script tables (every placeholder replaced, durability applied).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql.h"

Test(sql_names, defaults_are_pgqueuer_names)
{
	struct sql_names n;
	struct pgq_error err;

	cr_assert_eq(sql_names_init(&n, NULL, NULL, NULL, &err), 0);
	cr_expect_str_eq(n.queue, "pgqueuer");
	cr_expect_str_eq(n.queue_bare, "pgqueuer");
	cr_expect_str_eq(n.log, "pgqueuer_log");
	cr_expect_str_eq(n.statistics, "pgqueuer_statistics");
	cr_expect_str_eq(n.schedules, "pgqueuer_schedules");
	cr_expect_str_eq(n.status, "pgqueuer_status");
	cr_expect_str_eq(n.function, "fn_pgqueuer_changed");
	cr_expect_str_eq(n.trigger, "tg_pgqueuer_changed");
	/* Without a prefix the old names were PgQueuer's already. */
	cr_expect_str_eq(n.legacy_function, n.function);
	cr_expect_str_eq(n.legacy_trigger, n.trigger);
	cr_expect_str_eq(n.channel, "ch_pgqueuer");
	cr_expect_str_eq(n.schema, "");
	cr_expect_str_eq(n.prefix, "");

	cr_assert_eq(sql_names_init(&n, "", "", "", &err), 0);
	cr_expect_str_eq(n.queue, "pgqueuer");
	cr_expect_str_eq(n.channel, "ch_pgqueuer");
}

Test(sql_names, prefix_goes_before_every_name_and_folds_to_lower_case)
{
	struct sql_names n;
	struct pgq_error err;

	cr_assert_eq(sql_names_init(&n, "MyApp_", NULL, NULL, &err), 0);
	cr_expect_str_eq(n.queue, "myapp_pgqueuer");
	cr_expect_str_eq(n.queue_bare, "myapp_pgqueuer");
	cr_expect_str_eq(n.log, "myapp_pgqueuer_log");
	cr_expect_str_eq(n.statistics_bare, "myapp_pgqueuer_statistics");
	cr_expect_str_eq(n.schedules_bare, "myapp_pgqueuer_schedules");
	cr_expect_str_eq(n.status_bare, "myapp_pgqueuer_status");
	/* PgQueuer's names: the prefix in front of the whole name. */
	cr_expect_str_eq(n.function, "myapp_fn_pgqueuer_changed");
	cr_expect_str_eq(n.trigger, "myapp_tg_pgqueuer_changed");
	/* The names pgq used to give them, which upgrade renames. */
	cr_expect_str_eq(n.legacy_function, "fn_myapp_pgqueuer_changed");
	cr_expect_str_eq(n.legacy_trigger, "tg_myapp_pgqueuer_changed");
	/* The channel is a literal: its case is kept, as PgQueuer keeps it. */
	cr_expect_str_eq(n.channel, "MyApp_ch_pgqueuer");
}

Test(sql_names, schema_qualifies_tables_type_and_function_only)
{
	struct sql_names n;
	struct pgq_error err;

	cr_assert_eq(sql_names_init(&n, "x_", "Jobs", "my_channel", &err), 0);
	cr_expect_str_eq(n.schema, "jobs");
	cr_expect_str_eq(n.queue, "jobs.x_pgqueuer");
	cr_expect_str_eq(n.queue_bare, "x_pgqueuer");
	cr_expect_str_eq(n.log, "jobs.x_pgqueuer_log");
	cr_expect_str_eq(n.statistics, "jobs.x_pgqueuer_statistics");
	cr_expect_str_eq(n.schedules, "jobs.x_pgqueuer_schedules");
	cr_expect_str_eq(n.status, "jobs.x_pgqueuer_status");
	cr_expect_str_eq(n.function, "jobs.x_fn_pgqueuer_changed");
	cr_expect_str_eq(n.function_bare, "x_fn_pgqueuer_changed");
	cr_expect_str_eq(n.trigger, "x_tg_pgqueuer_changed");
	cr_expect_str_eq(n.legacy_function, "jobs.fn_x_pgqueuer_changed");
	cr_expect_str_eq(n.legacy_function_bare, "fn_x_pgqueuer_changed");
	cr_expect_str_eq(n.legacy_trigger, "tg_x_pgqueuer_changed");
	cr_expect_str_eq(n.channel, "my_channel");
}

struct bad_case {
	const char *prefix;
	const char *schema;
	const char *channel;
};

Test(sql_names, injection_shaped_and_overlong_names_are_refused)
{
	static const struct bad_case cases[] = {
		{"x; drop", NULL, NULL},
		{"a\"b", NULL, NULL},
		{"1abc", NULL, NULL},
		{"a b", NULL, NULL},
		{"a-b", NULL, NULL},
		{"a'b", NULL, NULL},
		{"ab\xc3\xa9", NULL, NULL},
		{"abcdefghijklmnopqrstuvwxy", NULL, NULL}, /* 25 bytes */
		{NULL, "x; drop table t", NULL},
		{NULL, "a\"b", NULL},
		{NULL, "1abc", NULL},
		{NULL, "s.t", NULL},
		{NULL,
		 "s23456789012345678901234567890123456789012345678901234"
		 "5678901234", /* 64 bytes */
		 NULL},
		{NULL, NULL, "x; drop"},
		{NULL, NULL, "a\"b"},
		{NULL, NULL, "ch'); select 1; --"},
		{NULL, NULL, "1abc"},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		struct sql_names n;
		struct pgq_error err;

		memset(&err, 0, sizeof(err));
		cr_expect_eq(sql_names_init(&n, cases[i].prefix,
					    cases[i].schema, cases[i].channel,
					    &err),
			     -1, "case %zu accepted", i);
		cr_expect_eq(err.klass, PGQ_ERR_INVALID, "case %zu: class %d",
			     i, (int)err.klass);
		cr_expect_neq(err.message[0], '\0', "case %zu: no message", i);
	}
}

Test(sql_names, longest_prefix_still_fits_every_name)
{
	struct sql_names n;
	struct pgq_error err;
	const char *p = "abcdefghijklmnopqrstuvwx"; /* SQL_PREFIX_MAX */

	cr_assert_eq(strlen(p), SQL_PREFIX_MAX);
	cr_assert_eq(sql_names_init(&n, p, NULL, NULL, &err), 0);
	/* The longest index name: statistics + "_unique_count". */
	cr_expect_leq(strlen(n.statistics_bare) + strlen("_unique_count"),
		      SQL_IDENT_MAX);
	cr_expect_leq(strlen(n.queue_bare) + strlen("_priority_id_id1_idx"),
		      SQL_IDENT_MAX);
	cr_expect_str_eq(n.channel, "abcdefghijklmnopqrstuvwxch_pgqueuer");
}

Test(sql_names, every_statement_renders_without_placeholders_left)
{
	struct sql_names n;
	struct pgq_error err;

	cr_assert_eq(sql_names_init(&n, "pre_", "sch", "chan", &err), 0);
	for (int i = 0; i < SQL_STMT_COUNT; i++) {
		char *s = sql_stmt_render((enum sql_stmt)i, &n);
		const char *name = sql_stmt_name((enum sql_stmt)i);

		cr_assert_not_null(s, "statement %d has no text", i);
		cr_assert_not_null(name);
		cr_expect_eq(strncmp(name, "pgq_", 4), 0, "%s", name);
		cr_expect_null(strchr(s, '{'), "%s: placeholder left: %s", name,
			       strchr(s, '{'));
		cr_expect_null(strstr(s, " pgqueuer"), "%s: an unprefixed name",
			       name);
		for (int j = 0; j < i; j++)
			cr_expect_str_neq(name,
					  sql_stmt_name((enum sql_stmt)j));
		free(s);
	}
	cr_expect_null(sql_stmt_render(SQL_STMT_COUNT, &n));
}

Test(sql_names, statements_use_qualified_tables_and_literal_channel)
{
	struct sql_names n;
	struct pgq_error err;
	char *s;

	cr_assert_eq(sql_names_init(&n, NULL, "jobs", NULL, &err), 0);
	s = sql_stmt_render(SQL_CLAIM, &n);
	cr_expect_not_null(strstr(s, "FROM jobs.pgqueuer q"));
	cr_expect_not_null(strstr(s, "INSERT INTO jobs.pgqueuer_log"));
	free(s);
	s = sql_stmt_render(SQL_RETRY, &n);
	cr_expect_not_null(strstr(s, "pg_notify('ch_pgqueuer'"));
	cr_expect_not_null(strstr(s, "'table', 'pgqueuer'"));
	free(s);
}

static size_t
count_in(const struct sql_script_text *t, const char *needle)
{
	size_t c = 0;

	for (size_t i = 0; i < t->n; i++)
		for (const char *p = t->steps[i];
		     (p = strstr(p, needle)) != NULL; p++)
			c++;
	return c;
}

Test(sql_names, scripts_have_labelled_steps_and_apply_durability)
{
	struct sql_names n;
	struct pgq_error err;
	struct sql_script_text t;

	cr_assert_eq(sql_names_init(&n, NULL, NULL, NULL, &err), 0);
	for (int s = 0; s < SQL_SCRIPT_COUNT; s++) {
		sql_script_render((enum sql_script)s, &n, SQL_DURABLE, &t);
		cr_expect_gt(t.n, 0, "script %d is empty", s);
		for (size_t i = 0; i < t.n; i++) {
			cr_expect_null(strchr(t.steps[i], '{'), "%s",
				       t.labels[i]);
			cr_expect_neq(t.labels[i][0], '\0');
		}
		sql_script_clear(&t);
		cr_expect_eq(t.n, 0);
	}

	sql_script_render(SQL_SCRIPT_INSTALL, &n, SQL_DURABLE, &t);
	cr_expect_eq(count_in(&t, "UNLOGGED"), 0);
	cr_expect_str_eq(t.labels[0], "install.enum");
	sql_script_clear(&t);
	sql_script_render(SQL_SCRIPT_INSTALL, &n, SQL_BALANCED, &t);
	cr_expect_eq(count_in(&t, "CREATE UNLOGGED TABLE"), 2);
	cr_expect_eq(count_in(&t, "CREATE UNLOGGED TABLE pgqueuer_log"), 1);
	cr_expect_eq(count_in(&t, "CREATE UNLOGGED TABLE pgqueuer_statistics"),
		     1);
	sql_script_clear(&t);
	sql_script_render(SQL_SCRIPT_INSTALL, &n, SQL_VOLATILE, &t);
	/* PgQueuer's four tables and pgq's limits table */
	cr_expect_eq(count_in(&t, "CREATE UNLOGGED TABLE"), 5);
	sql_script_clear(&t);

	sql_script_render(SQL_SCRIPT_DURABILITY, &n, SQL_DURABLE, &t);
	cr_expect_eq(count_in(&t, "SET LOGGED"), 5);
	sql_script_clear(&t);
	sql_script_render(SQL_SCRIPT_DURABILITY, &n, SQL_BALANCED, &t);
	cr_expect_eq(count_in(&t, "SET UNLOGGED"), 2);
	/* the limits table follows the queue table */
	cr_expect_eq(count_in(&t, "SET LOGGED"), 3);
	sql_script_clear(&t);
	sql_script_render(SQL_SCRIPT_DURABILITY, &n, SQL_VOLATILE, &t);
	cr_expect_eq(count_in(&t, "SET UNLOGGED"), 5);
	sql_script_clear(&t);

	/* The trigger and index names are never schema-qualified. */
	cr_assert_eq(sql_names_init(&n, NULL, "jobs", NULL, &err), 0);
	sql_script_render(SQL_SCRIPT_INSTALL, &n, SQL_DURABLE, &t);
	cr_expect_eq(count_in(&t, "CREATE TRIGGER tg_pgqueuer_changed"), 1);
	cr_expect_eq(count_in(&t, "TRUNCATE ON jobs.pgqueuer\n"), 1);
	cr_expect_eq(count_in(&t, "CREATE INDEX pgqueuer_ep_ea_idx ON "
				  "jobs.pgqueuer"),
		     1);
	sql_script_clear(&t);
	sql_script_clear(NULL);
}

Test(sql_names, durability_names_round_trip)
{
	enum sql_durability d;

	for (int i = SQL_DURABLE; i <= SQL_VOLATILE; i++) {
		cr_assert(sql_durability_parse(
			sql_durability_name((enum sql_durability)i), &d));
		cr_expect_eq((int)d, i);
	}
	cr_expect_not(sql_durability_parse("DURABLE", &d));
	cr_expect_not(sql_durability_parse("", &d));
	cr_expect_not(sql_durability_parse(NULL, &d));
}
