/*
 * libFuzzer target: notification payloads from the channel (anyone who can
 * NOTIFY can send them) through the event parser.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "driver/driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct driver_event ev;
	char why[256];
	char *payload = malloc(size + 1);

	if (payload == NULL)
		return 0;
	memcpy(payload, data, size);
	payload[size] = '\0';
	memset(&ev, 0, sizeof(ev));
	if (driver_event_parse(payload, &ev, why, sizeof(why)) == 0) {
		if (ev.type == DRIVER_EVENT_CANCELLATION && ev.nids > 0 &&
		    ev.ids == NULL)
			__builtin_trap();
		if (strlen(ev.table) >= sizeof(ev.table) ||
		    strlen(ev.channel) >= sizeof(ev.channel))
			__builtin_trap();
	}
	driver_event_clear(&ev);
	free(payload);
	return 0;
}
