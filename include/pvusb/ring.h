/* SPDX-License-Identifier: MIT */
/*
 * The generic Xen shared ring (spec A): both sides, both ring types, no I/O.
 *
 * Indexes are free-running 32-bit counters; every difference is computed in
 * unsigned 32-bit arithmetic so wrap-around at 2^32 is harmless. The peer may
 * be hostile: its indexes are read exactly once per check with an atomic
 * load, and the slots it writes are copied out before use (the caller's job,
 * see usbif_back_ring_slot()).
 */
#ifndef PVUSB_RING_H
#define PVUSB_RING_H

#include "usbif.h"

#ifdef __cplusplus
extern "C" {
#endif

#define usbif_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define usbif_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define usbif_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)

static inline usbif_ring_idx_t usbif_idx_load(const usbif_ring_idx_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void usbif_idx_store(usbif_ring_idx_t *p, usbif_ring_idx_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* One side's private view of a shared ring page. */
struct usbif_ring {
	struct usbif_ring_hdr *sring;
	uint8_t *slots;        /* sring + 64 */
	uint32_t slot_size;    /* E: 148 for the urb ring, 4 for the conn ring */
	uint32_t nr_ents;      /* N: 16 or 512 */
	usbif_ring_idx_t prod_pvt; /* FE: req_prod_pvt; BE: rsp_prod_pvt */
	usbif_ring_idx_t cons;     /* FE: rsp_cons;     BE: req_cons     */
};

static inline void usbif_ring_attach(struct usbif_ring *r, void *page, uint32_t slot_size,
				     uint32_t nr_ents)
{
	r->sring = (struct usbif_ring_hdr *)page;
	r->slots = (uint8_t *)page + USBIF_RING_HDR_BYTES;
	r->slot_size = slot_size;
	r->nr_ents = nr_ents;
	r->prod_pvt = 0;
	r->cons = 0;
}

static inline void *usbif_ring_slot(const struct usbif_ring *r, usbif_ring_idx_t idx)
{
	return r->slots + (size_t)(idx & (r->nr_ents - 1)) * r->slot_size;
}

/* FE only (A.3): zero the page and set both event indexes to 1. */
void usbif_front_ring_init(struct usbif_ring *r, void *page, uint32_t slot_size,
			   uint32_t nr_ents);
/* BE only: attach to a page the FE initialised; never re-initialise it. */
static inline void usbif_back_ring_attach(struct usbif_ring *r, void *page, uint32_t slot_size,
					  uint32_t nr_ents)
{
	usbif_ring_attach(r, page, slot_size, nr_ents);
}

/*
 * BE: carry on from the responses already published instead of from 0. On a
 * fresh ring rsp_prod is 0, so nothing changes; on a ring an earlier backend
 * process served (a restarted daemon resuming a live frontend) no published
 * response slot is reused. rsp_prod is the peer's to overwrite too, but a
 * bad value only makes usbif_back_unconsumed() call the ring hostile.
 */
static inline void usbif_back_ring_continue(struct usbif_ring *r)
{
	r->prod_pvt = usbif_idx_load(&r->sring->rsp_prod);
	r->cons = r->prod_pvt;
}

static inline void usbif_urb_front_init(struct usbif_ring *r, void *page)
{
	usbif_front_ring_init(r, page, sizeof(union usbif_urb_slot), USB_URB_RING_SIZE);
}
static inline void usbif_conn_front_init(struct usbif_ring *r, void *page)
{
	usbif_front_ring_init(r, page, sizeof(union usbif_conn_slot), USB_CONN_RING_SIZE);
}
static inline void usbif_urb_back_attach(struct usbif_ring *r, void *page)
{
	usbif_back_ring_attach(r, page, sizeof(union usbif_urb_slot), USB_URB_RING_SIZE);
}
static inline void usbif_conn_back_attach(struct usbif_ring *r, void *page)
{
	usbif_back_ring_attach(r, page, sizeof(union usbif_conn_slot), USB_CONN_RING_SIZE);
}

/* A.4: publish [old, prod_pvt) and say whether the peer asked for an event.
 * `prod` and `event` are the header fields of the publishing side. */
bool usbif_ring_push_and_check_notify(struct usbif_ring *r, usbif_ring_idx_t *prod,
				      const usbif_ring_idx_t *event);

static inline bool usbif_front_push_requests(struct usbif_ring *r)
{
	return usbif_ring_push_and_check_notify(r, &r->sring->req_prod, &r->sring->req_event);
}
static inline bool usbif_back_push_responses(struct usbif_ring *r)
{
	return usbif_ring_push_and_check_notify(r, &r->sring->rsp_prod, &r->sring->rsp_event);
}

/*
 * BE: how many requests may be consumed now (A.6), at most N - (cons -
 * rsp_prod_pvt) so every consumed request has a response slot. Sets
 * *hostile when the FE's req_prod is more than N ahead of rsp_prod_pvt; the
 * caller must then stop using the ring. Issues the read barrier of A.5.
 */
uint32_t usbif_back_unconsumed(const struct usbif_ring *r, bool *hostile);

/* BE, A.5 step 3: set req_event = cons + 1, full barrier, re-check.
 * Returns true when more requests arrived meanwhile. */
bool usbif_back_final_check(struct usbif_ring *r, bool *hostile);

/* FE: free request slots (A.6). */
static inline uint32_t usbif_front_free(const struct usbif_ring *r)
{
	return r->nr_ents - (r->prod_pvt - r->cons);
}

/* FE: responses ready to consume; *hostile when rsp_prod is more than N
 * ahead of rsp_cons (B.9). Issues the read barrier. */
uint32_t usbif_front_unconsumed(const struct usbif_ring *r, bool *hostile);

/* FE, A.5 step 3 on the response side. */
bool usbif_front_final_check(struct usbif_ring *r, bool *hostile);

/*
 * Conn ring, BE side (C.2): the FE posts tokens as requests and the BE
 * answers one token per event. Returns 0 and fills *token_id when a token is
 * available, -EAGAIN when none is, -EPROTO when the FE's req_prod is more
 * than N ahead (hostile). Does not publish; call usbif_back_push_responses().
 */
int usbif_conn_back_take_token(struct usbif_ring *r, uint16_t *token_id);

#ifdef __cplusplus
}
#endif
#endif
