/* SPDX-License-Identifier: MIT */
/*
 * usbif: the PVUSB wire ABI, byte-compatible with Xen's public io/usbif.h
 * (and Linux's include/xen/interface/io/usbif.h). Every offset and size is
 * checked at compile time against ../shared/spec/pvusb-protocol.md A-C.
 *
 * This header does no I/O and has no dependency beyond <stdint.h>.
 */
#ifndef PVUSB_USBIF_H
#define PVUSB_USBIF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t usbif_ring_idx_t; /* RING_IDX: 32 bits, wraps modulo 2^32 */
typedef uint32_t usbif_grant_ref_t;

#define USBIF_PAGE_SIZE 4096u      /* grant frame size, whatever the CPU page size */
#define USBIF_RING_BYTES 4096u     /* USBIF_RING_SIZE: the ring area is one 4 KiB page */
#define USBIF_RING_HDR_BYTES 64u
#define USBIF_MAX_SEGMENTS_PER_REQUEST 16u
#define USBIF_MAX_PORTNR 31u
#define USBIF_MAX_ADDR 127u

/* ---- pipe (spec B.3) ---- */
#define USBIF_PIPE_PORT_MASK 0x0000001fu
#define USBIF_PIPE_UNLINK 0x00000020u
#define USBIF_PIPE_DIR 0x00000080u /* 1 = IN */
#define USBIF_PIPE_DEV_MASK 0x0000007fu
#define USBIF_PIPE_DEV_SHIFT 8
#define USBIF_PIPE_EP_MASK 0x0000000fu
#define USBIF_PIPE_EP_SHIFT 15
#define USBIF_PIPE_TYPE_MASK 0x00000003u
#define USBIF_PIPE_TYPE_SHIFT 30
/* bits 6 and 19..29 are reserved and must be zero */
#define USBIF_PIPE_RESERVED_MASK 0x3ff80040u

enum usbif_xfer_type {
	USBIF_PIPE_TYPE_ISOC = 0,
	USBIF_PIPE_TYPE_INT = 1,
	USBIF_PIPE_TYPE_CTRL = 2,
	USBIF_PIPE_TYPE_BULK = 3,
};

/* transfer_flags (B.4): only bit 0 is defined; others are ignored */
#define USBIF_SHORT_NOT_OK 0x0001u

/* status values (B.8): Linux errno numbers, fixed whatever the host OS */
#define USBIF_STATUS_OK 0
#define USBIF_STATUS_NODEV (-19)
#define USBIF_STATUS_INVAL (-22)
#define USBIF_STATUS_STALL (-32)
#define USBIF_STATUS_IOERROR (-71)
#define USBIF_STATUS_BABBLE (-75)
#define USBIF_STATUS_SHUTDOWN (-108)
/* Not in usbif.h but produced by Linux-style back-ends; xen-hcd maps them to
 * -ESHUTDOWN. Spelled out so the numbers never depend on the host's errno.h. */
#define USBIF_STATUS_NOENT (-2)
#define USBIF_STATUS_REMOTEIO (-121)
#define USBIF_STATUS_CONNRESET (-104)

/* speeds on the conn ring (C.1) */
enum usbif_speed {
	USBIF_SPEED_NONE = 0,
	USBIF_SPEED_LOW = 1,
	USBIF_SPEED_FULL = 2,
	USBIF_SPEED_HIGH = 3,
};

enum usbif_usb_ver { USBIF_VER_USB11 = 1, USBIF_VER_USB20 = 2 };

/* ---- urb ring messages (B.1, B.2) ---- */
struct usbif_request_segment {
	usbif_grant_ref_t gref;
	uint16_t offset;
	uint16_t length;
};

struct usbif_urb_request {
	uint16_t id;
	uint16_t nr_buffer_segs;
	uint32_t pipe;
	uint16_t transfer_flags;
	uint16_t buffer_length;
	union {
		uint8_t ctrl[8]; /* raw SETUP packet, little-endian fields */
		struct {
			uint16_t interval;
			uint16_t start_frame;
			uint16_t number_of_packets;
			uint16_t nr_frame_desc_segs;
		} isoc;
		struct {
			uint16_t interval;
			uint16_t pad[3];
		} intr;
		struct {
			uint16_t unlink_id;
			uint16_t pad[3];
		} unlink;
	} u;
	struct usbif_request_segment seg[USBIF_MAX_SEGMENTS_PER_REQUEST];
};

struct usbif_urb_response {
	uint16_t id;
	uint16_t start_frame;
	int32_t status;
	int32_t actual_length;
	int32_t error_count;
};

/* Isochronous frame descriptor kept in the frame-descriptor segments (B.6):
 * Linux's struct usb_iso_packet_descriptor. */
struct usbif_iso_desc {
	uint32_t offset;
	uint32_t length;
	uint32_t actual_length;
	int32_t status;
};

/* ---- conn ring messages (C.1) ---- */
struct usbif_conn_request {
	uint16_t id;
};

struct usbif_conn_response {
	uint16_t id;
	uint8_t portnum;
	uint8_t speed;
};

/* ---- shared ring pages (A.2) ---- */
struct usbif_ring_hdr {
	usbif_ring_idx_t req_prod;
	usbif_ring_idx_t req_event;
	usbif_ring_idx_t rsp_prod;
	usbif_ring_idx_t rsp_event;
	uint8_t pvt_pad[4];
	uint8_t pad[44];
};

union usbif_urb_slot {
	struct usbif_urb_request req;
	struct usbif_urb_response rsp;
};

union usbif_conn_slot {
	struct usbif_conn_request req;
	struct usbif_conn_response rsp;
};

#define USB_URB_RING_SIZE 16u   /* largest 2^k <= (4096-64)/148 */
#define USB_CONN_RING_SIZE 512u /* largest 2^k <= (4096-64)/4 */

struct usbif_urb_sring {
	struct usbif_ring_hdr hdr;
	union usbif_urb_slot ring[USB_URB_RING_SIZE];
};

struct usbif_conn_sring {
	struct usbif_ring_hdr hdr;
	union usbif_conn_slot ring[USB_CONN_RING_SIZE];
};

/* Compile-time proof of the ABI (spec A.2, B.1, B.2, C.1). */
_Static_assert(sizeof(usbif_ring_idx_t) == 4, "RING_IDX");
_Static_assert(sizeof(struct usbif_ring_hdr) == 64, "ring header");
_Static_assert(offsetof(struct usbif_ring_hdr, req_event) == 4, "req_event");
_Static_assert(offsetof(struct usbif_ring_hdr, rsp_prod) == 8, "rsp_prod");
_Static_assert(offsetof(struct usbif_ring_hdr, rsp_event) == 12, "rsp_event");
_Static_assert(offsetof(struct usbif_ring_hdr, pvt_pad) == 16, "pvt");
_Static_assert(offsetof(struct usbif_ring_hdr, pad) == 20, "pad");
_Static_assert(sizeof(struct usbif_request_segment) == 8, "segment");
_Static_assert(offsetof(struct usbif_request_segment, offset) == 4, "seg.offset");
_Static_assert(offsetof(struct usbif_request_segment, length) == 6, "seg.length");
_Static_assert(sizeof(struct usbif_urb_request) == 148, "urb request");
_Static_assert(_Alignof(struct usbif_urb_request) == 4, "urb request align");
_Static_assert(offsetof(struct usbif_urb_request, nr_buffer_segs) == 2, "nr_buffer_segs");
_Static_assert(offsetof(struct usbif_urb_request, pipe) == 4, "pipe");
_Static_assert(offsetof(struct usbif_urb_request, transfer_flags) == 8, "flags");
_Static_assert(offsetof(struct usbif_urb_request, buffer_length) == 10, "buffer_length");
_Static_assert(offsetof(struct usbif_urb_request, u) == 12, "u");
_Static_assert(offsetof(struct usbif_urb_request, u.isoc.start_frame) == 14, "isoc.start_frame");
_Static_assert(offsetof(struct usbif_urb_request, u.isoc.number_of_packets) == 16, "isoc.np");
_Static_assert(offsetof(struct usbif_urb_request, u.isoc.nr_frame_desc_segs) == 18, "isoc.fds");
_Static_assert(offsetof(struct usbif_urb_request, u.unlink.unlink_id) == 12, "unlink_id");
_Static_assert(offsetof(struct usbif_urb_request, seg) == 20, "seg");
_Static_assert(offsetof(struct usbif_urb_request, seg[15]) == 140, "seg[15]");
_Static_assert(sizeof(struct usbif_urb_response) == 16, "urb response");
_Static_assert(offsetof(struct usbif_urb_response, start_frame) == 2, "rsp.start_frame");
_Static_assert(offsetof(struct usbif_urb_response, status) == 4, "rsp.status");
_Static_assert(offsetof(struct usbif_urb_response, actual_length) == 8, "rsp.actual_length");
_Static_assert(offsetof(struct usbif_urb_response, error_count) == 12, "rsp.error_count");
_Static_assert(sizeof(union usbif_urb_slot) == 148, "urb slot");
_Static_assert(sizeof(struct usbif_iso_desc) == 16, "iso desc");
_Static_assert(sizeof(struct usbif_conn_request) == 2, "conn request");
_Static_assert(sizeof(struct usbif_conn_response) == 4, "conn response");
_Static_assert(offsetof(struct usbif_conn_response, portnum) == 2, "portnum");
_Static_assert(offsetof(struct usbif_conn_response, speed) == 3, "speed");
_Static_assert(sizeof(union usbif_conn_slot) == 4, "conn slot");
_Static_assert(sizeof(struct usbif_urb_sring) == 64 + 16 * 148, "urb sring 2432");
_Static_assert(sizeof(struct usbif_conn_sring) == 64 + 512 * 4, "conn sring 2112");
_Static_assert(sizeof(struct usbif_urb_sring) <= USBIF_RING_BYTES, "urb ring fits a page");
_Static_assert(sizeof(struct usbif_conn_sring) <= USBIF_RING_BYTES, "conn ring fits a page");

/* ---- pipe helpers ---- */
struct usbif_pipe {
	uint8_t port;     /* 1..31 */
	bool unlink;
	bool in;          /* direction: device to host */
	uint8_t devaddr;  /* 0..127 */
	uint8_t endpoint; /* 0..15 */
	uint8_t type;     /* enum usbif_xfer_type */
};

static inline uint32_t usbif_pipe_encode(const struct usbif_pipe *p)
{
	return ((uint32_t)p->port & USBIF_PIPE_PORT_MASK) | (p->unlink ? USBIF_PIPE_UNLINK : 0) |
	       (p->in ? USBIF_PIPE_DIR : 0) |
	       (((uint32_t)p->devaddr & USBIF_PIPE_DEV_MASK) << USBIF_PIPE_DEV_SHIFT) |
	       (((uint32_t)p->endpoint & USBIF_PIPE_EP_MASK) << USBIF_PIPE_EP_SHIFT) |
	       (((uint32_t)p->type & USBIF_PIPE_TYPE_MASK) << USBIF_PIPE_TYPE_SHIFT);
}

static inline struct usbif_pipe usbif_pipe_decode(uint32_t pipe)
{
	struct usbif_pipe p = {
		.port = (uint8_t)(pipe & USBIF_PIPE_PORT_MASK),
		.unlink = (pipe & USBIF_PIPE_UNLINK) != 0,
		.in = (pipe & USBIF_PIPE_DIR) != 0,
		.devaddr = (uint8_t)((pipe >> USBIF_PIPE_DEV_SHIFT) & USBIF_PIPE_DEV_MASK),
		.endpoint = (uint8_t)((pipe >> USBIF_PIPE_EP_SHIFT) & USBIF_PIPE_EP_MASK),
		.type = (uint8_t)((pipe >> USBIF_PIPE_TYPE_SHIFT) & USBIF_PIPE_TYPE_MASK),
	};
	return p;
}

/* SETUP packet accessors (little-endian on the wire, spec B.1) */
static inline uint16_t usbif_le16(const uint8_t *b) { return (uint16_t)(b[0] | (b[1] << 8)); }

#define USB_REQ_GET_STATUS 0x00
#define USB_REQ_CLEAR_FEATURE 0x01
#define USB_REQ_SET_FEATURE 0x03
#define USB_REQ_SET_ADDRESS 0x05
#define USB_REQ_GET_DESCRIPTOR 0x06
#define USB_REQ_SET_DESCRIPTOR 0x07
#define USB_REQ_GET_CONFIGURATION 0x08
#define USB_REQ_SET_CONFIGURATION 0x09
#define USB_REQ_GET_INTERFACE 0x0a
#define USB_REQ_SET_INTERFACE 0x0b
#define USB_DIR_IN 0x80
#define USB_TYPE_MASK 0x60
#define USB_TYPE_STANDARD 0x00
#define USB_TYPE_CLASS 0x20
#define USB_RECIP_MASK 0x1f
#define USB_RECIP_DEVICE 0x00
#define USB_RECIP_INTERFACE 0x01
#define USB_RECIP_ENDPOINT 0x02
#define USB_ENDPOINT_HALT 0

#ifdef __cplusplus
}
#endif
#endif
