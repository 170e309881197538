# common/: logging and small helpers, linked into everything. The channel
# (master <-> worker), the cron parser and the user lookups serve only the
# daemon.
libpgq_core_la_SOURCES += \
	common/common.h common/log.h common/log.c common/util.c \
	common/traceback.h common/traceback.c
libpgq_daemon_la_SOURCES += common/channel.h common/channel.c \
	common/ids.h common/ids.c
# [schedule NAME]: the cron parser (conf validates with it, the master fires)
libpgq_daemon_la_SOURCES += common/cron.h common/cron.c
# Process titles: the master's and its workers'
libpgq_daemon_la_SOURCES += common/title.h common/title.c
