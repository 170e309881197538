/* The run-time statements of sql/queries.sql against a real database. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>

#include "sql/sql.h"
#include "tests/harness/harness.h"

Test(queries, every_statement_prepares, .timeout = 60)
{
	PGconn *c = harness_connect(harness_db_new(true));
	struct sql_names n;
	struct pgq_error err;

	cr_assert_eq(sql_names_init(&n, NULL, NULL, NULL, &err), 0);
	for (int i = 0; i < SQL_STMT_COUNT; i++) {
		char *s = sql_stmt_render((enum sql_stmt)i, &n);
		PGresult *r = PQprepare(c, sql_stmt_name((enum sql_stmt)i), s,
		    0, NULL);

		cr_expect_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s",
		    sql_stmt_name((enum sql_stmt)i), PQerrorMessage(c));
		PQclear(r);
		free(s);
	}
	PQfinish(c);
}
