/* SPDX-License-Identifier: MIT */
/* Controller internals shared by hc.c (thread, commands, ports), urb.c (the
 * request path and completions) and conn.c (hot-plug events). */
#ifndef PVUSB_HC_INTERNAL_H
#define PVUSB_HC_INTERNAL_H

#include <pthread.h>

#include "pvusb/core.h"
#include "pvusb/request.h"
#include "pvusb/ring.h"

struct pvusb_hc;

/* One request in flight. Only the service thread takes a free slot; a
 * completion (any thread) frees it under rsp_lock. */
struct hc_slot {
	struct pvusb_xfer xfer; /* first: completions find the slot from it */
	struct pvusb_hc *hc;
	uint16_t id;
	uint8_t port;
	bool cancelled;
	struct pvusb_map data_map, desc_map;
	bool data_mapped, desc_mapped;
	/* copying transports (xport.h: copy): the request's segments, kept
	 * for the copy back, and whether data / descriptors are staged */
	bool data_staged, desc_staged;
	uint8_t nr_data_segs, nr_desc_segs;
	struct usbif_request_segment seg[USBIF_MAX_SEGMENTS_PER_REQUEST];
	unsigned desc_niov;
	struct pvusb_iov desc_iov[USBIF_MAX_SEGMENTS_PER_REQUEST];
	struct usbif_iso_desc iso[USBIF_MAX_ISO_PACKETS];
};

struct hc_port {
	struct pvusb_dev *dev; /* NULL when empty */
	uint8_t guest_addr;    /* 0: none */
	bool detaching;        /* draining before close: new requests get -ENODEV */
	bool gone;             /* the device was unplugged; it stays on the port */
	int pending_event;     /* atomic: a device event not yet applied, 1 + enum */
	uint32_t inflight;     /* under rsp_lock */
	/* conn-ring state (C.2): what the guest should see vs what it was told */
	uint8_t want_speed, told_speed;
	uint32_t want_gen, told_gen;
};

/* A command run on the service thread on behalf of another thread. */
struct hc_cmd {
	int (*fn)(struct pvusb_hc *hc, void *arg);
	void *arg;
	int rc;
	bool done;
};

/* fn returns this when it has started something (a drain) that finishes
 * later; hc_cmd_finish() then completes the command. */
#define HC_CMD_DEFERRED 1

/* Staging memory per slot for copying transports: the largest buffer one
 * request can describe (every segment a whole page). */
#define HC_STAGE_SLOT ((size_t)USBIF_MAX_SEGMENTS_PER_REQUEST * USBIF_PAGE_SIZE)

struct pvusb_hc {
	struct pvusb_hc_config cfg;
	pthread_t thread;
	int wake_fd;    /* eventfd: a command, or a drain that finished */
	bool stop;      /* service thread only */
	int spin_ns;

	pthread_mutex_t api_lock; /* one command at a time */
	pthread_mutex_t cmd_lock;
	pthread_cond_t cmd_cond;
	struct hc_cmd *cmd;       /* posted, not yet taken */
	struct hc_cmd *deferred;  /* taken, waiting for a drain; atomic (completions read it) */
	int drain_port;           /* 0: all ports; >0: that port; -1: none */
	int cmd_pending;          /* atomic hint for the spin loop */
	uint32_t dev_event_ports; /* atomic: ports with a pending_event */

	struct pvusb_xport *xp;
	struct pvusb_ring_journal *journal; /* NULL: none; see journal.h */
	struct usbif_ring urb, conn;
	bool broken;
	char broken_reason[96];

	pthread_mutex_t rsp_lock; /* urb response producer, slot release, inflight counts */
	uint32_t busy_mask;       /* slots in use; written under rsp_lock, read atomically */
	int batch_refs;           /* atomic: threads holding unpublished responses (urb.c) */
	struct hc_slot *slots;    /* USB_URB_RING_SIZE of them */
	uint8_t *stage;           /* copying transport: HC_STAGE_SLOT bytes per slot */

	struct hc_port ports[USBIF_MAX_PORTNR + 1]; /* [1..num_ports] */
	uint8_t addr_port[USBIF_MAX_ADDR + 1];      /* guest address -> port, 0 = none */

	struct pvusb_hc_stats st;
	uint64_t log_mask; /* refused-request causes already logged */
};

/* urb.c */
unsigned hc_process_urbs(struct pvusb_hc *hc);
void hc_cancel_port(struct pvusb_hc *hc, unsigned port); /* 0: every port */
bool hc_port_drained(struct pvusb_hc *hc, unsigned port);   /* 0: every port */
void hc_set_broken(struct pvusb_hc *hc, const char *why);

/* conn.c */
void hc_conn_announce(struct pvusb_hc *hc, unsigned port, uint8_t speed);
unsigned hc_conn_flush(struct pvusb_hc *hc);
void hc_conn_reset_told(struct pvusb_hc *hc);

/* hc.c */
void hc_wake(struct pvusb_hc *hc);

/* causes of refused requests, for pvusb_log_once */
enum hc_log_cause {
	LOG_MALFORMED, LOG_BAD_PORT, LOG_BAD_PIPE, LOG_DUP_ID, LOG_NODEV, LOG_ADDR0,
	LOG_MAP_FAILED, LOG_ISO_DESC, LOG_DEV_REFUSED,
};

#endif
