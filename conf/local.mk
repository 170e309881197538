# conf/: the INI file of pgq-master (typed config, file:line errors, reload
# diff), its man page and the sample file.
libpgq_internal_la_SOURCES += conf/conf.h conf/conf_int.h conf/keys.c \
	conf/load.c conf/split.c conf/diff.c conf/errors.c
