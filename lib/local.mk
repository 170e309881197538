# lib/: the public API of libpgq (pgq.h), built on driver/ and sql/
libpgq_core_la_SOURCES += lib/pgq.c lib/lib.h

lib_LTLIBRARIES += libpgq.la
libpgq_la_SOURCES =
libpgq_la_LIBADD = libpgq_core.la
# lib/libpgq.sym names the functions of include/pgq.h, one a line: libpgq.so
# exports those and nothing else, and so does pgq-master to its handler
# modules (master/local.mk). tests/unit/test_exports holds both to pgq.h.
libpgq_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(PGQ_LT_VERSION) \
	-export-symbols $(srcdir)/lib/libpgq.sym
EXTRA_libpgq_la_DEPENDENCIES = lib/libpgq.sym
EXTRA_DIST += lib/libpgq.sym

# The C example of the enqueue API, built against the installed-style library.
noinst_PROGRAMS += examples/enqueue
examples_enqueue_SOURCES = examples/enqueue.c
examples_enqueue_LDADD = libpgq.la $(LIBPQ_LIBS)
dist_man_MANS += doc/libpgq.3

if HAVE_CRITERION
check_PROGRAMS += tests/db/test_lib
TESTS += tests/db/test_lib
tests_db_test_lib_SOURCES = tests/db/test_lib.c
tests_db_test_lib_CFLAGS = $(TEST_CFLAGS)
tests_db_test_lib_LDADD = $(TEST_LIBS)
endif

# The ABI check: libpgq.so and pgq-master export exactly pgq.h's functions.
if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_exports
TESTS += tests/unit/test_exports
tests_unit_test_exports_SOURCES = tests/unit/test_exports.c
tests_unit_test_exports_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_exports_LDADD = $(CRITERION_LIBS)
EXTRA_tests_unit_test_exports_DEPENDENCIES = libpgq.la pgq-master$(EXEEXT)
endif
