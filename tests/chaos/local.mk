# tests/chaos/: the chaos soak (short form in `make check`; scripts/chaos runs
# the long form). Included from tests/local.mk inside `if HAVE_CRITERION`.
check_PROGRAMS += tests/chaos/test_soak
TESTS += tests/chaos/test_soak
tests_chaos_test_soak_SOURCES = tests/chaos/test_soak.c
tests_chaos_test_soak_CFLAGS = $(TEST_CFLAGS)
tests_chaos_test_soak_LDADD = $(TEST_LIBS)
# The soak runs pgq-master and loads the example handler module.
EXTRA_tests_chaos_test_soak_DEPENDENCIES = pgq-master$(EXEEXT) \
	examples/handler_module.la

# Section 2 of issue 6: PostgreSQL failures beyond a restart.
check_PROGRAMS += tests/daemon/test_pgfail
TESTS += tests/daemon/test_pgfail
tests_daemon_test_pgfail_SOURCES = tests/daemon/test_pgfail.c
tests_daemon_test_pgfail_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_pgfail_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_pgfail_DEPENDENCIES = $(DAEMON_DEPS)
