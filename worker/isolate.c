/*
 * What a command's process becomes before its exec: resource limits, a user
 * and group (resolved once, when the handler is set up, by common/ids.c's
 * rule), and an environment scrubbed down to the job and a few variables.
 * The command handler forks; this file decides what the child is.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ids.h"
#include "worker/worker_int.h"

/* The words of a blank-separated list, NULL-terminated; NULL when none. */
static char **
split_words(const char *s)
{
	char **v = NULL;
	size_t n = 0;

	while (s != NULL && *s != '\0') {
		size_t len;

		while (*s == ' ' || *s == '\t')
			s++;
		len = strcspn(s, " \t");
		if (len == 0)
			break;
		v = xrealloc(v, n + 2, sizeof(*v));
		v[n++] = xstrndup(s, len);
		v[n] = NULL;
		s += len;
	}
	return v;
}

static void
rlimit_value(struct rlimit *rl, uint64_t v)
{
	rl->rlim_cur = rl->rlim_max =
		v >= (uint64_t)RLIM_INFINITY ? RLIM_INFINITY : (rlim_t)v;
}

/* Only root may (and must, or it keeps its own) set the group list. */
static int
isolate_groups(struct command_identity *id, char *errbuf, size_t errlen)
{
	if (!id->set_gid || geteuid() != 0)
		return 0;
	id->set_groups = true;
	if (id->user == NULL) {
		id->groups = xcalloc(1, sizeof(*id->groups));
		id->groups[0] = id->gid;
		id->ngroups = 1;
		return 0;
	}
	if (ids_group_list(id->user, id->gid, &id->groups, &id->ngroups) ==
	    -1) {
		snprintf(errbuf, errlen, "user %s: cannot list its groups",
			 id->user);
		return -1;
	}
	return 0;
}

int
isolate_resolve(struct command_identity *id,
		const struct command_isolation *iso, char *errbuf,
		size_t errlen)
{
	bool have_user = iso->user != NULL && iso->user[0] != '\0';
	bool have_group = iso->group != NULL && iso->group[0] != '\0';
	char why[128];

	isolate_clear(id);
	id->set_as = iso->rlimit_as > 0;
	rlimit_value(&id->as, iso->rlimit_as);
	id->set_cpu = iso->rlimit_cpu_s > 0;
	rlimit_value(&id->cpu, iso->rlimit_cpu_s);
	id->set_nofile = iso->rlimit_nofile > 0;
	rlimit_value(&id->nofile, iso->rlimit_nofile);
	if (have_user) {
		struct ids_user u;

		if (ids_user_lookup(iso->user, &u, why, sizeof(why)) == -1) {
			snprintf(errbuf, errlen, "user %s: %s", iso->user, why);
			return -1;
		}
		id->set_uid = id->set_gid = true;
		id->uid = u.uid;
		id->gid = u.gid;
		id->user = u.name;
		id->home = u.home;
	}
	if (have_group) {
		if (ids_group_lookup(iso->group, &id->gid, why, sizeof(why)) ==
		    -1) {
			snprintf(errbuf, errlen, "group %s: %s", iso->group,
				 why);
			return -1;
		}
		id->set_gid = true;
	}
	if (isolate_groups(id, errbuf, errlen) == -1)
		return -1;
	id->pass_env = split_words(iso->pass_env);
	return 0;
}

void
isolate_clear(struct command_identity *id)
{
	for (size_t i = 0; id->pass_env != NULL && id->pass_env[i] != NULL; i++)
		free(id->pass_env[i]);
	free(id->pass_env);
	free(id->groups);
	free(id->user);
	free(id->home);
	memset(id, 0, sizeof(*id));
}

/* In the child: says why it cannot run the program, and exits 126. */
static void PGQ_NORETURN
isolate_child_fail(const char *what, const char *arg, int e)
{
	char msg[512];
	int n;

	n = snprintf(msg, sizeof(msg), "pgq: cannot %s%s: %s\n", what, arg,
		     strerror(e));
	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	_exit(126);
}

void
isolate_apply(const struct command_identity *id)
{
	if (id->set_as && setrlimit(RLIMIT_AS, &id->as) == -1)
		isolate_child_fail("set ", "rlimit_as", errno);
	if (id->set_cpu && setrlimit(RLIMIT_CPU, &id->cpu) == -1)
		isolate_child_fail("set ", "rlimit_cpu", errno);
	if (id->set_nofile && setrlimit(RLIMIT_NOFILE, &id->nofile) == -1)
		isolate_child_fail("set ", "rlimit_nofile", errno);
	if (id->set_groups &&
	    setgroups((size_t)id->ngroups,
		      id->ngroups > 0 ? id->groups : NULL) == -1)
		isolate_child_fail("set ", "supplementary groups", errno);
	if (id->set_gid && setgid(id->gid) == -1)
		isolate_child_fail("switch to ", "the group", errno);
	if (id->set_uid && setuid(id->uid) == -1)
		isolate_child_fail("switch to user ",
				   id->user != NULL ? id->user : "?", errno);
}

/* True when env (n entries) already sets name. */
static bool
env_has(char *const *env, size_t n, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < n; i++)
		if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
			return true;
	return false;
}

char **
isolate_env(const struct command_identity *id, const struct pgq_job *job)
{
	static const char *const keep[] = {"PATH", "HOME", "LANG", "TZ"};
	size_t npass = 0, n = 0;
	char **env;

	while (id->pass_env != NULL && id->pass_env[npass] != NULL)
		npass++;
	env = xcalloc(16 + npass, sizeof(*env));
	if (id->user != NULL) {
		env[n++] = xasprintf("HOME=%s", id->home);
		env[n++] = xasprintf("USER=%s", id->user);
		env[n++] = xasprintf("LOGNAME=%s", id->user);
	}

	env[n++] = xasprintf("PGQ_JOB_ID=%lld", (long long)job->id);
	env[n++] = xasprintf("PGQ_ENTRYPOINT=%s", job->entrypoint);
	env[n++] = xasprintf("PGQ_PRIORITY=%d", (int)job->priority);
	env[n++] = xasprintf("PGQ_ATTEMPTS=%d", (int)job->attempts);
	env[n++] =
		xasprintf("PGQ_HEADERS=%s",
			  job->headers_json != NULL ? job->headers_json : "");
	if (job->queue_manager_id != NULL)
		env[n++] = xasprintf("PGQ_QUEUE_MANAGER_ID=%s",
				     job->queue_manager_id);
	for (size_t i = 0; i < PGQ_NELEM(keep); i++) {
		const char *v = getenv(keep[i]);

		if (env_has(env, n, keep[i]))
			continue;
		if (v != NULL)
			env[n++] = xasprintf("%s=%s", keep[i], v);
		else if (strcmp(keep[i], "PATH") == 0)
			env[n++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	}
	for (size_t i = 0; i < npass; i++) {
		const char *v = getenv(id->pass_env[i]);

		if (v != NULL && !env_has(env, n, id->pass_env[i]))
			env[n++] = xasprintf("%s=%s", id->pass_env[i], v);
	}
	env[n] = NULL;
	return env;
}
