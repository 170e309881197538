# cli/: the pgq command, its man page and its database suite
bin_PROGRAMS += pgq
pgq_SOURCES = cli/cli.h cli/main.c cli/args.c cli/table.c cli/schema.c \
	cli/queue.c cli/inspect.c cli/control.c cli/listen.c cli/stats.c
pgq_LDADD = libpgq_core.la $(LIBPQ_LIBS) $(JANSSON_LIBS) $(EV_LIBS) -lm

dist_man_MANS += doc/pgq.1

if HAVE_CRITERION
check_PROGRAMS += tests/db/test_cli
TESTS += tests/db/test_cli
tests_db_test_cli_SOURCES = tests/db/test_cli.c
tests_db_test_cli_CFLAGS = $(TEST_CFLAGS)
tests_db_test_cli_LDADD = $(TEST_LIBS)
endif
