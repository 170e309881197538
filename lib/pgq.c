/* The public API of libpgq: filled in below. */
#include "config.h"
#include "pgq.h"

const char *
pgq_error_class_name(enum pgq_error_class klass)
{
	switch (klass) {
	case PGQ_OK:
		return "ok";
	case PGQ_ERR_CONNECTION:
		return "connection";
	case PGQ_ERR_UNIQUE:
		return "unique_violation";
	case PGQ_ERR_UNDEFINED_TABLE:
		return "undefined_table";
	case PGQ_ERR_SERIALIZATION:
		return "serialization_failure";
	case PGQ_ERR_CHECK:
		return "connection_check";
	case PGQ_ERR_INVALID:
		return "invalid_argument";
	case PGQ_ERR_OTHER:
		break;
	}
	return "other";
}
