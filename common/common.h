/*
 * Small helpers shared by every pgq binary and libpgq: allocation that exits
 * on out-of-memory, monotonic clocks, duration and size parsing, UUIDs,
 * descriptor and signal hygiene, and PostgreSQL text-array literals.
 */
#ifndef PGQ_COMMON_H
#define PGQ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGQ_WUR	     __attribute__((warn_unused_result))
#define PGQ_NORETURN __attribute__((noreturn))
#define PGQ_UNUSED   __attribute__((unused))

#define PGQ_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation: exits with a log line on out-of-memory, never returns NULL. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh buffer; exits on out-of-memory. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic and wall clocks. */
uint64_t clock_mono_ms(void);
uint64_t clock_mono_us(void);
double clock_wall_s(void);

/*
 * Parses a duration: a non-negative number with an optional unit us, ms, s,
 * m, h or d (no unit = seconds), e.g. "500ms", "30s", "1.5m". Stores
 * milliseconds. Returns false on anything else, on overflow and on an empty
 * string.
 */
bool parse_duration_ms(const char *s, uint64_t *ms_out) PGQ_WUR;

/*
 * Writes ms in the largest unit that divides it exactly: "2d", "90m", "30s",
 * "1500ms"; 0 is "0". parse_duration_ms reads every result back.
 */
void format_duration_ms(uint64_t ms, char *buf, size_t len);

/* Parses a size with an optional unit B, k/K, M, G (powers of 1024). */
bool parse_size_bytes(const char *s, uint64_t *bytes_out) PGQ_WUR;

/* Parses a whole decimal number in [min, max]; false when not one. */
bool parse_int_range(const char *s, long long min, long long max,
		     long long *out) PGQ_WUR;

/* Parses true/false, yes/no, on/off, 1/0 (any case). */
bool parse_bool(const char *s, bool *out) PGQ_WUR;

/* A random (version 4) UUID in canonical text form, 36 chars + NUL. */
#define UUID_STR_LEN 37
void uuid_generate_str(char out[UUID_STR_LEN]);

/* Fills buf with random bytes (getrandom, falling back to /dev/urandom). */
void random_bytes(void *buf, size_t len);
/* A uniformly distributed random number in [0, bound). bound > 0. */
uint64_t random_below(uint64_t bound);

/* Sets FD_CLOEXEC / O_NONBLOCK on fd; -1 with errno on failure. */
int fd_set_cloexec(int fd) PGQ_WUR;
int fd_set_nonblock(int fd) PGQ_WUR;
/* Closes every descriptor >= 3 except those listed. */
void fd_close_all_except(const int *keep, size_t nkeep);

/*
 * For a fresh child process: every signal back to its default action except
 * those listed, which are ignored, then an empty signal mask (a fork that
 * blocked signals unblocks them only once no inherited handler remains).
 */
void sig_reset(const int *ignore, size_t nignore);

/* A growing NUL-terminated string; zero-initialise, free(b.p) when done. */
struct strbuf {
	char *p;
	size_t len, cap;
};

void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_str(struct strbuf *b, const char *s);
/* Appends one element of a PostgreSQL text array literal: "..." with " and
 * \ escaped, or NULL (unquoted) when s is NULL. */
void strbuf_array_elem(struct strbuf *b, const char *s);
/* Encodes n values as a PostgreSQL array literal, "{1,2,3}"; caller frees. */
char *int64_array_literal(const int64_t *v, size_t n);

/*
 * A PostgreSQL text[] literal of n strings, each quoted as
 * strbuf_array_elem does (a NULL element is SQL NULL). Caller frees.
 */
char *text_array_literal(const char *const *v, size_t n);

/* True when s matches ^[A-Za-z_][A-Za-z0-9_]*$ and is at most maxlen bytes. */
bool ident_valid(const char *s, size_t maxlen);

#endif
