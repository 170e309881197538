/*
 * `pgq listen`: LISTEN on the queue's channel and print each notification,
 * its parsed type and facts, then the raw JSON, until SIGINT or SIGTERM (or
 * --count notifications). Signals are only unblocked inside ppoll, so one
 * that arrives between two checks is never lost.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "driver/driver.h"

static volatile sig_atomic_t listen_stop;

static void
on_stop_signal(int sig)
{
	listen_stop = sig;
}

static const char *
operation_name(enum driver_operation op)
{
	switch (op) {
	case DRIVER_OP_INSERT:
		return "insert";
	case DRIVER_OP_UPDATE:
		return "update";
	case DRIVER_OP_DELETE:
		return "delete";
	case DRIVER_OP_TRUNCATE:
		return "truncate";
	case DRIVER_OP_NONE:
		break;
	}
	return "none";
}

static void
print_notification(const struct cli *c, const PGnotify *n)
{
	struct driver_event ev;
	char why[256];

	memset(&ev, 0, sizeof(ev));
	if (driver_event_parse(n->extra, &ev, why, sizeof(why)) == -1) {
		printf("invalid %s\n", n->extra);
		cli_warnx(c, "malformed notification ignored: %s", why);
		driver_event_clear(&ev);
		return;
	}
	switch (ev.type) {
	case DRIVER_EVENT_TABLE_CHANGED:
		printf("table_changed_event operation=%s table=%s %s\n",
		       operation_name(ev.operation), ev.table, n->extra);
		break;
	case DRIVER_EVENT_CANCELLATION:
		fputs("cancellation_event ids=", stdout);
		for (size_t i = 0; i < ev.nids; i++)
			printf("%s%lld", i > 0 ? "," : "",
			       (long long)ev.ids[i]);
		printf(" %s\n", n->extra);
		break;
	case DRIVER_EVENT_HEALTH_CHECK:
		printf("health_check_event id=%s %s\n", ev.id, n->extra);
		break;
	case DRIVER_EVENT_UNKNOWN:
		printf("unknown %s\n", n->extra);
		break;
	}
	driver_event_clear(&ev);
}

/* Waits for notifications until a stop signal or count of them (0 = no
 * limit). Returns 0, or -1 with err when the connection is lost. */
static int
listen_loop(const struct cli *c, PGconn *conn, long long count,
	    const sigset_t *waitmask, struct pgq_error *err)
{
	long long seen = 0;

	for (;;) {
		struct pollfd pfd;
		PGnotify *n;

		while ((n = PQnotifies(conn)) != NULL) {
			print_notification(c, n);
			PQfreemem(n);
			fflush(stdout);
			if (count > 0 && ++seen >= count)
				return 0;
		}
		if (listen_stop != 0)
			return 0;
		pfd.fd = PQsocket(conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd < 0) {
			driver_error_set(err, PGQ_ERR_CONNECTION,
					 "connection lost");
			return -1;
		}
		if (ppoll(&pfd, 1, NULL, waitmask) == -1) {
			if (errno == EINTR)
				continue;
			driver_error_set(err, PGQ_ERR_OTHER, "poll: %s",
					 strerror(errno));
			return -1;
		}
		if (PQconsumeInput(conn) == 0) {
			driver_error_set(err, PGQ_ERR_CONNECTION,
					 "connection lost: %s",
					 PQerrorMessage(conn));
			return -1;
		}
	}
}

static int
run_listen(struct cli *c, int argc, char **argv)
{
	const char *count_s = NULL;
	const struct cli_opt opts[] = {
		{"count", &count_s, NULL},
		{NULL, NULL, NULL},
	};
	struct sigaction sa, old_int, old_term;
	sigset_t block, oldmask, waitmask;
	struct pgq_error err;
	long long count = 0;
	struct pgq *q;
	char sql[128];
	int npos, rc;

	rc = cli_parse(c, &cli_verb_listen, opts, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (npos > 0)
		return cli_usage_error(c, "unexpected argument '%s'", argv[0]);
	if (count_s != NULL && !parse_int_range(count_s, 1, INT64_MAX, &count))
		return cli_usage_error(c,
				       "--count: must be a positive whole "
				       "number, got \"%s\"",
				       count_s);
	rc = cli_connect(c, &q);
	if (rc != 0)
		return rc;
	if (!driver_listen_sql(pgq_channel(q), sql, sizeof(sql))) {
		rc = cli_usage_error(c, "not a valid channel name: \"%s\"",
				     pgq_channel(q));
		goto out;
	}
	/* Block first, then LISTEN: a signal from here on ends the loop. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &oldmask);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	waitmask = oldmask;
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGTERM);

	if (driver_exec_simple(pgq_conn(q), sql, &err) == -1) {
		rc = cli_db_error(c, &err);
	} else {
		/* tells people, and scripts waiting for it, that we are ready
		 */
		cli_warnx(c, "listening on channel %s", pgq_channel(q));
		if (listen_loop(c, pgq_conn(q), count, &waitmask, &err) == -1)
			rc = cli_db_error(c, &err);
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
out:
	pgq_free(q);
	return rc;
}

const struct cli_verb cli_verb_listen = {
	.name = "listen",
	.synopsis = "[--count N]",
	.summary = "print the notifications on the queue's channel",
	.help = "Options:\n"
		"  --count N  stop after N notifications\n"
		"\n"
		"Each line is the event type and its facts (operation=, "
		"table=, ids=, id=),\n"
		"then the raw JSON. Runs until SIGINT or SIGTERM; exits 0.\n",
	.run = run_listen,
};
