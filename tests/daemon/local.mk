# tests/daemon/: pgq-master as a real process against a throwaway cluster.
# Included from tests/local.mk inside `if HAVE_CRITERION`.
libharness_la_SOURCES += tests/harness/daemon.c tests/harness/daemon.h

# Handler modules the suites load: one whose init aborts, one whose init fails,
# one whose init aborts while a file exists (the breaker suite's), and the
# job-control suite's (hangs, or polls pgq_job_canceled).
check_LTLIBRARIES += tests/daemon/mod_crash.la tests/daemon/mod_initfail.la \
	tests/daemon/mod_control.la tests/daemon/mod_flaky.la
tests_daemon_mod_crash_la_SOURCES = tests/daemon/mod_crash.c
tests_daemon_mod_crash_la_CFLAGS = $(TEST_CFLAGS)
tests_daemon_mod_crash_la_LDFLAGS = -module -avoid-version -shared \
	-rpath /nowhere
tests_daemon_mod_initfail_la_SOURCES = tests/daemon/mod_initfail.c
tests_daemon_mod_initfail_la_CFLAGS = $(TEST_CFLAGS)
tests_daemon_mod_initfail_la_LDFLAGS = -module -avoid-version -shared \
	-rpath /nowhere
tests_daemon_mod_flaky_la_SOURCES = tests/daemon/mod_flaky.c
tests_daemon_mod_flaky_la_CFLAGS = $(TEST_CFLAGS)
tests_daemon_mod_flaky_la_LDFLAGS = -module -avoid-version -shared \
	-rpath /nowhere
tests_daemon_mod_control_la_SOURCES = tests/daemon/mod_control.c
tests_daemon_mod_control_la_CFLAGS = $(TEST_CFLAGS)
tests_daemon_mod_control_la_LDFLAGS = -module -avoid-version -shared \
	-rpath /nowhere

DAEMON_SUITES = tests/daemon/test_lifecycle tests/daemon/test_signals \
	tests/daemon/test_recovery tests/daemon/test_reload \
	tests/daemon/test_wake tests/daemon/test_outage
check_PROGRAMS += $(DAEMON_SUITES)
TESTS += $(DAEMON_SUITES)
# The suites run pgq-master and load the modules from the build tree.
DAEMON_DEPS = pgq-master$(EXEEXT) tests/daemon/mod_crash.la \
	tests/daemon/mod_initfail.la

tests_daemon_test_lifecycle_SOURCES = tests/daemon/test_lifecycle.c \
	tests/daemon/suite.h
tests_daemon_test_lifecycle_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_lifecycle_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_lifecycle_DEPENDENCIES = $(DAEMON_DEPS)
tests_daemon_test_signals_SOURCES = tests/daemon/test_signals.c
tests_daemon_test_signals_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_signals_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_signals_DEPENDENCIES = $(DAEMON_DEPS)
tests_daemon_test_recovery_SOURCES = tests/daemon/test_recovery.c
tests_daemon_test_recovery_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_recovery_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_recovery_DEPENDENCIES = $(DAEMON_DEPS)
tests_daemon_test_reload_SOURCES = tests/daemon/test_reload.c
tests_daemon_test_reload_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_reload_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_reload_DEPENDENCIES = $(DAEMON_DEPS)
tests_daemon_test_wake_SOURCES = tests/daemon/test_wake.c
tests_daemon_test_wake_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_wake_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_wake_DEPENDENCIES = $(DAEMON_DEPS)
tests_daemon_test_outage_SOURCES = tests/daemon/test_outage.c
tests_daemon_test_outage_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_outage_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_outage_DEPENDENCIES = $(DAEMON_DEPS)

# [schedule NAME] and the statistics fold (helper "sched"); runs pgq too
check_PROGRAMS += tests/daemon/test_schedule
TESTS += tests/daemon/test_schedule
tests_daemon_test_schedule_SOURCES = tests/daemon/test_schedule.c \
	tests/daemon/suite.h
tests_daemon_test_schedule_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_schedule_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_schedule_DEPENDENCIES = $(DAEMON_DEPS) pgq$(EXEEXT)

# Job control: retries, timeouts, cancellation, isolation, recycling (helper
# "control"); runs pgq too
check_PROGRAMS += tests/daemon/test_control
TESTS += tests/daemon/test_control
tests_daemon_test_control_SOURCES = tests/daemon/test_control.c \
	tests/daemon/suite.h
tests_daemon_test_control_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_control_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_control_DEPENDENCIES = $(DAEMON_DEPS) pgq$(EXEEXT) \
	tests/daemon/mod_control.la

# Hardening: the password warning, the privilege drop, the root refusal and
# the worker's max_payload check (helper "harden")
check_PROGRAMS += tests/daemon/test_harden
TESTS += tests/daemon/test_harden
tests_daemon_test_harden_SOURCES = tests/daemon/test_harden.c \
	tests/daemon/suite.h
tests_daemon_test_harden_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_harden_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_harden_DEPENDENCIES = $(DAEMON_DEPS)

# No orphaned handlers: a dead worker's command handler group is ended by the
# master before the job's retry
check_PROGRAMS += tests/daemon/test_orphans
TESTS += tests/daemon/test_orphans
tests_daemon_test_orphans_SOURCES = tests/daemon/test_orphans.c \
	tests/daemon/suite.h
tests_daemon_test_orphans_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_orphans_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_orphans_DEPENDENCIES = $(DAEMON_DEPS)

# The crash breaker counts boot failures only, tries one held slot at a time
# and closes once that worker is healthy
check_PROGRAMS += tests/daemon/test_breaker
TESTS += tests/daemon/test_breaker
tests_daemon_test_breaker_SOURCES = tests/daemon/test_breaker.c \
	tests/daemon/suite.h
tests_daemon_test_breaker_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_breaker_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_breaker_DEPENDENCIES = $(DAEMON_DEPS) \
	tests/daemon/mod_flaky.la

# Maintenance statements on their own connection: a blocked one does not
# delay a wake; a cut maintenance connection comes back
check_PROGRAMS += tests/daemon/test_maint
TESTS += tests/daemon/test_maint
tests_daemon_test_maint_SOURCES = tests/daemon/test_maint.c \
	tests/daemon/suite.h
tests_daemon_test_maint_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_maint_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_maint_DEPENDENCIES = $(DAEMON_DEPS)

# What waiting cannot cure: --drain exits 69 naming the cause; the daemon
# waits for missing tables quietly
check_PROGRAMS += tests/daemon/test_drain
TESTS += tests/daemon/test_drain
tests_daemon_test_drain_SOURCES = tests/daemon/test_drain.c \
	tests/daemon/suite.h
tests_daemon_test_drain_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_drain_LDADD = $(TEST_LIBS)
EXTRA_tests_daemon_test_drain_DEPENDENCIES = $(DAEMON_DEPS)
