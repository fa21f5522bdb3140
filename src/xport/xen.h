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
 * Connected (a restart), then announce every port empty on the conn ring.
 * `clean`: that process answered every request it took before it exited
 * (it said so in xenstore), so the requests still unanswered were never
 * taken; they are answered -ESHUTDOWN (*answered of them). Without it only
 * a ring with nothing unanswered can be taken over: -EBUSY otherwise.
 * Everything is read from the shared pages once and checked: a value that
 * cannot be right gives -EPROTO. On failure err says why and the caller
 * must drop the frontend (Closing). Call between pvusb_xen_xport_create()
 * and pvusb_hc_connect().
 */
int pvusb_xen_resume(struct pvusb_xport *xp, unsigned num_ports, bool clean, unsigned *answered,
		     char *err, size_t errlen);

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
