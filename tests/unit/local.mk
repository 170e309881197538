# tests/unit/: suites register here

# common/cron.c and [schedule NAME] (helper "sched")
check_PROGRAMS += tests/unit/test_cron
TESTS += tests/unit/test_cron
tests_unit_test_cron_SOURCES = tests/unit/test_cron.c
tests_unit_test_cron_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_cron_LDADD = $(TEST_LIBS)
