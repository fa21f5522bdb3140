/* SPDX-License-Identifier: MIT */
/*
 * The xen transport, backend side (private to pvusbd): a frontend's two ring
 * pages and its data buffers are mapped through gntdev (libxengnttab), the
 * one event channel is bound through /dev/xen/evtchn (libxenevtchn). The
 * xenstore handshake that finds the three values lives in src/daemon/xen.c.
 */
#ifndef PVUSB_XPORT_XEN_H
#define PVUSB_XPORT_XEN_H

#include <stddef.h>
#include <stdint.h>

#include "pvusb/xport.h"

/* What the frontend published in xenstore, already parsed as numbers but not
 * trusted: the grant maps and the bind are where they are checked. */
struct pvusb_xen_rings {
	uint32_t domid;    /* the frontend's domain */
	uint32_t urb_ref;  /* urb-ring-ref */
	uint32_t conn_ref; /* conn-ring-ref */
	uint32_t evtchn;   /* event-channel (the frontend's port) */
};

/* Map both rings and bind the event channel. On failure nothing stays
 * mapped or bound, err says which step failed, and a negative errno is
 * returned. */
int pvusb_xen_xport_create(const struct pvusb_xen_rings *r, const char *peer,
			   struct pvusb_xport **out, char *err, size_t errlen);

/*
 * Take over a frontend that an earlier pvusbd process served and left
 * Connected (a restart), then announce every port empty on the conn ring so
 * that the devices the core announces next are enumerated afresh (the conn
 * ring needs no journal: it is answered strictly in order, one token per
 * response, so its published rsp_prod is exact and a response written but
 * not published is simply written again).
 * `*j`: that process's journal of these rings (src/core/journal.h): every
 * request it left in flight is answered -ESHUTDOWN and its unpublished
 * responses are published (*res says how many); -EPROTO when the record or
 * the ring holds a value that cannot be right. Without one (NULL), or with
 * one of rings the frontend has since replaced (then closed and *j set to
 * NULL), only a ring with nothing unanswered can be taken over: -EBUSY
 * otherwise. On failure
 * err says why and the caller must drop the frontend (Closing). Call between
 * pvusb_xen_xport_create() and pvusb_hc_connect().
 */
struct pvusb_ring_journal;
struct pvusb_journal_result;
int pvusb_xen_resume(struct pvusb_xport *xp, unsigned num_ports, struct pvusb_ring_journal **j,
		     struct pvusb_journal_result *res, char *err, size_t errlen);

/* The daemon's state file keeps the emulated devices of xen controllers,
 * which xenstore's port/N does not name (src/daemon/state.c): the device
 * the last run had on (domain name, devid, port), or NULL. */
const char *pvusbd_state_xen_device(const char *frontend, unsigned devid, unsigned port);
/* Forget them once the controllers found at start have been restored. */
void pvusbd_state_xen_forget(void);

/* Grant mappings (ring pages and buffer segments) alive in this process,
 * over every xen transport: 0 once every controller is disconnected. */
uint64_t pvusb_xen_grants_live(void);

#endif
