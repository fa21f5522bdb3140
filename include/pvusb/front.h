/* SPDX-License-Identifier: MIT */
/*
 * The frontend library: a userspace virtual host controller on the local
 * transport. It plays the part xen-hcd plays in a Xen guest: owns the ring
 * and data pages, posts conn-ring tokens, emulates the root hub (port reset
 * is local), enumerates devices and runs all four transfer types.
 *
 * Not thread-safe: one thread drives one pvusb_front. Completion callbacks
 * run inside pvusb_front_poll()/pvusb_front_wait().
 */
#ifndef PVUSB_FRONT_H
#define PVUSB_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usbif.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pvusb_front;

struct pvusb_urb {
	/* set by the caller before submit */
	uint8_t port;     /* 1..num_ports */
	uint8_t devaddr;  /* 0 before SET_ADDRESS */
	uint8_t endpoint; /* 0..15 */
	uint8_t type;     /* enum usbif_xfer_type */
	bool in;
	uint16_t flags;   /* USBIF_SHORT_NOT_OK */
	uint8_t setup[8]; /* control only */
	uint32_t length;  /* at most 64 KiB (16 pages) */
	/* The data buffer. Memory from pvusb_front_alloc() is used in place
	 * (zero copy); any other memory is copied through a bounce area. */
	void *buffer;
	uint16_t interval;
	uint32_t npackets;          /* isochronous */
	struct usbif_iso_desc *iso; /* npackets descriptors, results written back */
	void (*complete)(struct pvusb_urb *u);
	void *user;

	/* results */
	int32_t status;
	uint32_t actual_length;
	int32_t error_count;
	uint16_t start_frame;

	/* private */
	int id; /* ring id while in flight, else -1 */
};

struct pvusb_front_opts {
	uint32_t pool_pages; /* shared memory for pvusb_front_alloc (default 2048 = 8 MiB) */
	int spin_us;         /* poll before sleeping: -1 = decide from CPUs */
};

/* Connect to pvusbd's socket as frontend `name`, controller `devid`. */
int pvusb_front_connect(const char *sock_path, const char *name, unsigned devid,
			const struct pvusb_front_opts *opts, struct pvusb_front **out, char *err,
			size_t errlen);
void pvusb_front_close(struct pvusb_front *f);

unsigned pvusb_front_num_ports(const struct pvusb_front *f);
unsigned pvusb_front_usb_ver(const struct pvusb_front *f);
/* What the conn ring last said for a port (USBIF_SPEED_*), and how many
 * events the port has seen. */
uint8_t pvusb_front_port_speed(const struct pvusb_front *f, unsigned port);
unsigned pvusb_front_port_events(const struct pvusb_front *f, unsigned port);
/* Called for every conn event, after the port's state is updated. */
void pvusb_front_on_port(struct pvusb_front *f,
			 void (*cb)(struct pvusb_front *f, unsigned port, uint8_t speed, void *arg),
			 void *arg);

/* Shared memory the backend reads and writes in place. Page-aligned; lives
 * until pvusb_front_close. NULL when the pool is exhausted. */
void *pvusb_front_alloc(struct pvusb_front *f, size_t len);

/* Submit; 0, or -EBUSY (16 requests in flight), -E2BIG (buffer needs > 16
 * segments), -EINVAL (bad fields), -EPIPE (the backend broke the protocol
 * or went away). */
int pvusb_front_submit(struct pvusb_front *f, struct pvusb_urb *u);
/* Cancel a submitted URB: sends an unlink request. The URB still completes
 * once, through its callback. -ENOENT when it is not in flight. */
int pvusb_front_unlink(struct pvusb_front *f, struct pvusb_urb *u);

/* Handle every response and conn event that has arrived; never blocks.
 * Returns how many were handled, or -EPIPE. */
int pvusb_front_poll(struct pvusb_front *f);
/* Like poll, but waits up to timeout_ms (-1: forever) for at least one. */
int pvusb_front_wait(struct pvusb_front *f, int timeout_ms);
/* Like wait, but also returns (after handling what has arrived) as soon as
 * one of the caller's `extra` fds (at most 254) has an event it asked for; the
 * fds' revents are filled in (0 when none fired). For a caller's own event
 * loop around one frontend. */
struct pollfd;
int pvusb_front_wait_fds(struct pvusb_front *f, struct pollfd *extra, unsigned nextra, int timeout_ms);
/* Submit and wait for this URB; returns its status, -ETIMEDOUT (after
 * unlinking it and waiting for its completion) or a submit error. */
int pvusb_front_run(struct pvusb_front *f, struct pvusb_urb *u, int timeout_ms);

/* Convenience: a control transfer; returns actual length or a negative status. */
int pvusb_front_control(struct pvusb_front *f, uint8_t port, uint8_t addr, uint8_t bmRequestType,
			uint8_t bRequest, uint16_t wValue, uint16_t wIndex, void *data,
			uint16_t wLength, int timeout_ms);
/* Convenience: one bulk or interrupt transfer; actual length or negative status. */
int pvusb_front_transfer(struct pvusb_front *f, uint8_t port, uint8_t addr, uint8_t type,
			 uint8_t ep_addr, void *data, uint32_t len, int timeout_ms);

/* A device the library enumerated. */
struct pvusb_front_dev {
	uint8_t port, addr, speed;
	uint8_t dev_desc[18];
	uint8_t config[1024];
	uint16_t config_len;
	char manufacturer[64], product[64], serial[64];
};

/* Enumerate the device on `port` as the guest's USB stack would: GET_DESCRIPTOR
 * at address 0, SET_ADDRESS(addr), full descriptors, strings,
 * SET_CONFIGURATION. 0 or a negative status. */
int pvusb_front_enumerate(struct pvusb_front *f, unsigned port, uint8_t addr,
			  struct pvusb_front_dev *d);

/* ---- raw access, for tests that play a hostile or unusual frontend ---- */
struct usbif_urb_sring *pvusb_front_urb_sring(struct pvusb_front *f);
struct usbif_conn_sring *pvusb_front_conn_sring(struct pvusb_front *f);
/* Page index and address of page `i` of the shared pool, for hand-made segments. */
uint32_t pvusb_front_gref(struct pvusb_front *f, const void *addr);
/* Queue a request exactly as given (no checks, no id bookkeeping) and
 * notify. Its response goes to the raw callback. -EBUSY when the ring is full. */
int pvusb_front_raw_submit(struct pvusb_front *f, const struct usbif_urb_request *req);
void pvusb_front_on_raw_response(struct pvusb_front *f,
				 void (*cb)(struct pvusb_front *f, const struct usbif_urb_response *rsp,
					    void *arg),
				 void *arg);
void pvusb_front_kick(struct pvusb_front *f);
/* True once the library saw the backend break the protocol. */
bool pvusb_front_dead(const struct pvusb_front *f);

#ifdef __cplusplus
}
#endif
#endif
