/*
 * Users and groups as pgq.ini names them ([pgq] user/group, an entrypoint's
 * user/group), resolved by one rule everywhere: the config check, the
 * master's privilege drop and a command handler's switch.
 */
#ifndef PGQ_IDS_H
#define PGQ_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/common.h"

/* A user as the system knows it. */
struct ids_user {
	uid_t uid;
	gid_t gid;  /* its primary group */
	char *name; /* as the system spells it (v may have been a number) */
	char *home;
};

/*
 * Looks v up as chown(1) does: as a name first; only when no such name
 * exists and v is all digits, as a numeric id (which must exist too).
 * Entries of any size are read (the buffer grows on ERANGE). Returns 0 with
 * *u filled (clear it with ids_user_clear; u may be NULL to only ask), or -1
 * with why holding the reason: "no such user", or the lookup's own error.
 */
int ids_user_lookup(const char *v, struct ids_user *u, char *why,
		    size_t whylen) PGQ_WUR;
void ids_user_clear(struct ids_user *u);

/* The same for a group; gid may be NULL. why: "no such group"... */
int ids_group_lookup(const char *v, gid_t *gid, char *why,
		     size_t whylen) PGQ_WUR;

/* Predicates over the lookups, for a config check: false with why. */
bool ids_user_exists(const char *v, char *why, size_t whylen);
bool ids_group_exists(const char *v, char *why, size_t whylen);

/*
 * The supplementary groups of user name with gid among them
 * (getgrouplist), into a fresh *groups (caller frees) and *ngroups.
 * Returns -1 when the list cannot be read or exceeds 65536 groups.
 */
int ids_group_list(const char *name, gid_t gid, gid_t **groups,
		   int *ngroups) PGQ_WUR;

#endif
