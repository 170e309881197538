/*
 * Rendering of the embedded SQL: {placeholder} replacement with validated
 * names, the prepared statement table, and scripts as ordered step lists
 * built from the sections whose name starts with the script's name.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql_int.h"

/* Section and prepared-statement name per statement, in enum order. */
static const struct {
	const char *section;
	const char *name;
} stmt_table[SQL_STMT_COUNT] = {
	[SQL_ENQUEUE] = {"stmt.enqueue", "pgq_enqueue"},
	[SQL_CLAIM] = {"stmt.claim", "pgq_claim"},
	[SQL_COMPLETE] = {"stmt.complete", "pgq_complete"},
	[SQL_RETRY] = {"stmt.retry", "pgq_retry"},
	[SQL_HOLD] = {"stmt.hold", "pgq_hold"},
	[SQL_REQUEUE] = {"stmt.requeue", "pgq_requeue"},
	[SQL_CANCEL] = {"stmt.cancel", "pgq_cancel"},
	[SQL_HEARTBEAT] = {"stmt.heartbeat", "pgq_heartbeat"},
	[SQL_RECOVER] = {"stmt.recover", "pgq_recover"},
	[SQL_AGGREGATE] = {"stmt.aggregate", "pgq_aggregate"},
	[SQL_QUEUE_SIZE] = {"stmt.queue_size", "pgq_queue_size"},
	[SQL_JOB_LOG] = {"stmt.job_log", "pgq_job_log"},
	[SQL_FAILED] = {"stmt.failed", "pgq_failed"},
	[SQL_NEXT_DUE] = {"stmt.next_due", "pgq_next_due"},
	[SQL_NOTIFY] = {"stmt.notify", "pgq_notify"},
	[SQL_SCHEDULE_UPSERT] = {"stmt.schedule_upsert", "pgq_schedule_upsert"},
	[SQL_SCHEDULE_CLAIM] = {"stmt.schedule_claim", "pgq_schedule_claim"},
	[SQL_SCHEDULE_FIRE] = {"stmt.schedule_fire", "pgq_schedule_fire"},
	[SQL_SCHEDULE_LIST] = {"stmt.schedule_list", "pgq_schedule_list"},
	[SQL_SCHEDULE_REMOVE] = {"stmt.schedule_remove", "pgq_schedule_remove"},
	[SQL_STATS] = {"stmt.stats", "pgq_stats"},
	[SQL_PRUNE] = {"stmt.prune", "pgq_prune"},
	[SQL_LIMIT_LOCK] = {"stmt.limit_lock", "pgq_limit_lock"},
	[SQL_CLAIM_LIMITED] = {"stmt.claim_limited", "pgq_claim_limited"},
	/* stmt.enqueue with stmt.enqueue_check in its {enqueue_check} */
	[SQL_ENQUEUE_CHECKED] = {"stmt.enqueue", "pgq_enqueue_checked"},
	[SQL_PAYLOAD_LIMITS] = {"stmt.payload_limits", "pgq_payload_limits"},
};

static const char *const script_prefix[SQL_SCRIPT_COUNT] = {
	[SQL_SCRIPT_INSTALL] = "install.",
	[SQL_SCRIPT_UNINSTALL] = "uninstall.",
	[SQL_SCRIPT_UPGRADE] = "upgrade.",
	[SQL_SCRIPT_AUTOVAC] = "autovac.",
	[SQL_SCRIPT_DURABILITY] = "durability.",
};

const struct sql_section *
sql_section_find(const char *name)
{
	size_t i;

	for (i = 0; i < sql_nsections; i++)
		if (strcmp(sql_sections[i].name, name) == 0)
			return &sql_sections[i];
	return NULL;
}

/* The text of a section, following one "@other.section" alias. */
static const char *
section_text(const struct sql_section *s)
{
	char name[128];
	const struct sql_section *target;
	size_t len;

	if (s->text[0] != '@')
		return s->text;
	len = strcspn(s->text + 1, "\n");
	if (len >= sizeof(name))
		return s->text;
	memcpy(name, s->text + 1, len);
	name[len] = '\0';
	target = sql_section_find(name);
	return target != NULL ? target->text : s->text;
}

/* Whether table t is unlogged at durability d. */
static bool
unlogged(const char *t, enum sql_durability d)
{
	switch (d) {
	case SQL_DURABLE:
		return false;
	case SQL_BALANCED:
		return strcmp(t, "log") == 0 || strcmp(t, "statistics") == 0;
	case SQL_VOLATILE:
		return true;
	}
	return false;
}

/*
 * The value of placeholder key (len bytes), or NULL when unknown. buf holds
 * computed values.
 */
static const char *
lookup(const char *key, size_t len, const struct sql_names *n,
       enum sql_durability d, char *buf, size_t buflen)
{
	static const char *const tables[] = {"queue", "log", "statistics",
					     "schedules"};
	char k[64];
	size_t i;

	if (len == 0 || len >= sizeof(k))
		return NULL;
	memcpy(k, key, len);
	k[len] = '\0';

	if (strcmp(k, "queue") == 0)
		return n->queue;
	if (strcmp(k, "log") == 0)
		return n->log;
	if (strcmp(k, "statistics") == 0)
		return n->statistics;
	if (strcmp(k, "schedules") == 0)
		return n->schedules;
	if (strcmp(k, "status") == 0)
		return n->status;
	if (strcmp(k, "function") == 0)
		return n->function;
	if (strcmp(k, "queue_bare") == 0)
		return n->queue_bare;
	if (strcmp(k, "log_bare") == 0)
		return n->log_bare;
	if (strcmp(k, "statistics_bare") == 0)
		return n->statistics_bare;
	if (strcmp(k, "schedules_bare") == 0)
		return n->schedules_bare;
	if (strcmp(k, "status_bare") == 0)
		return n->status_bare;
	if (strcmp(k, "function_bare") == 0)
		return n->function_bare;
	if (strcmp(k, "trigger") == 0)
		return n->trigger;
	if (strcmp(k, "legacy_function") == 0)
		return n->legacy_function;
	if (strcmp(k, "legacy_function_bare") == 0)
		return n->legacy_function_bare;
	if (strcmp(k, "legacy_trigger") == 0)
		return n->legacy_trigger;
	if (strcmp(k, "channel") == 0)
		return n->channel;
	if (strcmp(k, "channel_literal") == 0) {
		/* A validated identifier holds no quote to escape. */
		snprintf(buf, buflen, "'%s'", n->channel);
		return buf;
	}
	for (i = 0; i < PGQ_NELEM(tables); i++) {
		if (strncmp(k, "unlogged_", 9) == 0 &&
		    strcmp(k + 9, tables[i]) == 0)
			return unlogged(tables[i], d) ? "UNLOGGED " : "";
		if (strncmp(k, "persistence_", 12) == 0 &&
		    strcmp(k + 12, tables[i]) == 0)
			return unlogged(tables[i], d) ? "UNLOGGED" : "LOGGED";
	}
	return NULL;
}

/* Appends len bytes of s to the growing string *out. */
static void
append(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*out = xrealloc(*out, *cap, 1);
	}
	memcpy(*out + *len, s, n);
	*len += n;
	(*out)[*len] = '\0';
}

char *
sql_render_text(const char *text, const struct sql_names *n,
		enum sql_durability d)
{
	size_t cap = strlen(text) + 256, len = 0;
	char *out = xmalloc(cap);
	char buf[SQL_IDENT_MAX + 8];
	const char *p = text;

	out[0] = '\0';
	while (*p != '\0') {
		const char *val = NULL;
		size_t klen = 0;

		if (*p == '{') {
			klen = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_");
			if (p[1 + klen] == '}')
				val = lookup(p + 1, klen, n, d, buf,
					     sizeof(buf));
		}
		if (val != NULL) {
			append(&out, &len, &cap, val, strlen(val));
			p += klen + 2;
		} else {
			append(&out, &len, &cap, p, 1);
			p++;
		}
	}
	return out;
}

const char *
sql_stmt_name(enum sql_stmt s)
{
	if ((unsigned)s >= SQL_STMT_COUNT)
		return NULL;
	return stmt_table[s].name;
}

char *
sql_stmt_render(enum sql_stmt s, const struct sql_names *n)
{
	const struct sql_section *sec;
	char *out, *at;

	if ((unsigned)s >= SQL_STMT_COUNT)
		return NULL;
	sec = sql_section_find(stmt_table[s].section);
	if (sec == NULL)
		return NULL;
	out = sql_render_text(section_text(sec), n, SQL_DURABLE);
	/* One enqueue text, two statements: the check is spliced in (or
	 * left out) here, not kept as a second copy of stmt.enqueue. */
	at = strstr(out, "{enqueue_check}");
	if (at != NULL) {
		const struct sql_section *chk =
			sql_section_find("stmt.enqueue_check");
		char *frag = s == SQL_ENQUEUE_CHECKED && chk != NULL
				     ? sql_render_text(section_text(chk), n,
						       SQL_DURABLE)
				     : xstrdup("");
		char *joined = xasprintf("%.*s%s%s", (int)(at - out), out, frag,
					 at + strlen("{enqueue_check}"));

		free(frag);
		free(out);
		out = joined;
	}
	return out;
}

void
sql_script_render(enum sql_script s, const struct sql_names *n,
		  enum sql_durability d, struct sql_script_text *out)
{
	const char *prefix;
	size_t i, plen, count = 0;

	memset(out, 0, sizeof(*out));
	if ((unsigned)s >= SQL_SCRIPT_COUNT)
		return;
	prefix = script_prefix[s];
	plen = strlen(prefix);
	for (i = 0; i < sql_nsections; i++)
		if (strncmp(sql_sections[i].name, prefix, plen) == 0)
			count++;
	if (count == 0)
		return;
	out->steps = xcalloc(count, sizeof(*out->steps));
	out->labels = xcalloc(count, sizeof(*out->labels));
	for (i = 0; i < sql_nsections; i++) {
		const struct sql_section *sec = &sql_sections[i];

		if (strncmp(sec->name, prefix, plen) != 0)
			continue;
		out->steps[out->n] = sql_render_text(section_text(sec), n, d);
		out->labels[out->n] = xstrdup(sec->name);
		out->n++;
	}
}

void
sql_script_clear(struct sql_script_text *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++) {
		free(t->steps[i]);
		free(t->labels[i]);
	}
	free(t->steps);
	free(t->labels);
	memset(t, 0, sizeof(*t));
}
