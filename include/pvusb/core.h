/* SPDX-License-Identifier: MIT */
/*
 * The backend core: virtual host controllers, their ports, the guest
 * address table, and every URB's life from ring slot to response.
 *
 * Each controller has one service thread. It alone consumes requests,
 * submits and cancels transfers, and changes port or address state; the
 * functions below hand it a command and wait for it to be done, so they may
 * be called from any other thread. Completions (pvusb_xfer_complete) may
 * come from any thread and take only the controller's response lock.
 *
 * Lock order: a device's own lock, then hc->rsp_lock. The core never holds
 * rsp_lock while calling a device or transport operation other than unmap
 * and notify.
 */
#ifndef PVUSB_CORE_H
#define PVUSB_CORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "device.h"
#include "xport.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pvusb_hc;

struct pvusb_hc_config {
	unsigned usb_ver;   /* 1 (USB 1.1) or 2 (USB 2.0) */
	unsigned num_ports; /* 1..31 */
	char frontend[64];  /* the frontend (domain) name, for logs and lookups */
	unsigned devid;     /* controller number within that frontend */
	int spin_us;        /* busy-poll before sleeping: -1 = decide from CPUs */
};

/* Create a controller and start its service thread. */
int pvusb_hc_create(const struct pvusb_hc_config *cfg, struct pvusb_hc **out);

/* Disconnect the frontend (answering everything in flight), close every
 * device, stop the thread, free. */
void pvusb_hc_destroy(struct pvusb_hc *hc);

const struct pvusb_hc_config *pvusb_hc_config(const struct pvusb_hc *hc);

/*
 * Put an open device on a port. On success the controller owns `dev` and
 * announces it on the conn ring. Errors: -EINVAL port out of range,
 * -EBUSY port occupied, -EMEDIUMTYPE hub, -EPROTONOSUPPORT high-speed
 * device on a USB 1.1 controller. On error the caller still owns `dev`.
 */
int pvusb_hc_attach(struct pvusb_hc *hc, unsigned port, struct pvusb_dev *dev);

/*
 * Take the device off a port: every request in flight on it is answered,
 * then the conn ring says speed 0, then the device is closed. Later requests
 * for its address get -ENODEV. -EINVAL port out of range, -ENOENT empty.
 */
int pvusb_hc_detach(struct pvusb_hc *hc, unsigned port);

/* Connect a frontend's rings. The controller owns `xp` from now on and
 * announces every occupied port. -EBUSY when one is connected already. */
int pvusb_hc_connect(struct pvusb_hc *hc, struct pvusb_xport *xp);

/* Disconnect the frontend: cancel and answer everything in flight, unmap,
 * close the transport. Devices stay on their ports. No-op when none. */
void pvusb_hc_disconnect(struct pvusb_hc *hc);

/* Keep the next connection's urb ring progress in `j` (src/core/journal.h),
 * so that a restarted daemon can take the rings over. Call before
 * pvusb_hc_connect(); the controller uses it until that connection is
 * disconnected (pvusb_hc_disconnect() returns), then forgets it: the caller
 * owns and closes it. NULL: none (the default). -EBUSY while connected. */
struct pvusb_ring_journal;
int pvusb_hc_set_journal(struct pvusb_hc *hc, struct pvusb_ring_journal *j);

struct pvusb_port_info {
	unsigned port;
	uint8_t speed;       /* 0 when empty */
	bool gone;           /* the device is assigned but unplugged (speed: its last) */
	uint8_t guest_addr;  /* the address the guest gave it, 0 if none */
	char dev_name[64];
	char dev_desc[128];
	uint16_t vendor, product;
	const char *kind;
};

struct pvusb_hc_stats {
	bool connected;
	bool broken;             /* the frontend broke the protocol; rings abandoned */
	char broken_reason[96];
	uint64_t requests;       /* taken from the ring */
	uint64_t responses;      /* posted */
	uint64_t refused;        /* answered at once because invalid */
	uint32_t inflight;
	uint64_t maps_live;
	uint64_t conn_events;
};

int pvusb_hc_port_info(struct pvusb_hc *hc, unsigned port, struct pvusb_port_info *info);
void pvusb_hc_stats(struct pvusb_hc *hc, struct pvusb_hc_stats *st);

/* Open a device by name: "sourcesink[:opts]", "tablet", "keyboard",
 * "storage:<image>", or a host device name when the libusb back-end is
 * built in. err receives a one-line reason for the user. */
int pvusb_dev_open(const char *name, struct pvusb_dev **out, char *err, size_t errlen);

/* Look up the device sitting on a port, for HID input injection and the
 * like. The pointer stays valid until the port is detached; only call it
 * from the thread that would detach. */
struct pvusb_dev *pvusb_hc_port_dev(struct pvusb_hc *hc, unsigned port);

#ifdef __cplusplus
}
#endif
#endif
