/* SPDX-License-Identifier: MIT */
/*
 * The libusb-1.0 back-end: real host devices (src/dev/libusb.c).
 * Built only when libusb is found (PVUSB_HAVE_LIBUSB).
 */
#ifndef PVUSB_DEV_LIBUSB_DEV_H
#define PVUSB_DEV_LIBUSB_DEV_H

#include <stddef.h>
#include <stdint.h>

#include <libusb.h>

#include "pvusb/device.h"

/* Open a host device by any host name of devname.h (bus path, bus.address,
 * vendor:product[:serial], optional "host:" prefix) and take it from the
 * host: detach the kernel drivers of every interface and claim it.
 * Errors (negative errno, one line in err): -EINVAL bad name, -ENOENT no such
 * device, -EEXIST vendor:product matches several (err lists their bus paths),
 * -EMEDIUMTYPE hub, -EPROTONOSUPPORT speed usbif cannot carry, -EBUSY already
 * held by this process, -EACCES no permission, -EIO other libusb failures. */
int pvusb_libusb_open(const char *name, struct pvusb_dev **out, char *err, size_t errlen);

/* Daemon exit: give every device still open back to its kernel drivers and
 * stop the back-end's threads. Devices closed afterwards are only freed. */
void pvusb_libusb_shutdown(void);

/* After a crash: bind kernel drivers again to every interface of the device
 * at bus path `busid` that has none. Returns how many interfaces got a
 * driver (0 when none needed one), -ENOENT when no device is there, or
 * another negative errno. Do not call it for a device this process holds. */
int pvusb_libusb_reattach_drivers(const char *busid);

/* ---- internals, exposed for tests/unit/test_libusb.c ---- */

/* A libusb transfer status (enum libusb_transfer_status) as a usbif status
 * (spec E.3). Guest cancels are not decided here (see the back-end). */
int32_t pvusb_libusb_xfer_status(int libusb_transfer_status);
/* A libusb error code (enum libusb_error, from the synchronous API) as a
 * usbif status. */
int32_t pvusb_libusb_error_status(int libusb_error);

/* Isochronous packing: usbif frame descriptors each name an offset in the
 * buffer; libusb packs packets back to back.
 * pvusb_iso_layout: the packed size (sum of lengths) in *total; whether the
 * descriptors already are packed from offset 0 (then no copy is needed).
 * -EINVAL when the packed size exceeds the buffer (overlapping packets). */
int pvusb_iso_layout(const struct pvusb_xfer *x, uint32_t *total, int *packed);
/* OUT: gather every packet into dst (total bytes). */
void pvusb_iso_pack(const struct pvusb_xfer *x, uint8_t *dst);
/* Results: copy each packet's actual_length and status back into x->iso and,
 * when src is not NULL (IN through a bounce buffer), scatter its data from
 * src to its offset. Lengths from libusb are trusted only up to what was
 * asked. Returns the total actual length; *errors = packets that failed. */
uint32_t pvusb_iso_unpack(struct pvusb_xfer *x, const uint8_t *src,
			  const struct libusb_iso_packet_descriptor *pk, int32_t *errors);

#endif
