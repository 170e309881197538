# sql/: PgQueuer's schema and pgq's statements. The .sql files are split into
# named sections and compiled into sql/sql_text.c (build dir) by embed.sh.
libpgq_core_la_SOURCES += sql/sql.h sql/sql_int.h sql/names.c \
	sql/render.c sql/schema.c sql/verify.c sql/session.c
nodist_libpgq_core_la_SOURCES = sql/sql_text.c
BUILT_SOURCES += sql/sql_text.c
CLEANFILES += sql/sql_text.c
EXTRA_DIST += sql/embed.sh sql/schema.sql sql/queries.sql \
	tests/compat/pgqueuer-1.3-install.sql \
	tests/compat/pgqueuer-1.3-queries.sql \
	tests/compat/pgqueuer-1.4-install.sql \
	tests/compat/pgqueuer-1.4-queries.sql \
	tests/compat/pgqueuer-1.4-upgrade.sql

sql/sql_text.c: $(srcdir)/sql/embed.sh $(srcdir)/sql/schema.sql \
		$(srcdir)/sql/queries.sql
	$(AM_V_GEN)$(MKDIR_P) sql && \
	$(SHELL) $(srcdir)/sql/embed.sh $(srcdir)/sql/schema.sql \
		$(srcdir)/sql/queries.sql >$@.tmp && mv $@.tmp $@

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_sql_names tests/db/test_schema \
	tests/db/test_queries tests/db/test_compat
TESTS += tests/unit/test_sql_names tests/db/test_schema tests/db/test_queries \
	tests/db/test_compat
tests_unit_test_sql_names_SOURCES = tests/unit/test_sql_names.c
tests_unit_test_sql_names_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_sql_names_LDADD = $(TEST_LIBS)
tests_db_test_schema_SOURCES = tests/db/test_schema.c
tests_db_test_schema_CFLAGS = $(TEST_CFLAGS)
tests_db_test_schema_LDADD = $(TEST_LIBS)
tests_db_test_queries_SOURCES = tests/db/test_queries.c
tests_db_test_queries_CFLAGS = $(TEST_CFLAGS)
tests_db_test_queries_LDADD = $(TEST_LIBS)
# PgQueuer's statements (tests/compat/) against pgq's queues and back
tests_db_test_compat_SOURCES = tests/db/test_compat.c
tests_db_test_compat_CFLAGS = $(TEST_CFLAGS)
tests_db_test_compat_LDADD = $(TEST_LIBS)
endif
