/*
 * Object names for one prefix, schema and channel: validated once here, so
 * that the renderer can splice them into SQL unquoted. They fold to lower
 * case in PostgreSQL, so the rendered names are lower case too (the bare
 * queue name is what TG_TABLE_NAME reports).
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "driver/driver.h"
#include "sql/sql.h"

static void
lower_copy(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; src[i] != '\0' && i + 1 < len; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

/* name = prefix + base, lower case; qualified = schema "." name or name. */
static void
name_pair(const struct sql_names *n, const char *base, char *bare,
	  size_t bare_len, char *qual, size_t qual_len)
{
	char tmp[SQL_IDENT_MAX * 2];

	snprintf(tmp, sizeof(tmp), "%s%s", n->prefix, base);
	lower_copy(bare, bare_len, tmp);
	if (n->schema[0] != '\0')
		snprintf(qual, qual_len, "%s.%s", n->schema, bare);
	else
		snprintf(qual, qual_len, "%s", bare);
}

int
sql_names_init(struct sql_names *n, const char *prefix, const char *schema,
	       const char *channel, struct pgq_error *err)
{
	char tmp[SQL_IDENT_MAX * 2];

	memset(n, 0, sizeof(*n));
	if (prefix == NULL)
		prefix = "";
	if (schema == NULL)
		schema = "";
	if (channel == NULL)
		channel = "";

	if (prefix[0] != '\0') {
		if (strlen(prefix) > SQL_PREFIX_MAX) {
			driver_error_set(err, PGQ_ERR_INVALID,
					 "invalid prefix: longer than %d bytes",
					 SQL_PREFIX_MAX);
			return -1;
		}
		if (!ident_valid(prefix, SQL_PREFIX_MAX)) {
			driver_error_set(err, PGQ_ERR_INVALID,
					 "invalid prefix \"%.64s\": must match "
					 "^[A-Za-z_][A-Za-z0-9_]*$",
					 prefix);
			return -1;
		}
	}
	if (schema[0] != '\0' && !ident_valid(schema, SQL_IDENT_MAX)) {
		driver_error_set(
			err, PGQ_ERR_INVALID,
			"invalid schema \"%.64s\": must match "
			"^[A-Za-z_][A-Za-z0-9_]*$ and be at most %d bytes",
			schema, SQL_IDENT_MAX);
		return -1;
	}
	if (channel[0] != '\0' && !ident_valid(channel, SQL_IDENT_MAX)) {
		driver_error_set(
			err, PGQ_ERR_INVALID,
			"invalid channel \"%.64s\": must match "
			"^[A-Za-z_][A-Za-z0-9_]*$ and be at most %d bytes",
			channel, SQL_IDENT_MAX);
		return -1;
	}

	snprintf(n->prefix, sizeof(n->prefix), "%s", prefix);
	lower_copy(n->schema, sizeof(n->schema), schema);
	/* The channel is a string literal and a quoted LISTEN name: its case
	 * is kept, as PgQueuer keeps it. */
	if (channel[0] != '\0')
		snprintf(n->channel, sizeof(n->channel), "%s", channel);
	else
		snprintf(n->channel, sizeof(n->channel), "%sch_pgqueuer",
			 prefix);

	name_pair(n, "pgqueuer", n->queue_bare, sizeof(n->queue_bare), n->queue,
		  sizeof(n->queue));
	name_pair(n, "pgqueuer_log", n->log_bare, sizeof(n->log_bare), n->log,
		  sizeof(n->log));
	name_pair(n, "pgqueuer_statistics", n->statistics_bare,
		  sizeof(n->statistics_bare), n->statistics,
		  sizeof(n->statistics));
	name_pair(n, "pgqueuer_schedules", n->schedules_bare,
		  sizeof(n->schedules_bare), n->schedules,
		  sizeof(n->schedules));
	name_pair(n, "pgqueuer_status", n->status_bare, sizeof(n->status_bare),
		  n->status, sizeof(n->status));
	/* PgQueuer puts the prefix in front of the whole name. */
	name_pair(n, "fn_pgqueuer_changed", n->function_bare,
		  sizeof(n->function_bare), n->function, sizeof(n->function));
	snprintf(tmp, sizeof(tmp), "%stg_pgqueuer_changed", prefix);
	lower_copy(n->trigger, sizeof(n->trigger), tmp);
	snprintf(tmp, sizeof(tmp), "fn_%spgqueuer_changed", prefix);
	lower_copy(n->legacy_function_bare, sizeof(n->legacy_function_bare),
		   tmp);
	if (n->schema[0] != '\0')
		snprintf(n->legacy_function, sizeof(n->legacy_function),
			 "%s.%s", n->schema, n->legacy_function_bare);
	else
		snprintf(n->legacy_function, sizeof(n->legacy_function), "%s",
			 n->legacy_function_bare);
	snprintf(tmp, sizeof(tmp), "tg_%spgqueuer_changed", prefix);
	lower_copy(n->legacy_trigger, sizeof(n->legacy_trigger), tmp);
	return 0;
}

bool
sql_durability_parse(const char *s, enum sql_durability *out)
{
	if (s == NULL)
		return false;
	if (strcmp(s, "durable") == 0)
		*out = SQL_DURABLE;
	else if (strcmp(s, "balanced") == 0)
		*out = SQL_BALANCED;
	else if (strcmp(s, "volatile") == 0)
		*out = SQL_VOLATILE;
	else
		return false;
	return true;
}

const char *
sql_durability_name(enum sql_durability d)
{
	switch (d) {
	case SQL_DURABLE:
		return "durable";
	case SQL_BALANCED:
		return "balanced";
	case SQL_VOLATILE:
		return "volatile";
	}
	return "unknown";
}
