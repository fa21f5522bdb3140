/* SPDX-License-Identifier: MIT */
/*
 * The USB/IP wire protocol (shared/spec/usbip-usbmon-spec.md), as Linux's
 * `usbip` tools and vhci-hcd speak it: encoding and validation only, no I/O,
 * so that it can be fuzzed. Every multi-byte field on the wire is big-endian;
 * the structs here hold host-order values.
 */
#ifndef PVUSB_USBIP_H
#define PVUSB_USBIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define USBIP_PORT 3240
#define USBIP_VERSION 0x0111

/* op_common codes (A.3) */
#define USBIP_OP_REQ_DEVLIST 0x8005
#define USBIP_OP_REP_DEVLIST 0x0005
#define USBIP_OP_REQ_IMPORT 0x8003
#define USBIP_OP_REP_IMPORT 0x0003
/* op_common status (A.3) */
#define USBIP_ST_OK 0
#define USBIP_ST_NA 1
#define USBIP_ST_DEV_BUSY 2
#define USBIP_ST_DEV_ERR 3
#define USBIP_ST_NODEV 4
#define USBIP_ST_ERROR 5

#define USBIP_OP_COMMON_SIZE 8
#define USBIP_BUSID_SIZE 32
#define USBIP_DEVICE_SIZE 312
#define USBIP_INTERFACE_SIZE 4
#define USBIP_IMPORT_REQ_SIZE (USBIP_OP_COMMON_SIZE + USBIP_BUSID_SIZE)

/* URB phase commands (B.1) */
#define USBIP_CMD_SUBMIT 1
#define USBIP_CMD_UNLINK 2
#define USBIP_RET_SUBMIT 3
#define USBIP_RET_UNLINK 4
#define USBIP_DIR_OUT 0
#define USBIP_DIR_IN 1
#define USBIP_HEADER_SIZE 48
#define USBIP_ISO_DESC_SIZE 16
#define USBIP_MAX_ISO_PACKETS 1024

/* transfer_flags a server acts on (B.6) */
#define USBIP_URB_SHORT_NOT_OK 0x0001
#define USBIP_URB_ISO_ASAP 0x0002
#define USBIP_URB_ZERO_PACKET 0x0040
#define USBIP_URB_DIR_IN 0x0200

/* enum usb_device_speed (A.7) */
#define USBIP_SPEED_LOW 1
#define USBIP_SPEED_FULL 2
#define USBIP_SPEED_HIGH 3

struct usbip_op_common {
	uint16_t version;
	uint16_t code;
	uint32_t status;
};

/* usbip_usb_device (A.4), host order */
struct usbip_device {
	char path[256];
	char busid[USBIP_BUSID_SIZE];
	uint32_t busnum, devnum, speed;
	uint16_t id_vendor, id_product, bcd_device;
	uint8_t dev_class, dev_subclass, dev_protocol;
	uint8_t configuration_value, num_configurations, num_interfaces;
};

struct usbip_interface {
	uint8_t cls, subclass, protocol;
};

/* The 48-byte URB header (B.1-B.4), host order. Which union member is
 * meaningful follows from `command`. */
struct usbip_header {
	uint32_t command, seqnum, devid, direction, ep;
	union {
		struct {
			uint32_t transfer_flags;
			int32_t transfer_buffer_length, start_frame, number_of_packets, interval;
			uint8_t setup[8];
		} submit;
		struct {
			int32_t status, actual_length, start_frame, number_of_packets, error_count;
		} ret_submit;
		struct {
			uint32_t unlink_seqnum;
		} unlink;
		struct {
			int32_t status;
		} ret_unlink;
	} u;
};

struct usbip_iso_desc {
	uint32_t offset, length, actual_length;
	int32_t status;
};

void usbip_put_op_common(uint8_t out[USBIP_OP_COMMON_SIZE], uint16_t code, uint32_t status);
/* 0, or -EPROTO when the version is not 0x0111. */
int usbip_get_op_common(const uint8_t in[USBIP_OP_COMMON_SIZE], struct usbip_op_common *op);
void usbip_put_device(uint8_t out[USBIP_DEVICE_SIZE], const struct usbip_device *d);
void usbip_put_interface(uint8_t out[USBIP_INTERFACE_SIZE], const struct usbip_interface *i);
/* The busid of an import request, NUL-terminated in `busid`; -EPROTO when the
 * 32 bytes hold no NUL. */
int usbip_get_busid(const uint8_t in[USBIP_BUSID_SIZE], char busid[USBIP_BUSID_SIZE]);

void usbip_put_header(uint8_t out[USBIP_HEADER_SIZE], const struct usbip_header *h);
/*
 * Decode a client's header: CMD_SUBMIT or CMD_UNLINK only. For a submit the
 * numbers are checked as far as the header alone allows: ep 0..15,
 * direction 0/1, transfer_buffer_length 0..max_len, and for isochronous
 * (`iso` true: the endpoint's type is known only to the caller, so the
 * caller checks number_of_packets with usbip_submit_payload) nothing more.
 * -EPROTO on anything else: the connection cannot be trusted after it.
 */
int usbip_get_cmd_header(const uint8_t in[USBIP_HEADER_SIZE], struct usbip_header *h, uint32_t max_len);
/* Bytes that follow a CMD_SUBMIT (B.5): the OUT data and np iso descriptors;
 * -EPROTO when np is out of range for an isochronous submit. */
int64_t usbip_submit_payload(const struct usbip_header *h, bool iso);

void usbip_put_iso_desc(uint8_t out[USBIP_ISO_DESC_SIZE], const struct usbip_iso_desc *d);
/* An iso descriptor of a CMD_SUBMIT; -EPROTO when it does not fit in a buffer
 * of buf_len bytes. */
int usbip_get_iso_desc(const uint8_t in[USBIP_ISO_DESC_SIZE], uint32_t buf_len, struct usbip_iso_desc *d);

#ifdef __cplusplus
}
#endif
#endif
