/* SPDX-License-Identifier: MIT */
/* Copy-then-validate of urb requests. Pure function of its input: fuzzed. */
#include <string.h>

#include "pvusb/request.h"

static uint32_t sum_segments(const struct usbif_request_segment *seg, unsigned n, bool *bad)
{
	uint32_t total = 0;
	for (unsigned i = 0; i < n; i++) {
		if ((uint32_t)seg[i].offset + seg[i].length > USBIF_PAGE_SIZE)
			*bad = true;
		total += seg[i].length;
	}
	return total;
}

static int check_isoc(struct usbif_req *r)
{
	const struct usbif_urb_request *q = &r->raw;
	unsigned nbuf = q->nr_buffer_segs, ndesc = q->u.isoc.nr_frame_desc_segs;
	if (nbuf + ndesc > USBIF_MAX_SEGMENTS_PER_REQUEST)
		return USBIF_STATUS_SHUTDOWN;
	bool bad = false;
	r->nr_desc_segs = (uint16_t)ndesc;
	r->desc_len = sum_segments(q->seg + nbuf, ndesc, &bad);
	if (bad)
		return USBIF_STATUS_SHUTDOWN;
	uint32_t np = q->u.isoc.number_of_packets;
	if (np > USBIF_MAX_ISO_PACKETS)
		return USBIF_STATUS_SHUTDOWN;
	/* xen-hcd grants no descriptor pages for an empty buffer (B.6) */
	if (r->data_len == 0 && ndesc == 0)
		return 0;
	if (np == 0 || (uint64_t)np * sizeof(struct usbif_iso_desc) > r->desc_len)
		return USBIF_STATUS_SHUTDOWN;
	return 0;
}

static int check_control(const struct usbif_req *r)
{
	/* The direction of the data stage decides whether we map the buffer
	 * writable; a contradiction would make a device write read-only
	 * memory (OUT) or leak stale data (IN). */
	bool setup_in = r->raw.u.ctrl[0] & USB_DIR_IN;
	if (r->data_len && setup_in != r->pipe.in)
		return USBIF_STATUS_INVAL;
	return 0;
}

int usbif_req_copy_validate(const void *slot, unsigned num_ports, struct usbif_req *r)
{
	/* the one read of guest memory: everything below looks at the copy */
	memcpy(&r->raw, slot, sizeof(r->raw));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	r->pipe = usbif_pipe_decode(r->raw.pipe);
	r->data_len = 0;
	r->desc_len = 0;
	r->nr_desc_segs = 0;

	const struct usbif_urb_request *q = &r->raw;
	if (q->nr_buffer_segs > USBIF_MAX_SEGMENTS_PER_REQUEST)
		return USBIF_STATUS_SHUTDOWN;
	if (r->pipe.port == 0 || r->pipe.port > num_ports)
		return USBIF_STATUS_NODEV;
	if (q->pipe & USBIF_PIPE_RESERVED_MASK)
		return USBIF_STATUS_INVAL;

	bool bad = false;
	r->data_len = sum_segments(q->seg, q->nr_buffer_segs, &bad);
	if (bad)
		return USBIF_STATUS_SHUTDOWN;
	if (r->pipe.unlink)
		return q->nr_buffer_segs ? USBIF_STATUS_SHUTDOWN : 0;
	/* buffer_length is 16 bits: 64 KiB of segments wraps it to 0 (B.5) */
	if ((uint16_t)r->data_len != q->buffer_length)
		return USBIF_STATUS_SHUTDOWN;

	switch (r->pipe.type) {
	case USBIF_PIPE_TYPE_ISOC:
		return check_isoc(r);
	case USBIF_PIPE_TYPE_CTRL:
		return check_control(r);
	default:
		return 0;
	}
}
