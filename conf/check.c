/*
 * conf_build: from the sections the reader collected (load.c) to a checked
 * struct conf. Defaults first, then each value through its type (types.c),
 * then the rules that tie keys together: worker counts, handler kinds and
 * their keys, retry delays, rate limits, and the schedules.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_int.h"

static const struct conf_raw_entry *
entry_find(const struct conf_raw_section *sec, const char *name)
{
	if (sec == NULL)
		return NULL;
	for (size_t i = 0; i < sec->nentries; i++)
		if (strcmp(sec->entries[i].key->name, name) == 0)
			return &sec->entries[i];
	return NULL;
}

/* True when name is unset or was parsed without error. */
static bool
entry_ok(const struct conf_raw_section *sec, const char *name)
{
	const struct conf_raw_entry *e = entry_find(sec, name);

	return e == NULL || !e->bad;
}

/* The line to blame for a cross-key problem: the first set key, else the
 * section header, else 0 (the whole file). */
static unsigned
blame_line(const struct conf_raw_section *sec, const char *a, const char *b)
{
	const struct conf_raw_entry *e = entry_find(sec, a);

	if (e == NULL && b != NULL)
		e = entry_find(sec, b);
	if (e != NULL)
		return e->line;
	return sec ? sec->line : 0;
}

static struct conf_value
entry_value(const struct conf_raw *raw, const struct conf_raw_entry *e)
{
	return (struct conf_value){
		.key = e->key,
		.text = e->value,
		.file = raw->file,
		.line = e->line,
		.comment_cut = e->comment_cut,
		.errs = raw->errs,
	};
}

/* Sets every key of a section kind to its default in base. */
static void
set_defaults(struct conf_raw *raw, enum conf_section_kind kind, void *base)
{
	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];
		struct conf_value v = {
			.key = k,
			.text = k->def,
			.file = raw->file,
			.errs = raw->errs,
		};

		if (k->section != kind)
			continue;
		conf_types[k->type].init(k, base);
		if (k->def != NULL && conf_value_set(&v, base) != 0)
			fatalx("conf: bad default for %s: %s", k->name, k->def);
	}
}

/* Parses a section's entries into base; marks the ones that fail. */
static void
apply_entries(struct conf_raw *raw, struct conf_raw_section *sec, void *base)
{
	for (size_t i = 0; i < sec->nentries; i++) {
		struct conf_raw_entry *e = &sec->entries[i];
		struct conf_value v = entry_value(raw, e);

		if (e->broken) {
			e->bad = true;
			continue;
		}
		e->bad = conf_value_set(&v, base) != 0;
	}
}

/* Reports that key lo is above key hi, both shown as the file writes them:
 * "must not exceed retry_max_delay, got 10m > 5m". */
static void
report_above(struct conf_raw *raw, const struct conf_raw_section *sec,
	     enum conf_section_kind kind, const void *base, const char *lo,
	     const char *hi)
{
	const struct conf_key *klo = conf_key_find(kind, lo);
	const struct conf_key *khi = conf_key_find(kind, hi);
	char *a = conf_types[klo->type].print(klo, base);
	char *b = conf_types[khi->type].print(khi, base);

	conf_error_add(raw->errs, raw->file, blame_line(sec, lo, hi), lo, NULL,
		       "must not exceed %s, got %s > %s", hi, a, b);
	free(a);
	free(b);
}

static void
check_pgq(struct conf_raw *raw, const struct conf_raw_section *sec,
	  struct conf *cf)
{
	bool ok = entry_ok(sec, "workers") && entry_ok(sec, "min_workers") &&
		  entry_ok(sec, "max_workers");
	const struct conf_raw_entry *si;

	if (ok && cf->min_workers > cf->max_workers) {
		report_above(raw, sec, CONF_SECT_PGQ, cf, "min_workers",
			     "max_workers");
	} else if (ok && (cf->workers < cf->min_workers ||
			  cf->workers > cf->max_workers)) {
		const char *key = entry_find(sec, "workers") ? "workers"
				  : cf->workers > cf->max_workers
					  ? "max_workers"
					  : "min_workers";

		conf_error_add(
			raw->errs, raw->file, blame_line(sec, key, NULL), key,
			NULL,
			"workers must be between min_workers and max_workers, "
			"got workers = %u with %u..%u",
			cf->workers, cf->min_workers, cf->max_workers);
	}
	if (entry_ok(sec, "respawn_backoff") &&
	    entry_ok(sec, "respawn_backoff_max") &&
	    cf->respawn_backoff_ms > cf->respawn_backoff_max_ms)
		report_above(raw, sec, CONF_SECT_PGQ, cf, "respawn_backoff",
			     "respawn_backoff_max");
	if (entry_ok(sec, "log_target") && entry_ok(sec, "log_file") &&
	    cf->log_target == LOG_TARGET_FILE && cf->log_file[0] == '\0')
		conf_error_add(raw->errs, raw->file,
			       blame_line(sec, "log_target", NULL),
			       "log_target", NULL,
			       "log_target = file needs log_file");
	si = entry_find(sec, "stats_interval");
	if (si != NULL && !si->bad && cf->stats_interval_ms > 0 &&
	    cf->stats_interval_ms < 100)
		conf_error_add(raw->errs, raw->file, si->line, "stats_interval",
			       si->value, "must be 0 (off) or at least 100ms");
	si = entry_find(sec, "group");
	if (si != NULL && !si->bad && entry_find(sec, "user") == NULL)
		conf_error_add(raw->errs, raw->file, si->line, "group", NULL,
			       "only applies with user");
	if (cf->channel[0] == '\0') {
		free(cf->channel);
		cf->channel = xasprintf("%sch_pgqueuer", cf->prefix);
	}
}

/* Exactly one of command, module and builtin; reports the second in file
 * order. Returns the first, or NULL when there is none. */
static const struct conf_raw_entry *
pick_handler(struct conf_raw *raw, const struct conf_raw_section *sec,
	     struct conf_entrypoint *ep)
{
	static const char *const handlers[] = {"command", "module", "builtin"};
	const struct conf_raw_entry *first = NULL;

	for (size_t i = 0; i < sec->nentries; i++) {
		const struct conf_raw_entry *e = &sec->entries[i];

		for (size_t h = 0; h < PGQ_NELEM(handlers); h++) {
			if (strcmp(e->key->name, handlers[h]) != 0)
				continue;
			if (first == NULL) {
				first = e;
				ep->kind = (enum conf_handler_kind)h;
			} else {
				conf_error_add(
					raw->errs, raw->file, e->line,
					e->key->name, NULL,
					"one handler per entrypoint: %s is "
					"already set on line %u",
					first->key->name, first->line);
			}
		}
	}
	if (first == NULL)
		conf_error_add(raw->errs, raw->file, sec->line, NULL, NULL,
			       "[entrypoint %s]: no handler; set one of "
			       "command, module or builtin",
			       sec->name);
	return first;
}

/* Keys that belong to one handler kind; a bad value was reported already.
 */
static void
check_handler_keys(struct conf_raw *raw, const struct conf_raw_section *sec,
		   const struct conf_entrypoint *ep)
{
	static const char *const command_only[] = {
		"rlimit_as", "rlimit_cpu", "rlimit_nofile",
		"user",	     "group",	   "pass_env"};

	for (size_t i = 0; i < sec->nentries; i++) {
		const char *name = sec->entries[i].key->name;

		if (sec->entries[i].bad)
			continue;
		if (strcmp(name, "cancel") == 0 &&
		    ep->kind != CONF_HANDLER_MODULE)
			conf_error_add(raw->errs, raw->file,
				       sec->entries[i].line, name, NULL,
				       "only applies with module");
		for (size_t k = 0; k < PGQ_NELEM(command_only); k++)
			if (strcmp(name, command_only[k]) == 0 &&
			    ep->kind != CONF_HANDLER_COMMAND)
				conf_error_add(raw->errs, raw->file,
					       sec->entries[i].line, name, NULL,
					       "only applies with command");
	}
}

static void
build_entrypoint(struct conf_raw *raw, struct conf_raw_section *sec,
		 struct conf_entrypoint *ep)
{
	const struct conf_raw_entry *first, *e;

	ep->name = xstrdup(sec->name);
	ep->line = sec->line;
	set_defaults(raw, CONF_SECT_ENTRYPOINT, ep);
	apply_entries(raw, sec, ep);
	first = pick_handler(raw, sec, ep);
	e = entry_find(sec, "module");
	if (e != NULL && entry_find(sec, "function") == NULL)
		conf_error_add(
			raw->errs, raw->file, e->line, "module", NULL,
			"needs function (the name of the handler function)");
	e = entry_find(sec, "function");
	if (e != NULL && entry_find(sec, "module") == NULL)
		conf_error_add(raw->errs, raw->file, e->line, "function", NULL,
			       "only applies with module");
	e = entry_find(sec, "sleep");
	if (e != NULL && entry_ok(sec, "builtin") &&
	    !(entry_find(sec, "builtin") && ep->builtin == CONF_BUILTIN_SLEEP))
		conf_error_add(raw->errs, raw->file, e->line, "sleep", NULL,
			       "only applies with builtin = sleep");
	if (first != NULL)
		check_handler_keys(raw, sec, ep);
	if (entry_ok(sec, "retry_delay") && entry_ok(sec, "retry_max_delay") &&
	    ep->retry_delay_ms > ep->retry_max_delay_ms)
		report_above(raw, sec, CONF_SECT_ENTRYPOINT, ep, "retry_delay",
			     "retry_max_delay");
	e = entry_find(sec, "requests_per_second");
	if (e != NULL && !e->bad && !(ep->requests_per_second > 0.0)) {
		struct conf_value v = entry_value(raw, e);

		conf_value_error(&v, "leave the key out for no rate limit",
				 "must be greater than 0");
	}
	e = entry_find(sec, "burst");
	if (e != NULL && !e->bad &&
	    entry_find(sec, "requests_per_second") == NULL)
		conf_error_add(raw->errs, raw->file, e->line, "burst", NULL,
			       "only applies with requests_per_second");
	if (ep->burst == 0 && ep->requests_per_second > 0.0)
		ep->burst = (unsigned)ceil(ep->requests_per_second);
}

static void
build_schedule(struct conf_raw *raw, struct conf_raw_section *sec,
	       struct conf_schedule *sc)
{
	sc->name = xstrdup(sec->name);
	sc->line = sec->line;
	set_defaults(raw, CONF_SECT_SCHEDULE, sc);
	apply_entries(raw, sec, sc);
	if (entry_find(sec, "entrypoint") == NULL) {
		free(sc->entrypoint);
		sc->entrypoint = xstrdup(sc->name);
	}
	if (entry_find(sec, "cron") == NULL)
		conf_error_add(raw->errs, raw->file, sec->line, NULL, NULL,
			       "[schedule %s]: cron is required (when the "
			       "job is enqueued: \"0 3 * * *\", "
			       "\"@hourly\", ...)",
			       sec->name);
}

/* The table keeps one row per expression and entrypoint. */
static void
check_schedules_unique(struct conf_raw *raw, const struct conf *cf)
{
	for (size_t j = 1; j < cf->nschedules; j++) {
		const struct conf_schedule *b = &cf->schedules[j];

		for (size_t i = 0; i < j && b->expression[0] != '\0'; i++) {
			const struct conf_schedule *a = &cf->schedules[i];

			if (strcmp(a->expression, b->expression) != 0 ||
			    strcmp(a->entrypoint, b->entrypoint) != 0)
				continue;
			conf_error_add(raw->errs, raw->file, b->line, NULL,
				       NULL,
				       "[schedule %s]: same entrypoint and "
				       "cron as [schedule %s] on line %u",
				       b->name, a->name, a->line);
			break;
		}
	}
}

static struct conf_raw_section *
section_find(struct conf_raw *raw, enum conf_section_kind kind)
{
	for (size_t i = 0; i < raw->nsections; i++)
		if (raw->sections[i].kind == kind)
			return &raw->sections[i];
	return NULL;
}

static size_t
section_count(const struct conf_raw *raw, enum conf_section_kind kind)
{
	size_t n = 0;

	for (size_t i = 0; i < raw->nsections; i++)
		if (raw->sections[i].kind == kind)
			n++;
	return n;
}

void
conf_build(struct conf_raw *raw, struct conf *cf)
{
	struct conf_raw_section *pgq = section_find(raw, CONF_SECT_PGQ);
	struct conf_raw_section *db = section_find(raw, CONF_SECT_DATABASE);
	size_t n;

	set_defaults(raw, CONF_SECT_PGQ, cf);
	set_defaults(raw, CONF_SECT_DATABASE, cf);
	if (pgq != NULL)
		apply_entries(raw, pgq, cf);
	if (db != NULL)
		apply_entries(raw, db, cf);
	check_pgq(raw, pgq, cf);

	n = section_count(raw, CONF_SECT_ENTRYPOINT);
	cf->entrypoints = xcalloc(n ? n : 1, sizeof(cf->entrypoints[0]));
	for (size_t i = 0; i < raw->nsections; i++)
		if (raw->sections[i].kind == CONF_SECT_ENTRYPOINT)
			build_entrypoint(raw, &raw->sections[i],
					 &cf->entrypoints[cf->nentrypoints++]);
	if (n == 0)
		conf_error_add(raw->errs, raw->file, 0, NULL, NULL,
			       "no [entrypoint NAME] section; at least one is "
			       "required");

	n = section_count(raw, CONF_SECT_SCHEDULE);
	cf->schedules = xcalloc(n ? n : 1, sizeof(cf->schedules[0]));
	for (size_t i = 0; i < raw->nsections; i++)
		if (raw->sections[i].kind == CONF_SECT_SCHEDULE)
			build_schedule(raw, &raw->sections[i],
				       &cf->schedules[cf->nschedules++]);
	check_schedules_unique(raw, cf);
}
