/*
 * lib/ inside the tree: what the consumer engine and the CLI use of a libpgq
 * handle beyond include/pgq.h. Not installed and not exported from
 * libpgq.so; struct pgq itself stays private to lib/pgq.c.
 */
#ifndef PGQ_LIB_H
#define PGQ_LIB_H

#include "pgq.h"
#include "sql/sql.h"

/* The statement session of q's connection (borrowed: lives as long as q). */
struct sql_session *lib_session(struct pgq *q);
/* The role q was opened or wrapped for (its connection checks). */
enum pgq_role lib_role(const struct pgq *q);

#endif
