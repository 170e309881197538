# bench/: the benchmark harness of issue 5 (bench/run). Built with `make`, never
# run by `make check`: a timing is not a test. bench_handler.so is the latency
# scenario's handler module; -rpath makes libtool build a shared object
# although it is not installed.
noinst_PROGRAMS += bench/bench-producer bench/bench-sql
bench_bench_producer_SOURCES = bench/bench_producer.c
bench_bench_producer_LDADD = libpgq_core.la $(LIBPQ_LIBS) $(JANSSON_LIBS) \
	$(EV_LIBS) -lm
bench_bench_sql_SOURCES = bench/bench_sql.c
bench_bench_sql_LDADD = libpgq_core.la $(LIBPQ_LIBS) $(JANSSON_LIBS) \
	$(EV_LIBS) -lm

noinst_LTLIBRARIES += bench/bench_handler.la
bench_bench_handler_la_SOURCES = bench/bench_handler.c
bench_bench_handler_la_LDFLAGS = -module -avoid-version -shared \
	-rpath $(abs_builddir)/bench

EXTRA_DIST += bench/run bench/profile bench/README.md bench/RESULTS.md
