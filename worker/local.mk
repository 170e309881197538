# worker/: the consumer engine (libpgq's pgq_consumer_* and the daemon's
# workers), the handler kinds, and the worker process run by pgq-master.
# The engine (consumer*.c, claim.c, outcome.c behind consumer_int.h) and the
# function handler are the library's; the rest is the daemon's.
libpgq_core_la_SOURCES += worker/worker_int.h worker/consumer_int.h \
	worker/consumer.c worker/claim.c worker/outcome.c \
	worker/consumer_api.c worker/handler_fn.c
libpgq_daemon_la_SOURCES += worker/worker.h worker/handler_module.c \
	worker/handler_command.c worker/isolate.c worker/handler_builtin.c \
	worker/worker.c worker/probe.c

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_handlers tests/db/test_consumer
TESTS += tests/unit/test_handlers tests/db/test_consumer
tests_unit_test_handlers_SOURCES = tests/unit/test_handlers.c
tests_unit_test_handlers_CFLAGS = $(TEST_CFLAGS) \
	-DEXAMPLE_MODULE='"$(abs_top_builddir)/examples/.libs/handler_module.so"'
tests_unit_test_handlers_LDADD = $(TEST_LIBS)
EXTRA_tests_unit_test_handlers_DEPENDENCIES = examples/handler_module.la
tests_db_test_consumer_SOURCES = tests/db/test_consumer.c
tests_db_test_consumer_CFLAGS = $(TEST_CFLAGS) \
	-DEXAMPLE_MODULE='"$(abs_top_builddir)/examples/.libs/handler_module.so"'
tests_db_test_consumer_LDADD = $(TEST_LIBS)
EXTRA_tests_db_test_consumer_DEPENDENCIES = examples/handler_module.la
endif

# Concurrency and rate limits: the claim statements and libpgq consumers on
# a database, then two pgq-master processes sharing one queue.
if HAVE_CRITERION
check_PROGRAMS += tests/db/test_limits tests/daemon/test_limits
TESTS += tests/db/test_limits tests/daemon/test_limits
tests_db_test_limits_SOURCES = tests/db/test_limits.c
tests_db_test_limits_CFLAGS = $(TEST_CFLAGS)
tests_db_test_limits_LDADD = $(TEST_LIBS)
tests_daemon_test_limits_SOURCES = tests/daemon/test_limits.c
tests_daemon_test_limits_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_limits_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_limits_DEPENDENCIES = pgq-master$(EXEEXT)
endif
