# tests/db/: suites register here

# statistics, prune, schedules (helper "sched"); runs the pgq binary
check_PROGRAMS += tests/db/test_stats
TESTS += tests/db/test_stats
tests_db_test_stats_SOURCES = tests/db/test_stats.c
tests_db_test_stats_CFLAGS = $(TEST_CFLAGS)
tests_db_test_stats_LDADD = $(TEST_LIBS)
EXTRA_tests_db_test_stats_DEPENDENCIES = pgq$(EXEEXT)

# max_payload at enqueue (helper "harden"); runs the pgq binary
check_PROGRAMS += tests/db/test_payload
TESTS += tests/db/test_payload
tests_db_test_payload_SOURCES = tests/db/test_payload.c
tests_db_test_payload_CFLAGS = $(TEST_CFLAGS)
tests_db_test_payload_LDADD = $(TEST_LIBS)
EXTRA_tests_db_test_payload_DEPENDENCIES = pgq$(EXEEXT)
