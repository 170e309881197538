/* libFuzzer target: channel records from an untrusted peer through chan_decode.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chan_msg m;

	if (chan_decode(data, size, &m)) {
		/* A record that decodes must be safe to use as C strings. */
		if (strlen(m.uuid) >= sizeof(m.uuid) ||
		    strlen(m.text) >= sizeof(m.text))
			__builtin_trap();
		(void)chan_type_name(m.type);
	}
	return 0;
}
