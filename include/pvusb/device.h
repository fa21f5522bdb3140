/* SPDX-License-Identifier: MIT */
/*
 * Device back-ends: the one table of operations that emulated devices and
 * real host devices (libusb) both implement. The core never knows which kind
 * of device it talks to.
 *
 * Threads: submit(), cancel(), reset() and close() are called only from the
 * owning controller's service thread, never with a core lock held. A
 * completion (pvusb_xfer_complete) may be called from any thread, including
 * from inside submit() or cancel().
 */
#ifndef PVUSB_DEVICE_H
#define PVUSB_DEVICE_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#include "usbif.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pvusb_dev;

/* One run of a transfer buffer in the backend's address space. */
struct pvusb_iov {
	uint8_t *base;
	uint32_t len;
};

/*
 * One URB as a device sees it. The core owns the memory; it lends it to the
 * device from submit() until the device calls pvusb_xfer_complete() once.
 * The data buffer is the iov[] runs concatenated; `contig` points at the
 * whole buffer when those runs are adjacent (the common case), else NULL.
 * For OUT transfers the buffer may be mapped read-only: never write to it.
 */
struct pvusb_xfer {
	struct pvusb_dev *dev;
	uint8_t type;     /* enum usbif_xfer_type */
	uint8_t endpoint; /* 0..15, without direction bit */
	bool in;          /* data stage direction: device to host */
	uint16_t flags;   /* USBIF_SHORT_NOT_OK is the only meaningful bit */
	uint8_t setup[8]; /* control only: raw SETUP packet */
	uint32_t length;  /* buffer length in bytes */
	uint8_t *contig;
	unsigned niov;
	struct pvusb_iov iov[USBIF_MAX_SEGMENTS_PER_REQUEST];

	/* interrupt and isochronous: interval in Linux URB units */
	uint16_t interval;
	/* isochronous: a private copy of the frame descriptors, validated
	 * (offset + length <= length for each). The device fills
	 * actual_length and status of each; the core writes them back. */
	uint16_t start_frame;
	uint32_t npackets;
	struct usbif_iso_desc *iso;

	/* results: set by the device before pvusb_xfer_complete() */
	int32_t status; /* 0 or a USBIF_STATUS_* / negative Linux errno */
	uint32_t actual_length;
	int32_t error_count;
	uint16_t rsp_start_frame;

	void *dev_priv; /* the device's own per-transfer state */
};

/* Hand a finished transfer back to the core. Exactly once per transfer that
 * submit() accepted. The device must not touch `x` afterwards. */
void pvusb_xfer_complete(struct pvusb_xfer *x);

/*
 * Completion batches. Between pvusb_xfer_batch_begin() and the matching
 * pvusb_xfer_batch_end() on one thread, pvusb_xfer_complete() still posts
 * each response at once (the transfer is over for the device), but the ring
 * is published and the frontend notified only at batch end, once per
 * controller, instead of once per completion. Wrap a pass that may complete
 * many transfers (one round of event handling); never keep a batch open
 * across a wait, or the frontend waits with it. Pairs nest; the outermost
 * end publishes. Per thread; no lock may be held across batch end that a
 * completion's lock order puts after the core's (batch end takes rsp_lock).
 */
void pvusb_xfer_batch_begin(void);
void pvusb_xfer_batch_end(void);

/* Buffer helpers: copy between a transfer's runs and flat memory. Return the
 * number of bytes copied (bounded by the buffer length). */
size_t pvusb_xfer_copy_to(struct pvusb_xfer *x, size_t off, const void *src, size_t n);
size_t pvusb_xfer_copy_from(const struct pvusb_xfer *x, size_t off, void *dst, size_t n);

/* Hot-plug notice from a device back-end (a physical unplug or replug).
 * May be called from any thread, with no device lock held.
 * GONE: the device vanished. The back-end has completed (or will complete)
 *   every accepted transfer itself, and refuses new ones with -ENODEV; the
 *   core tells the guest speed 0 and forgets the port's guest address, but
 *   keeps the device on its port.
 * BACK: the same device is usable again; the back-end has set d->speed to
 *   its real speed before the call. The core announces it again, so the
 *   guest re-enumerates it on the same port. */
enum pvusb_dev_event { PVUSB_DEV_GONE, PVUSB_DEV_BACK };
typedef void (*pvusb_dev_event_cb)(struct pvusb_dev *d, enum pvusb_dev_event ev, void *arg);

struct pvusb_dev_ops {
	const char *kind; /* "sourcesink", "tablet", "libusb", ... */

	/*
	 * submit: start a transfer. Control transfers arrive raw, except
	 * SET_ADDRESS, which the core handles and never forwards. A back-end
	 * that shares its device with a host USB stack carries out
	 * SET_CONFIGURATION, SET_INTERFACE and CLEAR_FEATURE(ENDPOINT_HALT)
	 * through that stack's API.
	 * Returns 0 when the transfer was accepted: the device then calls
	 * pvusb_xfer_complete() exactly once, possibly before submit returns.
	 * Returns a negative usbif status when it was not accepted: no
	 * completion follows and the core answers with that status.
	 */
	int (*submit)(struct pvusb_dev *d, struct pvusb_xfer *x);

	/*
	 * cancel: ask for an accepted, possibly already finished, transfer to
	 * end early. The completion still happens exactly once; a cancelled
	 * transfer completes with USBIF_STATUS_CONNRESET (or whatever status
	 * it finished with if it won the race). May complete synchronously.
	 * Must be harmless for a transfer that has already completed.
	 */
	void (*cancel)(struct pvusb_dev *d, struct pvusb_xfer *x);

	/* reset: return the device to its default, unconfigured state (the
	 * guest reset the port). No transfer is in flight when it is called.
	 * Returns 0 or a negative errno. */
	int (*reset)(struct pvusb_dev *d);

	/* close: release everything; give a host device back to its kernel
	 * drivers. No transfer is in flight when it is called. */
	void (*close)(struct pvusb_dev *d);
};

/* The common part of every device. Back-ends embed it first in their own
 * struct and fill it in their open function. */
struct pvusb_dev {
	const struct pvusb_dev_ops *ops;
	uint8_t speed;           /* enum usbif_speed */
	uint16_t vendor, product;
	uint8_t dev_class;       /* bDeviceClass; 9 = hub, refused by the core */
	char name[64];           /* what the user called it: "sourcesink", "1-1", ... */
	char desc[128];          /* human description: "Example Corp Widget" */
	char busid[32];          /* host devices: bus path ("2-4.3.3"); "" when emulated.
	                          * The daemon assigns one busid at most once. */

	/* set by the core while the device sits on a port */
	void *core;
	pvusb_dev_event_cb event_cb;
	void *event_arg;
};

/* Open a device by the name users give (see pvusb_dev_open in core.h). */

#ifdef __cplusplus
}
#endif
#endif
