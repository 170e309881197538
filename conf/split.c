/*
 * Splits an entrypoint's command line into argv like a shell splits words,
 * with quotes and backslashes but no expansion of any kind: the worker execs
 * the result directly, so there is no shell to surprise anyone.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void
conf_argv_free(char **argv)
{
	if (argv == NULL)
		return;
	for (size_t i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

int
conf_split_command(const char *line, char ***argv_out, size_t *argc_out,
		   const char **why)
{
	size_t len = strlen(line), argc = 0, cap = 4;
	char **argv = xcalloc(cap, sizeof(*argv));
	/* No word is longer than the line it comes from. */
	char *word = xmalloc(len + 1);
	const char *p = line;
	int rc = -1;

	*why = NULL;
	for (;;) {
		size_t w = 0;

		while (is_blank(*p))
			p++;
		if (*p == '\0')
			break;
		while (*p != '\0' && !is_blank(*p)) {
			if (*p == '\'') {
				const char *end = strchr(p + 1, '\'');

				if (end == NULL) {
					*why = "unterminated single quote";
					goto out;
				}
				memcpy(word + w, p + 1, (size_t)(end - p - 1));
				w += (size_t)(end - p - 1);
				p = end + 1;
			} else if (*p == '"') {
				for (p++; *p != '"'; p++) {
					if (*p == '\0') {
						*why = "unterminated double "
						       "quote";
						goto out;
					}
					if (*p == '\\' &&
					    (p[1] == '"' || p[1] == '\\'))
						p++;
					word[w++] = *p;
				}
				p++;
			} else if (*p == '\\') {
				if (p[1] == '\0') {
					*why = "backslash at the end";
					goto out;
				}
				word[w++] = p[1];
				p += 2;
			} else {
				word[w++] = *p++;
			}
		}
		word[w] = '\0';
		if (argc + 1 == cap) {
			cap *= 2;
			argv = xrealloc(argv, cap, sizeof(*argv));
		}
		argv[argc++] = xstrdup(word);
		argv[argc] = NULL;
	}
	if (argc == 0) {
		*why = "empty command";
		goto out;
	}
	*argv_out = argv;
	*argc_out = argc;
	argv = NULL;
	rc = 0;
out:
	free(word);
	conf_argv_free(argv);
	return rc;
}
