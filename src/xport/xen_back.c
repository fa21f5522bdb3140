/* SPDX-License-Identifier: MIT */
/*
 * The xen transport, backend side: the two ring pages are mapped through
 * gntdev for as long as the frontend is connected; request data moves by
 * grant copy (xen_copy), never by mapping; the event channel is bound
 * through the evtchn device. (map/unmap stay for transports' callers that
 * map on purpose; the core uses copy when a transport has it.)
 *
 * Each transport has its own gntdev and evtchn handles: the evtchn fd is what
 * the controller's thread sleeps on, and a handle shared between controllers
 * would wake every one of them for any frontend's event.
 *
 * Threads: map runs on the controller's service thread; unmap and notify may
 * run on any thread (a device completion). Both are single ioctls/munmaps on
 * handles that the kernel serialises itself, and touch no shared user-space
 * state except the atomic counters, so they need no lock here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xentoollog.h>
#include <xen/grant_table.h>

#include "core/journal.h"
#include "pvusb/ring.h"
#include "xport/xen.h"

/* QEMU asks for the same: 16 segments for each of 16 requests, plus the
 * two ring pages. */
#define XEN_MAX_GRANTS (USBIF_MAX_SEGMENTS_PER_REQUEST * USB_URB_RING_SIZE + 2)

struct xen_xport {
	struct pvusb_xport xp;
	xengnttab_handle *gnt;
	xenevtchn_handle *evt;
	evtchn_port_t local_port;
	uint32_t domid;
};

static uint64_t grants_live; /* every xen transport's mappings, rings included */

uint64_t pvusb_xen_grants_live(void)
{
	return __atomic_load_n(&grants_live, __ATOMIC_RELAXED);
}

static struct xen_xport *to_xen(struct pvusb_xport *xp) { return (struct xen_xport *)xp; }

/* errno as a negative return, never 0: a library that failed without
 * setting errno must still read as a failure. */
static int neg_errno(void) { return errno ? -errno : -EIO; }

/*
 * The Xen libraries print every failed map to stderr. A hostile frontend can
 * make every request fail to map, so their messages are dropped; the core
 * answers such requests with -ESHUTDOWN and logs once per cause itself.
 */
static void quiet_vmessage(struct xentoollog_logger *l, xentoollog_level level, int errnoval,
			   const char *context, const char *format, va_list al)
{
}

static void quiet_destroy(struct xentoollog_logger *l) {}

static struct xentoollog_logger quiet_logger = {
	.vmessage = quiet_vmessage,
	.progress = NULL,
	.destroy = quiet_destroy,
};

static int xen_map(struct pvusb_xport *xp, const struct usbif_request_segment *seg, unsigned n,
		   bool writable, struct pvusb_map *m, struct pvusb_iov *iov)
{
	struct xen_xport *xx = to_xen(xp);
	uint32_t refs[USBIF_MAX_SEGMENTS_PER_REQUEST];
	if (n == 0 || n > USBIF_MAX_SEGMENTS_PER_REQUEST)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		refs[i] = seg[i].gref;
	/* One contiguous mapping: a buffer split at page boundaries is then one
	 * run of memory for the device (B.5). OUT grants are read-only (A.7). */
	int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
	uint8_t *base = xengnttab_map_domain_grant_refs(xx->gnt, n, xx->domid, refs, prot);
	if (!base)
		return neg_errno();
	for (unsigned i = 0; i < n; i++) {
		iov[i].base = base + (size_t)i * USBIF_PAGE_SIZE + seg[i].offset;
		iov[i].len = seg[i].length;
	}
	m->handle = base;
	m->addr = base;
	m->nseg = n;
	m->writable = writable;
	__atomic_add_fetch(&xp->maps_live, n, __ATOMIC_RELAXED);
	__atomic_add_fetch(&grants_live, n, __ATOMIC_RELAXED);
	return 0;
}

/* Synchronous: when xengnttab_unmap returns, gntdev has dropped the grant
 * mappings, so the frontend can revoke its grants once it sees the response. */
static void xen_unmap(struct pvusb_xport *xp, struct pvusb_map *m)
{
	if (m->nseg == 0)
		return;
	xengnttab_unmap(to_xen(xp)->gnt, m->handle, m->nseg);
	__atomic_sub_fetch(&xp->maps_live, m->nseg, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&grants_live, m->nseg, __ATOMIC_RELAXED);
	m->nseg = 0;
	m->handle = NULL;
}

/* Grant copy (xport.h: copy). The ioctl batches the segments into as few
 * GNTTABOP_copy hypercalls as it can; no page of ours or the guest's is
 * mapped, so nothing has to be unmapped or flushed afterwards. */
static int xen_copy(struct pvusb_xport *xp, const struct usbif_request_segment *seg, unsigned n,
		    void *buf, size_t len, bool to_guest)
{
	struct xen_xport *xx = to_xen(xp);
	xengnttab_grant_copy_segment_t op[USBIF_MAX_SEGMENTS_PER_REQUEST];
	uint8_t *p = buf;
	unsigned k = 0;
	if (n > USBIF_MAX_SEGMENTS_PER_REQUEST)
		return -EINVAL;
	for (unsigned i = 0; i < n && len > 0; i++) {
		size_t chunk = seg[i].length < len ? seg[i].length : len;
		if (chunk == 0)
			continue;
		xengnttab_grant_copy_segment_t *o = &op[k++];
		union xengnttab_copy_ptr guest = {
			.foreign = { .ref = seg[i].gref, .offset = seg[i].offset,
				     .domid = (uint16_t)xx->domid },
		};
		o->len = (uint16_t)chunk;
		o->status = 0;
		if (to_guest) {
			o->source.virt = p;
			o->dest = guest;
			o->flags = GNTCOPY_dest_gref;
		} else {
			o->source = guest;
			o->dest.virt = p;
			o->flags = GNTCOPY_source_gref;
		}
		p += chunk;
		len -= chunk;
	}
	if (k == 0)
		return 0;
	if (xengnttab_grant_copy(xx->gnt, k, op) < 0)
		return neg_errno();
	for (unsigned i = 0; i < k; i++)
		if (op[i].status != GNTST_okay)
			return -EFAULT;
	return 0;
}

static void xen_notify(struct pvusb_xport *xp)
{
	struct xen_xport *xx = to_xen(xp);
	xenevtchn_notify(xx->evt, xx->local_port);
}

/* The evtchn driver masks a port when it fires and queues it once: take
 * the pending port off the fd, then unmask it so the next event is
 * delivered. This handle has one port bound, which cannot be queued again
 * while masked, so one read drains it (a second would only return EAGAIN:
 * under a PV dom0 every system call is a trip through Xen). The fd is
 * non-blocking, so a spurious wake-up costs one EAGAIN. */
static void xen_ack(struct pvusb_xport *xp)
{
	struct xen_xport *xx = to_xen(xp);
	xenevtchn_port_or_error_t p = xenevtchn_pending(xx->evt);
	if (p >= 0)
		xenevtchn_unmask(xx->evt, (evtchn_port_t)p);
}

static void unmap_ring(struct xen_xport *xx, void *ring)
{
	if (!ring)
		return;
	xengnttab_unmap(xx->gnt, ring, 1);
	__atomic_sub_fetch(&grants_live, 1, __ATOMIC_RELAXED);
}

static void xen_close(struct pvusb_xport *xp)
{
	struct xen_xport *xx = to_xen(xp);
	unmap_ring(xx, xp->urb_ring);
	unmap_ring(xx, xp->conn_ring);
	if (xx->evt) {
		if (xp->event_fd >= 0)
			xenevtchn_unbind(xx->evt, xx->local_port);
		xenevtchn_close(xx->evt);
	}
	if (xx->gnt)
		xengnttab_close(xx->gnt);
	free(xx);
}

static const struct pvusb_xport_ops xen_ops = {
	.name = "xen",
	.map = xen_map,
	.unmap = xen_unmap,
	.copy = xen_copy,
	.notify = xen_notify,
	.ack = xen_ack,
	.close = xen_close,
};

static void *map_ring(struct xen_xport *xx, uint32_t ref, const char *what, char *err, size_t errlen)
{
	void *p = xengnttab_map_grant_ref(xx->gnt, xx->domid, ref, PROT_READ | PROT_WRITE);
	if (!p) {
		snprintf(err, errlen, "cannot map %s grant %u of domain %u: %s", what, ref, xx->domid,
			 strerror(errno));
		return NULL;
	}
	__atomic_add_fetch(&grants_live, 1, __ATOMIC_RELAXED);
	return p;
}

static int open_handles(struct xen_xport *xx, char *err, size_t errlen)
{
	xx->gnt = xengnttab_open(&quiet_logger, 0);
	if (!xx->gnt) {
		int rc = neg_errno();
		snprintf(err, errlen, "cannot open gntdev: %s (is xen-gntdev loaded?)", strerror(-rc));
		return rc;
	}
	/* Older kernels limit a handle's grants; newer ones ignore this. */
	xengnttab_set_max_grants(xx->gnt, XEN_MAX_GRANTS);
	xx->evt = xenevtchn_open(&quiet_logger, 0);
	if (!xx->evt) {
		int rc = neg_errno();
		snprintf(err, errlen, "cannot open evtchn: %s (is xen-evtchn loaded?)", strerror(-rc));
		return rc;
	}
	return 0;
}

static int bind_evtchn(struct xen_xport *xx, uint32_t remote, char *err, size_t errlen)
{
	xenevtchn_port_or_error_t p = xenevtchn_bind_interdomain(xx->evt, xx->domid, remote);
	if (p < 0) {
		int rc = neg_errno();
		snprintf(err, errlen, "cannot bind event channel %u of domain %u: %s", remote,
			 xx->domid, strerror(-rc));
		return rc;
	}
	xx->local_port = (evtchn_port_t)p;
	int fd = xenevtchn_fd(xx->evt);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int rc = neg_errno();
		snprintf(err, errlen, "cannot make the evtchn fd non-blocking: %s", strerror(-rc));
		xenevtchn_unbind(xx->evt, xx->local_port);
		return rc;
	}
	xx->xp.event_fd = fd;
	return 0;
}

int pvusb_xen_xport_create(const struct pvusb_xen_rings *r, const char *peer,
			   struct pvusb_xport **out, char *err, size_t errlen)
{
	if (r->urb_ref == r->conn_ref) {
		snprintf(err, errlen, "urb-ring-ref and conn-ring-ref are the same grant %u", r->urb_ref);
		return -EINVAL;
	}
	struct xen_xport *xx = calloc(1, sizeof(*xx));
	if (!xx)
		return -ENOMEM;
	xx->domid = r->domid;
	xx->xp.ops = &xen_ops;
	xx->xp.event_fd = -1;
	snprintf(xx->xp.peer, sizeof(xx->xp.peer), "%s", peer);
	int rc = open_handles(xx, err, errlen);
	if (rc == 0) {
		xx->xp.urb_ring = map_ring(xx, r->urb_ref, "urb-ring-ref", err, errlen);
		if (xx->xp.urb_ring)
			xx->xp.conn_ring = map_ring(xx, r->conn_ref, "conn-ring-ref", err, errlen);
		if (!xx->xp.urb_ring || !xx->xp.conn_ring)
			rc = -EFAULT;
	}
	if (rc == 0)
		rc = bind_evtchn(xx, r->evtchn, err, errlen);
	if (rc < 0) {
		xen_close(&xx->xp);
		return rc;
	}
	*out = &xx->xp;
	return 0;
}

/* No journal (an earlier pvusbd that kept none, or a record lost): the ids
 * in flight are unknowable (responses complete out of order and overwrite
 * request slots), and answering by slot could answer an id twice, which
 * xen-hcd treats as a protocol error. Only a ring with nothing unanswered
 * is taken over then. */
static int urb_ring_idle(struct pvusb_xport *xp, char *err, size_t errlen)
{
	const struct usbif_ring_hdr *h = xp->urb_ring;
	uint32_t n = usbif_idx_load(&h->req_prod) - usbif_idx_load(&h->rsp_prod);
	if (n == 0)
		return 0;
	snprintf(err, errlen, "%u request(s) unanswered and no ring journal to tell which were in "
		 "flight", n);
	return -EBUSY;
}

/* The guest still sees the devices the dead process announced, at addresses
 * this process never learnt: announce every port empty, so that the
 * announcements the core makes on connect have the guest enumerate each
 * device afresh. Tokens the dead process held are between rsp_prod and
 * req_prod, so taking them from rsp_prod on returns them. */
static int clear_ports(struct pvusb_xport *xp, unsigned num_ports, bool *notify, char *err,
		       size_t errlen)
{
	struct usbif_ring r;
	unsigned p;
	usbif_conn_back_attach(&r, xp->conn_ring);
	usbif_back_ring_continue(&r);
	for (p = 1; p <= num_ports; p++) {
		uint16_t token;
		int rc = usbif_conn_back_take_token(&r, &token);
		if (rc == -EPROTO) {
			snprintf(err, errlen, "conn ring: tokens more than %u ahead", r.nr_ents);
			return rc;
		}
		if (rc < 0)
			break;
		struct usbif_conn_response *rsp = usbif_ring_slot(&r, r.prod_pvt++);
		rsp->id = token;
		rsp->portnum = (uint8_t)p;
		rsp->speed = USBIF_SPEED_NONE;
	}
	if (p > 1 && usbif_back_push_responses(&r))
		*notify = true;
	if (p <= num_ports) {
		snprintf(err, errlen, "conn ring: no token left to clear port %u", p);
		return -ENOSPC;
	}
	return 0;
}

int pvusb_xen_resume(struct pvusb_xport *xp, unsigned num_ports, struct pvusb_ring_journal **j,
		     struct pvusb_journal_result *res, char *err, size_t errlen)
{
	bool notify = false;
	memset(res, 0, sizeof(*res));
	int rc = *j ? pvusb_journal_takeover(*j, xp->urb_ring, res, err, errlen) : -ESTALE;
	if (rc == -ESTALE) { /* a journal of rings the frontend has replaced since */
		pvusb_journal_close(*j, false);
		*j = NULL;
		rc = urb_ring_idle(xp, err, errlen);
	}
	notify = res->published != 0;
	if (rc == 0)
		rc = clear_ports(xp, num_ports, &notify, err, errlen);
	if (notify)
		xen_notify(xp);
	return rc;
}
