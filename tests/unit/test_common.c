/* Table tests for the parsers and helpers in common/. */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "common/common.h"

struct duration_case {
	const char *in;
	bool ok;
	uint64_t ms;
};

Test(common, durations_accept_units_and_reject_garbage)
{
	static const struct duration_case cases[] = {
		{"500ms", true, 500},	 {"30s", true, 30000},
		{"5m", true, 300000},	 {"1h", true, 3600000},
		{"2d", true, 172800000}, {"1.5s", true, 1500},
		{"10", true, 10000},	 {"0", true, 0},
		{" 7s ", true, 7000},	 {"250us", true, 0},
		{"", false, 0},		 {"s", false, 0},
		{"-1s", false, 0},	 {"5 parsecs", false, 0},
		{"1e400s", false, 0},	 {"3x", false, 0},
		{"nan", false, 0},	 {"1s2", false, 0},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		uint64_t ms = 12345;
		bool ok = parse_duration_ms(cases[i].in, &ms);

		cr_expect_eq(ok, cases[i].ok, "duration \"%s\"", cases[i].in);
		if (ok && cases[i].ok)
			cr_expect_eq(ms, cases[i].ms, "duration \"%s\": %llu",
				     cases[i].in, (unsigned long long)ms);
	}
}

Test(common, sizes_use_powers_of_1024)
{
	uint64_t b;

	cr_assert(parse_size_bytes("5M", &b));
	cr_expect_eq(b, 5u * 1024 * 1024);
	cr_assert(parse_size_bytes("64k", &b));
	cr_expect_eq(b, 65536);
	cr_assert(parse_size_bytes("100", &b));
	cr_expect_eq(b, 100);
	cr_expect_not(parse_size_bytes("5Q", &b));
	cr_expect_not(parse_size_bytes("-5M", &b));
}

Test(common, integers_are_strict)
{
	long long v;

	cr_assert(parse_int_range("42", 1, 1024, &v));
	cr_expect_eq(v, 42);
	cr_expect_not(parse_int_range("0", 1, 1024, &v));
	cr_expect_not(parse_int_range("1025", 1, 1024, &v));
	cr_expect_not(parse_int_range("4x", 1, 1024, &v));
	cr_expect_not(parse_int_range("", 1, 1024, &v));
	cr_expect_not(parse_int_range("99999999999999999999", 1, 1024, &v));
}

Test(common, booleans)
{
	bool b;

	cr_assert(parse_bool("YES", &b) && b);
	cr_assert(parse_bool("off", &b) && !b);
	cr_expect_not(parse_bool("maybe", &b));
}

Test(common, uuids_are_version_4_and_distinct)
{
	char a[UUID_STR_LEN], b[UUID_STR_LEN];

	uuid_generate_str(a);
	uuid_generate_str(b);
	cr_expect_eq(strlen(a), 36);
	cr_expect_eq(a[14], '4');
	cr_expect(strchr("89ab", a[19]) != NULL);
	cr_expect_str_neq(a, b);
}

Test(common, identifiers_follow_postgres_rules)
{
	cr_expect(ident_valid("pgqueuer", 63));
	cr_expect(ident_valid("_x1", 63));
	cr_expect_not(ident_valid("1x", 63));
	cr_expect_not(ident_valid("", 63));
	cr_expect_not(ident_valid("a-b", 63));
	cr_expect_not(ident_valid("x; drop table y", 63));
	cr_expect_not(ident_valid("a\"b", 63));
	cr_expect_not(ident_valid("abcdef", 5));
	cr_expect_not(ident_valid("caf\xc3\xa9", 63));
}
