/*
 * Opening connections and checking that a connection suits its role. The
 * checks turn the mistakes that make a queue misbehave quietly (a consumer
 * inside a transaction, serializable isolation, an old server) into an error
 * at connect time that says what to change.
 */
#include "config.h"

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

PGconn *
driver_connect(const char *conninfo, struct pgq_error *err)
{
	struct driver_params p;
	PQconninfoOption *parsed;
	PGconn *conn;
	char *perr = NULL;
	char msg[sizeof(err->message)];
	const char *host, *port, *db;

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
				 "contain a "
				 "password)");
		driver_error_hint(
			err,
			"use key=value pairs or a postgresql:// URI; see the "
			"libpq documentation on connection strings");
		return NULL;
	}
	PQconninfoFree(parsed);

	driver_params_init(&p, conninfo, "pgq");
	conn = PQconnectdbParams(p.keys, p.values, 1);
	if (conn == NULL) {
		driver_error_set(err, PGQ_ERR_CONNECTION,
				 "could not connect: out of memory");
		return NULL;
	}
	if (PQstatus(conn) == CONNECTION_OK)
		return conn;

	driver_conn_message(conn, msg, sizeof(msg));
	host = PQhost(conn);
	port = PQport(conn);
	db = PQdb(conn);
	driver_error_set(err, PGQ_ERR_CONNECTION,
			 "could not connect: %s host=%s port=%s dbname=%s", msg,
			 host != NULL && host[0] != '\0' ? host : "(default)",
			 port != NULL && port[0] != '\0' ? port : "(default)",
			 db != NULL && db[0] != '\0' ? db : "(default)");
	driver_error_hint(
		err,
		"check that the server is running and the connection settings "
		"(dsn, PGQUEUER_DSN, PGHOST, PGPORT, PGUSER) are right");
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
		   " current_setting('transaction_isolation')");
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK ||
	    PQntuples(r) != 1 || PQnfields(r) != 2) {
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
