/*
 * pgq-master: loads and checks the INI file, opens the log and the pidfile,
 * drops root to [pgq] user, opens the LISTEN connection, forks the workers
 * and runs the loop until a shutdown completes. `-t` only checks the file.
 * Exit codes: 0 after a shutdown, 64 usage, 78 configuration, 69 a drain
 * that cannot run on its database, 1 any other failure to start.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/title.h"
#include "master/master_int.h"
#include "worker/worker.h"

/* A drain whose database cannot serve it (EX_UNAVAILABLE). */
#define MASTER_EX_UNAVAILABLE 69

static void
usage(FILE *fp)
{
	fprintf(fp,
		"usage: pgq-master -c FILE [-t] [-n] [--drain] [--allow-root] "
		"[-V] [-h]\n"
		"  -c, --config FILE  the INI file (pgq.ini(5))\n"
		"  -t, --test         check the file, print \"configuration "
		"OK\" "
		"or the errors\n"
		"  -n, --foreground   stay in the foreground (the default)\n"
		"      --drain        exit 0 once no eligible job is left\n"
		"      --allow-root   let handlers run as root (allow_root)\n"
		"  -V, --version      print the version\n"
		"  -h, --help         this text\n"
		"signals: TERM graceful, INT fast, QUIT immediate, HUP "
		"reload,\n"
		"TTIN/TTOU one worker more/fewer, USR1 reopen the log\n");
}

/*
 * --drain checks first what a worker's first claim would meet: what only an
 * operator can mend ends it at once, with the cause, rather than in retries
 * that never end. An outage is waited out as in a normal run.
 */
static int
drain_check(const struct master *m)
{
	struct pgq_error err;

	if (worker_drain_check(m->cf, &err) == 0)
		return 0;
	if (!driver_error_fatal(&err)) {
		log_warnx("drain: %s: %s: waiting for it",
			  driver_error_cause(&err), err.message);
		return 0;
	}
	log_error("drain: cannot run: %s: %s sqlstate=%s%s%s",
		  driver_error_cause(&err), err.message,
		  err.sqlstate[0] != '\0' ? err.sqlstate : "-",
		  err.hint[0] != '\0' ? " hint: " : "", err.hint);
	return MASTER_EX_UNAVAILABLE;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"test", no_argument, NULL, 't'},
		{"foreground", no_argument, NULL, 'n'},
		{"drain", no_argument, NULL, 'D'},
		{"allow-root", no_argument, NULL, 'R'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct master m;
	struct conf_errors errs;
	const char *path = NULL;
	bool test = false, allow_root = false;
	int ch, rc = 1;

	title_init(argc, argv);
	log_init("pgq-master", LOG_LEVEL_INFO);
	memset(&m, 0, sizeof(m));
	while ((ch = getopt_long(argc, argv, "c:tnVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = true;
			break;
		case 'n':
			break;
		case 'D':
			m.drain = true;
			break;
		case 'R':
			allow_root = true;
			break;
		case 'V':
			printf("pgq-master %s\n", PGQ_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return MASTER_EX_USAGE;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return MASTER_EX_USAGE;
	}
	m.conf_path = path;
	conf_errors_init(&errs);
	if (conf_load(path, &m.cf, &errs) == -1) {
		conf_errors_print(&errs, stderr);
		fprintf(stderr, "pgq-master: %s: %zu error%s\n", path, errs.n,
			errs.n == 1 ? "" : "s");
		conf_errors_clear(&errs);
		return MASTER_EX_CONFIG;
	}
	conf_errors_clear(&errs);
	if (test) {
		printf("configuration OK\n");
		conf_free(m.cf);
		return 0;
	}
	rc = privs_check(m.cf, path, allow_root);
	if (rc != 0)
		goto out;
	log_set_timestamps(isatty(STDERR_FILENO));
	log_set_level(m.cf->log_level);
	if (log_set_target(m.cf->log_target, m.cf->log_file) == -1) {
		log_warn("cannot open log file %s", m.cf->log_file);
		rc = 1;
		goto out;
	}
	privs_check_conf_mode(m.cf, path);
	if (master_prepare(&m) == -1) {
		rc = MASTER_EX_CONFIG;
		goto out;
	}
	if (m.cf->pidfile[0] != '\0' && pidfile_create(m.cf->pidfile) == -1) {
		rc = 1;
		goto out;
	}
	/* Root opened the log and the pidfile; nothing after needs it. */
	if (privs_drop(m.cf) == -1) {
		pidfile_remove();
		rc = 1;
		goto out;
	}
	m.nworkers = m.cf->workers;
	rc = m.drain ? drain_check(&m) : 0;
	if (rc == 0)
		rc = master_run(&m);
	pidfile_remove();
out:
	master_clear(&m);
	return rc;
}
