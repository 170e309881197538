# lib/: the public API of libpgq (pgq.h), built on driver/ and sql/
libpgq_internal_la_SOURCES += lib/pgq.c lib/lib.h

lib_LTLIBRARIES += libpgq.la
libpgq_la_SOURCES =
libpgq_la_LIBADD = libpgq_internal.la
libpgq_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(PGQ_LT_VERSION) \
	-export-symbols-regex '^pgq_'

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
