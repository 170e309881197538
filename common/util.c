/*
 * Allocation, clocks, number/duration/size parsing and duration printing,
 * UUIDs, descriptor and signal hygiene, and text-array literals. Parsers are
 * strict: trailing garbage, signs and overflow fail.
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "common/log.h"

void *
xmalloc(size_t size)
{
	void *p = malloc(size == 0 ? 1 : size);

	if (p == NULL)
		fatalx("out of memory: malloc size=%zu", size);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);

	if (p == NULL)
		fatalx("out of memory: calloc n=%zu size=%zu", n, size);
	return p;
}

void *
xrealloc(void *p, size_t n, size_t size)
{
	void *q;

	if (size != 0 && n > SIZE_MAX / size)
		fatalx("out of memory: realloc overflow n=%zu size=%zu", n,
		       size);
	q = realloc(p, n * size == 0 ? 1 : n * size);
	if (q == NULL)
		fatalx("out of memory: realloc n=%zu size=%zu", n, size);
	return q;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		fatalx("out of memory: strdup");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		fatalx("out of memory: strndup");
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("xasprintf: bad format");
	p = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

uint64_t
clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
clock_mono_ms(void)
{
	return clock_mono_us() / 1000u;
}

double
clock_wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Splits "1.5ms" into 1.5 and "ms"; the number must be plain and finite. */
static bool
parse_number_unit(const char *s, double *num, const char **unit)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s) && *s != '.')
		return false;
	errno = 0;
	*num = strtod(s, &end);
	if (errno != 0 || end == s || !isfinite(*num) || *num < 0)
		return false;
	while (isspace((unsigned char)*end))
		end++;
	*unit = end;
	return true;
}

static bool
unit_is(const char *unit, const char *want)
{
	size_t n = strlen(want);
	const char *p;

	if (strncmp(unit, want, n) != 0)
		return false;
	for (p = unit + n; *p != '\0'; p++)
		if (!isspace((unsigned char)*p))
			return false;
	return true;
}

/* A unit of a duration or size and what one of it is worth. */
struct unit {
	const char *name;
	double scale;
};

/*
 * The units of a duration in milliseconds, largest first: format_duration_ms
 * picks the first whole one, parse_duration_ms accepts them all ("" =
 * seconds).
 */
static const struct unit duration_units[] = {
	{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000},
	{"ms", 1},	 {"us", 0.001},	 {"", 1000},
};

/* Sizes in bytes ("" = bytes). */
static const struct unit size_units[] = {
	{"B", 1},	    {"k", 1024},    {"K", 1024},     {"kB", 1024},
	{"KB", 1024},	    {"M", 1048576}, {"MB", 1048576}, {"G", 1073741824},
	{"GB", 1073741824}, {"", 1},
};

/* A number with one of units, scaled and rounded; false past 9e15. */
static bool
parse_scaled(const char *s, const struct unit *units, size_t nunits,
	     uint64_t *out)
{
	const char *unit;
	double num;

	if (!parse_number_unit(s, &num, &unit))
		return false;
	for (size_t i = 0; i < nunits; i++) {
		if (unit_is(unit, units[i].name)) {
			double v = num * units[i].scale;

			if (v > 9.0e15)
				return false;
			*out = (uint64_t)llround(v);
			return true;
		}
	}
	return false;
}

bool
parse_duration_ms(const char *s, uint64_t *ms_out)
{
	return parse_scaled(s, duration_units, PGQ_NELEM(duration_units),
			    ms_out);
}

void
format_duration_ms(uint64_t ms, char *buf, size_t len)
{
	if (ms == 0) {
		snprintf(buf, len, "0");
		return;
	}
	for (size_t i = 0; duration_units[i].scale >= 1000; i++) {
		uint64_t unit = (uint64_t)duration_units[i].scale;

		if (ms % unit == 0) {
			snprintf(buf, len, "%llu%s",
				 (unsigned long long)(ms / unit),
				 duration_units[i].name);
			return;
		}
	}
	snprintf(buf, len, "%llums", (unsigned long long)ms);
}

bool
parse_size_bytes(const char *s, uint64_t *bytes_out)
{
	return parse_scaled(s, size_units, PGQ_NELEM(size_units), bytes_out);
}

bool
parse_int_range(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s)
		return false;
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool
parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < PGQ_NELEM(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

void
random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("getrandom");
		}
		p += n;
		len -= (size_t)n;
	}
}

uint64_t
random_below(uint64_t bound)
{
	uint64_t r, limit = UINT64_MAX - UINT64_MAX % bound;

	do
		random_bytes(&r, sizeof(r));
	while (r >= limit);
	return r % bound;
}

void
uuid_generate_str(char out[UUID_STR_LEN])
{
	unsigned char b[16];

	random_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, UUID_STR_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

int
fd_set_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags == -1)
		return -1;
	return fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

int
fd_set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags == -1)
		return -1;
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static bool
fd_is_kept(int fd, const int *keep, size_t nkeep)
{
	for (size_t i = 0; i < nkeep; i++)
		if (keep[i] == fd)
			return true;
	return false;
}

void
fd_close_all_except(const int *keep, size_t nkeep)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int dfd;

	if (d == NULL) {
		long max = sysconf(_SC_OPEN_MAX);

		for (int fd = 3; fd < (max > 0 ? max : 1024); fd++)
			if (!fd_is_kept(fd, keep, nkeep))
				close(fd);
		return;
	}
	dfd = dirfd(d);
	/* Collect first: closing while reading the directory is unsafe. */
	int fds[1024];
	size_t n = 0;
	while ((de = readdir(d)) != NULL && n < PGQ_NELEM(fds)) {
		long long v;

		if (!parse_int_range(de->d_name, 3, 1 << 30, &v))
			continue;
		if ((int)v == dfd || fd_is_kept((int)v, keep, nkeep))
			continue;
		fds[n++] = (int)v;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	if (n == PGQ_NELEM(fds))
		fd_close_all_except(keep, nkeep);
}

bool
ident_valid(const char *s, size_t maxlen)
{
	size_t n = 0;

	if (s == NULL || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (!(c < 128 && (isalnum(c) || c == '_')))
			return false;
	}
	return n <= maxlen;
}

void
strbuf_add(struct strbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap == 0 ? 128 : b->cap;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap, 1);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
strbuf_str(struct strbuf *b, const char *s)
{
	strbuf_add(b, s, strlen(s));
}

void
strbuf_array_elem(struct strbuf *b, const char *s)
{
	if (s == NULL) {
		strbuf_str(b, "NULL");
		return;
	}
	strbuf_add(b, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			strbuf_add(b, "\\", 1);
		strbuf_add(b, s, 1);
	}
	strbuf_add(b, "\"", 1);
}

char *
int64_array_literal(const int64_t *v, size_t n)
{
	struct strbuf b = {0};
	char num[32];

	strbuf_str(&b, "{");
	for (size_t i = 0; i < n; i++) {
		snprintf(num, sizeof(num), "%s%lld", i > 0 ? "," : "",
			 (long long)v[i]);
		strbuf_str(&b, num);
	}
	strbuf_str(&b, "}");
	return b.p;
}

char *
text_array_literal(const char *const *v, size_t n)
{
	struct strbuf b = {NULL, 0, 0};

	strbuf_str(&b, "{");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strbuf_str(&b, ",");
		strbuf_array_elem(&b, v[i]);
	}
	strbuf_str(&b, "}");
	return b.p;
}

void
sig_reset(const int *ignore, size_t nignore)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	for (size_t i = 0; i < nignore; i++)
		(void)sigaction(ignore[i], &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
}
