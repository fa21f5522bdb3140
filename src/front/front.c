/* SPDX-License-Identifier: MIT */
/* The frontend library: ring owner, root-hub emulation, URB bookkeeping. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pvusb/front.h"
#include "pvusb/local.h"
#include "pvusb/ring.h"
#include "util/sock.h"
#include "util/spin.h"

#define NIDS USB_URB_RING_SIZE
#define BOUNCE_PAGES 16 /* per id: 64 KiB of data */
#define DESC_PAGES 4    /* per id: 1024 isochronous descriptors */
#define PAGE_URB_RING 0
#define PAGE_CONN_RING 1
#define PAGE_BOUNCE 2
#define PAGE_POOL (PAGE_BOUNCE + NIDS * (BOUNCE_PAGES + DESC_PAGES))

struct pvusb_front {
	int sock, memfd, kick_be, kick_fe;
	uint8_t *mem;
	uint32_t pages, pool_next;
	struct usbif_ring urb, conn;
	unsigned usb_ver, num_ports;
	uint8_t port_speed[USBIF_MAX_PORTNR + 1];
	unsigned port_events[USBIF_MAX_PORTNR + 1];
	struct pvusb_urb *owner[NIDS]; /* the URB using each id, NULL when free */
	bool unlink_id[NIDS];           /* the id carries an unlink request */
	bool dead;
	bool in_poll; /* completion callbacks running: requests are published after them */
	int spin_ns;
	void (*port_cb)(struct pvusb_front *, unsigned, uint8_t, void *);
	void *port_arg;
	void (*raw_cb)(struct pvusb_front *, const struct usbif_urb_response *, void *);
	void *raw_arg;
};

static uint8_t *page(struct pvusb_front *f, uint32_t i) { return f->mem + (size_t)i * USBIF_PAGE_SIZE; }

/* ---- connecting ---- */

static int send_connect(struct pvusb_front *f, const char *name, unsigned devid)
{
	char msg[512];
	int len = snprintf(msg, sizeof(msg),
			   "{\"cmd\":\"frontend-connect\",\"frontend\":\"%s\",\"devid\":%u,"
			   "\"pages\":%u,\"urb-ring-ref\":%d,\"conn-ring-ref\":%d}",
			   name, devid, f->pages, PAGE_URB_RING, PAGE_CONN_RING);
	int fds[3] = {f->memfd, f->kick_be, f->kick_fe};
	char cbuf[CMSG_SPACE(sizeof(fds))] = {0};
	struct iovec iov = {.iov_base = msg, .iov_len = (size_t)len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	return sendmsg(f->sock, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static int read_reply(struct pvusb_front *f, char *err, size_t errlen)
{
	char buf[1024];
	ssize_t n = recv(f->sock, buf, sizeof(buf) - 1, 0);
	if (n <= 0) {
		snprintf(err, errlen, "pvusbd closed the connection");
		return -EPIPE;
	}
	buf[n] = 0;
	json_object *o = json_tokener_parse(buf), *v;
	int rc = 0;
	if (!o || !json_object_object_get_ex(o, "ok", &v) || !json_object_get_boolean(v)) {
		const char *e = o && json_object_object_get_ex(o, "error", &v) ? json_object_get_string(v)
									    : "bad reply";
		snprintf(err, errlen, "%s", e);
		rc = -ECONNREFUSED;
	} else {
		f->usb_ver = json_object_object_get_ex(o, "usb-ver", &v) ? (unsigned)json_object_get_int(v) : 0;
		f->num_ports = json_object_object_get_ex(o, "num-ports", &v) ? (unsigned)json_object_get_int(v) : 0;
		if (f->num_ports < 1 || f->num_ports > USBIF_MAX_PORTNR) {
			snprintf(err, errlen, "pvusbd sent num-ports %u", f->num_ports);
			rc = -EPROTO;
		}
	}
	json_object_put(o);
	return rc;
}

static int make_memory(struct pvusb_front *f, uint32_t pool_pages)
{
	f->pages = PAGE_POOL + pool_pages;
	f->memfd = memfd_create("pvusb-front", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (f->memfd < 0)
		return -errno;
	size_t len = (size_t)f->pages * USBIF_PAGE_SIZE;
	if (ftruncate(f->memfd, (off_t)len) < 0 || fcntl(f->memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		return -errno;
	f->mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	if (f->mem == MAP_FAILED) {
		f->mem = NULL;
		return -errno;
	}
	usbif_urb_front_init(&f->urb, page(f, PAGE_URB_RING));
	usbif_conn_front_init(&f->conn, page(f, PAGE_CONN_RING));
	/* C.2: every conn slot gets a token before connecting */
	for (uint16_t i = 0; i < USB_CONN_RING_SIZE; i++) {
		struct usbif_conn_request *req = usbif_ring_slot(&f->conn, f->conn.prod_pvt++);
		req->id = i;
	}
	usbif_front_push_requests(&f->conn);
	f->pool_next = PAGE_POOL;
	return 0;
}

int pvusb_front_connect(const char *sock_path, const char *name, unsigned devid,
			const struct pvusb_front_opts *opts, struct pvusb_front **out, char *err,
			size_t errlen)
{
	struct pvusb_front *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->sock = f->memfd = -1;
	f->spin_ns = pvusb_default_spin_ns(opts ? opts->spin_us : -1);
	f->kick_be = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->kick_fe = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int rc = f->kick_be < 0 || f->kick_fe < 0 ? -errno : 0;
	if (rc == 0)
		rc = make_memory(f, opts && opts->pool_pages ? opts->pool_pages : 2048);
	if (rc < 0)
		snprintf(err, errlen, "cannot set up shared memory: %s", strerror(-rc));
	if (rc == 0) {
		f->sock = pvusb_unix_connect(sock_path);
		if (f->sock < 0) {
			rc = f->sock;
			snprintf(err, errlen, "cannot connect to pvusbd at %s: %s", sock_path, strerror(-rc));
		}
	}
	if (rc == 0 && (rc = send_connect(f, name, devid)) < 0)
		snprintf(err, errlen, "cannot send to pvusbd: %s", strerror(-rc));
	if (rc == 0)
		rc = read_reply(f, err, errlen);
	if (rc < 0) {
		pvusb_front_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

void pvusb_front_close(struct pvusb_front *f)
{
	if (!f)
		return;
	if (f->sock >= 0)
		close(f->sock);
	if (f->mem)
		munmap(f->mem, (size_t)f->pages * USBIF_PAGE_SIZE);
	if (f->memfd >= 0)
		close(f->memfd);
	if (f->kick_be >= 0)
		close(f->kick_be);
	if (f->kick_fe >= 0)
		close(f->kick_fe);
	free(f);
}

unsigned pvusb_front_num_ports(const struct pvusb_front *f) { return f->num_ports; }
unsigned pvusb_front_usb_ver(const struct pvusb_front *f) { return f->usb_ver; }

uint8_t pvusb_front_port_speed(const struct pvusb_front *f, unsigned port)
{
	return port <= USBIF_MAX_PORTNR ? f->port_speed[port] : 0;
}

unsigned pvusb_front_port_events(const struct pvusb_front *f, unsigned port)
{
	return port <= USBIF_MAX_PORTNR ? f->port_events[port] : 0;
}

void pvusb_front_on_port(struct pvusb_front *f,
			 void (*cb)(struct pvusb_front *, unsigned, uint8_t, void *), void *arg)
{
	f->port_cb = cb;
	f->port_arg = arg;
}

void *pvusb_front_alloc(struct pvusb_front *f, size_t len)
{
	uint32_t n = (uint32_t)((len + USBIF_PAGE_SIZE - 1) / USBIF_PAGE_SIZE);
	if (n == 0 || n > f->pages - f->pool_next)
		return NULL;
	void *p = page(f, f->pool_next);
	f->pool_next += n;
	return p;
}

/* ---- notifications ---- */

void pvusb_front_kick(struct pvusb_front *f)
{
	uint64_t one = 1;
	ssize_t n = write(f->kick_be, &one, sizeof(one));
	(void)n;
}

static void push_requests(struct pvusb_front *f)
{
	/* A callback that resubmits runs inside poll: publish everything it
	 * queued once, after the last callback, so the backend wakes once for
	 * the lot rather than start on the first while we queue the rest. */
	if (f->in_poll)
		return;
	if (usbif_front_push_requests(&f->urb))
		pvusb_front_kick(f);
}

/* ---- submitting ---- */

static int take_id(struct pvusb_front *f)
{
	if (usbif_front_free(&f->urb) == 0)
		return -EBUSY;
	for (int i = 0; i < (int)NIDS; i++)
		if (!f->owner[i] && !f->unlink_id[i])
			return i;
	return -EBUSY;
}

static bool in_shared(struct pvusb_front *f, const void *p, size_t len)
{
	const uint8_t *b = p;
	return b >= page(f, PAGE_POOL) && b + len <= page(f, f->pages) && b + len >= b;
}

/* Describe [buf, buf+len) as page segments, the way xen-hcd splits a buffer. */
static int fill_segments(struct pvusb_front *f, struct usbif_request_segment *seg, unsigned max,
			 const uint8_t *buf, uint32_t len)
{
	unsigned n = 0;
	while (len) {
		if (n == max)
			return -E2BIG;
		size_t off = (size_t)(buf - f->mem);
		uint16_t in_page = (uint16_t)(off % USBIF_PAGE_SIZE);
		uint32_t chunk = USBIF_PAGE_SIZE - in_page;
		if (chunk > len)
			chunk = len;
		seg[n].gref = (uint32_t)(off / USBIF_PAGE_SIZE);
		seg[n].offset = in_page;
		seg[n].length = (uint16_t)chunk;
		buf += chunk;
		len -= chunk;
		n++;
	}
	return (int)n;
}

static uint8_t *data_area(struct pvusb_front *f, struct pvusb_urb *u, int id)
{
	if (in_shared(f, u->buffer, u->length))
		return u->buffer;
	return page(f, PAGE_BOUNCE + (uint32_t)id * (BOUNCE_PAGES + DESC_PAGES));
}

static int build_request(struct pvusb_front *f, struct pvusb_urb *u, int id,
			 struct usbif_urb_request *req)
{
	struct usbif_pipe p = {.port = u->port, .in = u->in, .devaddr = u->devaddr,
			       .endpoint = u->endpoint, .type = u->type};
	memset(req, 0, sizeof(*req));
	req->id = (uint16_t)id;
	req->pipe = usbif_pipe_encode(&p);
	req->transfer_flags = u->flags & USBIF_SHORT_NOT_OK;
	req->buffer_length = (uint16_t)u->length;
	uint8_t *data = data_area(f, u, id);
	if (data != u->buffer && u->length && !u->in)
		memcpy(data, u->buffer, u->length);
	int nseg = fill_segments(f, req->seg, USBIF_MAX_SEGMENTS_PER_REQUEST, data, u->length);
	if (nseg < 0)
		return nseg;
	req->nr_buffer_segs = (uint16_t)nseg;
	if (u->type == USBIF_PIPE_TYPE_CTRL) {
		memcpy(req->u.ctrl, u->setup, 8);
	} else if (u->type == USBIF_PIPE_TYPE_ISOC) {
		uint8_t *desc = page(f, PAGE_BOUNCE + (uint32_t)id * (BOUNCE_PAGES + DESC_PAGES) + BOUNCE_PAGES);
		size_t dlen = u->npackets * sizeof(struct usbif_iso_desc);
		memcpy(desc, u->iso, dlen);
		int nd = fill_segments(f, req->seg + nseg, USBIF_MAX_SEGMENTS_PER_REQUEST - (unsigned)nseg,
				       desc, (uint32_t)dlen);
		if (nd < 0)
			return nd;
		req->u.isoc.interval = u->interval;
		req->u.isoc.number_of_packets = (uint16_t)u->npackets;
		req->u.isoc.nr_frame_desc_segs = (uint16_t)nd;
	} else if (u->type == USBIF_PIPE_TYPE_INT) {
		req->u.intr.interval = u->interval;
	}
	return 0;
}

int pvusb_front_submit(struct pvusb_front *f, struct pvusb_urb *u)
{
	if (f->dead)
		return -EPIPE;
	if (u->port < 1 || u->port > f->num_ports || u->length > BOUNCE_PAGES * USBIF_PAGE_SIZE ||
	    u->type > USBIF_PIPE_TYPE_BULK || (u->length && !u->buffer) ||
	    (u->type == USBIF_PIPE_TYPE_ISOC && (u->npackets == 0 || u->npackets > 1024 || !u->iso)))
		return -EINVAL;
	int id = take_id(f);
	if (id < 0)
		return id;
	struct usbif_urb_request *req = usbif_ring_slot(&f->urb, f->urb.prod_pvt);
	struct usbif_urb_request tmp;
	int rc = build_request(f, u, id, &tmp);
	if (rc < 0)
		return rc;
	memcpy(req, &tmp, sizeof(tmp));
	f->urb.prod_pvt++;
	u->id = id;
	u->status = 0;
	u->actual_length = 0;
	f->owner[id] = u;
	push_requests(f);
	return 0;
}

int pvusb_front_unlink(struct pvusb_front *f, struct pvusb_urb *u)
{
	if (u->id < 0 || f->owner[u->id] != u)
		return -ENOENT;
	int id = take_id(f);
	if (id < 0)
		return id;
	struct usbif_pipe p = {.port = u->port, .unlink = true, .in = u->in, .devaddr = u->devaddr,
			       .endpoint = u->endpoint, .type = u->type};
	struct usbif_urb_request *req = usbif_ring_slot(&f->urb, f->urb.prod_pvt);
	struct usbif_urb_request tmp = {.id = (uint16_t)id, .pipe = usbif_pipe_encode(&p)};
	tmp.u.unlink.unlink_id = (uint16_t)u->id;
	memcpy(req, &tmp, sizeof(tmp));
	f->urb.prod_pvt++;
	f->unlink_id[id] = true;
	push_requests(f);
	return 0;
}

int pvusb_front_raw_submit(struct pvusb_front *f, const struct usbif_urb_request *req)
{
	if (usbif_front_free(&f->urb) == 0)
		return -EBUSY;
	memcpy(usbif_ring_slot(&f->urb, f->urb.prod_pvt), req, sizeof(*req));
	f->urb.prod_pvt++;
	push_requests(f);
	return 0;
}

/* ---- responses and conn events ---- */

static void finish_urb(struct pvusb_front *f, struct pvusb_urb *u, const struct usbif_urb_response *rsp)
{
	int id = u->id;
	u->status = rsp->status;
	int32_t actual = rsp->actual_length < 0 ? 0 : rsp->actual_length;
	u->actual_length = (uint32_t)actual > u->length ? u->length : (uint32_t)actual;
	u->error_count = rsp->error_count;
	u->start_frame = rsp->start_frame;
	uint8_t *data = data_area(f, u, id);
	if (data != u->buffer && u->in && u->actual_length)
		memcpy(u->buffer, data, u->type == USBIF_PIPE_TYPE_ISOC ? u->length : u->actual_length);
	if (u->type == USBIF_PIPE_TYPE_ISOC)
		memcpy(u->iso, page(f, PAGE_BOUNCE + (uint32_t)id * (BOUNCE_PAGES + DESC_PAGES) + BOUNCE_PAGES),
		       u->npackets * sizeof(struct usbif_iso_desc));
	f->owner[id] = NULL;
	u->id = -1;
	if (u->complete)
		u->complete(u);
}

static void handle_response(struct pvusb_front *f, const struct usbif_urb_response *rsp)
{
	if (rsp->id < NIDS && f->unlink_id[rsp->id] && !f->owner[rsp->id]) {
		f->unlink_id[rsp->id] = false; /* an unlink's own answer: only frees the id */
		return;
	}
	if (rsp->id < NIDS && f->owner[rsp->id]) {
		finish_urb(f, f->owner[rsp->id], rsp);
		return;
	}
	if (f->raw_cb)
		f->raw_cb(f, rsp, f->raw_arg);
}

static int poll_urbs(struct pvusb_front *f)
{
	bool hostile = false;
	int n = 0;
	uint32_t avail;
	while ((avail = usbif_front_unconsumed(&f->urb, &hostile)) > 0) {
		for (uint32_t i = 0; i < avail; i++) {
			struct usbif_urb_response rsp;
			memcpy(&rsp, usbif_ring_slot(&f->urb, f->urb.cons), sizeof(rsp));
			f->urb.cons++;
			handle_response(f, &rsp);
			n++;
		}
	}
	if (hostile)
		f->dead = true;
	return n;
}

static int poll_conn(struct pvusb_front *f)
{
	bool hostile = false;
	int n = 0;
	uint32_t avail;
	while ((avail = usbif_front_unconsumed(&f->conn, &hostile)) > 0) {
		for (uint32_t i = 0; i < avail; i++) {
			struct usbif_conn_response ev;
			memcpy(&ev, usbif_ring_slot(&f->conn, f->conn.cons), sizeof(ev));
			f->conn.cons++;
			/* answers the backend posted before this event are read first,
			 * so a guest sees every in-flight URB end before the unplug */
			poll_urbs(f);
			if (ev.portnum < 1 || ev.portnum > f->num_ports || ev.speed > USBIF_SPEED_HIGH) {
				f->dead = true; /* fatal for the FE (C.2 rule 3) */
				return -EPIPE;
			}
			f->port_speed[ev.portnum] = ev.speed;
			f->port_events[ev.portnum]++;
			/* give the token back with the same id */
			struct usbif_conn_request *tok = usbif_ring_slot(&f->conn, f->conn.prod_pvt++);
			tok->id = ev.id;
			if (f->port_cb)
				f->port_cb(f, ev.portnum, ev.speed, f->port_arg);
			n++;
		}
	}
	if (n && usbif_front_push_requests(&f->conn))
		pvusb_front_kick(f);
	if (hostile)
		f->dead = true;
	return n;
}

int pvusb_front_poll(struct pvusb_front *f)
{
	if (f->dead)
		return -EPIPE;
	f->in_poll = true;
	int n = poll_urbs(f);
	f->in_poll = false;
	push_requests(f);
	int c = poll_conn(f);
	if (c < 0 || f->dead)
		return -EPIPE;
	return n + c;
}

static bool anything_arrived(void *arg)
{
	struct pvusb_front *f = arg;
	bool hostile = false;
	return usbif_front_unconsumed(&f->urb, &hostile) || usbif_front_unconsumed(&f->conn, &hostile) ||
	       hostile;
}

#define MAX_EXTRA_FDS 254

/* Sleep until the backend notifies, pvusbd goes away, one of the caller's
 * `extra` fds is ready, or timeout_ms passes. */
static int sleep_for_event(struct pvusb_front *f, struct pollfd *extra, unsigned nextra, int timeout_ms)
{
	bool hostile = false;
	if (usbif_front_final_check(&f->urb, &hostile) || usbif_front_final_check(&f->conn, &hostile))
		return 0;
	struct pollfd pfd[2 + MAX_EXTRA_FDS] = {{.fd = f->kick_fe, .events = POLLIN},
						{.fd = f->sock, .events = POLLIN}};
	for (unsigned i = 0; i < nextra; i++)
		pfd[2 + i] = extra[i];
	int rc = poll(pfd, 2 + nextra, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	for (unsigned i = 0; i < nextra; i++)
		extra[i].revents = pfd[2 + i].revents;
	if (pfd[0].revents & POLLIN) {
		uint64_t v;
		ssize_t n = read(f->kick_fe, &v, sizeof(v));
		(void)n;
	}
	if (pfd[1].revents & (POLLHUP | POLLERR | POLLIN)) {
		char c;
		if (recv(f->sock, &c, 1, MSG_DONTWAIT) == 0 || (pfd[1].revents & (POLLHUP | POLLERR))) {
			f->dead = true; /* pvusbd went away */
			return -EPIPE;
		}
	}
	return rc == 0 ? -ETIMEDOUT : 0;
}

int pvusb_front_wait(struct pvusb_front *f, int timeout_ms)
{
	return pvusb_front_wait_fds(f, NULL, 0, timeout_ms);
}

int pvusb_front_wait_fds(struct pvusb_front *f, struct pollfd *extra, unsigned nextra, int timeout_ms)
{
	if (nextra > MAX_EXTRA_FDS)
		return -EINVAL;
	for (unsigned i = 0; i < nextra; i++)
		extra[i].revents = 0;
	uint64_t start = pvusb_now_ns();
	uint64_t end = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		int n = pvusb_front_poll(f);
		if (n != 0)
			return n;
		uint64_t spin_end = start + (uint64_t)f->spin_ns;
		if (f->spin_ns > 0 && pvusb_now_ns() < spin_end &&
		    pvusb_spin_until(spin_end < end ? spin_end : end, anything_arrived, f))
			continue;
		uint64_t now = pvusb_now_ns();
		if (now >= end)
			return 0;
		int left = timeout_ms < 0 ? -1 : (int)((end - now + 999999) / 1000000);
		int rc = sleep_for_event(f, extra, nextra, left);
		if (rc == -EPIPE)
			return rc;
		for (unsigned i = 0; i < nextra; i++)
			if (extra[i].revents)
				return pvusb_front_poll(f);
	}
}

int pvusb_front_run(struct pvusb_front *f, struct pvusb_urb *u, int timeout_ms)
{
	int rc = pvusb_front_submit(f, u);
	if (rc < 0)
		return rc;
	uint64_t end = pvusb_now_ns() + (uint64_t)timeout_ms * 1000000u;
	bool unlinked = false;
	while (u->id >= 0) {
		uint64_t now = pvusb_now_ns();
		if (!unlinked && timeout_ms >= 0 && now >= end) {
			pvusb_front_unlink(f, u); /* the guest's own timeout (E.3) */
			unlinked = true;
		}
		int left = unlinked || timeout_ms < 0 ? 1000 : (int)((end - now) / 1000000 + 1);
		if (pvusb_front_wait(f, left) == -EPIPE)
			return -EPIPE;
	}
	return unlinked ? -ETIMEDOUT : u->status;
}

int pvusb_front_control(struct pvusb_front *f, uint8_t port, uint8_t addr, uint8_t bmRequestType,
			uint8_t bRequest, uint16_t wValue, uint16_t wIndex, void *data,
			uint16_t wLength, int timeout_ms)
{
	struct pvusb_urb u = {.port = port, .devaddr = addr, .type = USBIF_PIPE_TYPE_CTRL,
			      .in = (bmRequestType & USB_DIR_IN) != 0, .length = wLength,
			      .buffer = data, .id = -1};
	uint8_t setup[8] = {bmRequestType, bRequest, (uint8_t)wValue, (uint8_t)(wValue >> 8),
			    (uint8_t)wIndex, (uint8_t)(wIndex >> 8), (uint8_t)wLength,
			    (uint8_t)(wLength >> 8)};
	memcpy(u.setup, setup, 8);
	int rc = pvusb_front_run(f, &u, timeout_ms);
	return rc < 0 ? rc : (int)u.actual_length;
}

int pvusb_front_transfer(struct pvusb_front *f, uint8_t port, uint8_t addr, uint8_t type,
			 uint8_t ep_addr, void *data, uint32_t len, int timeout_ms)
{
	struct pvusb_urb u = {.port = port, .devaddr = addr, .type = type,
			      .endpoint = ep_addr & 0x0f, .in = (ep_addr & USB_DIR_IN) != 0,
			      .length = len, .buffer = data, .id = -1};
	int rc = pvusb_front_run(f, &u, timeout_ms);
	return rc < 0 ? rc : (int)u.actual_length;
}

/* ---- raw access ---- */

struct usbif_urb_sring *pvusb_front_urb_sring(struct pvusb_front *f)
{
	return (struct usbif_urb_sring *)page(f, PAGE_URB_RING);
}

struct usbif_conn_sring *pvusb_front_conn_sring(struct pvusb_front *f)
{
	return (struct usbif_conn_sring *)page(f, PAGE_CONN_RING);
}

uint32_t pvusb_front_gref(struct pvusb_front *f, const void *addr)
{
	return (uint32_t)(((const uint8_t *)addr - f->mem) / USBIF_PAGE_SIZE);
}

void pvusb_front_on_raw_response(struct pvusb_front *f,
				 void (*cb)(struct pvusb_front *, const struct usbif_urb_response *, void *),
				 void *arg)
{
	f->raw_cb = cb;
	f->raw_arg = arg;
}

bool pvusb_front_dead(const struct pvusb_front *f) { return f->dead; }
