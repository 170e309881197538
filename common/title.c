/*
 * Process titles: the strings argv and environ point to are contiguous at the
 * top of the stack; once both are copied to the heap the whole area can hold
 * a title, which ps and /proc/PID/cmdline then show.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "common/common.h"
#include "common/title.h"

extern char **environ;

static char *title_area;
static size_t title_area_len;
/* The copy of environ: setenv may swap environ for an array of its own,
 * and this pointer keeps the strings reachable (no leak report); volatile
 * so the compiler keeps a store nobody reads. */
static char **volatile title_environ;

void
title_init(int argc, char **argv)
{
	char *start, *end;
	size_t n = 0;

	if (argc < 1 || argv[0] == NULL || title_area != NULL)
		return;
	start = argv[0];
	end = argv[0] + strlen(argv[0]) + 1;
	for (int i = 1; i < argc; i++) {
		if (argv[i] != end)
			break;
		end = argv[i] + strlen(argv[i]) + 1;
	}
	for (; environ != NULL && environ[n] != NULL; n++) {
		if (environ[n] == end)
			end = environ[n] + strlen(environ[n]) + 1;
	}
	/*
	 * Move environ and argv out of the way before the area is overwritten;
	 * the copies live as long as the process.
	 */
	if (environ != NULL) {
		char **copy = xcalloc(n + 1, sizeof(*copy));

		for (size_t i = 0; i < n; i++)
			copy[i] = xstrdup(environ[i]);
		title_environ = copy;
		environ = copy;
	}
	for (int i = 0; i < argc; i++)
		argv[i] = xstrdup(argv[i]);
	title_area = start;
	title_area_len = (size_t)(end - start);
}

void
title_set(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "pgq-master: ");
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	/* The kernel's comm name: 15 bytes, what top and pgrep show. */
	prctl(PR_SET_NAME,
	      strncmp(buf + n, "worker", 6) == 0 ? "pgq-worker" : "pgq-master",
	      0, 0, 0);
	if (title_area == NULL || title_area_len < 2)
		return;
	memset(title_area, '\0', title_area_len);
	memcpy(title_area, buf, strnlen(buf, title_area_len - 1));
}
