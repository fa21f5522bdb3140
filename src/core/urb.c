/* SPDX-License-Identifier: MIT */
/*
 * One URB's life (design.md section 1): take, copy, validate, resolve, map,
 * submit, complete. Every request taken from the ring gets exactly one
 * response, whichever path it leaves by.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hc_internal.h"
#include "journal.h"
#include "util/log.h"

/* ---- buffer helpers for devices ---- */

/*
 * Why not plain memcpy for large runs: for sizes like a URB's (KiB..64 KiB)
 * glibc picks `rep movsb` on CPUs that advertise ERMS, and where that string
 * instruction is slow the copy costs several times more than a loop of wide
 * loads and stores. Measured in the gadget VM (QEMU TCG, -cpu max), 64 KiB:
 * memcpy 251 us, this loop 47 us; on the 2-vCPU host both run at 40-48 GB/s.
 * Small runs stay with memcpy.
 */
typedef uint8_t pvusb_v16 __attribute__((vector_size(16), aligned(1), may_alias));

static void copy_run(uint8_t *dst, const uint8_t *src, size_t n)
{
	for (; n >= 64; n -= 64, dst += 64, src += 64) {
		pvusb_v16 a = *(const pvusb_v16 *)src, b = *(const pvusb_v16 *)(src + 16);
		pvusb_v16 c = *(const pvusb_v16 *)(src + 32), d = *(const pvusb_v16 *)(src + 48);
		*(pvusb_v16 *)dst = a;
		*(pvusb_v16 *)(dst + 16) = b;
		*(pvusb_v16 *)(dst + 32) = c;
		*(pvusb_v16 *)(dst + 48) = d;
	}
	memcpy(dst, src, n);
}

static size_t iov_copy(struct pvusb_iov *iov, unsigned niov, size_t off, void *flat, size_t n,
		       bool to_iov)
{
	size_t done = 0;
	for (unsigned i = 0; i < niov && done < n; i++) {
		if (off >= iov[i].len) {
			off -= iov[i].len;
			continue;
		}
		size_t chunk = iov[i].len - off;
		if (chunk > n - done)
			chunk = n - done;
		if (to_iov)
			copy_run(iov[i].base + off, (uint8_t *)flat + done, chunk);
		else
			copy_run((uint8_t *)flat + done, iov[i].base + off, chunk);
		done += chunk;
		off = 0;
	}
	return done;
}

size_t pvusb_xfer_copy_to(struct pvusb_xfer *x, size_t off, const void *src, size_t n)
{
	if (x->contig) {
		if (off >= x->length)
			return 0;
		if (n > x->length - off)
			n = x->length - off;
		copy_run(x->contig + off, src, n);
		return n;
	}
	return iov_copy(x->iov, x->niov, off, (void *)src, n, true);
}

size_t pvusb_xfer_copy_from(const struct pvusb_xfer *x, size_t off, void *dst, size_t n)
{
	if (x->contig) {
		if (off >= x->length)
			return 0;
		if (n > x->length - off)
			n = x->length - off;
		copy_run(dst, x->contig + off, n);
		return n;
	}
	return iov_copy((struct pvusb_iov *)x->iov, x->niov, off, dst, n, false);
}

/* ---- responses ---- */

void hc_set_broken(struct pvusb_hc *hc, const char *why)
{
	if (hc->broken)
		return;
	hc->broken = true;
	if (hc->journal)
		pvusb_journal_set_broken(hc->journal); /* a restart must not resume these rings */
	snprintf(hc->broken_reason, sizeof(hc->broken_reason), "%s", why);
	log_err("controller %s/%u: frontend broke the ring protocol (%s); rings abandoned",
		hc->cfg.frontend, hc->cfg.devid, why);
}

/* ---- completion batches (device.h) ----
 *
 * A thread inside a batch writes responses and advances rsp_prod_pvt at
 * once, but publishes rsp_prod and notifies only at the batch's end, once
 * per controller. While it holds such unpublished responses it holds a
 * reference on the controller (batch_refs): hc_port_drained() says no until
 * it is dropped, so no drain finishes (no conn event overtakes those
 * responses, no transport closes under the notify, nothing is freed).
 * Outside a batch a completion is a batch of one.
 */
#define BATCH_MAX_HC 8 /* controllers one pass may touch; more are published at once */

static _Thread_local struct {
	unsigned depth;
	unsigned n;
	struct pvusb_hc *hc[BATCH_MAX_HC];
} batch;

static bool batch_holds(const struct pvusb_hc *hc)
{
	for (unsigned i = 0; i < batch.n; i++)
		if (batch.hc[i] == hc)
			return true;
	return false;
}

/* rsp_lock held. Whether this thread's batch now carries hc's responses. */
static bool batch_hold_locked(struct pvusb_hc *hc)
{
	if (!batch.depth)
		return false;
	if (batch_holds(hc))
		return true;
	if (batch.n == BATCH_MAX_HC)
		return false;
	batch.hc[batch.n++] = hc;
	/* under rsp_lock, before this response's slot is released: a drain
	 * never sees the slot free without the reference */
	__atomic_add_fetch(&hc->batch_refs, 1, __ATOMIC_RELEASE);
	return true;
}

/* Publish what a batch (or one completion) posted, notify, drop the
 * reference. The wake for a waiting drain is sent under rsp_lock: once
 * finish_drain() has taken rsp_lock after seeing batch_refs 0, this thread
 * no longer touches hc. */
static void batch_flush(struct pvusb_hc *hc)
{
	pthread_mutex_lock(&hc->rsp_lock);
	bool notify = !hc->broken && hc->xp && usbif_back_push_responses(&hc->urb);
	pthread_mutex_unlock(&hc->rsp_lock);
	if (notify)
		hc->xp->ops->notify(hc->xp);
	pthread_mutex_lock(&hc->rsp_lock);
	if (__atomic_sub_fetch(&hc->batch_refs, 1, __ATOMIC_ACQ_REL) == 0 &&
	    __atomic_load_n(&hc->deferred, __ATOMIC_ACQUIRE))
		hc_wake(hc);
	pthread_mutex_unlock(&hc->rsp_lock);
}

void pvusb_xfer_batch_begin(void)
{
	batch.depth++;
}

void pvusb_xfer_batch_end(void)
{
	if (--batch.depth)
		return;
	unsigned n = batch.n;
	batch.n = 0;
	for (unsigned i = 0; i < n; i++)
		batch_flush(batch.hc[i]);
}

/* Post one response for slot `slot`, or -1 for a request answered at once;
 * rsp_lock held. Returns whether the caller must call batch_flush(hc) after
 * unlocking: the response is held by no batch, and the reference taken here
 * keeps hc until it is published. */
static bool post_response_locked(struct pvusb_hc *hc, int slot, uint16_t id, int32_t status,
				 int32_t actual, uint16_t start_frame, int32_t error_count)
{
	hc->st.responses++;
	if (hc->broken)
		return false;
	struct usbif_urb_response *rsp = usbif_ring_slot(&hc->urb, hc->urb.prod_pvt);
	usbif_rsp_fill(rsp, id, status, actual, start_frame, error_count);
	if (hc->journal && slot >= 0) /* after the content: journal.h */
		pvusb_journal_answered(hc->journal, (unsigned)slot, hc->urb.prod_pvt);
	else if (hc->journal) /* the request being taken: service thread */
		pvusb_journal_answer_now(hc->journal, hc->urb.cons - 1, hc->urb.prod_pvt);
	__atomic_store_n(&hc->urb.prod_pvt, hc->urb.prod_pvt + 1, __ATOMIC_RELEASE);
	if (batch_hold_locked(hc))
		return false;
	__atomic_add_fetch(&hc->batch_refs, 1, __ATOMIC_RELEASE);
	return true;
}

/* Answer a request that never got a slot (refused, unlink, SET_ADDRESS). */
static void respond_now(struct pvusb_hc *hc, uint16_t id, int32_t status)
{
	pthread_mutex_lock(&hc->rsp_lock);
	bool flush = post_response_locked(hc, -1, id, status, 0, 0, 0);
	pthread_mutex_unlock(&hc->rsp_lock);
	if (flush)
		batch_flush(hc);
}

static void refuse(struct pvusb_hc *hc, uint16_t id, int32_t status, enum hc_log_cause cause,
		   const char *what)
{
	hc->st.refused++;
	pvusb_log_once(&hc->log_mask, cause, PVUSB_LOG_WARN,
		       "controller %s/%u: refusing %s with status %d (logged once)", hc->cfg.frontend,
		       hc->cfg.devid, what, status);
	respond_now(hc, id, status);
}

/*
 * A short IN with USBIF_SHORT_NOT_OK is answered as a success with the short
 * actual_length, as QEMU's backend does; never with -EREMOTEIO. The status
 * set of the protocol (spec B.8) has no -EREMOTEIO: xen-hcd maps every status
 * it does not know to -ESHUTDOWN, and a guest's usb-storage, which sets
 * URB_SHORT_NOT_OK on every bulk IN of its scatter-gather data stages, treats
 * -ESHUTDOWN as a transport error: it skips the CSW and resets the port. A
 * plain short reply (MODE SENSE with 192 bytes asked, BOT case 5) thus
 * became an endless run of resets of a device that never saw one. With a
 * success the guest sees "short transfer" (usb_sg's byte count), reads the
 * CSW, and a BOT device's STALL after the short data still fails the
 * transfers queued behind it (spec B.4, B.8).
 */
static void clamp_actual_length(struct pvusb_xfer *x)
{
	if (x->actual_length > x->length)
		x->actual_length = x->length;
}

static uint8_t *slot_stage(struct pvusb_hc *hc, struct hc_slot *s)
{
	return hc->stage + (size_t)(s - hc->slots) * HC_STAGE_SLOT;
}

/* Copying transports: hand IN data and the frame descriptors back to the
 * frontend. 0, or a negative errno when a grant would not take the copy. */
static int unstage_slot(struct pvusb_hc *hc, struct hc_slot *s)
{
	struct pvusb_xfer *x = &s->xfer;
	int rc = 0;
	if (s->desc_staged && x->npackets)
		rc = hc->xp->ops->copy(hc->xp, s->seg + s->nr_data_segs, s->nr_desc_segs, s->iso,
				       x->npackets * sizeof(struct usbif_iso_desc), true);
	/* isochronous IN data lies at each packet's offset: all of it goes */
	size_t back = x->type == USBIF_PIPE_TYPE_ISOC ? x->length : x->actual_length;
	if (rc == 0 && s->data_staged && x->in && back)
		rc = hc->xp->ops->copy(hc->xp, s->seg, s->nr_data_segs, slot_stage(hc, s), back, true);
	s->desc_staged = s->data_staged = false;
	return rc;
}

static void unmap_slot(struct pvusb_hc *hc, struct hc_slot *s)
{
	if (s->data_staged || s->desc_staged) {
		if (unstage_slot(hc, s) < 0) {
			pvusb_log_once(&hc->log_mask, LOG_MAP_FAILED, PVUSB_LOG_WARN,
				       "controller %s/%u: cannot copy into request buffers; answering -ESHUTDOWN",
				       hc->cfg.frontend, hc->cfg.devid);
			s->xfer.status = USBIF_STATUS_SHUTDOWN;
			s->xfer.actual_length = 0;
		}
	}
	if (s->desc_mapped) {
		if (s->xfer.npackets)
			iov_copy(s->desc_iov, s->desc_niov, 0, s->iso,
				 s->xfer.npackets * sizeof(struct usbif_iso_desc), true);
		hc->xp->ops->unmap(hc->xp, &s->desc_map);
		s->desc_mapped = false;
	}
	if (s->data_mapped) {
		hc->xp->ops->unmap(hc->xp, &s->data_map);
		s->data_mapped = false;
	}
}

void pvusb_xfer_complete(struct pvusb_xfer *x)
{
	struct hc_slot *s = (struct hc_slot *)x; /* xfer is the slot's first member */
	struct pvusb_hc *hc = s->hc;
	unsigned idx = (unsigned)(s - hc->slots);

	clamp_actual_length(x);
	unmap_slot(hc, s); /* every grant unmapped before the response (A.7) */

	pthread_mutex_lock(&hc->rsp_lock);
	bool flush = post_response_locked(hc, (int)idx, s->id, x->status, (int32_t)x->actual_length,
					  x->type == USBIF_PIPE_TYPE_ISOC ? x->rsp_start_frame : 0,
					  x->type == USBIF_PIPE_TYPE_ISOC ? x->error_count : 0);
	hc->ports[s->port].inflight--;
	__atomic_and_fetch(&hc->busy_mask, ~(1u << idx), __ATOMIC_RELEASE);
	/* A drain waits for this slot. With a reference held (flush, or a
	 * batch) the wake comes when it is dropped; a broken ring posts
	 * nothing, so wake now, under the lock (see batch_flush). */
	if (!flush && !batch_holds(hc) && __atomic_load_n(&hc->deferred, __ATOMIC_ACQUIRE))
		hc_wake(hc);
	pthread_mutex_unlock(&hc->rsp_lock);
	if (flush)
		batch_flush(hc);
}

/* ---- resolving the device ---- */

static int set_address(struct pvusb_hc *hc, unsigned port, uint16_t new_addr)
{
	struct hc_port *p = &hc->ports[port];
	if (new_addr > USBIF_MAX_ADDR)
		return USBIF_STATUS_INVAL;
	if (p->guest_addr)
		hc->addr_port[p->guest_addr] = 0; /* drop the old one (E.1) */
	p->guest_addr = 0;
	if (new_addr == 0)
		return 0;
	unsigned other = hc->addr_port[new_addr];
	if (other)
		hc->ports[other].guest_addr = 0; /* the guest reused the address */
	hc->addr_port[new_addr] = (uint8_t)port;
	p->guest_addr = (uint8_t)new_addr;
	return 0;
}

static bool is_set_address(const struct usbif_req *r)
{
	return r->pipe.type == USBIF_PIPE_TYPE_CTRL && r->raw.u.ctrl[0] == 0x00 &&
	       r->raw.u.ctrl[1] == USB_REQ_SET_ADDRESS;
}

/* The port a request is for (E.1), or 0 with *status set. */
static unsigned resolve_port(struct pvusb_hc *hc, const struct usbif_req *r, int32_t *status)
{
	unsigned port = r->pipe.devaddr ? hc->addr_port[r->pipe.devaddr] : r->pipe.port;
	struct hc_port *p = &hc->ports[port];
	if (port == 0 || !p->dev || p->detaching) {
		*status = USBIF_STATUS_NODEV;
		return 0;
	}
	return port;
}

static void handle_unlink(struct pvusb_hc *hc, const struct usbif_req *r)
{
	int32_t status = 0;
	unsigned port = resolve_port(hc, r, &status);
	if (!port) {
		respond_now(hc, r->raw.id, status);
		return;
	}
	uint32_t busy = __atomic_load_n(&hc->busy_mask, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < USB_URB_RING_SIZE; i++) {
		struct hc_slot *s = &hc->slots[i];
		if ((busy & (1u << i)) && s->id == r->raw.u.unlink.unlink_id && s->port == port &&
		    !s->cancelled) {
			s->cancelled = true;
			s->xfer.dev->ops->cancel(s->xfer.dev, &s->xfer);
			break;
		}
	}
	/* the target, if any, answers on its own; this answers the unlink */
	respond_now(hc, r->raw.id, 0);
}

static bool id_in_flight(struct pvusb_hc *hc, uint16_t id)
{
	uint32_t busy = __atomic_load_n(&hc->busy_mask, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < USB_URB_RING_SIZE; i++)
		if ((busy & (1u << i)) && hc->slots[i].id == id)
			return true;
	return false;
}

/* ---- mapping and submitting ---- */

static struct hc_slot *take_slot(struct pvusb_hc *hc)
{
	uint32_t busy = __atomic_load_n(&hc->busy_mask, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < USB_URB_RING_SIZE; i++)
		if (!(busy & (1u << i)))
			return &hc->slots[i];
	return NULL; /* cannot happen: A.6 bounds requests in flight by N */
}

static void fill_xfer(struct pvusb_xfer *x, const struct usbif_req *r, struct pvusb_dev *dev)
{
	x->dev = dev;
	x->type = r->pipe.type;
	x->endpoint = r->pipe.endpoint;
	x->in = r->pipe.in;
	x->flags = r->raw.transfer_flags & USBIF_SHORT_NOT_OK; /* B.4: ignore the rest */
	memcpy(x->setup, r->raw.u.ctrl, 8);
	x->length = r->data_len;
	x->contig = NULL;
	x->niov = 0;
	x->interval = r->pipe.type == USBIF_PIPE_TYPE_CTRL ? 0 : r->raw.u.isoc.interval;
	x->start_frame = 0;
	x->npackets = 0;
	x->iso = NULL;
	x->status = 0;
	x->actual_length = 0;
	x->error_count = 0;
	x->rsp_start_frame = 0;
	x->dev_priv = NULL;
}

static bool iov_contiguous(const struct pvusb_iov *iov, unsigned n)
{
	for (unsigned i = 1; i < n; i++)
		if (iov[i - 1].base + iov[i - 1].len != iov[i].base)
			return false;
	return true;
}

/* Copying transports: the device works on the slot's staging memory, which
 * holds OUT data copied in once, here, before anything looks at it. */
static int stage_data(struct pvusb_hc *hc, struct hc_slot *s, const struct usbif_req *r)
{
	struct pvusb_xfer *x = &s->xfer;
	uint8_t *stage = slot_stage(hc, s);
	if (!r->pipe.in) {
		int rc = hc->xp->ops->copy(hc->xp, s->seg, s->nr_data_segs, stage, r->data_len, false);
		if (rc < 0)
			return rc;
	}
	s->data_staged = true;
	x->contig = stage;
	x->niov = 1;
	x->iov[0].base = stage;
	x->iov[0].len = r->data_len;
	return 0;
}

static int map_data(struct pvusb_hc *hc, struct hc_slot *s, const struct usbif_req *r)
{
	unsigned n = r->raw.nr_buffer_segs;
	if (n == 0 || r->data_len == 0)
		return 0;
	struct pvusb_xfer *x = &s->xfer;
	if (hc->xp->ops->copy)
		return stage_data(hc, s, r);
	/* IN data is written by us; OUT data is only read, and mapped so (A.7) */
	int rc = hc->xp->ops->map(hc->xp, r->raw.seg, n, r->pipe.in, &s->data_map, x->iov);
	if (rc < 0)
		return rc;
	s->data_mapped = true;
	x->niov = n;
	if (iov_contiguous(x->iov, n))
		x->contig = x->iov[0].base;
	return 0;
}

/* Copy the frame descriptors in once and check each packet lies inside the
 * buffer; the device only ever sees the private copy. */
static int map_iso(struct pvusb_hc *hc, struct hc_slot *s, const struct usbif_req *r)
{
	if (r->nr_desc_segs == 0)
		return 0;
	struct pvusb_xfer *x = &s->xfer;
	uint32_t np = r->raw.u.isoc.number_of_packets;
	size_t want = np * sizeof(struct usbif_iso_desc);
	if (hc->xp->ops->copy) {
		/* want <= desc_len: usbif_req_copy_validate checked it */
		int rc = hc->xp->ops->copy(hc->xp, s->seg + s->nr_data_segs, s->nr_desc_segs, s->iso,
					   want, false);
		if (rc < 0)
			return rc;
		s->desc_staged = true;
	} else {
		int rc = hc->xp->ops->map(hc->xp, r->raw.seg + r->raw.nr_buffer_segs, r->nr_desc_segs,
					  true, &s->desc_map, s->desc_iov);
		if (rc < 0)
			return rc;
		s->desc_mapped = true;
		s->desc_niov = r->nr_desc_segs;
		iov_copy(s->desc_iov, s->desc_niov, 0, s->iso, want, false);
	}
	for (uint32_t k = 0; k < np; k++) {
		struct usbif_iso_desc *d = &s->iso[k];
		if (d->offset > r->data_len || d->length > r->data_len - d->offset)
			return -EINVAL;
		d->actual_length = 0;
		d->status = 0;
	}
	x->npackets = np;
	x->iso = s->iso;
	x->start_frame = r->raw.u.isoc.start_frame;
	return 0;
}

static void mark_busy(struct pvusb_hc *hc, struct hc_slot *s, unsigned port)
{
	unsigned idx = (unsigned)(s - hc->slots);
	pthread_mutex_lock(&hc->rsp_lock);
	if (hc->journal) /* request cons - 1 now in slot idx (journal.h) */
		pvusb_journal_take(hc->journal, idx, s->id, hc->urb.cons - 1);
	hc->ports[port].inflight++;
	__atomic_or_fetch(&hc->busy_mask, 1u << idx, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&hc->rsp_lock);
}

static void submit(struct pvusb_hc *hc, const struct usbif_req *r, unsigned port)
{
	struct hc_slot *s = take_slot(hc);
	if (!s) {
		refuse(hc, r->raw.id, USBIF_STATUS_SHUTDOWN, LOG_MALFORMED, "request beyond ring size");
		return;
	}
	struct pvusb_dev *dev = hc->ports[port].dev;
	s->id = r->raw.id;
	s->port = (uint8_t)port;
	s->cancelled = false;
	s->nr_data_segs = r->raw.nr_buffer_segs;
	s->nr_desc_segs = (uint8_t)r->nr_desc_segs;
	memcpy(s->seg, r->raw.seg, (size_t)(s->nr_data_segs + s->nr_desc_segs) * sizeof(s->seg[0]));
	fill_xfer(&s->xfer, r, dev);
	mark_busy(hc, s, port);

	int rc = map_data(hc, s, r);
	if (rc == 0 && r->pipe.type == USBIF_PIPE_TYPE_ISOC)
		rc = map_iso(hc, s, r);
	if (rc < 0) {
		pvusb_log_once(&hc->log_mask, LOG_MAP_FAILED, PVUSB_LOG_WARN,
			       "controller %s/%u: cannot map request buffers (%s); answering -ESHUTDOWN",
			       hc->cfg.frontend, hc->cfg.devid, strerror(-rc));
		hc->st.refused++;
		s->xfer.status = USBIF_STATUS_SHUTDOWN;
		pvusb_xfer_complete(&s->xfer);
		return;
	}
	if (r->pipe.type == USBIF_PIPE_TYPE_ISOC && s->xfer.npackets == 0) {
		pvusb_xfer_complete(&s->xfer); /* empty isochronous URB: nothing to move */
		return;
	}
	rc = dev->ops->submit(dev, &s->xfer);
	if (rc < 0) {
		s->xfer.status = rc;
		s->xfer.actual_length = 0;
		pvusb_xfer_complete(&s->xfer);
	}
}

static void handle_request(struct pvusb_hc *hc, const void *ring_slot)
{
	struct usbif_req r;
	int rc = usbif_req_copy_validate(ring_slot, hc->cfg.num_ports, &r);
	hc->urb.cons++;
	hc->st.requests++;
	if (rc) {
		refuse(hc, r.raw.id, rc,
		       rc == USBIF_STATUS_NODEV ? LOG_BAD_PORT
		       : rc == USBIF_STATUS_INVAL ? LOG_BAD_PIPE : LOG_MALFORMED,
		       "a malformed request");
		return;
	}
	if (id_in_flight(hc, r.raw.id)) {
		refuse(hc, r.raw.id, USBIF_STATUS_INVAL, LOG_DUP_ID, "a request whose id is in flight");
		return;
	}
	if (r.pipe.unlink) {
		handle_unlink(hc, &r);
		return;
	}
	int32_t status = 0;
	unsigned port = resolve_port(hc, &r, &status);
	if (!port) {
		refuse(hc, r.raw.id, status, LOG_NODEV, "a request for an absent device");
		return;
	}
	if (is_set_address(&r)) { /* never forwarded (E.1) */
		respond_now(hc, r.raw.id, set_address(hc, port, usbif_le16(r.raw.u.ctrl + 2)));
		return;
	}
	if (r.pipe.devaddr == 0 &&
	    (r.pipe.type != USBIF_PIPE_TYPE_CTRL || r.raw.u.ctrl[1] != USB_REQ_GET_DESCRIPTOR)) {
		refuse(hc, r.raw.id, USBIF_STATUS_INVAL, LOG_ADDR0,
		       "a request to address 0 other than GET_DESCRIPTOR/SET_ADDRESS");
		return;
	}
	submit(hc, &r, port);
}

unsigned hc_process_urbs(struct pvusb_hc *hc)
{
	if (!hc->xp || hc->broken)
		return 0;
	bool hostile = false;
	unsigned done = 0;
	uint32_t n;
	/* answers given during the pass (refusals, synchronous completions)
	 * go out with one publish and at most one notify */
	pvusb_xfer_batch_begin();
	while ((n = usbif_back_unconsumed(&hc->urb, &hostile)) > 0) {
		for (uint32_t i = 0; i < n; i++)
			handle_request(hc, usbif_ring_slot(&hc->urb, hc->urb.cons));
		done += n;
	}
	pvusb_xfer_batch_end();
	if (hostile)
		hc_set_broken(hc, "urb ring producer index more than 16 ahead");
	return done;
}

/* ---- cancelling and draining ---- */

void hc_cancel_port(struct pvusb_hc *hc, unsigned port)
{
	uint32_t busy = __atomic_load_n(&hc->busy_mask, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < USB_URB_RING_SIZE; i++) {
		struct hc_slot *s = &hc->slots[i];
		if (!(busy & (1u << i)) || (port && s->port != port) || s->cancelled)
			continue;
		s->cancelled = true;
		s->xfer.dev->ops->cancel(s->xfer.dev, &s->xfer);
	}
}

bool hc_port_drained(struct pvusb_hc *hc, unsigned port)
{
	if (__atomic_load_n(&hc->batch_refs, __ATOMIC_ACQUIRE))
		return false; /* answers posted but not yet published */
	uint32_t busy = __atomic_load_n(&hc->busy_mask, __ATOMIC_ACQUIRE);
	if (port == 0)
		return busy == 0;
	for (unsigned i = 0; i < USB_URB_RING_SIZE; i++)
		if ((busy & (1u << i)) && hc->slots[i].port == port)
			return false;
	return true;
}
