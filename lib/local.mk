# lib/: the public API of libpgq (pgq.h), built on driver/ and sql/
libpgq_internal_la_SOURCES += lib/pgq.c lib/pgq_int.h

lib_LTLIBRARIES += libpgq.la
libpgq_la_SOURCES =
libpgq_la_LIBADD = libpgq_internal.la
libpgq_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(PGQ_LT_VERSION) \
	-export-symbols-regex '^pgq_'
