# conf/: the INI file of pgq-master (typed config, file:line errors, reload diff)
libpgq_internal_la_SOURCES += conf/conf.h
