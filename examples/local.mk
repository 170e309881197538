# examples/: programs and a handler module showing how pgq is used.
# handler_module.so is loaded by pgq-master (examples/pgq.ini) and the tests;
# -rpath makes libtool build a shared object although it is not installed.
noinst_LTLIBRARIES += examples/handler_module.la
examples_handler_module_la_SOURCES = examples/handler_module.c
examples_handler_module_la_LDFLAGS = -module -avoid-version -shared \
	-rpath $(abs_builddir)/examples
EXTRA_DIST += examples/handler.sh
