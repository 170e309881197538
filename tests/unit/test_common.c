/* Table tests for the parsers and helpers in common/. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "common/ids.h"
#include "common/traceback.h"

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

Test(traceback, timestamps_are_written_as_pydantic_writes_them)
{
	static const struct {
		struct timespec ts;
		const char *text;
	} cases[] = {
		{{1767322245, 123456789}, "2026-01-02T02:50:45.123456Z"},
		{{1767322245, 120000000}, "2026-01-02T02:50:45.120000Z"},
		{{1767322245, 999}, "2026-01-02T02:50:45Z"},
		{{0, 0}, "1970-01-01T00:00:00Z"},
	};
	char out[TRACEBACK_TS_LEN];

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		traceback_timestamp(&cases[i].ts, out);
		cr_expect_str_eq(out, cases[i].text);
	}
}

/* A string member of o, NULL when missing or not a string. */
static const char *
field(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Parses a record and checks the keys of PgQueuer's TracebackRecord. */
static json_t *
record(const char *text)
{
	static const char *const keys[] = {
		"job_id",	  "timestamp",
		"exception_type", "exception_message",
		"traceback",	  "additional_context"};
	json_error_t e;
	json_t *o = json_loads(text, 0, &e);
	const char *key;
	json_t *v;
	size_t i = 0;

	cr_assert(json_is_object(o), "%s: %s", text, e.text);
	cr_assert_eq(json_object_size(o), PGQ_NELEM(keys), "%s", text);
	json_object_foreach(o, key, v)
	{
		(void)v;
		cr_expect_str_eq(key, keys[i], "%s", text);
		i++;
	}
	return o;
}

Test(traceback, records_carry_pgqueuers_fields)
{
	struct timespec before, after;
	char *text, lo[TRACEBACK_TS_LEN], hi[TRACEBACK_TS_LEN];
	const char *ts;
	json_t *o, *ctx;

	clock_gettime(CLOCK_REALTIME, &before);
	before.tv_nsec = 0;
	text = traceback_json(42, "Timeout", "ran past 2s", "line 1\nline 2",
			      "{\"exit\":3,\"rusage\":{\"maxrss_kb\":10}}");
	clock_gettime(CLOCK_REALTIME, &after);
	after.tv_sec++;
	after.tv_nsec = 0;
	o = record(text);
	cr_expect_eq(json_integer_value(json_object_get(o, "job_id")), 42);
	cr_expect_str_eq(field(o, "exception_type"), "Timeout");
	cr_expect_str_eq(field(o, "exception_message"), "ran past 2s");
	cr_expect_str_eq(field(o, "traceback"), "line 1\nline 2");
	ctx = json_object_get(o, "additional_context");
	cr_expect_eq(json_integer_value(json_object_get(ctx, "exit")), 3);
	/* Same-width UTC stamps compare as text. */
	ts = field(o, "timestamp");
	cr_assert_not_null(ts);
	cr_expect_eq(ts[strlen(ts) - 1], 'Z', "%s", ts);
	traceback_timestamp(&before, lo);
	traceback_timestamp(&after, hi);
	cr_expect(strncmp(ts, lo, 19) >= 0 && strncmp(ts, hi, 19) <= 0,
		  "%s not within %s..%s", ts, lo, hi);
	json_decref(o);
	free(text);
}

Test(traceback, odd_input_still_makes_a_record_pgqueuer_reads)
{
	char *text;
	json_t *o, *ctx;

	/* NULL strings are empty, no context is null. */
	text = traceback_json(7, NULL, NULL, NULL, NULL);
	o = record(text);
	cr_expect_str_eq(field(o, "exception_type"), "");
	cr_expect_str_eq(field(o, "traceback"), "");
	cr_expect(json_is_null(json_object_get(o, "additional_context")));
	json_decref(o);
	free(text);

	/* A stderr tail cut inside a character; a context that is no object. */
	text = traceback_json(8, "E", "caf\xc3", "\xff\xfeok\xe2\x82\xac",
			      "[1,2]");
	o = record(text);
	cr_expect_str_eq(field(o, "exception_message"), "caf?");
	cr_expect_str_eq(field(o, "traceback"), "??ok\xe2\x82\xac");
	ctx = json_object_get(o, "additional_context");
	cr_assert(json_is_object(ctx), "%s", text);
	cr_expect_str_eq(field(ctx, "text"), "[1,2]");
	json_decref(o);
	free(text);

	text = traceback_json(9, "E", "m", "", "not json");
	o = record(text);
	ctx = json_object_get(o, "additional_context");
	cr_expect_str_eq(field(ctx, "text"), "not json");
	json_decref(o);
	free(text);
}

Test(ids, users_resolve_by_name_then_by_number)
{
	struct passwd *pw = getpwnam("nobody");
	struct ids_user u;
	char why[128], num[32];

	cr_assert(pw != NULL, "no user nobody");
	cr_assert(ids_user_lookup("nobody", &u, why, sizeof(why)) == 0, "%s",
		  why);
	cr_expect_eq(u.uid, pw->pw_uid);
	cr_expect_eq(u.gid, pw->pw_gid);
	cr_expect_str_eq(u.name, "nobody");
	cr_expect_str_eq(u.home, pw->pw_dir);
	ids_user_clear(&u);
	/* No user is called "65534": the number names nobody's uid. */
	snprintf(num, sizeof(num), "%u", (unsigned)pw->pw_uid);
	cr_assert(getpwnam(num) == NULL);
	cr_assert(ids_user_lookup(num, &u, why, sizeof(why)) == 0, "%s", why);
	cr_expect_str_eq(u.name, "nobody");
	ids_user_clear(&u);
	cr_expect(ids_user_exists("0", why, sizeof(why)), "%s", why);
}

Test(ids, unknown_users_and_groups_say_so)
{
	static const char *const bad[] = {
		"", "no-such-user-pgq", "12ab", "-1", "99999999999", " 0",
	};
	char why[128];
	gid_t gid = 12345;

	for (size_t i = 0; i < PGQ_NELEM(bad); i++) {
		why[0] = '\0';
		cr_expect_not(ids_user_exists(bad[i], why, sizeof(why)),
			      "user \"%s\"", bad[i]);
		cr_expect_str_eq(why, "no such user", "user \"%s\"", bad[i]);
		why[0] = '\0';
		cr_expect(ids_group_lookup(bad[i], &gid, why, sizeof(why)) ==
				  -1,
			  "group \"%s\"", bad[i]);
		cr_expect_str_eq(why, "no such group", "group \"%s\"", bad[i]);
	}
	cr_expect_eq(gid, 12345, "a failed lookup wrote the gid");
}

Test(ids, groups_resolve_by_name_then_by_number_and_list)
{
	struct group *gr = getgrgid(0);
	char name[64], why[128];
	gid_t gid = 12345, *groups = NULL;
	int n = 0;
	bool has_root = false;

	cr_assert(gr != NULL, "no group 0");
	snprintf(name, sizeof(name), "%s", gr->gr_name);
	cr_assert(ids_group_lookup(name, &gid, why, sizeof(why)) == 0, "%s",
		  why);
	cr_expect_eq(gid, 0);
	gid = 12345;
	cr_assert(getgrnam("0") == NULL);
	cr_assert(ids_group_lookup("0", &gid, why, sizeof(why)) == 0, "%s",
		  why);
	cr_expect_eq(gid, 0);
	cr_expect(ids_group_exists(name, why, sizeof(why)), "%s", why);

	cr_assert(ids_group_list("nobody", 0, &groups, &n) == 0);
	for (int i = 0; i < n; i++)
		if (groups[i] == 0)
			has_root = true;
	cr_expect(n >= 1 && has_root, "the given gid is in the list (n=%d)", n);
	free(groups);
}

/*
 * Puts first in front of the system's file, seen by this test's process
 * only: a private mount namespace with a copy bound over the real one.
 */
static void
shadow_file(const char *path, const char *first)
{
	char tmp[] = "/tmp/pgq-ids-XXXXXX", buf[4096];
	int out = mkstemp(tmp), in = open(path, O_RDONLY);
	ssize_t n;

	cr_assert(out != -1 && in != -1, "%s: %s", path, strerror(errno));
	cr_assert(write(out, first, strlen(first)) == (ssize_t)strlen(first));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert(write(out, buf, (size_t)n) == n);
	close(in);
	close(out);
	cr_assert(mount(tmp, path, NULL, MS_BIND, NULL) == 0, "bind %s: %s",
		  path, strerror(errno));
	unlink(tmp);
}

static void
private_mounts(void)
{
	cr_assert(unshare(CLONE_NEWNS) == 0,
		  "this test needs root for a mount namespace: %s",
		  strerror(errno));
	cr_assert(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "%s",
		  strerror(errno));
}

Test(ids, a_name_made_of_digits_is_a_name_first)
{
	struct ids_user u;
	char why[128];
	gid_t gid = 12345;

	/* A user and a group called "0" that are not root. */
	private_mounts();
	shadow_file("/etc/passwd", "0:x:65534:65534:digits:/nonexistent:"
				   "/usr/sbin/nologin\n");
	shadow_file("/etc/group", "0:x:65534:\n");
	cr_assert(ids_user_lookup("0", &u, why, sizeof(why)) == 0, "%s", why);
	cr_expect_eq(u.uid, 65534, "\"0\" was taken as uid 0");
	cr_expect_str_eq(u.name, "0");
	ids_user_clear(&u);
	cr_assert(ids_group_lookup("0", &gid, why, sizeof(why)) == 0, "%s",
		  why);
	cr_expect_eq(gid, 65534, "\"0\" was taken as gid 0");
}

Test(ids, entries_larger_than_any_first_buffer_are_read)
{
	struct strbuf line = {NULL, 0, 0};
	char member[32], why[128];
	gid_t gid = 12345;

	/* 64 KiB of members: past the old 16 KiB buffer and the first try. */
	strbuf_str(&line, "pgqbig:x:4242:");
	for (int i = 0; i < 6000; i++) {
		snprintf(member, sizeof(member), "%smember%04d",
			 i > 0 ? "," : "", i);
		strbuf_str(&line, member);
	}
	strbuf_str(&line, "\n");
	private_mounts();
	shadow_file("/etc/group", line.p);
	free(line.p);
	cr_assert(ids_group_lookup("pgqbig", &gid, why, sizeof(why)) == 0, "%s",
		  why);
	cr_expect_eq(gid, 4242);
	cr_expect(ids_group_exists("4242", why, sizeof(why)), "%s", why);
}
