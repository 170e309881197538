# driver/: libpq layer (checks, errors, execution, LISTEN, backoff)
libpgq_internal_la_SOURCES += driver/driver.h driver/error.c driver/exec.c \
	driver/conn.c driver/notify.c
