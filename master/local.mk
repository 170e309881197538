# master/: pgq-master, the prefork worker manager.
sbin_PROGRAMS += pgq-master
pgq_master_SOURCES = master/master_int.h master/main.c master/master.c \
	master/slot.c master/listener.c master/wake.c master/heartbeat.c \
	master/recovery.c master/signals.c master/reload.c master/pidfile.c \
	master/sdnotify.c master/scheduler.c master/jobctl.c master/privs.c \
	master/payload.c master/orphans.c master/breaker.c \
	master/dbconn.c master/maint.c
pgq_master_LDADD = libpgq_daemon.la libpgq_core.la $(LIBPQ_LIBS) $(JANSSON_LIBS) \
	$(INIH_LIBS) $(EV_LIBS) $(SYSTEMD_LIBS) -lm
# Handler modules call pgq_job_canceled() and the other functions of pgq.h
# in the executable: export those, and only those, to them. The list is
# libpgq.so's (lib/libpgq.sym) in ld's dynamic-list form.
pgq_master_LDFLAGS = -Wl,--dynamic-list=master/exports.list
EXTRA_pgq_master_DEPENDENCIES = master/exports.list
CLEANFILES += master/exports.list
master/exports.list: $(srcdir)/lib/libpgq.sym
	$(AM_V_GEN)$(MKDIR_P) master && { echo '{'; \
	    sed 's/^.*$$/	&;/' $(srcdir)/lib/libpgq.sym; echo '};'; } >$@.tmp && \
	    mv $@.tmp $@

dist_man_MANS += doc/pgq-master.8
EXTRA_DIST += contrib/systemd/pgq-master.service
