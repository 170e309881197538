/*
 * libFuzzer target: the duration, size, integer and boolean parsers used by
 * the configuration, on arbitrary text.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	uint64_t u;
	long long ll;
	bool b;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (parse_duration_ms(s, &u) && u > 9000000000000000ULL)
		__builtin_trap();
	(void)parse_size_bytes(s, &u);
	if (parse_int_range(s, -5, 1024, &ll) && (ll < -5 || ll > 1024))
		__builtin_trap();
	(void)parse_bool(s, &b);
	(void)ident_valid(s, 63);
	free(s);
	return 0;
}
