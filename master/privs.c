/*
 * Privileges and secrets of the master: the warning for a pgq.ini that holds
 * a password and that others may read, the refusal to run handlers as root
 * unless allowed, and the drop to [pgq] user/group after the pidfile is
 * open and before any worker or connection exists.
 */
#include "config.h"

#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/ids.h"
#include "common/log.h"
#include "master/master_int.h"

/* True when conninfo (keywords or URI) sets a non-empty password. */
static bool
dsn_has_password(const char *conninfo)
{
	PQconninfoOption *opts;
	bool found = false;

	if (conninfo == NULL || conninfo[0] == '\0')
		return false;
	opts = PQconninfoParse(conninfo, NULL);
	if (opts == NULL)
		return false;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL &&
		    o->val[0] != '\0')
			found = true;
	PQconninfoFree(opts);
	return found;
}

void
privs_check_conf_mode(const struct conf *cf, const char *path)
{
	struct stat st;

	if (!dsn_has_password(cf->dsn) && !dsn_has_password(cf->listen_dsn))
		return;
	if (stat(path, &st) == -1) {
		log_warn("%s: cannot check its permissions", path);
		return;
	}
	if ((st.st_mode & 077) == 0)
		return;
	log_warnx("%s: holds a database password but its mode %04o lets "
		  "%s read it: run chmod 600 %s",
		  path, (unsigned)(st.st_mode & 07777),
		  (st.st_mode & 07) != 0 ? "every user" : "its group", path);
}

/*
 * The identity [pgq] user/group names: uid, gid (the group, or the user's
 * primary group) and the user's name for getgrouplist. -1 when either is
 * unknown now (conf_load checked both, but the system may have changed).
 */
static int
privs_resolve(const struct conf *cf, uid_t *uid, gid_t *gid, char **name)
{
	struct ids_user u;
	char why[128];

	if (ids_user_lookup(cf->user, &u, why, sizeof(why)) == -1) {
		log_error("[pgq] user = %s: %s", cf->user, why);
		return -1;
	}
	*uid = u.uid;
	*gid = u.gid;
	if (cf->group[0] != '\0' &&
	    ids_group_lookup(cf->group, gid, why, sizeof(why)) == -1) {
		log_error("[pgq] group = %s: %s", cf->group, why);
		ids_user_clear(&u);
		return -1;
	}
	*name = xstrdup(u.name);
	ids_user_clear(&u);
	return 0;
}

int
privs_check(const struct conf *cf, const char *path, bool allow_root)
{
	uid_t uid = geteuid(), euid = geteuid();
	gid_t gid;
	char *name = NULL;
	int rc = MASTER_EX_CONFIG;

	if (cf->user[0] != '\0') {
		if (privs_resolve(cf, &uid, &gid, &name) == -1)
			goto out;
		if (euid != 0 && uid != euid) {
			log_error("%s: [pgq] user = %s: pgq-master runs as uid "
				  "%u, not root, and cannot switch to uid %u; "
				  "start it as root or as %s",
				  path, cf->user, (unsigned)euid, (unsigned)uid,
				  name);
			goto out;
		}
		/* Handlers cannot change users once the master dropped
		 * root. */
		for (size_t i = 0; uid != 0 && i < cf->nentrypoints; i++) {
			const struct conf_entrypoint *ep = &cf->entrypoints[i];

			if (ep->user[0] == '\0' || strcmp(ep->user, name) == 0)
				continue;
			log_error("%s:%u: [entrypoint %s] user = %s: needs "
				  "root, but [pgq] user = %s drops it; leave "
				  "user out or run the handler as %s",
				  path, ep->line, ep->name, ep->user, cf->user,
				  name);
			goto out;
		}
	}
	if (uid == 0 && !allow_root && !cf->allow_root) {
		for (size_t i = 0; i < cf->nentrypoints; i++) {
			const struct conf_entrypoint *ep = &cf->entrypoints[i];

			if (ep->user[0] != '\0')
				continue;
			log_error("%s:%u: [entrypoint %s] would run its "
				  "handler as root: set [pgq] user = NAME, or "
				  "allow_root = yes (or --allow-root)",
				  path, ep->line, ep->name);
			goto out;
		}
	}
	rc = 0;
out:
	free(name);
	return rc;
}

int
privs_drop(const struct conf *cf)
{
	gid_t gid, *groups = NULL;
	uid_t uid;
	char *name = NULL;
	int n = 0, rc = -1;

	if (cf->user[0] == '\0' || geteuid() != 0)
		return 0; /* nothing to drop; privs_check vetted the rest */
	if (privs_resolve(cf, &uid, &gid, &name) == -1)
		return -1;
	if (cf->group[0] != '\0') {
		/* The group alone: no supplementary group of root stays. */
		groups = xcalloc(1, sizeof(*groups));
		groups[0] = gid;
		n = 1;
	} else if (ids_group_list(name, gid, &groups, &n) == -1) {
		log_error("[pgq] user = %s: cannot list its groups", cf->user);
		goto out;
	}
	/* Groups first: once the uid is gone they can no longer change. */
	if (setgroups((size_t)n, groups) == -1) {
		log_warn("[pgq] user = %s: cannot set its groups", cf->user);
		goto out;
	}
	if (setgid(gid) == -1) {
		log_warn("[pgq] cannot switch to gid %u", (unsigned)gid);
		goto out;
	}
	if (setuid(uid) == -1) {
		log_warn("[pgq] cannot switch to user %s uid=%u", name,
			 (unsigned)uid);
		goto out;
	}
	if (uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
		log_error("[pgq] user = %s: root could be regained after the "
			  "drop",
			  cf->user);
		goto out;
	}
	log_info("dropped privileges user=%s uid=%u gid=%u groups=%d", name,
		 (unsigned)getuid(), (unsigned)getgid(), n);
	rc = 0;
out:
	free(groups);
	free(name);
	return rc;
}
