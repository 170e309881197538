/* Table tests for the parsers and helpers in common/. */
#include "config.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
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

Test(common, text_arrays_quote_every_element_and_keep_nulls)
{
	static const char *const three[] = {"a", "say \"hi\"", "back\\slash"};
	static const char *const odd[] = {"", NULL, "NULL", "{x,y}"};
	char *lit;

	lit = text_array_literal(three, 3);
	cr_expect_str_eq(lit, "{\"a\",\"say \\\"hi\\\"\",\"back\\\\slash\"}");
	free(lit);
	/* A NULL element is SQL NULL; the string "NULL" stays a string. */
	lit = text_array_literal(odd, 4);
	cr_expect_str_eq(lit, "{\"\",NULL,\"NULL\",\"{x,y}\"}");
	free(lit);
	lit = text_array_literal(NULL, 0);
	cr_expect_str_eq(lit, "{}");
	free(lit);
}

struct format_case {
	uint64_t ms;
	const char *text;
};

Test(common, durations_print_in_their_largest_whole_unit)
{
	static const struct format_case cases[] = {
		{0, "0"},
		{1, "1ms"},
		{999, "999ms"},
		{1000, "1s"},
		{1500, "1500ms"},
		{30000, "30s"},
		{60000, "1m"},
		{90000, "90s"},
		{5400000, "90m"},
		{3600000, "1h"},
		{86400000, "1d"},
		{172800000, "2d"},
		{86401000, "86401s"},
	};
	char buf[32];

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		uint64_t back = 0;

		format_duration_ms(cases[i].ms, buf, sizeof(buf));
		cr_expect_str_eq(buf, cases[i].text, "%llu ms",
				 (unsigned long long)cases[i].ms);
		/* What it prints, the config reads back. */
		cr_expect(parse_duration_ms(buf, &back) && back == cases[i].ms,
			  "\"%s\" reads back as %llu", buf,
			  (unsigned long long)back);
	}
}

static void
note_signal(int sig)
{
	(void)sig;
}

Test(common, sig_reset_restores_defaults_ignores_the_listed_and_unblocks)
{
	struct sigaction sa, got;
	sigset_t block, mask;
	const int ignore[] = {SIGPIPE};

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = note_signal;
	sigemptyset(&sa.sa_mask);
	cr_assert(sigaction(SIGUSR2, &sa, NULL) == 0);
	cr_assert(sigaction(SIGPIPE, &sa, NULL) == 0);
	sa.sa_handler = SIG_IGN;
	cr_assert(sigaction(SIGHUP, &sa, NULL) == 0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	cr_assert(sigprocmask(SIG_BLOCK, &block, NULL) == 0);

	sig_reset(ignore, PGQ_NELEM(ignore));

	cr_assert(sigaction(SIGUSR2, NULL, &got) == 0);
	cr_expect(got.sa_handler == SIG_DFL, "SIGUSR2 keeps its handler");
	cr_assert(sigaction(SIGHUP, NULL, &got) == 0);
	cr_expect(got.sa_handler == SIG_DFL, "SIGHUP is still ignored");
	cr_assert(sigaction(SIGPIPE, NULL, &got) == 0);
	cr_expect(got.sa_handler == SIG_IGN, "SIGPIPE is not ignored");
	cr_assert(sigprocmask(SIG_SETMASK, NULL, &mask) == 0);
	for (int sig = 1; sig < NSIG; sig++)
		cr_expect_not(sigismember(&mask, sig) == 1,
			      "signal %d still blocked", sig);
}
