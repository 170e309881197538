# conf/: the INI file of pgq-master (typed config, file:line errors, reload
# diff), its man page and the sample file.
libpgq_daemon_la_SOURCES += conf/conf.h conf/conf_int.h conf/keys.c \
	conf/load.c conf/split.c conf/diff.c conf/errors.c conf/types.c \
	conf/check.c

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_conf
TESTS += tests/unit/test_conf
tests_unit_test_conf_SOURCES = tests/unit/test_conf.c
tests_unit_test_conf_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_conf_CPPFLAGS = $(AM_CPPFLAGS) \
	-DCONF_TOP_SRCDIR='"$(abs_top_srcdir)"'
# No harness: this suite needs no database.
tests_unit_test_conf_LDADD = libpgq_daemon.la libpgq_core.la \
	$(CRITERION_LIBS) $(LIBPQ_LIBS) $(JANSSON_LIBS) $(INIH_LIBS) $(EV_LIBS) -lm
endif

dist_man_MANS += doc/pgq.ini.5
EXTRA_DIST += examples/pgq.ini

# The sample with its module path pointing at the module built in this tree,
# for trying pgq-master (and scripts/demo) without installing anything.
examples/pgq-local.ini: $(top_srcdir)/examples/pgq.ini
	$(AM_V_GEN)$(MKDIR_P) examples && sed \
	    's|^module = .*/handler_module\.so$$|module = $(abs_builddir)/examples/.libs/handler_module.so|' \
	    $(top_srcdir)/examples/pgq.ini >$@
CLEANFILES += examples/pgq-local.ini
