/*
 * pgq: the command line of the queue. Reads the global options, finds the
 * verb (PgQueuer's names) and hands it the rest of the command line; each
 * verb lives in the file of its kind (schema.c, queue.c, inspect.c, ...).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const struct cli_verb *const verbs[] = {
	&cli_verb_install, &cli_verb_uninstall, &cli_verb_upgrade,
	&cli_verb_verify,  &cli_verb_sql,	&cli_verb_durability,
	&cli_verb_autovac, &cli_verb_queue,	&cli_verb_status,
	&cli_verb_failed,  &cli_verb_requeue,	&cli_verb_cancel,
	&cli_verb_log,	   &cli_verb_listen,	&cli_verb_schedules,
	&cli_verb_stats,   &cli_verb_prune,
};

static const struct cli_verb *
verb_find(const char *name)
{
	for (size_t i = 0; i < PGQ_NELEM(verbs); i++)
		if (strcmp(verbs[i]->name, name) == 0)
			return verbs[i];
	return NULL;
}

static void
usage(FILE *f)
{
	fputs("usage: pgq [global options] VERB [options] [arguments]\n"
	      "\n"
	      "pgq manages a PostgreSQL job queue that shares PgQueuer's "
	      "schema.\n"
	      "\n"
	      "Verbs:\n",
	      f);
	for (size_t i = 0; i < PGQ_NELEM(verbs); i++)
		fprintf(f, "  %-11s %s\n", verbs[i]->name, verbs[i]->summary);
	fputs("  help VERB   show the options of a verb\n"
	      "\n"
	      "Global options:\n"
	      "  --dsn DSN        connection string or URI (else PGQUEUER_DSN, "
	      "PGDSN,\n"
	      "                   then the libpq variables PGHOST, PGPORT, "
	      "...)\n"
	      "  --prefix PREFIX  prefix of every object name (else "
	      "PGQUEUER_PREFIX)\n"
	      "  --schema SCHEMA  schema of the tables (else PGQUEUER_SCHEMA)\n"
	      "  --channel NAME   notification channel (default: PREFIX + "
	      "ch_pgqueuer)\n"
	      "  -h, --help       show this help\n"
	      "  -V, --version    show the version\n"
	      "\n"
	      "Exit codes: 0 ok, 1 check failed or nothing done, 2 usage "
	      "error,\n"
	      "3 database error, 78 bad configuration in the environment.\n"
	      "See pgq(1) for details and examples.\n",
	      f);
}

/* `pgq help [VERB]` */
static int
help(struct cli *c, int argc, char **argv)
{
	const struct cli_verb *v;

	if (argc < 2) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	v = verb_find(argv[1]);
	if (v == NULL)
		return cli_usage_error(c, "unknown verb '%s'", argv[1]);
	cli_print_verb_help(v);
	return CLI_EXIT_OK;
}

/* Reports a failed write of standard output (a full disk, a closed pipe). */
static int
finish_stdout(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "pgq: cannot write output: %s\n",
			strerror(errno));
		return rc == CLI_EXIT_OK ? CLI_EXIT_FAIL : rc;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	struct cli c;
	const struct cli_verb *v;
	int i;

	memset(&c, 0, sizeof(c));
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (arg[0] != '-' || arg[1] == '\0')
			break;
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			usage(stdout);
			return finish_stdout(CLI_EXIT_OK);
		}
		if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
			printf("pgq %s\n", PACKAGE_VERSION);
			return finish_stdout(CLI_EXIT_OK);
		}
		switch (cli_global_option(&c, argc, argv, &i)) {
		case CLI_GLOBAL_TAKEN:
			continue;
		case CLI_GLOBAL_ERROR:
			return CLI_EXIT_USAGE;
		case CLI_GLOBAL_NONE:
			break;
		}
		return cli_usage_error(&c, "unknown option %s", arg);
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	c.verb = argv[i];
	if (strcmp(c.verb, "help") == 0)
		return finish_stdout(help(&c, argc - i, argv + i));
	v = verb_find(c.verb);
	if (v == NULL) {
		c.verb = NULL;
		return cli_usage_error(&c, "unknown verb '%s'", argv[i]);
	}
	return finish_stdout(v->run(&c, argc - i, argv + i));
}
