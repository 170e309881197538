# fuzz/: libFuzzer targets (./configure --enable-fuzzing CC=clang). Each has a
# seed corpus in fuzz/corpus/NAME; scripts/check replays it and fuzzes briefly.
EXTRA_DIST += fuzz/corpus
if ENABLE_FUZZING
FUZZ_LIBS = libpgq_daemon.la libpgq_core.la $(LIBPQ_LIBS) $(JANSSON_LIBS) \
	$(INIH_LIBS) $(EV_LIBS) -lm
FUZZ_LINK = $(AM_LDFLAGS) -fsanitize=fuzzer
noinst_PROGRAMS += fuzz/fuzz_channel fuzz/fuzz_parsers
fuzz_fuzz_channel_SOURCES = fuzz/fuzz_channel.c
fuzz_fuzz_channel_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_channel_LDFLAGS = $(FUZZ_LINK)
fuzz_fuzz_parsers_SOURCES = fuzz/fuzz_parsers.c
fuzz_fuzz_parsers_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_parsers_LDFLAGS = $(FUZZ_LINK)
noinst_PROGRAMS += fuzz/fuzz_cron
fuzz_fuzz_cron_SOURCES = fuzz/fuzz_cron.c
fuzz_fuzz_cron_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_cron_LDFLAGS = $(FUZZ_LINK)
noinst_PROGRAMS += fuzz/fuzz_conf fuzz/fuzz_notify
fuzz_fuzz_conf_SOURCES = fuzz/fuzz_conf.c
fuzz_fuzz_conf_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_conf_LDFLAGS = $(FUZZ_LINK)
fuzz_fuzz_notify_SOURCES = fuzz/fuzz_notify.c
fuzz_fuzz_notify_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_notify_LDFLAGS = $(FUZZ_LINK)
endif
