# driver/: libpq layer (checks, errors, execution, LISTEN, backoff)
libpgq_core_la_SOURCES += driver/driver.h driver/error.c driver/exec.c \
	driver/conn.c driver/notify.c driver/async.c driver/backoff.c

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_notify tests/unit/test_backoff \
	tests/unit/test_driver_errors tests/db/test_driver
TESTS += tests/unit/test_notify tests/unit/test_backoff \
	tests/unit/test_driver_errors tests/db/test_driver
tests_unit_test_notify_SOURCES = tests/unit/test_notify.c
tests_unit_test_notify_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_notify_LDADD = $(TEST_LIBS)
tests_unit_test_backoff_SOURCES = tests/unit/test_backoff.c
tests_unit_test_backoff_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_backoff_LDADD = $(TEST_LIBS)
tests_unit_test_driver_errors_SOURCES = tests/unit/test_driver_errors.c
tests_unit_test_driver_errors_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_driver_errors_LDADD = $(TEST_LIBS)
tests_db_test_driver_SOURCES = tests/db/test_driver.c
tests_db_test_driver_CFLAGS = $(TEST_CFLAGS)
tests_db_test_driver_LDADD = $(TEST_LIBS)
endif
