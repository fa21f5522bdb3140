/* SPDX-License-Identifier: MIT */
/*
 * Hot-plug events on the conn ring (spec C.2). Each port keeps the state the
 * guest should see and the state it was last told, so events never need a
 * queue that could overflow: when tokens run out the difference waits, and
 * a device swapped for another of the same speed is told as 0 first.
 * Service thread only.
 */
#include <errno.h>

#include "hc_internal.h"

void hc_conn_announce(struct pvusb_hc *hc, unsigned port, uint8_t speed)
{
	struct hc_port *p = &hc->ports[port];
	p->want_speed = speed;
	p->want_gen++;
}

void hc_conn_reset_told(struct pvusb_hc *hc)
{
	for (unsigned i = 1; i <= hc->cfg.num_ports; i++) {
		hc->ports[i].told_speed = 0;
		hc->ports[i].told_gen = hc->ports[i].want_gen - (hc->ports[i].want_speed ? 1 : 0);
	}
}

/* The next event port p owes the guest, or -1 when it is up to date. */
static int next_event(const struct hc_port *p)
{
	if (p->told_gen == p->want_gen && p->told_speed == p->want_speed)
		return -1;
	if (p->told_speed != 0 && (p->told_gen != p->want_gen || p->want_speed == 0))
		return 0; /* take the old device away first (C.2 rule 4) */
	if (p->want_speed == 0)
		return -1; /* the guest already sees an empty port */
	return p->want_speed;
}

static int send_event(struct pvusb_hc *hc, unsigned port, uint8_t speed)
{
	uint16_t token;
	int rc = usbif_conn_back_take_token(&hc->conn, &token);
	if (rc == -EPROTO) {
		hc_set_broken(hc, "conn ring producer index more than 512 ahead");
		return rc;
	}
	if (rc < 0)
		return rc; /* no token: try again when the frontend returns one */
	struct usbif_conn_response *rsp = usbif_ring_slot(&hc->conn, hc->conn.prod_pvt);
	rsp->id = token;
	rsp->portnum = (uint8_t)port;
	rsp->speed = speed;
	hc->conn.prod_pvt++;
	if (usbif_back_push_responses(&hc->conn))
		hc->xp->ops->notify(hc->xp);
	hc->st.conn_events++;
	return 0;
}

unsigned hc_conn_flush(struct pvusb_hc *hc)
{
	if (!hc->xp || hc->broken)
		return 0;
	unsigned sent = 0;
	for (unsigned i = 1; i <= hc->cfg.num_ports; i++) {
		struct hc_port *p = &hc->ports[i];
		int speed;
		while ((speed = next_event(p)) >= 0) {
			if (send_event(hc, i, (uint8_t)speed) < 0)
				return sent;
			p->told_speed = (uint8_t)speed;
			if (speed)
				p->told_gen = p->want_gen;
			sent++;
		}
		if (p->want_speed == 0)
			p->told_gen = p->want_gen;
	}
	return sent;
}
