# conf/: the INI file of pgq-master (typed config, file:line errors, reload
# diff), its man page and the sample file.
libpgq_internal_la_SOURCES += conf/conf.h conf/conf_int.h conf/keys.c \
	conf/load.c conf/split.c conf/diff.c conf/errors.c
# libpgq.so is linked whole from libpgq_internal, so it needs inih too.
libpgq_internal_la_LIBADD += $(INIH_LIBS)

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_conf
TESTS += tests/unit/test_conf
tests_unit_test_conf_SOURCES = tests/unit/test_conf.c
tests_unit_test_conf_CFLAGS = $(TEST_CFLAGS)
# No harness: this suite needs no database.
tests_unit_test_conf_LDADD = libpgq_internal.la $(CRITERION_LIBS) \
	$(LIBPQ_LIBS) $(JANSSON_LIBS) $(INIH_LIBS) $(EV_LIBS) -lm
endif
