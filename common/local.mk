# common/: logging and small helpers, linked into everything through libpgq_internal
noinst_LTLIBRARIES += libpgq_internal.la
libpgq_internal_la_SOURCES = \
	common/common.h common/log.h common/log.c common/util.c \
	common/channel.h common/channel.c \
	common/traceback.h common/traceback.c common/ids.h common/ids.c
# [schedule NAME]: the cron parser (conf validates with it, the master fires)
libpgq_internal_la_SOURCES += common/cron.h common/cron.c
libpgq_internal_la_LIBADD = $(LIBPQ_LIBS) $(JANSSON_LIBS) $(EV_LIBS) -lm
