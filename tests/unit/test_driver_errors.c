/*
 * Error classes from SQLSTATE, and the hints that go with them, for results
 * built on the client side (no server needed); the choice of conninfo, the
 * connect keywords and the password-free connection messages.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/driver.h"

Test(driver_errors, sqlstates_map_to_classes)
{
	static const struct {
		const char *state;
		enum pgq_error_class klass;
	} cases[] = {
		{"08006", PGQ_ERR_CONNECTION},
		{"08001", PGQ_ERR_CONNECTION},
		{"08P01", PGQ_ERR_CONNECTION},
		{"57P01", PGQ_ERR_CONNECTION},
		{"57P02", PGQ_ERR_CONNECTION},
		{"57P03", PGQ_ERR_CONNECTION},
		{"23505", PGQ_ERR_UNIQUE},
		{"42P01", PGQ_ERR_UNDEFINED_TABLE},
		{"42704", PGQ_ERR_UNDEFINED_TABLE},
		{"40001", PGQ_ERR_SERIALIZATION},
		{"40P01", PGQ_ERR_SERIALIZATION},
		{"42703", PGQ_ERR_UNDEFINED_TABLE},
		{"3F000", PGQ_ERR_UNDEFINED_TABLE},
		{"25006", PGQ_ERR_READ_ONLY},
		{"28P01", PGQ_ERR_AUTH},
		{"28000", PGQ_ERR_AUTH},
		{"3D000", PGQ_ERR_AUTH},
		{"42501", PGQ_ERR_PERMISSION},
		{"54000", PGQ_ERR_LIMIT},
		{"22P02", PGQ_ERR_OTHER},
		{"23503", PGQ_ERR_OTHER},
		{"57014", PGQ_ERR_OTHER},
		{"XX000", PGQ_ERR_OTHER},
		{"", PGQ_ERR_CONNECTION},
		{NULL, PGQ_ERR_CONNECTION},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++)
		cr_expect_eq(driver_error_classify(cases[i].state),
			     cases[i].klass, "sqlstate \"%s\": got %d",
			     cases[i].state != NULL ? cases[i].state : "(null)",
			     driver_error_classify(cases[i].state));
}

/* What a drain stops on, and what it waits out. */
Test(driver_errors, fatal_classes_are_those_waiting_cannot_cure)
{
	static const struct {
		enum pgq_error_class klass;
		bool fatal;
		const char *cause;
	} cases[] = {
		{PGQ_ERR_UNDEFINED_TABLE, true, "the queue tables are missing"},
		{PGQ_ERR_READ_ONLY, true, "the database is read-only"},
		{PGQ_ERR_AUTH, true, "the server refused the login"},
		{PGQ_ERR_PERMISSION, true, "permission denied"},
		{PGQ_ERR_CHECK, true, "the connection check failed"},
		{PGQ_ERR_INVALID, true, "invalid settings"},
		{PGQ_ERR_CONNECTION, false, "the database cannot be reached"},
		{PGQ_ERR_SERIALIZATION, false, "a database error"},
		{PGQ_ERR_UNIQUE, false, "a database error"},
		{PGQ_ERR_LIMIT, false, "a database error"},
		{PGQ_ERR_OTHER, false, "a database error"},
	};
	struct pgq_error err;

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		driver_error_set(&err, cases[i].klass, "x");
		cr_expect_eq(driver_error_fatal(&err), cases[i].fatal,
			     "class %s", pgq_error_class_name(cases[i].klass));
		cr_expect_str_eq(driver_error_cause(&err), cases[i].cause);
	}
	driver_error_set(&err, PGQ_ERR_UNDEFINED_TABLE, "x");
	snprintf(err.sqlstate, sizeof(err.sqlstate), "42703");
	cr_expect_str_eq(driver_error_cause(&err),
			 "the queue has an older layout");
	cr_expect_str_eq(pgq_error_class_name(PGQ_ERR_READ_ONLY), "read_only");
	cr_expect_str_eq(pgq_error_class_name(PGQ_ERR_AUTH), "authentication");
	cr_expect_str_eq(pgq_error_class_name(PGQ_ERR_PERMISSION),
			 "insufficient_privilege");
}

/* A retry loop says its cause once, again when it changes, and its end. */
Test(driver_errors, trouble_is_noted_once_per_cause_and_ends_once)
{
	struct driver_trouble t;
	struct pgq_error conn, table;
	unsigned failures = 0;
	uint64_t lasted = 0;

	memset(&t, 0, sizeof(t));
	driver_error_set(&conn, PGQ_ERR_CONNECTION, "gone");
	driver_error_set(&table, PGQ_ERR_UNDEFINED_TABLE, "no table");
	snprintf(table.sqlstate, sizeof(table.sqlstate), "42P01");
	cr_expect(!driver_trouble_over(&t, &failures, &lasted));
	cr_expect(driver_trouble_note(&t, &conn));
	cr_expect(!driver_trouble_note(&t, &conn));
	cr_expect(!driver_trouble_note(&t, &conn));
	cr_expect(driver_trouble_note(&t, &table));
	cr_expect(!driver_trouble_note(&t, &table));
	cr_expect(driver_trouble_over(&t, &failures, &lasted));
	cr_expect_eq(failures, 5);
	cr_expect(!driver_trouble_over(&t, &failures, &lasted));
	cr_expect(driver_trouble_note(&t, &table));
}

Test(driver_errors, set_hint_and_clear)
{
	struct pgq_error err;

	driver_error_set(&err, PGQ_ERR_CHECK, "bad %s n=%d", "thing", 3);
	cr_expect_eq(err.klass, PGQ_ERR_CHECK);
	cr_expect_str_eq(err.message, "bad thing n=3");
	cr_expect_str_eq(err.sqlstate, "");
	cr_expect_str_eq(err.hint, "");
	driver_error_hint(&err, "do %s", "this");
	cr_expect_str_eq(err.hint, "do this");
	driver_error_clear(&err);
	cr_expect_eq(err.klass, PGQ_OK);
	cr_expect_str_eq(err.message, "");
	/* NULL is accepted everywhere. */
	driver_error_set(NULL, PGQ_ERR_OTHER, "x");
	driver_error_hint(NULL, "x");
	driver_error_clear(NULL);
	driver_error_from_result(NULL, NULL, NULL);
}

Test(driver_errors, long_messages_are_truncated_safely)
{
	struct pgq_error err;
	char big[2000];

	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	driver_error_set(&err, PGQ_ERR_OTHER, "%s", big);
	cr_expect_eq(strlen(err.message), sizeof(err.message) - 1);
	driver_error_hint(&err, "%s", big);
	cr_expect_eq(strlen(err.hint), sizeof(err.hint) - 1);
}

Test(driver_errors, no_connection_and_no_result_is_a_connection_error)
{
	struct pgq_error err;

	driver_error_from_result(&err, NULL, NULL);
	cr_expect_eq(err.klass, PGQ_ERR_CONNECTION);
	cr_expect_str_eq(err.message, "unknown error");
	cr_expect(err.hint[0] != '\0');
}

Test(driver_errors, a_dead_connection_gives_its_message)
{
	struct pgq_error err;
	/* Refused at once: a port nothing listens on, on a path socket. */
	PGconn *c = PQconnectdb("host=/nonexistent/pgq-test port=1 "
				"connect_timeout=2");

	cr_assert_neq(PQstatus(c), CONNECTION_OK);
	driver_error_from_result(&err, c, NULL);
	cr_expect_eq(err.klass, PGQ_ERR_CONNECTION);
	cr_expect(strstr(err.message, "nonexistent") != NULL, "%s",
		  err.message);
	cr_expect(err.message[strlen(err.message) - 1] != '\n');
	PQfinish(c);
}

struct conninfo_case {
	const char *given;	  /* driver_conninfo's argument */
	const char *pgqueuer_dsn; /* NULL = unset */
	const char *pgdsn;
	const char *want;
	const char *source; /* NULL = none */
};

static void
setenv_or_unset(const char *name, const char *value)
{
	if (value == NULL)
		unsetenv(name);
	else
		setenv(name, value, 1);
}

Test(driver_conn, an_empty_variable_counts_as_unset)
{
	static const struct conninfo_case cases[] = {
		{"dbname=x", "dbname=q", "dbname=p", "dbname=x", NULL},
		{"", "dbname=q", "dbname=p", "", NULL},
		{NULL, "dbname=q", "dbname=p", "dbname=q", "PGQUEUER_DSN"},
		{NULL, "", "dbname=p", "dbname=p", "PGDSN"},
		{NULL, NULL, "dbname=p", "dbname=p", "PGDSN"},
		{NULL, "", "", "", NULL},
		{NULL, NULL, NULL, "", NULL},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		const struct conninfo_case *c = &cases[i];
		const char *source = "junk";

		setenv_or_unset("PGQUEUER_DSN", c->pgqueuer_dsn);
		setenv_or_unset("PGDSN", c->pgdsn);
		cr_expect_str_eq(driver_conninfo(c->given, &source), c->want,
				 "case %zu", i);
		if (c->source == NULL)
			cr_expect_null(source, "case %zu", i);
		else
			cr_expect_str_eq(source, c->source, "case %zu", i);
	}
}

Test(driver_conn, the_callers_conninfo_comes_last_and_wins)
{
	struct driver_params p;
	size_t n = 0;

	driver_params_init(&p, "keepalives_idle=5 dbname=q", "pgq-master");
	while (p.keys[n] != NULL)
		n++;
	cr_assert_eq(n, DRIVER_PARAMS_MAX - 1);
	cr_expect_null(p.values[n]);
	cr_expect_str_eq(p.keys[n - 1], "dbname");
	cr_expect_str_eq(p.values[n - 1], "keepalives_idle=5 dbname=q");
	cr_expect_str_eq(p.keys[n - 2], "fallback_application_name");
	cr_expect_str_eq(p.values[n - 2], "pgq-master");
	cr_expect_str_eq(p.keys[0], "keepalives");
	cr_expect_str_eq(p.values[0], "1");
}

Test(driver_conn, connection_messages_hide_the_password)
{
	PGconn *conn;
	char msg[512];

	/* libpq quotes the socket path, which here holds the password. */
	conn = PQconnectdb("host=/nonexistent-pgq-Sekrit_Pw_9 port=5 "
			   "password=Sekrit_Pw_9");
	cr_assert_not_null(conn);
	cr_assert_eq(PQstatus(conn), CONNECTION_BAD);
	cr_assert(strstr(PQerrorMessage(conn), "Sekrit_Pw_9") != NULL,
		  "libpq no longer names the path: %s", PQerrorMessage(conn));
	driver_conn_message(conn, msg, sizeof(msg));
	cr_expect(strstr(msg, "Sekrit_Pw_9") == NULL, "%s", msg);
	cr_expect(strstr(msg, "/nonexistent-pgq-***") != NULL, "%s", msg);
	cr_expect(strchr(msg, '\n') == NULL, "%s", msg);
	PQfinish(conn);
	driver_conn_message(NULL, msg, sizeof(msg));
	cr_expect_str_eq(msg, "");
}
