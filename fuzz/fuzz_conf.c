/*
 * libFuzzer target: INI text through the whole configuration loader (line
 * reader, inih, key table, validation, error formatting).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors errs;
	struct conf *cf = NULL;
	char *text;

	if (size > 65536)
		return 0;
	conf_errors_init(&errs);
	if (conf_load_buffer("fuzz.ini", (const char *)data, size, &cf,
			     &errs) == 0) {
		if (cf == NULL || errs.n != 0)
			__builtin_trap();
	} else if (errs.n == 0) {
		/* A refused file must say why. */
		__builtin_trap();
	}
	text = conf_errors_format(&errs);
	free(text);
	conf_errors_clear(&errs);
	conf_free(cf);
	return 0;
}
