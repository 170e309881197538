# tests/: criterion suites run through tests/harness/run-test, which starts a
# throwaway cluster for the db/ and daemon/ suites.
if HAVE_CRITERION
LOG_COMPILER = $(top_srcdir)/tests/harness/run-test
AM_TESTS_ENVIRONMENT = PGQ_TOP_BUILDDIR='$(abs_top_builddir)'; \
	PGQ_TOP_SRCDIR='$(abs_top_srcdir)'; PG_BINDIR='$(PG_BINDIR)'; \
	export PGQ_TOP_BUILDDIR PGQ_TOP_SRCDIR PG_BINDIR;
EXTRA_DIST += tests/harness/run-test tests/harness/lsan.supp

check_LTLIBRARIES += libharness.la
libharness_la_SOURCES = tests/harness/harness.c tests/harness/harness.h
libharness_la_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)

TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
TEST_LIBS = libharness.la libpgq_daemon.la libpgq_core.la $(CRITERION_LIBS) \
	$(LIBPQ_LIBS) $(JANSSON_LIBS) $(INIH_LIBS) $(EV_LIBS) -lm

check_PROGRAMS += tests/unit/test_common
TESTS += tests/unit/test_common
tests_unit_test_common_SOURCES = tests/unit/test_common.c
tests_unit_test_common_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_common_LDADD = $(TEST_LIBS)

include tests/unit/local.mk
include tests/db/local.mk
include tests/daemon/local.mk
include tests/chaos/local.mk


endif

# run-test writes a TAP report beside each suite binary.
clean-local: clean-tap
clean-tap:
	-rm -f tests/*/*.tap
.PHONY: clean-tap
