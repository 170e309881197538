/*
 * Reload support: which keys differ between the running config and a newly
 * loaded one, how each change applies (at once, by replacing workers, or only
 * after a restart), and the copy that keeps restart-only keys at their old
 * values so the master can swap in the new config whole.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "conf/conf_int.h"

/* Compares one key's value in two structs of the same kind. */
static bool
field_equal(const struct conf_key *k, const void *a, const void *b)
{
	return conf_types[k->type].equal(k, a, b);
}

static void
add_change(struct conf_diff *d, enum conf_change_kind kind, const char *section,
	   const char *key, enum conf_apply apply)
{
	static const char *const how[] = {
		[CONF_APPLY_MASTER] = "applied",
		[CONF_APPLY_WORKERS] = "workers will be replaced",
		[CONF_APPLY_RESTART] = "needs a restart, keeping old value",
	};
	struct conf_change *c;

	d->changes =
		xrealloc(d->changes, d->nchanges + 1, sizeof(d->changes[0]));
	c = &d->changes[d->nchanges++];
	c->kind = kind;
	c->section = xstrdup(section);
	c->key = key;
	c->apply = apply;
	if (kind == CONF_CHANGE_VALUE)
		c->text = xasprintf("[%s] %s changed: %s", section, key,
				    how[apply]);
	else
		c->text = xasprintf("[%s] %s: %s", section,
				    kind == CONF_CHANGE_ADDED ? "added"
							      : "removed",
				    how[apply]);
	switch (apply) {
	case CONF_APPLY_MASTER:
		d->master_changed = true;
		break;
	case CONF_APPLY_WORKERS:
		d->workers_changed = true;
		break;
	case CONF_APPLY_RESTART:
		d->restart_changed = true;
		break;
	}
}

static bool
entrypoint_differs(const struct conf_entrypoint *a,
		   const struct conf_entrypoint *b, struct conf_diff *d)
{
	bool differs = a->kind != b->kind;
	char *section = xasprintf("entrypoint %s", a->name);

	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (k->section != CONF_SECT_ENTRYPOINT || field_equal(k, a, b))
			continue;
		differs = true;
		if (d != NULL)
			add_change(d, CONF_CHANGE_VALUE, section, k->name,
				   k->apply);
	}
	free(section);
	return differs;
}

static const struct conf_schedule *
schedule_find(const struct conf *cf, const char *name)
{
	for (size_t i = 0; i < cf->nschedules; i++)
		if (strcmp(cf->schedules[i].name, name) == 0)
			return &cf->schedules[i];
	return NULL;
}

/* [schedule NAME] sections: the master applies every change itself. */
static void
schedules_diff(const struct conf *old, const struct conf *new,
	       struct conf_diff *d)
{
	for (size_t i = 0; i < old->nschedules; i++) {
		const struct conf_schedule *a = &old->schedules[i];
		const struct conf_schedule *b = schedule_find(new, a->name);
		char *section = xasprintf("schedule %s", a->name);

		if (b == NULL)
			add_change(d, CONF_CHANGE_REMOVED, section, NULL,
				   CONF_APPLY_MASTER);
		for (size_t j = 0; b != NULL && j < conf_nkeys; j++) {
			const struct conf_key *k = &conf_keys[j];

			if (k->section == CONF_SECT_SCHEDULE &&
			    !field_equal(k, a, b))
				add_change(d, CONF_CHANGE_VALUE, section,
					   k->name, k->apply);
		}
		free(section);
	}
	for (size_t i = 0; i < new->nschedules; i++) {
		const struct conf_schedule *b = &new->schedules[i];

		if (schedule_find(old, b->name) == NULL) {
			char *s = xasprintf("schedule %s", b->name);

			add_change(d, CONF_CHANGE_ADDED, s, NULL,
				   CONF_APPLY_MASTER);
			free(s);
		}
	}
}

void
conf_diff(const struct conf *old, const struct conf *new, struct conf_diff *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (k->section == CONF_SECT_ENTRYPOINT ||
		    k->section == CONF_SECT_SCHEDULE ||
		    field_equal(k, old, new))
			continue;
		add_change(out, CONF_CHANGE_VALUE,
			   conf_section_kind_name(k->section), k->name,
			   k->apply);
	}
	for (size_t i = 0; i < old->nentrypoints; i++) {
		const struct conf_entrypoint *a = &old->entrypoints[i];
		const struct conf_entrypoint *b =
			conf_entrypoint_find(new, a->name);

		if (b != NULL) {
			entrypoint_differs(a, b, out);
		} else {
			char *s = xasprintf("entrypoint %s", a->name);

			add_change(out, CONF_CHANGE_REMOVED, s, NULL,
				   CONF_APPLY_WORKERS);
			free(s);
		}
	}
	for (size_t i = 0; i < new->nentrypoints; i++) {
		const struct conf_entrypoint *b = &new->entrypoints[i];

		if (conf_entrypoint_find(old, b->name) == NULL) {
			char *s = xasprintf("entrypoint %s", b->name);

			add_change(out, CONF_CHANGE_ADDED, s, NULL,
				   CONF_APPLY_WORKERS);
			free(s);
		}
	}
	schedules_diff(old, new, out);
}

void
conf_diff_clear(struct conf_diff *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nchanges; i++) {
		free(d->changes[i].section);
		free(d->changes[i].text);
	}
	free(d->changes);
	memset(d, 0, sizeof(*d));
}

bool
conf_entrypoint_changed(const struct conf *old, const struct conf *new,
			const char *name)
{
	const struct conf_entrypoint *a = conf_entrypoint_find(old, name);
	const struct conf_entrypoint *b = conf_entrypoint_find(new, name);

	if (a == NULL || b == NULL)
		return a != b;
	return entrypoint_differs(a, b, NULL);
}

void
conf_keep_restart_keys(struct conf *new, const struct conf *old)
{
	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (k->section == CONF_SECT_ENTRYPOINT ||
		    k->section == CONF_SECT_SCHEDULE ||
		    k->apply != CONF_APPLY_RESTART)
			continue;
		conf_types[k->type].copy(k, new, old);
	}
}
