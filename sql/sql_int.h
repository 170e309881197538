/*
 * Private to sql/: the named sections of the .sql files, compiled into
 * sql_text.c by embed.sh, and the placeholder renderer shared by the
 * statement, script and schema code.
 */
#ifndef PGQ_SQL_INT_H
#define PGQ_SQL_INT_H

#include <stddef.h>

#include "sql/sql.h"

struct sql_section {
	const char *name; /* "install.enum", "stmt.claim", ... */
	const char *text; /* SQL with {placeholders}, comments stripped */
};

extern const struct sql_section sql_sections[];
extern const size_t sql_nsections;

/* The section called name, or NULL. */
const struct sql_section *sql_section_find(const char *name);

/*
 * Replaces every {placeholder} of text known for names n and durability d;
 * unknown ones are left as they are. Returns a fresh string.
 */
char *sql_render_text(const char *text, const struct sql_names *n,
		      enum sql_durability d);

#endif
