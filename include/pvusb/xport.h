/* SPDX-License-Identifier: MIT */
/*
 * Transports, backend side: how the core reaches one frontend's rings and
 * buffers. Shaped after Xen (grant references, map/unmap with permissions,
 * one event channel for both rings); the `local` transport implements the
 * same operations on shared memory and eventfds.
 *
 * Threads: every operation is called from the owning controller's service
 * thread, except map/unmap, which a completion may call from any thread
 * (unmap) - implementations keep them thread-safe.
 */
#ifndef PVUSB_XPORT_H
#define PVUSB_XPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "usbif.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pvusb_xport;

/* One mapping of a request's segments. The transport owns `handle`. */
struct pvusb_map {
	void *handle;
	uint8_t *addr;
	uint32_t nseg;
	bool writable;
};

struct pvusb_xport_ops {
	const char *name;

	/*
	 * map: map `n` (1..16) segments, writable or read-only as the grant
	 * must be (read-only for OUT data). On success fill iov[i] for each
	 * segment (base = start of that segment's data, len = seg.length) and
	 * return 0; on failure return a negative errno and map nothing (the
	 * core answers the request with -ESHUTDOWN). Segments were already
	 * checked for offset + length <= 4096.
	 */
	int (*map)(struct pvusb_xport *xp, const struct usbif_request_segment *seg, unsigned n,
		   bool writable, struct pvusb_map *m, struct pvusb_iov *iov);

	/* unmap: undo map. Must finish before the request's response is
	 * posted (spec A.7). Any thread. */
	void (*unmap)(struct pvusb_xport *xp, struct pvusb_map *m);

	/*
	 * copy (optional): move the first `len` bytes of the frontend's
	 * segments seg[0..n), taken in order (seg.length bytes from seg.offset
	 * of each), to or from the flat buffer `buf`: into `buf` when
	 * !to_guest, into the frontend's pages when to_guest. `len` never
	 * exceeds the segments' total. Returns 0, or a negative errno when any
	 * segment could not be copied (a bad or revoked grant); the core then
	 * answers the request -ESHUTDOWN. Any thread.
	 *
	 * A transport that has it is never asked to map request data: the core
	 * copies OUT data once into its own staging memory before the device
	 * sees it (the frontend can no longer change it under the device) and
	 * IN data once before the response. Xen does this with grant copy: one
	 * hypercall per request, where a mapping costs a map and an unmap
	 * hypercall, two page-table changes and a TLB flush.
	 */
	int (*copy)(struct pvusb_xport *xp, const struct usbif_request_segment *seg, unsigned n,
		    void *buf, size_t len, bool to_guest);

	/* notify: raise the event channel towards the frontend. Any thread. */
	void (*notify)(struct pvusb_xport *xp);

	/* ack: consume the pending event on event_fd before looking at the
	 * rings (eventfd read, evtchn unmask). */
	void (*ack)(struct pvusb_xport *xp);

	/* close: unmap both rings, unbind the event channel, free xp. Every
	 * request mapping has been unmapped before. */
	void (*close)(struct pvusb_xport *xp);
};

/* A connected frontend, as the transport hands it to the core. */
struct pvusb_xport {
	const struct pvusb_xport_ops *ops;
	void *urb_ring;  /* the mapped urb ring page (4096 bytes) */
	void *conn_ring; /* the mapped conn ring page */
	int event_fd;    /* readable when the frontend notifies */
	char peer[64];   /* who is on the other side, for logs */
	uint64_t maps_live; /* grant mappings not yet unmapped (tests check 0) */
};

#ifdef __cplusplus
}
#endif
#endif
