/* SPDX-License-Identifier: MIT */
/* Generic shared-ring arithmetic (spec A.3-A.6). No I/O. */
#include <errno.h>
#include <string.h>

#include "pvusb/ring.h"

void usbif_front_ring_init(struct usbif_ring *r, void *page, uint32_t slot_size,
			   uint32_t nr_ents)
{
	memset(page, 0, USBIF_RING_BYTES);
	usbif_ring_attach(r, page, slot_size, nr_ents);
	r->sring->req_event = 1;
	r->sring->rsp_event = 1;
}

bool usbif_ring_push_and_check_notify(struct usbif_ring *r, usbif_ring_idx_t *prod,
				      const usbif_ring_idx_t *event)
{
	usbif_ring_idx_t old = usbif_idx_load(prod);
	usbif_ring_idx_t new = r->prod_pvt;

	usbif_wmb(); /* entries before the index */
	usbif_idx_store(prod, new);
	usbif_mb(); /* index before reading the peer's event */
	usbif_ring_idx_t ev = usbif_idx_load(event);
	return (usbif_ring_idx_t)(new - ev) < (usbif_ring_idx_t)(new - old);
}

uint32_t usbif_back_unconsumed(const struct usbif_ring *r, bool *hostile)
{
	usbif_ring_idx_t prod = usbif_idx_load(&r->sring->req_prod);
	usbif_rmb();
	/* prod_pvt may advance on another thread (a completion); a stale value
	 * only makes the room smaller */
	usbif_ring_idx_t rsp = __atomic_load_n(&r->prod_pvt, __ATOMIC_ACQUIRE);
	if ((usbif_ring_idx_t)(prod - rsp) > r->nr_ents) {
		*hostile = true;
		return 0;
	}
	uint32_t avail = prod - r->cons;
	uint32_t room = r->nr_ents - (r->cons - rsp);
	return avail < room ? avail : room;
}

bool usbif_back_final_check(struct usbif_ring *r, bool *hostile)
{
	if (usbif_back_unconsumed(r, hostile) || *hostile)
		return true;
	usbif_idx_store(&r->sring->req_event, r->cons + 1);
	usbif_mb();
	return usbif_back_unconsumed(r, hostile) != 0 || *hostile;
}

uint32_t usbif_front_unconsumed(const struct usbif_ring *r, bool *hostile)
{
	usbif_ring_idx_t prod = usbif_idx_load(&r->sring->rsp_prod);
	usbif_rmb();
	if ((usbif_ring_idx_t)(prod - r->cons) > r->nr_ents) {
		*hostile = true;
		return 0;
	}
	return prod - r->cons;
}

bool usbif_front_final_check(struct usbif_ring *r, bool *hostile)
{
	if (usbif_front_unconsumed(r, hostile) || *hostile)
		return true;
	usbif_idx_store(&r->sring->rsp_event, r->cons + 1);
	usbif_mb();
	return usbif_front_unconsumed(r, hostile) != 0 || *hostile;
}

int usbif_conn_back_take_token(struct usbif_ring *r, uint16_t *token_id)
{
	usbif_ring_idx_t prod = usbif_idx_load(&r->sring->req_prod);
	usbif_rmb();
	usbif_ring_idx_t avail = prod - r->cons;
	if (avail > r->nr_ents)
		return -EPROTO;
	if (avail == 0) {
		/* ask for an event when the FE returns a token (C.2) */
		usbif_idx_store(&r->sring->req_event, r->cons + 1);
		usbif_mb();
		prod = usbif_idx_load(&r->sring->req_prod);
		usbif_rmb();
		avail = prod - r->cons;
		if (avail > r->nr_ents)
			return -EPROTO;
		if (avail == 0)
			return -EAGAIN;
	}
	const struct usbif_conn_request *req = usbif_ring_slot(r, r->cons);
	*token_id = __atomic_load_n(&req->id, __ATOMIC_RELAXED);
	r->cons++;
	usbif_idx_store(&r->sring->req_event, r->cons + 1);
	return 0;
}
