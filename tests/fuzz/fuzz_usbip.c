/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the USB/IP wire format (pvusb/usbip.h): bytes a
 * remote client sends. Input: 48 header bytes, 16 iso descriptor bytes and
 * 32 busid bytes, then 4 bytes of buffer length (fewer: zeros). Each decoder
 * either refuses or gives values within the bounds its contract promises,
 * and a decoded header encodes back to the same values.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pvusb/usbip.h"

#define FUZZ_NAME "fuzz_usbip"
#include "invariant.h"

#define MAX_LEN (16u << 20)

static void check_header(const uint8_t *in)
{
	struct usbip_header h, again;
	if (usbip_get_cmd_header(in, &h, MAX_LEN) < 0)
		return;
	REQUIRE(h.command == USBIP_CMD_SUBMIT || h.command == USBIP_CMD_UNLINK);
	uint8_t out[USBIP_HEADER_SIZE];
	usbip_put_header(out, &h);
	REQUIRE(usbip_get_cmd_header(out, &again, MAX_LEN) == 0);
	REQUIRE(memcmp(&h, &again, sizeof(h)) == 0);
	if (h.command != USBIP_CMD_SUBMIT)
		return;
	REQUIRE(h.ep <= 15 && h.direction <= USBIP_DIR_IN);
	REQUIRE(h.u.submit.transfer_buffer_length >= 0 && (uint32_t)h.u.submit.transfer_buffer_length <= MAX_LEN);
	for (int iso = 0; iso < 2; iso++) {
		int64_t n = usbip_submit_payload(&h, iso);
		if (n < 0) {
			REQUIRE(iso);
			continue;
		}
		REQUIRE(n <= (int64_t)MAX_LEN + USBIP_MAX_ISO_PACKETS * USBIP_ISO_DESC_SIZE);
		if (!iso)
			REQUIRE(n == (h.direction == USBIP_DIR_OUT ? h.u.submit.transfer_buffer_length : 0));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[USBIP_HEADER_SIZE + USBIP_ISO_DESC_SIZE + USBIP_BUSID_SIZE + 4] = {0};
	memcpy(buf, data, size < sizeof(buf) ? size : sizeof(buf));
	check_header(buf);

	const uint8_t *len = buf + USBIP_HEADER_SIZE + USBIP_ISO_DESC_SIZE + USBIP_BUSID_SIZE;
	uint32_t buf_len = (uint32_t)len[0] << 24 | (uint32_t)len[1] << 16 | (uint32_t)len[2] << 8 | len[3];
	struct usbip_iso_desc d;
	if (usbip_get_iso_desc(buf + USBIP_HEADER_SIZE, buf_len, &d) == 0)
		REQUIRE((uint64_t)d.offset + d.length <= buf_len && d.actual_length == 0 && d.status == 0);

	char busid[USBIP_BUSID_SIZE];
	if (usbip_get_busid(buf + USBIP_HEADER_SIZE + USBIP_ISO_DESC_SIZE, busid) == 0)
		REQUIRE(memchr(busid, 0, sizeof(busid)) != NULL);

	struct usbip_op_common op;
	if (usbip_get_op_common(buf, &op) == 0)
		REQUIRE(op.version == USBIP_VERSION);
	return 0;
}
