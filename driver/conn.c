/*
 * Opening connections and checking that a connection suits its role. The
 * checks turn the mistakes that make a queue misbehave quietly (a consumer
 * inside a transaction, serializable isolation, an old server) into an error
 * at connect time that says what to change.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/driver.h"

/*
 * TCP keepalives notice a peer that vanished (a failover, a dropped NAT
 * entry) in about a minute instead of the kernel's two hours, which matters
 * most for the LISTEN connection that may sit idle for a long time. Later
 * entries win, so the caller's conninfo (dbname) goes last.
 */
void
driver_params_init(struct driver_params *p, const char *conninfo,
		   const char *app)
{
	static const char *const keys[DRIVER_PARAMS_MAX] = {
		"keepalives",
		"keepalives_idle",
		"keepalives_interval",
		"keepalives_count",
		"fallback_application_name",
		"dbname",
		NULL};
	const char *const values[DRIVER_PARAMS_MAX] = {"1", "30",     "10", "3",
						       app, conninfo, NULL};

	memcpy(p->keys, keys, sizeof(p->keys));
	memcpy(p->values, values, sizeof(p->values));
}

const char *
driver_conninfo(const char *conninfo, const char **source)
{
	static const char *const vars[] = {"PGQUEUER_DSN", "PGDSN"};

	if (source != NULL)
		*source = NULL;
	if (conninfo != NULL)
		return conninfo;
	for (size_t i = 0; i < PGQ_NELEM(vars); i++) {
		const char *v = getenv(vars[i]);

		if (v != NULL && v[0] != '\0') {
			if (source != NULL)
				*source = vars[i];
			return v;
		}
	}
	return "";
}

/* Passwords shorter than this are not scrubbed: it would mangle the text. */
#define SCRUB_MIN_LEN 3

/*
 * Replaces every occurrence of secret in msg by "***". libpq's messages do
 * not carry the password, but a server or a future libpq might echo a
 * setting; this is the last line of defence.
 */
static void
scrub_secret(char *msg, const char *secret)
{
	char *p = msg;
	size_t slen;

	if (secret == NULL || (slen = strlen(secret)) < SCRUB_MIN_LEN)
		return;
	/* Resume after each mask: a password may itself contain "***". */
	while ((p = strstr(p, secret)) != NULL) {
		p[0] = p[1] = p[2] = '*';
		memmove(p + 3, p + slen, strlen(p + slen) + 1);
		p += 3;
	}
}

/* The password libpq used for conn (from the conninfo, PGPASSWORD...). */
static void
scrub_password(char *msg, PGconn *conn)
{
	PQconninfoOption *opts, *o;

	if (conn == NULL || (opts = PQconninfo(conn)) == NULL)
		return;
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL)
			scrub_secret(msg, o->val);
	PQconninfoFree(opts);
}

static void
trim_newlines(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	/* Multi-line libpq messages read better on one log line. */
	for (char *p = s; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
}

void
driver_conn_message(PGconn *conn, char *buf, size_t len)
{
	snprintf(buf, len, "%s", conn != NULL ? PQerrorMessage(conn) : "");
	trim_newlines(buf);
	scrub_password(buf, conn);
}

/*
 * Takes the SQLSTATE out of a verbose connection message ("FATAL:  28P01:
 * password authentication failed...") into state, and drops the LOCATION
 * lines: what remains reads as the default verbosity's message.
 */
static void
connect_message(const char *raw, char *buf, size_t len, char *state,
		size_t statelen)
{
	const char *p = raw;
	size_t n = 0;

	state[0] = '\0';
	buf[0] = '\0';
	while (*p != '\0' && n + 1 < len) {
		size_t line = strcspn(p, "\n");
		const char *sep = strstr(p, ":  ");

		if (strncmp(p, "LOCATION:", 9) == 0) {
			p += line + (p[line] == '\n');
			continue;
		}
		/* "SEVERITY:  XXXXX: text": the severity may be translated,
		 * the SQLSTATE never is. */
		if (sep != NULL && sep < p + line &&
		    line >= (size_t)(sep - p) + 10 &&
		    strspn(sep + 3, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") ==
			    5 &&
		    strncmp(sep + 8, ": ", 2) == 0) {
			if (state[0] == '\0')
				snprintf(state, statelen, "%.5s", sep + 3);
			n += (size_t)snprintf(buf + n, len - n, "%.*s",
					      (int)(sep + 3 - p), p);
			line -= (size_t)(sep + 10 - p);
			p = sep + 10;
			if (n >= len)
				break;
		}
		n += (size_t)snprintf(buf + n, len - n, "%.*s%s", (int)line, p,
				      p[line] == '\n' ? "\n" : "");
		p += line + (p[line] == '\n');
	}
	trim_newlines(buf);
}

/* driver_error_from_connect, with why in place of libpq's text if set. */
static void
connect_error(struct pgq_error *err, PGconn *conn, const char *why)
{
	char msg[sizeof(err->message)], state[6];
	const char *host, *port, *db;

	if (err == NULL)
		return;
	connect_message(conn != NULL ? PQerrorMessage(conn) : "", msg,
			sizeof(msg), state, sizeof(state));
	scrub_password(msg, conn);
	if (why != NULL)
		snprintf(msg, sizeof(msg), "%s", why);
	host = conn != NULL ? PQhost(conn) : NULL;
	port = conn != NULL ? PQport(conn) : NULL;
	db = conn != NULL ? PQdb(conn) : NULL;
	driver_error_set(err, driver_error_classify(state),
			 "could not connect: %s host=%s port=%s dbname=%s",
			 msg[0] != '\0' ? msg : "bad connection",
			 host != NULL && host[0] != '\0' ? host : "(default)",
			 port != NULL && port[0] != '\0' ? port : "(default)",
			 db != NULL && db[0] != '\0' ? db : "(default)");
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state);
	if (err->klass == PGQ_ERR_AUTH)
		driver_error_hint(err,
				  "check the user, the password (PGPASSWORD, "
				  "~/.pgpass), the database name and "
				  "pg_hba.conf");
	else
		driver_error_hint(err, "check that the server is running and "
				       "the connection settings (dsn, "
				       "PGQUEUER_DSN, PGHOST, PGPORT, PGUSER) "
				       "are right");
}

void
driver_error_from_connect(struct pgq_error *err, PGconn *conn)
{
	connect_error(err, conn, NULL);
}

/* connect_timeout of conn's settings in milliseconds; -1 = none. */
static int
connect_timeout_ms(PGconn *conn)
{
	PQconninfoOption *opts = PQconninfo(conn), *o;
	long s = 0;

	if (opts == NULL)
		return -1;
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "connect_timeout") == 0 &&
		    o->val != NULL)
			s = strtol(o->val, NULL, 10);
	PQconninfoFree(opts);
	if (s <= 0)
		return -1;
	/* As libpq: shorter than 2 s would time out a healthy server. */
	return s < 2 ? 2000 : (int)(s > 86400 ? 86400000 : s * 1000);
}

/*
 * Drives PQconnectPoll to its end, waiting on the socket as it asks. The
 * connection is started by hand, not by PQconnectdbParams, so that its
 * error verbosity is set before the server's answer arrives. Returns false
 * when a wait exceeded connect_timeout.
 */
static bool
connect_wait(PGconn *conn)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int timeout = connect_timeout_ms(conn);

	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd pfd = {.fd = PQsocket(conn)};
		int r;

		pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		r = poll(&pfd, 1, timeout);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == 0)
			return false;
		st = PQconnectPoll(conn);
	}
	return true;
}

PGconn *
driver_connect(const char *conninfo, struct pgq_error *err)
{
	struct driver_params p;
	PQconninfoOption *parsed;
	PGconn *conn;
	char *perr = NULL;

	driver_error_clear(err);
	conninfo = driver_conninfo(conninfo, NULL);
	/*
	 * libpq's parse errors quote the offending part of the string, which
	 * may be the password: check first and report without the text.
	 */
	parsed = PQconninfoParse(conninfo, &perr);
	if (parsed == NULL) {
		PQfreemem(perr);
		driver_error_set(err, PGQ_ERR_CONNECTION,
				 "invalid connection string (not shown: it may "
				 "contain a password)");
		driver_error_hint(
			err,
			"use key=value pairs or a postgresql:// URI; see the "
			"libpq documentation on connection strings");
		return NULL;
	}
	PQconninfoFree(parsed);

	driver_params_init(&p, conninfo, "pgq");
	conn = PQconnectStartParams(p.keys, p.values, 1);
	if (conn == NULL) {
		driver_error_set(err, PGQ_ERR_CONNECTION,
				 "could not connect: out of memory");
		return NULL;
	}
	/* The server's SQLSTATE tells a refused login from an outage. */
	PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
	if (PQstatus(conn) != CONNECTION_BAD && !connect_wait(conn)) {
		connect_error(err, conn, "timeout expired");
		PQfinish(conn);
		return NULL;
	}
	if (PQstatus(conn) == CONNECTION_OK) {
		PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
		return conn;
	}
	driver_error_from_connect(err, conn);
	PQfinish(conn);
	return NULL;
}

/* "11.22 (Debian 11.22-1)" -> "11.22", else the number spelled out. */
static void
server_version_text(PGconn *conn, char *buf, size_t len)
{
	const char *v = PQparameterStatus(conn, "server_version");
	int num = PQserverVersion(conn);
	size_t n;

	if (v != NULL && v[0] != '\0') {
		n = strcspn(v, " ");
		snprintf(buf, len, "%.*s", (int)(n < 32 ? n : 32), v);
	} else if (num >= 100000)
		snprintf(buf, len, "%d.%d", num / 10000, num % 10000);
	else
		snprintf(buf, len, "%d.%d.%d", num / 10000, num / 100 % 100,
			 num % 100);
}

static int
check_transaction(PGconn *conn, enum pgq_role role, struct pgq_error *err)
{
	switch (PQtransactionStatus(conn)) {
	case PQTRANS_IDLE:
		return 0;
	case PQTRANS_INTRANS:
		/* An enqueue may join the caller's transaction on purpose. */
		if (role == PGQ_ROLE_PRODUCER)
			return 0;
		driver_error_set(
			err, PGQ_ERR_CHECK,
			"connection is inside a transaction block: pgq needs "
			"an "
			"autocommit connection for consuming (commit or roll "
			"back "
			"first, and do not use it for your own transactions)");
		driver_error_hint(err, "give the consumer a connection of its "
				       "own and leave it "
				       "in autocommit mode");
		return -1;
	case PQTRANS_INERROR:
		driver_error_set(err, PGQ_ERR_CHECK,
				 "connection is in an aborted transaction: "
				 "roll back first");
		driver_error_hint(
			err,
			"run ROLLBACK on the connection; every statement fails "
			"until then");
		return -1;
	case PQTRANS_ACTIVE:
		driver_error_set(
			err, PGQ_ERR_CHECK,
			"connection is busy running a command: pgq needs an "
			"idle "
			"connection%s",
			role == PGQ_ROLE_CONSUMER ? " in autocommit mode" : "");
		driver_error_hint(err, "wait for the command's results "
				       "(PQgetResult until NULL) "
				       "before handing the connection to pgq");
		return -1;
	case PQTRANS_UNKNOWN:
	default:
		break;
	}
	driver_error_set(err, PGQ_ERR_CONNECTION,
			 "connection is not usable: transaction state unknown");
	driver_error_hint(err, "reconnect");
	return -1;
}

static bool
is_read_committed(const char *level)
{
	return strcmp(level, "read committed") == 0;
}

/*
 * A consumer writes with every claim: on a standby, or with
 * default_transaction_read_only on, each one would fail with 25006.
 */
static int
check_writable(const char *in_recovery, const char *read_only,
	       struct pgq_error *err)
{
	if (strcmp(in_recovery, "t") == 0) {
		driver_error_set(err, PGQ_ERR_READ_ONLY,
				 "the server is a standby (in recovery): pgq "
				 "consumers need a server that accepts writes");
		driver_error_hint(err, "connect to the primary (with several "
				       "hosts, add "
				       "target_session_attrs=read-write)");
		return -1;
	}
	if (strcmp(read_only, "on") == 0) {
		driver_error_set(err, PGQ_ERR_READ_ONLY,
				 "default_transaction_read_only is on: pgq "
				 "consumers need a session that can write");
		driver_error_hint(
			err, "run ALTER DATABASE ... RESET "
			     "default_transaction_read_only (or ALTER ROLE), "
			     "or connect with "
			     "options='-c default_transaction_read_only=off'");
		return -1;
	}
	return 0;
}

static int
check_isolation(PGconn *conn, enum pgq_role role, char *warning, size_t warnlen,
		struct pgq_error *err)
{
	PGresult *r;
	const char *dflt, *cur, *effective;
	bool intrans;
	int rc = -1;

	/* Harmless inside the caller's transaction: it only reads settings. */
	r = PQexec(conn,
		   "SELECT current_setting('default_transaction_isolation'),"
		   " current_setting('transaction_isolation'),"
		   " current_setting('default_transaction_read_only'),"
		   " pg_is_in_recovery()");
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK ||
	    PQntuples(r) != 1 || PQnfields(r) != 4) {
		driver_error_from_result(err, conn, r);
		if (err != NULL && err->klass != PGQ_ERR_CONNECTION)
			err->klass = PGQ_ERR_CHECK;
		goto out;
	}
	dflt = PQgetvalue(r, 0, 0);
	cur = PQgetvalue(r, 0, 1);
	if (role == PGQ_ROLE_CONSUMER) {
		const char *name = !is_read_committed(dflt)
					   ? "default_transaction_isolation"
					   : "transaction_isolation";

		effective = !is_read_committed(dflt) ? dflt : cur;
		if (!is_read_committed(effective)) {
			/*
			 * Claims rely on read committed: under repeatable read
			 * or serializable a SKIP LOCKED claim fails with
			 * serialization errors instead of moving on.
			 */
			driver_error_set(
				err, PGQ_ERR_CHECK,
				"%s is %s: pgq consumers need read committed",
				name, effective);
			driver_error_hint(
				err,
				"run ALTER ROLE CURRENT_USER SET "
				"default_transaction_isolation = 'read "
				"committed' "
				"(or ALTER DATABASE ... SET), or connect with "
				"options='-c "
				"default_transaction_isolation=read\\\\ "
				"committed'");
			goto out;
		}
		if (check_writable(PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 2),
				   err) == -1)
			goto out;
	} else {
		intrans = PQtransactionStatus(conn) == PQTRANS_INTRANS;
		effective = intrans ? cur : dflt;
		if (!is_read_committed(effective) && warning != NULL &&
		    warnlen > 0)
			snprintf(warning, warnlen,
				 "transaction isolation is %s: enqueue works, "
				 "but "
				 "may fail with serialization errors (40001) "
				 "that "
				 "the caller must retry",
				 effective);
	}
	rc = 0;
out:
	PQclear(r);
	return rc;
}

int
driver_check(PGconn *conn, enum pgq_role role, char *warning, size_t warnlen,
	     struct pgq_error *err)
{
	char ver[48];
	char msg[256];

	driver_error_clear(err);
	if (warning != NULL && warnlen > 0)
		warning[0] = '\0';
	if (conn == NULL) {
		driver_error_set(err, PGQ_ERR_CONNECTION, "no connection");
		driver_error_hint(err, "connect first");
		return -1;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		driver_conn_message(conn, msg, sizeof(msg));
		driver_error_set(err, PGQ_ERR_CONNECTION,
				 "connection is not usable: %s",
				 msg[0] != '\0' ? msg : "bad connection");
		driver_error_hint(err, "reconnect");
		return -1;
	}
	if (check_transaction(conn, role, err) == -1)
		return -1;
	if (PQserverVersion(conn) < DRIVER_MIN_SERVER_VERSION) {
		server_version_text(conn, ver, sizeof(ver));
		driver_error_set(
			err, PGQ_ERR_CHECK,
			"server %s is too old: pgq supports PostgreSQL %s and "
			"later",
			ver, DRIVER_MIN_SERVER_VERSION_STR);
		driver_error_hint(err,
				  "upgrade the server to PostgreSQL %s "
				  "or later",
				  DRIVER_MIN_SERVER_VERSION_STR);
		return -1;
	}
	return check_isolation(conn, role, warning, warnlen, err);
}
