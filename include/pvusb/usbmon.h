/* SPDX-License-Identifier: MIT */
/*
 * Linux usbmon records in a pcap file (LINKTYPE_USB_LINUX_MMAPPED, 220), as
 * Wireshark and tshark read them (shared/spec/usbip-usbmon-spec.md, D).
 * Encoding only, no I/O. The file is little-endian (magic d4 c3 b2 a1).
 */
#ifndef PVUSB_USBMON_H
#define PVUSB_USBMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define USBMON_LINKTYPE 220
#define USBMON_PCAP_HEADER_SIZE 24
#define USBMON_RECORD_HEADER_SIZE 16 /* pcap's per-record header */
#define USBMON_HEADER_SIZE 64
#define USBMON_ISO_DESC_SIZE 16
#define USBMON_SNAPLEN (16u << 20 | 0x10000)

/* One packet descriptor as usbmon writes it (D.4): length is the requested
 * length in a submit, the actual length in a completion. */
struct usbmon_iso {
	int32_t status;
	uint32_t offset, length;
};

struct usbmon_event {
	uint64_t id;       /* the same on a submit and its completion */
	char type;         /* 'S' submit, 'C' complete, 'E' submit error */
	uint8_t xfer_type; /* 0 iso, 1 interrupt, 2 control, 3 bulk (usbif's numbers) */
	uint8_t epnum;     /* endpoint | 0x80 for IN */
	uint8_t devnum;
	uint16_t busnum;
	bool has_setup; /* control submit: setup[] is the SETUP packet */
	uint8_t setup[8];
	int64_t ts_sec;
	int32_t ts_usec;
	int32_t status; /* submit: -EINPROGRESS */
	uint32_t length; /* submit: buffer length; completion: actual length */
	int32_t interval, start_frame, error_count;
	uint32_t xfer_flags;
	const struct usbmon_iso *iso;
	uint32_t ndesc;
	const uint8_t *data; /* what follows the descriptors; NULL: no data (flag set by direction) */
	uint32_t data_len;
};

/* The pcap global header. */
void usbmon_put_pcap_header(uint8_t out[USBMON_PCAP_HEADER_SIZE]);
/* Bytes usbmon_put_record writes for `e`. */
size_t usbmon_record_size(const struct usbmon_event *e);
/* The pcap record (its header, the 64-byte usbmon header, descriptors, data). */
size_t usbmon_put_record(uint8_t *out, const struct usbmon_event *e);

#ifdef __cplusplus
}
#endif
#endif
