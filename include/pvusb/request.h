/* SPDX-License-Identifier: MIT */
/*
 * Copy-then-validate of one urb-ring request (spec A.6, B.1-B.7, E.7). No I/O:
 * the input is a ring slot the guest may rewrite at any moment, the output a
 * private, checked copy or the exact status to answer with.
 */
#ifndef PVUSB_REQUEST_H
#define PVUSB_REQUEST_H

#include "usbif.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most isochronous packets one request may carry: what 15 descriptor
 * segments hold is far more than any host uses; Linux's USB/IP caps at 1024. */
#define USBIF_MAX_ISO_PACKETS 1024u

struct usbif_req {
	struct usbif_urb_request raw; /* the private copy */
	struct usbif_pipe pipe;
	uint32_t data_len;  /* sum of the buffer segments' lengths */
	uint32_t desc_len;  /* sum of the frame-descriptor segments' lengths */
	uint16_t nr_desc_segs;
};

/*
 * Copy the slot once into r->raw, then check it against a controller with
 * `num_ports` ports. Returns 0 when the request is well formed, otherwise
 * the usbif status to answer it with:
 *   -ESHUTDOWN (-108) malformed: > 16 segments, offset + length > 4096,
 *                     buffer_length disagreeing with the segments, an unlink
 *                     carrying segments, isochronous descriptors that do not
 *                     fit their segments or > USBIF_MAX_ISO_PACKETS packets;
 *   -ENODEV (-19)     port 0 or beyond num_ports;
 *   -EINVAL (-22)     reserved pipe bits set, or a control request whose
 *                     bmRequestType direction contradicts the pipe's.
 * r->raw.id is valid whichever the result, so the caller can answer.
 */
int usbif_req_copy_validate(const void *slot, unsigned num_ports, struct usbif_req *r);

/* Fill a response for request id with the given fields. */
static inline void usbif_rsp_fill(struct usbif_urb_response *rsp, uint16_t id, int32_t status,
				  int32_t actual, uint16_t start_frame, int32_t error_count)
{
	rsp->id = id;
	rsp->start_frame = start_frame;
	rsp->status = status;
	rsp->actual_length = actual;
	rsp->error_count = error_count;
}

#ifdef __cplusplus
}
#endif
#endif
