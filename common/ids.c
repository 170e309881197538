/*
 * User and group lookups with one policy: a name before a number (a user
 * called "1000" is that user, not uid 1000), and no fixed buffer (an entry
 * larger than the first guess is read again in a larger one).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"

/* getpw*_r / getgr*_r grow their buffer up to this; no real entry is near. */
#define IDS_BUF_MAX ((size_t)1 << 22)

/*
 * One getpwnam_r-like call: by name, or by id when by_id. Returns the
 * call's error and sets *found; ent receives the entry.
 */
typedef int (*ids_get_fn)(const char *v, unsigned id, bool by_id, void *ent,
			  char *buf, size_t len, bool *found);

static int
ids_get_user(const char *v, unsigned id, bool by_id, void *ent, char *buf,
	     size_t len, bool *found)
{
	struct passwd *res = NULL;
	int e;

	if (by_id)
		e = getpwuid_r((uid_t)id, ent, buf, len, &res);
	else
		e = getpwnam_r(v, ent, buf, len, &res);
	*found = res != NULL;
	return e;
}

static int
ids_get_group(const char *v, unsigned id, bool by_id, void *ent, char *buf,
	      size_t len, bool *found)
{
	struct group *res = NULL;
	int e;

	if (by_id)
		e = getgrgid_r((gid_t)id, ent, buf, len, &res);
	else
		e = getgrnam_r(v, ent, buf, len, &res);
	*found = res != NULL;
	return e;
}

/* v as a decimal id: all digits and within unsigned. */
static bool
ids_numeric(const char *v, unsigned *out)
{
	unsigned long n;
	char *end;

	if (!isdigit((unsigned char)v[0]))
		return false;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (*end != '\0' || errno != 0 || n > UINT_MAX)
		return false;
	*out = (unsigned)n;
	return true;
}

/*
 * One lookup with a buffer that grows on ERANGE. Returns 1 found, 0 not
 * found (the errors POSIX allows for "no such entry" count as that), -1 on
 * another error (in *err).
 */
static int
ids_get(ids_get_fn get, const char *v, unsigned id, bool by_id, void *ent,
	char **buf, int *err)
{
	size_t size = 1024;
	bool found = false;
	int e;

	for (;;) {
		*buf = xrealloc(*buf, size, 1);
		e = get(v, id, by_id, ent, *buf, size, &found);
		if (e != ERANGE || size >= IDS_BUF_MAX)
			break;
		size *= 2;
	}
	if (found)
		return 1;
	if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)
		return 0;
	*err = e;
	return -1;
}

/* The name-then-number rule over either database; *buf holds the strings. */
static int
ids_lookup(ids_get_fn get, const char *v, void *ent, char **buf,
	   const char *what, char *why, size_t whylen)
{
	unsigned id;
	int rc, err = 0;

	rc = ids_get(get, v, 0, false, ent, buf, &err);
	if (rc == 0 && ids_numeric(v, &id))
		rc = ids_get(get, v, id, true, ent, buf, &err);
	if (rc == 1)
		return 0;
	if (rc == 0)
		snprintf(why, whylen, "no such %s", what);
	else
		snprintf(why, whylen, "cannot look the %s up: %s", what,
			 strerror(err));
	return -1;
}

int
ids_user_lookup(const char *v, struct ids_user *u, char *why, size_t whylen)
{
	struct passwd pw;
	char *buf = NULL;
	int rc;

	rc = ids_lookup(ids_get_user, v, &pw, &buf, "user", why, whylen);
	if (rc == 0 && u != NULL) {
		u->uid = pw.pw_uid;
		u->gid = pw.pw_gid;
		u->name = xstrdup(pw.pw_name);
		u->home = xstrdup(pw.pw_dir != NULL ? pw.pw_dir : "/");
	}
	free(buf);
	return rc;
}

void
ids_user_clear(struct ids_user *u)
{
	free(u->name);
	free(u->home);
	u->name = u->home = NULL;
}

int
ids_group_lookup(const char *v, gid_t *gid, char *why, size_t whylen)
{
	struct group gr;
	char *buf = NULL;
	int rc;

	rc = ids_lookup(ids_get_group, v, &gr, &buf, "group", why, whylen);
	if (rc == 0 && gid != NULL)
		*gid = gr.gr_gid;
	free(buf);
	return rc;
}

bool
ids_user_exists(const char *v, char *why, size_t whylen)
{
	return ids_user_lookup(v, NULL, why, whylen) == 0;
}

bool
ids_group_exists(const char *v, char *why, size_t whylen)
{
	return ids_group_lookup(v, NULL, why, whylen) == 0;
}

int
ids_group_list(const char *name, gid_t gid, gid_t **groups, int *ngroups)
{
	gid_t *g = NULL;
	int n = 32;

	for (;;) {
		int got = n;

		g = xrealloc(g, (size_t)n, sizeof(*g));
		if (getgrouplist(name, gid, g, &got) != -1) {
			*groups = g;
			*ngroups = got;
			return 0;
		}
		/* got is how many it needs; no growth means a failure. */
		if (got <= n || got > 65536) {
			free(g);
			return -1;
		}
		n = got;
	}
}
