/*
 * Table tests for the notification parser and LISTEN statements: PgQueuer's
 * three event types, unknown types, and payloads that must be refused
 * without crashing (malformed, ill-typed, oversized).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/driver.h"

struct parse_case {
	const char *payload;
	int rc;
	enum driver_event_type type;
	enum driver_operation op;
	const char *reason; /* substring of the reason when rc is -1 */
};

#define TC(op)                                                                 \
	"{\"channel\": \"ch_pgqueuer\", \"operation\": \"" op "\", "           \
	"\"sent_at\": \"2024-05-01T12:00:00.123456+00:00\", "                  \
	"\"table\": \"pgqueuer\", \"type\": \"table_changed_event\"}"

Test(notify, parse_table_driven)
{
	static const struct parse_case cases[] = {
		{TC("insert"), 0, DRIVER_EVENT_TABLE_CHANGED, DRIVER_OP_INSERT,
		 NULL},
		{TC("update"), 0, DRIVER_EVENT_TABLE_CHANGED, DRIVER_OP_UPDATE,
		 NULL},
		{TC("delete"), 0, DRIVER_EVENT_TABLE_CHANGED, DRIVER_OP_DELETE,
		 NULL},
		{TC("truncate"), 0, DRIVER_EVENT_TABLE_CHANGED,
		 DRIVER_OP_TRUNCATE, NULL},
		{TC("merge"), -1, 0, 0, "unknown operation"},
		{TC(""), -1, 0, 0, "unknown operation"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"table_changed_event\", \"table\": \"pgqueuer\"}",
		 -1, 0, 0, "\"operation\" is missing"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"table_changed_event\", \"operation\": \"insert\"}",
		 -1, 0, 0, "\"table\" is missing"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"table_changed_event\", \"operation\": 1, \"table\": \"q\"}",
		 -1, 0, 0, "\"operation\" is not a string"},
		{"{\"channel\": 5, \"sent_at\": \"t\", \"type\": "
		 "\"table_changed_event\", \"operation\": \"insert\", "
		 "\"table\": \"q\"}",
		 -1, 0, 0, "\"channel\" is not a string"},
		{"{\"channel\": \"ch\", \"type\": \"table_changed_event\", "
		 "\"operation\": \"insert\", \"table\": \"q\"}",
		 -1, 0, 0, "\"sent_at\" is missing"},
		{"{\"channel\": \"ch\", \"sent_at\": null, \"type\": "
		 "\"table_changed_event\", \"operation\": \"insert\", "
		 "\"table\": \"q\"}",
		 -1, 0, 0, "\"sent_at\" is not a string"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"received_at\": "
		 "3, "
		 "\"type\": \"table_changed_event\", \"operation\": "
		 "\"insert\", "
		 "\"table\": \"q\"}",
		 -1, 0, 0, "\"received_at\" is not a string"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"cancellation_event\", \"received_at\": \"t\", "
		 "\"ids\": [1, 2, 3]}",
		 0, DRIVER_EVENT_CANCELLATION, DRIVER_OP_NONE, NULL},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"cancellation_event\", \"ids\": []}",
		 0, DRIVER_EVENT_CANCELLATION, DRIVER_OP_NONE, NULL},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"cancellation_event\"}",
		 -1, 0, 0, "\"ids\" is missing"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"cancellation_event\", \"ids\": 7}",
		 -1, 0, 0, "not an array"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"cancellation_event\", \"ids\": [1, \"2\"]}",
		 -1, 0, 0, "entry 1 is not an integer"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"cancellation_event\", \"ids\": [1.5]}",
		 -1, 0, 0, "entry 0 is not an integer"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"cancellation_event\", \"ids\": [null]}",
		 -1, 0, 0, "not an integer"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"cancellation_event\", \"ids\": [[1]]}",
		 -1, 0, 0, "not an integer"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"cancellation_event\", \"ids\": [99999999999999999999999]}",
		 -1, 0, 0, "not JSON"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"health_check_event\", \"received_at\": \"t\", \"id\": "
		 "\"6f1c0a52-8d0e-4b7e-9a3c-0f2f6e0d9b11\"}",
		 0, DRIVER_EVENT_HEALTH_CHECK, DRIVER_OP_NONE, NULL},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"health_check_event\"}",
		 -1, 0, 0, "\"id\" is missing"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"health_check_event\", \"id\": 42}",
		 -1, 0, 0, "\"id\" is not a string"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"health_check_event\", \"id\": \"\"}",
		 -1, 0, 0, "\"id\" is empty"},
		{"{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"requests_per_second_event\", \"entrypoint_count\": {}}",
		 0, DRIVER_EVENT_UNKNOWN, DRIVER_OP_NONE, NULL},
		{"{\"type\": \"something_new\"}", 0, DRIVER_EVENT_UNKNOWN,
		 DRIVER_OP_NONE, NULL},
		{"{\"type\": \"\"}", 0, DRIVER_EVENT_UNKNOWN, DRIVER_OP_NONE,
		 NULL},
		{"{\"channel\": \"ch\"}", -1, 0, 0, "\"type\" is missing"},
		{"{\"type\": 3}", -1, 0, 0, "\"type\" is not a string"},
		{"{\"type\": \"x\", \"type\": \"y\"}", -1, 0, 0, "not JSON"},
		{"", -1, 0, 0, "not JSON"},
		{"   ", -1, 0, 0, "not JSON"},
		{"{", -1, 0, 0, "not JSON"},
		{"{\"type\": \"table_changed_event\",}", -1, 0, 0, "not JSON"},
		{"[1, 2, 3]", -1, 0, 0, "not a JSON object"},
		{"\"table_changed_event\"", -1, 0, 0, "not a JSON object"},
		{"42", -1, 0, 0, "not a JSON object"},
		{"null", -1, 0, 0, "not a JSON object"},
		{"hello world", -1, 0, 0, "not JSON"},
		{"\x01\x02\xff\xfe garbage \x7f", -1, 0, 0, "not JSON"},
		{"{\"type\": \"health_check_event\", \"id\": \"a\\u0000b\"}",
		 -1, 0, 0, "not JSON"},
		{"{} trailing", -1, 0, 0, "not JSON"},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		struct driver_event ev;
		char reason[256];
		int rc = driver_event_parse(cases[i].payload, &ev, reason,
					    sizeof(reason));

		cr_expect_eq(rc, cases[i].rc, "case %zu (%s): rc %d reason %s",
			     i, cases[i].payload, rc, reason);
		if (rc == 0 && cases[i].rc == 0) {
			cr_expect_eq(ev.type, cases[i].type, "case %zu type",
				     i);
			cr_expect_eq(ev.operation, cases[i].op, "case %zu op",
				     i);
		}
		if (rc == -1 && cases[i].reason != NULL)
			cr_expect(strstr(reason, cases[i].reason) != NULL,
				  "case %zu: reason \"%s\" lacks \"%s\"", i,
				  reason, cases[i].reason);
		if (rc == -1)
			cr_expect_eq(ev.ids, NULL, "case %zu leaves ids", i);
		driver_event_clear(&ev);
	}
}

Test(notify, table_changed_fields_are_copied)
{
	struct driver_event ev;
	char reason[128];

	cr_assert_eq(
		driver_event_parse(TC("insert"), &ev, reason, sizeof(reason)),
		0, "%s", reason);
	cr_expect_str_eq(ev.channel, "ch_pgqueuer");
	cr_expect_str_eq(ev.table, "pgqueuer");
	cr_expect_eq(ev.nids, 0);
	cr_expect_eq(ev.ids, NULL);
	driver_event_clear(&ev);
}

Test(notify, cancellation_ids_are_kept_in_order)
{
	struct driver_event ev;
	char reason[128];
	const char *p = "{\"channel\": \"ch_x\", \"sent_at\": \"t\", \"type\": "
			"\"cancellation_event\", \"ids\": [5, -1, "
			"9223372036854775807, 0]}";

	cr_assert_eq(driver_event_parse(p, &ev, reason, sizeof(reason)), 0,
		     "%s", reason);
	cr_assert_eq(ev.nids, 4);
	cr_expect_eq(ev.ids[0], 5);
	cr_expect_eq(ev.ids[1], -1);
	cr_expect_eq(ev.ids[2], INT64_MAX);
	cr_expect_eq(ev.ids[3], 0);
	cr_expect_str_eq(ev.channel, "ch_x");
	driver_event_clear(&ev);
	cr_expect_eq(ev.ids, NULL);
	cr_expect_eq(ev.nids, 0);
	/* Clearing twice is harmless. */
	driver_event_clear(&ev);
}

Test(notify, health_check_id_is_copied)
{
	struct driver_event ev;
	char reason[128];
	const char *p = "{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
			"\"health_check_event\", \"id\": "
			"\"6f1c0a52-8d0e-4b7e-9a3c-0f2f6e0d9b11\"}";

	cr_assert_eq(driver_event_parse(p, &ev, reason, sizeof(reason)), 0,
		     "%s", reason);
	cr_expect_str_eq(ev.id, "6f1c0a52-8d0e-4b7e-9a3c-0f2f6e0d9b11");
	driver_event_clear(&ev);
}

/* Builds a cancellation payload with n ids (caller frees). */
static char *
ids_payload(size_t n, const char *extra)
{
	size_t cap = 128 + n * 8 + strlen(extra);
	char *p = malloc(cap);
	size_t off;

	cr_assert_not_null(p);
	off = (size_t)snprintf(p, cap,
			       "{\"channel\": \"ch\", \"sent_at\": \"t\", "
			       "\"type\": \"cancellation_event\", \"ids\": [");
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(p + off, cap - off, "%s%zu",
					i > 0 ? "," : "", i + 1);
	snprintf(p + off, cap - off, "%s]}", extra);
	return p;
}

Test(notify, huge_ids_array_is_refused_and_large_one_accepted)
{
	struct driver_event ev;
	char reason[128];
	char *p;

	p = ids_payload(100000, "");
	cr_expect_eq(driver_event_parse(p, &ev, reason, sizeof(reason)), 0,
		     "%s", reason);
	cr_expect_eq(ev.nids, 100000);
	if (ev.nids == 100000)
		cr_expect_eq(ev.ids[99999], 100000);
	driver_event_clear(&ev);
	free(p);

	p = ids_payload(100001, "");
	cr_expect_eq(driver_event_parse(p, &ev, reason, sizeof(reason)), -1);
	cr_expect(strstr(reason, "too many") != NULL, "%s", reason);
	cr_expect_eq(ev.ids, NULL);
	free(p);

	/* An early bad entry in a long array frees what was allocated. */
	p = ids_payload(5000, ",\"x\"");
	cr_expect_eq(driver_event_parse(p, &ev, reason, sizeof(reason)), -1);
	cr_expect(strstr(reason, "entry 5000") != NULL, "%s", reason);
	free(p);
}

Test(notify, long_strings_are_refused_not_overflowed)
{
	char table[300], payload[600], reason[128];
	struct driver_event ev;

	memset(table, 't', sizeof(table) - 1);
	table[sizeof(table) - 1] = '\0';
	snprintf(payload, sizeof(payload),
		 "{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"table_changed_event\", \"operation\": \"insert\", "
		 "\"table\": \"%s\"}",
		 table);
	cr_expect_eq(driver_event_parse(payload, &ev, reason, sizeof(reason)),
		     -1);
	cr_expect(strstr(reason, "too long") != NULL, "%s", reason);

	/* 127 bytes fit table[128] exactly. */
	table[127] = '\0';
	snprintf(payload, sizeof(payload),
		 "{\"channel\": \"ch\", \"sent_at\": \"t\", \"type\": "
		 "\"table_changed_event\", \"operation\": \"insert\", "
		 "\"table\": \"%s\"}",
		 table);
	cr_expect_eq(driver_event_parse(payload, &ev, reason, sizeof(reason)),
		     0, "%s", reason);
	cr_expect_eq(strlen(ev.table), 127);

	table[100] = '\0';
	snprintf(payload, sizeof(payload),
		 "{\"channel\": \"%s\", \"sent_at\": \"t\", \"type\": "
		 "\"health_check_event\", \"id\": \"x\"}",
		 table);
	cr_expect_eq(driver_event_parse(payload, &ev, reason, sizeof(reason)),
		     -1);
	cr_expect(strstr(reason, "\"channel\" is too long") != NULL, "%s",
		  reason);
	snprintf(payload, sizeof(payload),
		 "{\"channel\": \"c\", \"sent_at\": \"t\", \"type\": "
		 "\"health_check_event\", \"id\": \"%s\"}",
		 table);
	cr_expect_eq(driver_event_parse(payload, &ev, reason, sizeof(reason)),
		     -1);
	cr_expect(strstr(reason, "\"id\" is too long") != NULL, "%s", reason);
}

Test(notify, oversized_payload_and_null_are_refused)
{
	size_t n = (size_t)2 * 1024 * 1024;
	char *big = malloc(n + 1);
	struct driver_event ev;
	char reason[128];

	cr_assert_not_null(big);
	memset(big, ' ', n);
	big[n] = '\0';
	cr_expect_eq(driver_event_parse(big, &ev, reason, sizeof(reason)), -1);
	cr_expect(strstr(reason, "too long") != NULL, "%s", reason);
	free(big);

	cr_expect_eq(driver_event_parse(NULL, &ev, reason, sizeof(reason)), -1);
	/* No reason buffer is fine too. */
	cr_expect_eq(driver_event_parse("{", &ev, NULL, 0), -1);
	cr_expect_eq(driver_event_parse("{\"type\":\"x\"}", &ev, NULL, 0), 0);
}

Test(notify, channel_names_follow_identifier_rules)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{"ch_pgqueuer", true},
		{"_x", true},
		{"Ch_Mixed_Case9", true},
		{"", false},
		{"9starts_with_digit", false},
		{"has space", false},
		{"quote\"inside", false},
		{"semi;colon", false},
		{"dash-name", false},
		{"\xc3\xa9t\xc3\xa9", false},
		{"a234567890123456789012345678901234567890123456789012345678901"
		 "23",
		 true},
		{"a234567890123456789012345678901234567890123456789012345678901"
		 "234",
		 false},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++)
		cr_expect_eq(driver_channel_valid(cases[i].name), cases[i].ok,
			     "channel \"%s\"", cases[i].name);
	cr_expect_not(driver_channel_valid(NULL));
}

Test(notify, listen_sql_quotes_the_channel)
{
	char buf[128], tiny[8];

	cr_assert(driver_listen_sql("ch_pgqueuer", buf, sizeof(buf)));
	cr_expect_str_eq(buf, "LISTEN \"ch_pgqueuer\"");
	cr_assert(driver_listen_sql("MyChan", buf, sizeof(buf)));
	cr_expect_str_eq(buf, "LISTEN \"MyChan\"");
	cr_expect_not(
		driver_listen_sql("bad\"; DROP TABLE x; --", buf, sizeof(buf)));
	cr_expect_not(driver_listen_sql("ch_pgqueuer", tiny, sizeof(tiny)));
	cr_expect_not(driver_listen_sql("ch", buf, 0));
}

/* One payload per variable: literals split over lines stay one string. */
static const char removal_delete[] =
	"{\"channel\": \"ch_pgqueuer\", \"operation\": \"delete\", "
	"\"sent_at\": \"2026-11-27T10:00:00+00:00\", \"table\": "
	"\"pgqueuer\", \"type\": \"table_changed_event\"}";
static const char removal_truncate[] =
	"{\"operation\":\"truncate\",\"type\":\"table_changed_event\"}";
static const char removal_spaced[] =
	"{\"type\": \"table_changed_event\", \"operation\"\n:\t\"delete\"}";
static const char other_insert[] =
	"{\"channel\": \"ch_pgqueuer\", \"operation\": \"insert\", "
	"\"table\": \"pgqueuer\", \"type\": \"table_changed_event\"}";
static const char other_update[] =
	"{\"operation\": \"update\", \"type\": \"table_changed_event\"}";
/* the word inside a string value is not the key */
static const char other_in_value[] =
	"{\"table\": \"x\\\"operation\\\": \\\"delete\", \"operation\": "
	"\"insert\", \"type\": \"table_changed_event\"}";

Test(notify, removals_are_told_without_parsing)
{
	const char *const removal[] = {removal_delete, removal_truncate,
				       removal_spaced};
	const char *const other[] = {
		other_insert,
		other_update,
		other_in_value,
		"{\"type\": \"cancellation_event\", \"ids\": [1]}",
		"{\"operation\" \"delete\"}",
		"",
		"not json",
	};

	for (size_t i = 0; i < sizeof(removal) / sizeof(removal[0]); i++)
		cr_expect(driver_event_is_removal(removal[i]), "%s",
			  removal[i]);
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		cr_expect(!driver_event_is_removal(other[i]), "%s", other[i]);
}
