/*
 * Recovery of a dead worker's jobs: one SQL_RECOVER for its queue_manager_id
 * puts each job it held back in the queue (attempts + 1, a log row with the
 * cause), or ends it as exception / holds it as failed when its attempts are
 * used up, so a poison job cannot crash-loop the fleet. Recoveries that find
 * no connection wait for the next one.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/traceback.h"
#include "master/master_int.h"

struct recovery {
	struct master *m;
	char owner[UUID_STR_LEN];
	char *traceback; /* the JSON cause */
};

/*
 * PgQueuer's traceback object; SQL_RECOVER replaces the job_id (0 here) by
 * each row's.
 */
static char *
recovery_traceback(const char *type, const char *cause, unsigned slot, long pid,
		   const char *owner)
{
	char msg[256];
	json_t *o;
	char *ctx, *text;

	snprintf(msg, sizeof(msg), "worker %u (pid %ld) %s", slot, pid, cause);
	o = json_pack("{s:i, s:I, s:s, s:s}", "slot", (int)slot, "pid",
		      (json_int_t)pid, "queue_manager_id", owner, "cause",
		      cause);
	ctx = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (ctx == NULL)
		fatalx("recovery: cannot build the traceback");
	text = traceback_json(0, type, msg, "", ctx);
	free(ctx);
	return text;
}

static void
recovery_todo_add(struct master *m, const char *owner, const char *tb)
{
	m->recover_todo = xrealloc(m->recover_todo, m->recover_todo_n + 1,
				   sizeof(*m->recover_todo));
	m->recover_todo_cause =
		xrealloc(m->recover_todo_cause, m->recover_todo_n + 1,
			 sizeof(*m->recover_todo_cause));
	snprintf(m->recover_todo[m->recover_todo_n], UUID_STR_LEN, "%s", owner);
	m->recover_todo_cause[m->recover_todo_n] = xstrdup(tb);
	m->recover_todo_n++;
}

static void recovery_send(struct master *m, const char *owner,
			  const char *traceback);

static void
recovery_done(struct driver_async *a, PGresult *res,
	      const struct pgq_error *err, void *arg)
{
	struct recovery *r = arg;
	struct master *m = r->m;
	bool requeued = false;

	(void)a;
	if (res == NULL) {
		log_warnx("recovery failed: %s queue_manager_id=%s",
			  err != NULL ? err->message : "unknown", r->owner);
		/* A lost connection retries after the reconnect. */
		if (err != NULL && err->klass == PGQ_ERR_CONNECTION)
			recovery_todo_add(m, r->owner, r->traceback);
		goto out;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *outcome = PQgetvalue(res, i, 2);

		log_warnx("recovered job=%s entrypoint=%s outcome=%s "
			  "queue_manager_id=%s",
			  PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), outcome,
			  r->owner);
		if (strcmp(outcome, "queued") == 0)
			requeued = true;
	}
	if (PQntuples(res) == 0)
		log_debug("recovery: nothing held queue_manager_id=%s",
			  r->owner);
	/* The statement notifies too; waking here saves the round trip. */
	if (requeued)
		wake_one(m, "recovered");
out:
	free(r->traceback);
	free(r);
}

static void
recovery_send(struct master *m, const char *owner, const char *traceback)
{
	const struct conf *cf = m->cf;
	const char **names = xcalloc(cf->nentrypoints + 1, sizeof(*names));
	char **attempts = xcalloc(cf->nentrypoints + 1, sizeof(*attempts));
	const char **holds = xcalloc(cf->nentrypoints + 1, sizeof(*holds));
	char *a_names, *a_attempts, *a_holds;
	const char *params[7];
	struct recovery *r;

	for (size_t i = 0; i < cf->nentrypoints; i++) {
		const struct conf_entrypoint *ep = &cf->entrypoints[i];

		names[i] = ep->name;
		attempts[i] = xasprintf("%d", ep->max_attempts);
		holds[i] = ep->on_failure == CONF_ON_FAILURE_HOLD ? "true"
								  : "false";
	}
	a_names = text_array_literal(names, cf->nentrypoints);
	a_attempts = text_array_literal((const char *const *)attempts,
					cf->nentrypoints);
	a_holds = text_array_literal(holds, cf->nentrypoints);
	r = xcalloc(1, sizeof(*r));
	r->m = m;
	snprintf(r->owner, sizeof(r->owner), "%s", owner);
	r->traceback = xstrdup(traceback);
	params[0] = owner;
	params[1] = a_names;
	params[2] = a_attempts;
	params[3] = a_holds;
	/* Jobs of entrypoints this file no longer has: one attempt used. */
	params[4] = "5";
	params[5] = "false";
	params[6] = traceback;
	if (maint_query(m, SQL_RECOVER, 7, params, recovery_done, r) == -1) {
		log_warnx("recovery deferred until the connection is back "
			  "queue_manager_id=%s",
			  owner);
		recovery_todo_add(m, owner, traceback);
		free(r->traceback);
		free(r);
	}
	for (size_t i = 0; i < cf->nentrypoints; i++)
		free(attempts[i]);
	free(attempts);
	free(names);
	free(holds);
	free(a_names);
	free(a_attempts);
	free(a_holds);
}

void
recovery_run_as(struct master *m, const char *owner, const char *type,
		const char *cause, unsigned slot, long pid)
{
	char *tb = recovery_traceback(type, cause, slot, pid, owner);

	recovery_send(m, owner, tb);
	free(tb);
}

void
recovery_run(struct master *m, const char *owner, const char *cause,
	     unsigned slot, long pid)
{
	recovery_run_as(m, owner, "WorkerDied", cause, slot, pid);
}

void
recovery_retry(struct master *m)
{
	char(*todo)[UUID_STR_LEN] = m->recover_todo;
	char **causes = m->recover_todo_cause;
	size_t n = m->recover_todo_n;

	m->recover_todo = NULL;
	m->recover_todo_cause = NULL;
	m->recover_todo_n = 0;
	for (size_t i = 0; i < n; i++) {
		recovery_send(m, todo[i], causes[i]);
		free(causes[i]);
	}
	free(todo);
	free(causes);
}

void
recovery_free(struct master *m)
{
	if (m->recover_todo_n > 0)
		log_warnx("%zu dead workers' jobs not recovered: they return "
			  "to the queue after heartbeat_timeout",
			  m->recover_todo_n);
	for (size_t i = 0; i < m->recover_todo_n; i++)
		free(m->recover_todo_cause[i]);
	free(m->recover_todo);
	free(m->recover_todo_cause);
	m->recover_todo = NULL;
	m->recover_todo_cause = NULL;
	m->recover_todo_n = 0;
}
