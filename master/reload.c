/*
 * SIGHUP: the file is parsed into a fresh config and validated whole; on any
 * error nothing changes. Otherwise keys that need a restart are logged and
 * keep their old value, master settings apply at once, the worker count is
 * reconciled, and when what workers run changed they are replaced one slot at
 * a time (the replacement starts after its predecessor exited, so the
 * connections never exceed `workers`).
 */
#include "config.h"

#include <stdlib.h>

#include "common/log.h"
#include "master/master_int.h"

void
reload_apply_master(struct master *m)
{
	const struct conf *cf = m->cf;

	log_set_level(cf->log_level);
	if (log_set_target(cf->log_target, cf->log_file) == -1)
		log_warn("log target unchanged: cannot open %s", cf->log_file);
	wake_reconfigure(m);
	heartbeat_reconfigure(m);
	scheduler_reconfigure(m);
}

void
reload_run(struct master *m)
{
	struct conf_errors errs;
	struct conf_diff diff;
	struct conf *nc = NULL, *old = m->cf;
	unsigned want;

	sdnotify_send("RELOADING=1");
	conf_errors_init(&errs);
	if (conf_load(m->conf_path, &nc, &errs) == -1) {
		for (size_t i = 0; i < errs.n; i++)
			log_error("%s", errs.v[i].text);
		log_error("reload failed: %zu error%s in %s: keeping the "
			  "current configuration",
			  errs.n, errs.n == 1 ? "" : "s", m->conf_path);
		conf_errors_clear(&errs);
		sdnotify_send("READY=1");
		return;
	}
	conf_errors_clear(&errs);
	privs_check_conf_mode(nc, m->conf_path);
	conf_diff(old, nc, &diff);
	for (size_t i = 0; i < diff.nchanges; i++) {
		if (diff.changes[i].apply == CONF_APPLY_RESTART)
			log_warnx("%s", diff.changes[i].text);
		else
			log_info("%s", diff.changes[i].text);
	}
	conf_keep_restart_keys(nc, old);
	/*
	 * `workers` changed: that is the new count. Unchanged: keep what
	 * TTIN/TTOU made of it, within the new bounds.
	 */
	want = nc->workers != old->workers ? nc->workers : m->nworkers;
	if (want > nc->max_workers)
		want = nc->max_workers;
	if (want < nc->min_workers)
		want = nc->min_workers;
	m->cf = nc;
	reload_apply_master(m);
	payload_sync(m, old);
	slots_forgive(m);
	m->nworkers = want;
	/*
	 * Mark the running workers first: the slots reconcile starts next
	 * already run the new file and need no replacing.
	 */
	if (diff.workers_changed)
		slots_replace_all(m);
	slots_reconcile(m);
	free(m->entrypoints_array);
	m->entrypoints_array = master_entrypoints_array(nc);
	log_info("reload: configuration loaded from %s changes=%zu "
		 "workers=%u%s",
		 m->conf_path, diff.nchanges, m->nworkers,
		 diff.workers_changed ? " (replacing workers)" : "");
	conf_diff_clear(&diff);
	conf_free(old);
	sdnotify_send("READY=1");
	master_status(m);
	/* New entrypoints may have jobs waiting. */
	wake_query_due(m, false);
}
