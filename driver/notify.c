/*
 * LISTEN statements and PgQueuer's notification events. Payloads come from
 * any client that can NOTIFY on the channel, so the parser treats them as
 * untrusted: every field is type-checked and bounded, and an unknown event
 * type is reported as such rather than as an error.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "driver/driver.h"

/* PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes. */
#define CHANNEL_MAX_LEN 63
/*
 * NOTIFY payloads are limited to 8000 bytes by the server, so anything much
 * larger did not come from a notification: refuse it before parsing.
 */
#define PAYLOAD_MAX_LEN ((size_t)1024 * 1024)
/* A cancellation of more jobs than this is refused rather than allocated. */
#define EVENT_MAX_IDS 100000

bool
driver_channel_valid(const char *name)
{
	return name != NULL && ident_valid(name, CHANNEL_MAX_LEN);
}

bool
driver_listen_sql(const char *channel, char *buf, size_t len)
{
	int n;

	if (!driver_channel_valid(channel) || buf == NULL || len == 0)
		return false;
	/* Quoted, as PgQueuer's drivers do, so the case is kept. */
	n = snprintf(buf, len, "LISTEN \"%s\"", channel);
	return n > 0 && (size_t)n < len;
}

static void set_reason(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
set_reason(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Copies the string field key of obj into dst. Returns 0, or -1 with a reason
 * when the field is missing (and required), not a string, or too long for dst.
 */
static int
get_string(json_t *obj, const char *key, bool required, char *dst,
	   size_t dstlen, char *errbuf, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	size_t n;

	if (v == NULL) {
		if (!required)
			return 0;
		set_reason(errbuf, errlen, "field \"%s\" is missing", key);
		return -1;
	}
	if (!json_is_string(v)) {
		set_reason(errbuf, errlen, "field \"%s\" is not a string", key);
		return -1;
	}
	n = json_string_length(v);
	if (dst == NULL)
		return 0;
	if (n >= dstlen) {
		set_reason(errbuf, errlen,
			   "field \"%s\" is too long: %zu bytes, at most %zu",
			   key, n, dstlen - 1);
		return -1;
	}
	/* jansson refuses \u0000 by default, so the length is the C length. */
	memcpy(dst, json_string_value(v), n);
	dst[n] = '\0';
	return 0;
}

static const struct {
	const char *name;
	enum driver_operation op;
} operations[] = {
	{"insert", DRIVER_OP_INSERT},
	{"update", DRIVER_OP_UPDATE},
	{"delete", DRIVER_OP_DELETE},
	{"truncate", DRIVER_OP_TRUNCATE},
};

static int
parse_table_changed(json_t *obj, struct driver_event *ev, char *errbuf,
		    size_t errlen)
{
	char op[16];

	if (get_string(obj, "operation", true, op, sizeof(op), errbuf,
		       errlen) == -1 ||
	    get_string(obj, "table", true, ev->table, sizeof(ev->table), errbuf,
		       errlen) == -1)
		return -1;
	for (size_t i = 0; i < PGQ_NELEM(operations); i++)
		if (strcmp(op, operations[i].name) == 0) {
			ev->operation = operations[i].op;
			return 0;
		}
	set_reason(errbuf, errlen, "unknown operation \"%s\"", op);
	return -1;
}

static int
parse_cancellation(json_t *obj, struct driver_event *ev, char *errbuf,
		   size_t errlen)
{
	json_t *ids = json_object_get(obj, "ids"), *v;
	size_t n, i;

	if (ids == NULL) {
		set_reason(errbuf, errlen, "field \"ids\" is missing");
		return -1;
	}
	if (!json_is_array(ids)) {
		set_reason(errbuf, errlen, "field \"ids\" is not an array");
		return -1;
	}
	n = json_array_size(ids);
	if (n > EVENT_MAX_IDS) {
		set_reason(
			errbuf, errlen,
			"field \"ids\" has too many entries: %zu, at most %d",
			n, EVENT_MAX_IDS);
		return -1;
	}
	if (n == 0)
		return 0;
	ev->ids = xcalloc(n, sizeof(*ev->ids));
	json_array_foreach(ids, i, v)
	{
		if (!json_is_integer(v)) {
			set_reason(errbuf, errlen,
				   "field \"ids\": entry %zu is not an integer",
				   i);
			return -1;
		}
		ev->ids[i] = (int64_t)json_integer_value(v);
	}
	ev->nids = n;
	return 0;
}

bool
driver_event_is_removal(const char *payload)
{
	static const char key[] = "\"operation\"";
	const char *p = payload;

	/* A quote inside a JSON string is escaped, so an unescaped
	 * "operation" followed by a colon is a key. */
	while ((p = strstr(p, key)) != NULL) {
		bool escaped = p > payload && p[-1] == '\\';

		p += sizeof(key) - 1;
		if (escaped)
			continue;
		p += strspn(p, " \t\r\n");
		if (*p != ':')
			continue;
		p++;
		p += strspn(p, " \t\r\n");
		return strncmp(p, "\"delete\"", 8) == 0 ||
		       strncmp(p, "\"truncate\"", 10) == 0;
	}
	return false;
}

int
driver_event_parse(const char *payload, struct driver_event *ev, char *errbuf,
		   size_t errlen)
{
	static const struct {
		const char *name;
		enum driver_event_type type;
	} types[] = {
		{"table_changed_event", DRIVER_EVENT_TABLE_CHANGED},
		{"cancellation_event", DRIVER_EVENT_CANCELLATION},
		{"health_check_event", DRIVER_EVENT_HEALTH_CHECK},
	};
	json_t *root = NULL;
	json_error_t jerr;
	char type[64];
	size_t len;
	int rc = -1;

	/* ev is overwritten, never freed here: clear it before reuse. */
	memset(ev, 0, sizeof(*ev));
	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (payload == NULL) {
		set_reason(errbuf, errlen, "no payload");
		goto out;
	}
	len = strnlen(payload, PAYLOAD_MAX_LEN + 1);
	if (len > PAYLOAD_MAX_LEN) {
		set_reason(errbuf, errlen,
			   "payload is too long: over %zu bytes",
			   PAYLOAD_MAX_LEN);
		goto out;
	}
	/* Duplicate keys would make the meaning depend on the parser. */
	root = json_loadb(payload, len,
			  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		set_reason(errbuf, errlen, "not JSON: %s at column %d",
			   jerr.text, jerr.column);
		goto out;
	}
	if (!json_is_object(root)) {
		set_reason(errbuf, errlen, "not a JSON object");
		goto out;
	}
	if (get_string(root, "type", true, NULL, 0, errbuf, errlen) == -1)
		goto out;
	/* Longer than any type we know: keep its beginning for the caller. */
	snprintf(type, sizeof(type), "%s",
		 json_string_value(json_object_get(root, "type")));
	for (size_t i = 0; i < PGQ_NELEM(types); i++)
		if (strcmp(type, types[i].name) == 0)
			ev->type = types[i].type;
	if (ev->type == DRIVER_EVENT_UNKNOWN) {
		/* A newer PgQueuer may send more kinds: not an error. */
		if (get_string(root, "channel", false, ev->channel,
			       sizeof(ev->channel), NULL, 0) == -1)
			ev->channel[0] = '\0';
		rc = 0;
		goto out;
	}
	/*
	 * Fields every sender includes. received_at is stamped by the
	 * receiver in PgQueuer and only sometimes serialised: optional.
	 */
	if (get_string(root, "channel", true, ev->channel, sizeof(ev->channel),
		       errbuf, errlen) == -1 ||
	    get_string(root, "sent_at", true, NULL, 0, errbuf, errlen) == -1 ||
	    get_string(root, "received_at", false, NULL, 0, errbuf, errlen) ==
		    -1)
		goto out;
	switch (ev->type) {
	case DRIVER_EVENT_TABLE_CHANGED:
		rc = parse_table_changed(root, ev, errbuf, errlen);
		break;
	case DRIVER_EVENT_CANCELLATION:
		rc = parse_cancellation(root, ev, errbuf, errlen);
		break;
	case DRIVER_EVENT_HEALTH_CHECK:
		rc = get_string(root, "id", true, ev->id, sizeof(ev->id),
				errbuf, errlen);
		if (rc == 0 && ev->id[0] == '\0') {
			set_reason(errbuf, errlen, "field \"id\" is empty");
			rc = -1;
		}
		break;
	case DRIVER_EVENT_UNKNOWN:
	default:
		break;
	}
out:
	json_decref(root);
	if (rc == -1) {
		driver_event_clear(ev);
		/* The type is kept so the caller can say what failed. */
	}
	return rc;
}

void
driver_event_clear(struct driver_event *ev)
{
	if (ev == NULL)
		return;
	free(ev->ids);
	ev->ids = NULL;
	ev->nids = 0;
}
