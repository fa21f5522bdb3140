/* SPDX-License-Identifier: MIT */
/*
 * pvusb-usbipd's server loop (server.h). Everything a client sends is read
 * into our own memory once and validated before it is used: a client that
 * breaks the protocol loses its own connection and nothing else. Every
 * CMD_SUBMIT gets exactly one RET_SUBMIT, or, when the client unlinked it
 * in time, exactly one RET_UNLINK in its place (spec B.8).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "pvusb/front.h"
#include "pvusb/usbip.h"
#include "pvusb/usbmon.h"
#include "server.h"
#include "util/log.h"

#define MAX_PORTS 31
#define MAX_LISTEN 4
#define MAX_CONNS 64
#define CHUNK (64u * 1024) /* the most one ring request carries */
#define MAX_URB_LEN (16u * 1024 * 1024)
#define MAX_JOBS_PER_CONN 64   /* stop reading a client with this many URBs alive */
#define MAX_OUT_QUEUED (4u << 20) /* or this many bytes of replies it has not read */

struct conn;

/* One root port of our controller, and what we export from it. */
struct export {
	unsigned port;
	bool ready;  /* enumerated: the device answers at address `port` */
	bool dirty;  /* the conn ring said something since */
	struct pvusb_front_dev dev;
	uint8_t alt[32]; /* current alternate setting per interface number */
	struct conn *conn; /* the client that imported it */
};

/* One CMD_SUBMIT, from its header to its reply. Bulk and interrupt URBs
 * longer than one ring request go to the device in CHUNK pieces, one after
 * the other (a short IN piece ends the URB, as it would on a host). */
struct job {
	struct job *next, *prev; /* the connection's jobs */
	struct job *wait_next;   /* the queue of jobs waiting for a ring slot */
	struct conn *c;
	struct usbip_header h;
	uint8_t type; /* enum usbif_xfer_type */
	uint16_t maxpacket;
	bool in, waiting, in_flight, unlinked, unlink_sent_to_ring, zlp_done;
	bool pooled;      /* buf is a block of the frontend's shared pool (zero copy) */
	bool no_endpoint; /* the device has no such endpoint: answered -EINVAL once read */
	uint32_t unlink_seqnum; /* the CMD_UNLINK to answer when this job ends */
	uint8_t *buf;
	uint32_t len, done, np;
	struct usbif_iso_desc *iso;
	struct pvusb_urb urb;
};

enum conn_state { C_REQUEST, C_URBS, C_CLOSING };

struct conn {
	int fd;
	enum conn_state state;
	struct export *exp;
	uint32_t devid;
	/* input: a header, then (CMD_SUBMIT) its payload */
	uint8_t hdr[USBIP_HEADER_SIZE];
	size_t hdr_need, hdr_got;
	struct job *reading; /* the submit whose payload is being read: */
	size_t data_need, data_got; /* its OUT data, straight into its buffer, */
	uint8_t *payload;           /* then its iso descriptors */
	size_t payload_need, payload_got;
	/* output: replies not yet taken by the socket */
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	bool close_after_flush;
	struct job *jobs;
	unsigned njobs;
};

struct server {
	const struct usbip_server_opts *o;
	struct pvusb_front *f;
	unsigned nports;
	struct export ports[MAX_PORTS + 1];
	int listen_fd[MAX_LISTEN];
	unsigned nlisten;
	int sig_fd;
	struct conn *conns[MAX_CONNS];
	unsigned nconns;
	struct job *wait_head, *wait_tail;
	FILE *pcap; /* --pcap: every URB as usbmon records */
	struct block *free_blocks; /* CHUNK-sized blocks of the shared pool */
	bool unlinks_owed; /* an unlink found the ring full: retried each pass */
	bool stop;
};

static struct server *the_server; /* for the completion callback */

/* ---- buffers: the frontend library moves data in place when they lie in
 * its shared pool, so a job of up to CHUNK bytes borrows one such block
 * (the pool holds POOL_BLOCKS of them); longer jobs, or all when the pool is
 * used up, take ordinary memory that the library copies through. ---- */

#define POOL_BLOCKS 128

struct block {
	struct block *next;
};

static uint8_t *buf_get(struct server *s, uint32_t len, bool *pooled)
{
	*pooled = false;
	if (len > 0 && len <= CHUNK) {
		struct block *b = s->free_blocks;
		if (b) {
			s->free_blocks = b->next;
			*pooled = true;
			return (uint8_t *)b;
		}
		uint8_t *p = pvusb_front_alloc(s->f, CHUNK);
		if (p) {
			*pooled = true;
			return p;
		}
	}
	return malloc(len ? len : 1);
}

static void buf_put(struct server *s, uint8_t *p, bool pooled)
{
	if (!pooled) {
		free(p);
		return;
	}
	struct block *b = (struct block *)p;
	b->next = s->free_blocks;
	s->free_blocks = b;
}

/* ---- output ---- */

static void conn_close(struct server *s, struct conn *c);

static void out_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				c->state = C_CLOSING; /* the client went away */
			break;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
}

/* Send a reply straight from its buffers when nothing waits before it; the
 * bytes sent, or 0 when the socket took nothing. */
static size_t send_direct(struct conn *c, const void *a, size_t alen, const void *b, size_t blen)
{
	if (c->out_len)
		return 0; /* keep the order */
	struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = blen ? 2 : 1};
	ssize_t n;
	do
		n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno != EAGAIN)
			c->state = C_CLOSING; /* the client went away */
		return 0;
	}
	return (size_t)n;
}

/* Send one whole reply (never interleaved with another); what the socket
 * does not take now is queued. */
static void out_put(struct conn *c, const void *a, size_t alen, const void *b, size_t blen)
{
	if (c->state == C_CLOSING)
		return;
	size_t sent = send_direct(c, a, alen, b, blen);
	if (c->state == C_CLOSING || sent == alen + blen)
		return;
	if (sent >= alen) { /* the header went: queue the rest of the data */
		b = (const uint8_t *)b + (sent - alen);
		blen -= sent - alen;
		alen = 0;
	} else {
		a = (const uint8_t *)a + sent;
		alen -= sent;
	}
	size_t need = c->out_len + alen + blen;
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < need)
			cap *= 2;
		uint8_t *p = realloc(c->out, cap);
		if (!p) {
			log_err("usbip: out of memory for a reply; closing the connection");
			c->state = C_CLOSING;
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	if (alen)
		memcpy(c->out + c->out_len, a, alen);
	if (blen)
		memcpy(c->out + c->out_len + alen, b, blen);
	c->out_len += alen + blen;
}

static void send_ret_unlink(struct conn *c, uint32_t seqnum, int32_t status)
{
	struct usbip_header h = {.command = USBIP_RET_UNLINK, .seqnum = seqnum};
	h.u.ret_unlink.status = status;
	uint8_t w[USBIP_HEADER_SIZE];
	usbip_put_header(w, &h);
	out_put(c, w, sizeof(w), NULL, 0);
}

/* RET_SUBMIT: IN data packed per packet for isochronous (B.6). */
static void send_ret_submit(struct conn *c, struct job *j, int32_t status)
{
	struct usbip_header h = {.command = USBIP_RET_SUBMIT, .seqnum = j->h.seqnum};
	uint32_t actual = j->done;
	uint8_t *data = j->buf, *packed = NULL;
	size_t dlen = j->in ? actual : 0;
	if (j->type == USBIF_PIPE_TYPE_ISOC) {
		size_t total = 0;
		for (uint32_t k = 0; k < j->np; k++)
			total += j->iso[k].actual_length;
		packed = malloc(total + (size_t)j->np * USBIP_ISO_DESC_SIZE + 1);
		if (!packed) {
			c->state = C_CLOSING;
			return;
		}
		size_t at = 0;
		for (uint32_t k = 0; k < j->np && j->in; k++) {
			memcpy(packed + at, j->buf + j->iso[k].offset, j->iso[k].actual_length);
			at += j->iso[k].actual_length;
		}
		actual = j->in ? (uint32_t)at : j->done;
		for (uint32_t k = 0; k < j->np; k++) {
			struct usbip_iso_desc d = {.offset = j->iso[k].offset, .length = j->iso[k].length,
						   .actual_length = j->iso[k].actual_length,
						   .status = j->iso[k].status};
			usbip_put_iso_desc(packed + at, &d);
			at += USBIP_ISO_DESC_SIZE;
		}
		data = packed;
		dlen = at;
		h.u.ret_submit.number_of_packets = (int32_t)j->np;
		h.u.ret_submit.start_frame = j->urb.start_frame;
		h.u.ret_submit.error_count = j->urb.error_count;
	}
	h.u.ret_submit.status = status;
	h.u.ret_submit.actual_length = (int32_t)actual;
	uint8_t w[USBIP_HEADER_SIZE];
	usbip_put_header(w, &h);
	out_put(c, w, sizeof(w), data, dlen);
	free(packed);
}

/* ---- jobs ---- */

static void job_free(struct job *j)
{
	struct conn *c = j->c;
	if (j->prev)
		j->prev->next = j->next;
	else
		c->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	c->njobs--;
	buf_put(the_server, j->buf, j->pooled);
	free(j->iso);
	free(j);
}

static void wait_remove(struct server *s, struct job *j)
{
	struct job **pp = &s->wait_head, *prev = NULL;
	while (*pp && *pp != j) {
		prev = *pp;
		pp = &(*pp)->wait_next;
	}
	if (!*pp)
		return;
	*pp = j->wait_next;
	if (s->wait_tail == j)
		s->wait_tail = prev;
	j->wait_next = NULL;
	j->waiting = false;
}

/* An unlinked job that the device did not finish: RET_UNLINK -ECONNRESET
 * stands in for its RET_SUBMIT (B.8). */
static bool cancelled(const struct job *j, int32_t status)
{
	return j->unlinked && (status == USBIF_STATUS_CONNRESET || status == USBIF_STATUS_NOENT ||
			       status == USBIF_STATUS_SHUTDOWN);
}

/* ---- capture (--pcap): CMD_SUBMIT as 'S', its end as 'C' (spec D.6) ---- */

static uint32_t iso_extent(const struct job *j)
{
	uint32_t end = 0;
	for (uint32_t k = 0; k < j->np; k++)
		if (j->iso[k].offset + j->iso[k].actual_length > end)
			end = j->iso[k].offset + j->iso[k].actual_length;
	return end;
}

static void capture(const struct job *j, char type, int32_t status)
{
	struct server *s = the_server;
	if (!s->pcap)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct usbmon_iso iso[USBIP_MAX_ISO_PACKETS];
	bool submit = type == 'S', gone = !submit && cancelled(j, status);
	struct usbmon_event e = {
		.id = (uint64_t)j->c->devid << 32 | j->h.seqnum, .type = type, .xfer_type = j->type,
		.epnum = (uint8_t)(j->h.ep | (j->in ? 0x80 : 0)), .devnum = (uint8_t)(j->c->devid & 0xff),
		.busnum = (uint16_t)(j->c->devid >> 16), .ts_sec = ts.tv_sec, .ts_usec = (int32_t)(ts.tv_nsec / 1000),
		.status = submit ? -115 : gone ? USBIF_STATUS_CONNRESET : status,
		.length = submit ? j->len : gone ? 0 : j->done,
		.interval = j->h.u.submit.interval, .start_frame = j->urb.start_frame,
		.error_count = submit ? 0 : j->urb.error_count, .xfer_flags = j->h.u.submit.transfer_flags,
		.iso = iso, .ndesc = j->np,
	};
	if (submit && j->type == USBIF_PIPE_TYPE_CTRL) {
		e.has_setup = true;
		memcpy(e.setup, j->h.u.submit.setup, 8);
	}
	for (uint32_t k = 0; k < j->np; k++)
		iso[k] = (struct usbmon_iso){submit ? 0 : j->iso[k].status, j->iso[k].offset,
					     submit ? j->iso[k].length : j->iso[k].actual_length};
	if (submit != j->in) { /* OUT data on the submit, IN data on the completion */
		e.data = j->buf;
		e.data_len = gone ? 0 : j->type == USBIF_PIPE_TYPE_ISOC ? (submit ? j->len : iso_extent(j))
										: (submit ? j->len : j->done);
	}
	size_t n = usbmon_record_size(&e);
	uint8_t *rec = malloc(n);
	if (!rec)
		return;
	usbmon_put_record(rec, &e);
	if (fwrite(rec, 1, n, s->pcap) != n || fflush(s->pcap) != 0) {
		log_err("usbip: writing the capture failed (%s); capture stopped", strerror(errno));
		fclose(s->pcap);
		s->pcap = NULL;
	}
	free(rec);
}

/* The job is over: its one reply (B.8: RET_SUBMIT before RET_UNLINK when
 * the transfer won the race; RET_UNLINK alone when it was cancelled). */
static void job_finish(struct job *j, int32_t status)
{
	struct conn *c = j->c;
	capture(j, 'C', status);
	bool gone = cancelled(j, status);
	if (!gone)
		send_ret_submit(c, j, status);
	if (j->unlinked)
		send_ret_unlink(c, j->unlink_seqnum, gone ? USBIF_STATUS_CONNRESET : 0);
	job_free(j);
}

static void on_urb_done(struct pvusb_urb *u);

/* Point the ring URB at the next piece of the job. */
static void job_prepare_chunk(struct job *j)
{
	struct pvusb_urb *u = &j->urb;
	uint32_t left = j->len - j->done;
	u->length = left > CHUNK ? CHUNK : left;
	u->buffer = u->length ? j->buf + j->done : NULL;
	if (j->type == USBIF_PIPE_TYPE_ISOC || j->type == USBIF_PIPE_TYPE_CTRL)
		u->length = j->len, u->buffer = j->len ? j->buf : NULL;
}

static void wait_push(struct server *s, struct job *j)
{
	j->waiting = true;
	j->wait_next = NULL;
	if (s->wait_tail)
		s->wait_tail->wait_next = j;
	else
		s->wait_head = j;
	s->wait_tail = j;
}

/* Hand the job's current piece to the ring: -EBUSY when the ring is full
 * (the job is untouched), else 0 (in flight, or answered when refused). */
static int submit_job(struct server *s, struct job *j)
{
	int rc = pvusb_front_submit(s->f, &j->urb);
	if (rc == -EBUSY)
		return rc;
	if (rc < 0)
		job_finish(j, rc == -EINVAL ? USBIF_STATUS_INVAL : USBIF_STATUS_SHUTDOWN);
	else
		j->in_flight = true;
	return 0;
}

/* Give the job's next piece to the ring, or queue it, behind any job that
 * waits already, until a slot frees. */
static void job_start(struct server *s, struct job *j)
{
	job_prepare_chunk(j);
	if (s->wait_head || submit_job(s, j) == -EBUSY)
		wait_push(s, j);
}

/* Submit waiting jobs while the ring has room. */
static void drain_waiting(struct server *s)
{
	while (s->wait_head) {
		struct job *j = s->wait_head;
		s->wait_head = j->wait_next; /* off the queue first: submit_job may free it */
		if (!s->wait_head)
			s->wait_tail = NULL;
		j->waiting = false;
		j->wait_next = NULL;
		if (submit_job(s, j) == -EBUSY) { /* back at the head */
			j->waiting = true;
			j->wait_next = s->wait_head;
			s->wait_head = j;
			if (!s->wait_tail)
				s->wait_tail = j;
			return;
		}
	}
}

/* Ask the ring to cancel an in-flight job; when the ring is full, the loop
 * asks again on its next pass (retry_unlinks). */
static void ask_unlink(struct server *s, struct job *j)
{
	if (j->unlink_sent_to_ring)
		return;
	if (pvusb_front_unlink(s->f, &j->urb) == -EBUSY)
		s->unlinks_owed = true;
	else
		j->unlink_sent_to_ring = true;
}

static void retry_unlinks(struct server *s)
{
	if (!s->unlinks_owed)
		return;
	s->unlinks_owed = false;
	for (unsigned i = 0; i < s->nconns; i++)
		for (struct job *j = s->conns[i]->jobs; j; j = j->next)
			if (j->in_flight && j->unlinked)
				ask_unlink(s, j);
}

static bool needs_zlp(const struct job *j)
{
	return !j->in && j->type == USBIF_PIPE_TYPE_BULK &&
	       (j->h.u.submit.transfer_flags & USBIP_URB_ZERO_PACKET) && j->len && j->maxpacket &&
	       j->len % j->maxpacket == 0 && !j->zlp_done;
}

static void on_urb_done(struct pvusb_urb *u)
{
	struct job *j = u->user;
	struct server *s = the_server;
	j->in_flight = false;
	j->unlink_sent_to_ring = false;
	uint32_t got = u->actual_length;
	for (uint32_t k = 0; k < j->np; k++) /* the packets are copied by these lengths */
		if (j->iso[k].actual_length > j->iso[k].length)
			j->iso[k].actual_length = j->iso[k].length;
	if (j->type == USBIF_PIPE_TYPE_ISOC || j->type == USBIF_PIPE_TYPE_CTRL) {
		j->done = got;
	} else {
		j->done += got;
		bool full = got == u->length;
		if (u->status == 0 && !j->unlinked && j->c->state != C_CLOSING) {
			if (full && j->done < j->len) {
				job_start(s, j);
				return;
			}
			if (full && needs_zlp(j)) {
				j->zlp_done = true; /* the next piece is empty: a zero-length packet */
				job_start(s, j);
				return;
			}
		}
	}
	int32_t status = u->status;
	if (status == 0 && j->in && j->type != USBIF_PIPE_TYPE_ISOC && j->done < j->len &&
	    (j->h.u.submit.transfer_flags & USBIP_URB_SHORT_NOT_OK))
		status = USBIF_STATUS_REMOTEIO; /* as a host controller reports it */
	if (status == 0 && j->type == USBIF_PIPE_TYPE_CTRL && j->c->exp) {
		/* the client's view of alternate settings, for endpoint types */
		const uint8_t *st = j->h.u.submit.setup;
		if (st[0] == 0x01 && st[1] == USB_REQ_SET_INTERFACE && st[4] < 32)
			j->c->exp->alt[st[4]] = st[2];
		else if (st[0] == 0x00 && st[1] == USB_REQ_SET_CONFIGURATION)
			memset(j->c->exp->alt, 0, sizeof(j->c->exp->alt));
	}
	if (j->c->state == C_CLOSING) {
		capture(j, 'C', status);
		job_free(j);
	} else {
		job_finish(j, status);
	}
}

/* ---- endpoints: USB/IP names only the endpoint number and direction ---- */

struct ep_info {
	int type; /* enum usbif_xfer_type, or -1 when the device has no such endpoint */
	uint16_t maxpacket;
};

/* The configuration's descriptors in order, starting from p == NULL; NULL
 * past the last one or at one whose length does not fit. */
static const uint8_t *next_desc(const struct export *e, const uint8_t *p)
{
	const uint8_t *end = e->dev.config + e->dev.config_len;
	p = p ? p + p[0] : e->dev.config;
	return end - p >= 2 && p[0] >= 2 && p[0] <= end - p ? p : NULL;
}

/* Find endpoint `addr` in the configuration, preferring the alternate setting
 * the client selected on its interface. */
static struct ep_info find_ep(const struct export *e, uint8_t addr)
{
	static const int type_of[4] = {USBIF_PIPE_TYPE_CTRL, USBIF_PIPE_TYPE_ISOC, USBIF_PIPE_TYPE_BULK,
				       USBIF_PIPE_TYPE_INT};
	struct ep_info any = {.type = -1}, cur = {.type = -1};
	int intf = -1, alt = -1;
	for (const uint8_t *p = NULL; (p = next_desc(e, p));) {
		if (p[1] == 4 && p[0] >= 9) {
			intf = p[2];
			alt = p[3];
		} else if (p[1] == 5 && p[0] >= 7 && p[2] == addr) {
			struct ep_info ei = {type_of[p[3] & 3], (uint16_t)((p[4] | p[5] << 8) & 0x7ff)};
			if (any.type < 0)
				any = ei;
			if (intf >= 0 && intf < 32 && e->alt[intf] == alt)
				cur = ei;
		}
	}
	return cur.type >= 0 ? cur : any;
}

/* ---- the URB phase ---- */

static struct job *find_job(struct conn *c, uint32_t seqnum)
{
	for (struct job *j = c->jobs; j; j = j->next)
		if (j->h.seqnum == seqnum)
			return j;
	return NULL;
}

static void handle_unlink(struct server *s, struct conn *c, const struct usbip_header *h)
{
	struct job *j = find_job(c, h->u.unlink.unlink_seqnum);
	/* (a job whose payload is still being read cannot be named: on a byte
	 * stream this unlink came after all of it) */
	if (!j || j->unlinked) {
		send_ret_unlink(c, h->seqnum, 0); /* unknown or finished: B.8 case 3 */
		return;
	}
	j->unlinked = true;
	j->unlink_seqnum = h->seqnum;
	if (j->waiting) {
		wait_remove(s, j);
		job_finish(j, USBIF_STATUS_CONNRESET);
	} else if (j->in_flight) {
		ask_unlink(s, j);
	}
}

/* A CMD_SUBMIT's header is in; set up the job and what is left to read. */
static int start_submit(struct server *s, struct conn *c, const struct usbip_header *h)
{
	if (h->devid != c->devid)
		return -EPROTO; /* as Linux's stub: the client is confused */
	uint8_t addr = (uint8_t)(h->ep | (h->direction == USBIP_DIR_IN ? 0x80 : 0));
	struct ep_info ei = h->ep == 0 ? (struct ep_info){USBIF_PIPE_TYPE_CTRL, 64} : find_ep(c->exp, addr);
	bool iso = ei.type == USBIF_PIPE_TYPE_ISOC;
	int64_t payload = usbip_submit_payload(h, iso);
	if (payload < 0)
		return -EPROTO;
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->c = c;
	j->h = *h;
	j->in = h->direction == USBIP_DIR_IN;
	j->len = (uint32_t)h->u.submit.transfer_buffer_length;
	j->type = ei.type < 0 ? USBIF_PIPE_TYPE_BULK : (uint8_t)ei.type;
	j->maxpacket = ei.maxpacket;
	j->np = iso ? (uint32_t)h->u.submit.number_of_packets : 0;
	j->buf = buf_get(s, j->len, &j->pooled);
	j->iso = iso ? calloc(j->np, sizeof(*j->iso)) : NULL;
	size_t data = j->in ? 0 : j->len;
	size_t descs = (size_t)payload - data;
	uint8_t *pl = descs ? malloc(descs) : NULL;
	if (!j->buf || (iso && !j->iso) || (descs && !pl)) {
		if (j->buf)
			buf_put(s, j->buf, j->pooled);
		free(j->iso);
		free(j);
		free(pl);
		return -ENOMEM;
	}
	j->next = c->jobs;
	if (c->jobs)
		c->jobs->prev = j;
	c->jobs = j;
	c->njobs++;
	j->no_endpoint = ei.type < 0;
	c->reading = j;
	c->data_need = data;
	c->data_got = 0;
	c->payload = pl;
	c->payload_need = descs;
	c->payload_got = 0;
	return 0;
}

/* The submit's payload is in: fill the ring URB and send it on. */
static int finish_submit(struct server *s, struct conn *c)
{
	struct job *j = c->reading;
	c->reading = NULL;
	uint8_t *pl = c->payload;
	c->payload = NULL;
	for (uint32_t k = 0; k < j->np; k++) {
		struct usbip_iso_desc d;
		if (usbip_get_iso_desc(pl + (size_t)k * USBIP_ISO_DESC_SIZE, j->len, &d) < 0) {
			free(pl);
			job_free(j); /* never sent anywhere: nothing will answer it */
			return -EPROTO;
		}
		j->iso[k] = (struct usbif_iso_desc){.offset = d.offset, .length = d.length};
	}
	free(pl);
	struct pvusb_urb *u = &j->urb;
	u->port = (uint8_t)c->exp->port;
	u->devaddr = (uint8_t)c->exp->port;
	u->endpoint = (uint8_t)j->h.ep;
	u->type = j->type;
	u->in = j->in;
	u->interval = (uint16_t)(j->h.u.submit.interval < 0 ? 0 : j->h.u.submit.interval > 0xffff ? 0xffff : j->h.u.submit.interval);
	memcpy(u->setup, j->h.u.submit.setup, 8);
	u->npackets = j->np;
	u->iso = j->iso;
	u->complete = on_urb_done;
	u->user = j;
	u->id = -1;
	capture(j, 'S', 0);
	/* one ring request carries at most 64 KiB: only bulk and interrupt split */
	bool one_request = j->type == USBIF_PIPE_TYPE_ISOC || j->type == USBIF_PIPE_TYPE_CTRL;
	if (j->no_endpoint || (one_request && j->len > CHUNK))
		job_finish(j, USBIF_STATUS_INVAL);
	else
		job_start(s, j);
	return 0;
}

/* Read what the socket has; -EPROTO/-ECONNRESET end the connection. */
static int read_urbs(struct server *s, struct conn *c)
{
	for (;;) {
		uint8_t *dst;
		size_t want;
		if (c->reading && c->data_got < c->data_need) {
			dst = c->reading->buf + c->data_got;
			want = c->data_need - c->data_got;
		} else if (c->reading) {
			dst = c->payload + c->payload_got;
			want = c->payload_need - c->payload_got;
		} else {
			dst = c->hdr + c->hdr_got;
			want = USBIP_HEADER_SIZE - c->hdr_got;
		}
		ssize_t n = want ? recv(c->fd, dst, want, 0) : 0;
		if (n == 0 && want)
			return -ECONNRESET;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -ECONNRESET;
		if (c->reading) {
			if (c->data_got < c->data_need)
				c->data_got += (size_t)n;
			else
				c->payload_got += (size_t)n;
			if (c->data_got == c->data_need && c->payload_got == c->payload_need) {
				int rc = finish_submit(s, c);
				if (rc < 0)
					return rc;
			}
		} else if ((c->hdr_got += (size_t)n) == USBIP_HEADER_SIZE) {
			c->hdr_got = 0;
			struct usbip_header h;
			if (usbip_get_cmd_header(c->hdr, &h, MAX_URB_LEN) < 0)
				return -EPROTO;
			if (h.command == USBIP_CMD_UNLINK) {
				handle_unlink(s, c, &h);
			} else {
				int rc = start_submit(s, c, &h);
				if (rc < 0)
					return rc;
				if (c->data_need == 0 && c->payload_need == 0 && (rc = finish_submit(s, c)) < 0)
					return rc;
			}
		}
		if (c->njobs >= MAX_JOBS_PER_CONN || c->out_len >= MAX_OUT_QUEUED)
			return 0; /* let the device and the client catch up first */
	}
}

/* ---- the import phase ---- */

static void device_record(const struct server *s, const struct export *e, struct usbip_device *d)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->busid, sizeof(d->busid), "pvusb-%u", e->port);
	snprintf(d->path, sizeof(d->path), "/sys/devices/pvusb/%s/%u/%s", s->o->frontend, s->o->devid,
		 d->busid);
	d->busnum = (s->o->devid + 1) & 0xff;
	d->devnum = e->port;
	d->speed = e->dev.speed; /* USBIF_SPEED_LOW/FULL/HIGH are enum usb_device_speed's 1/2/3 */
	const uint8_t *dd = e->dev.dev_desc;
	d->bcd_device = (uint16_t)(dd[12] | dd[13] << 8);
	d->id_vendor = (uint16_t)(dd[8] | dd[9] << 8);
	d->id_product = (uint16_t)(dd[10] | dd[11] << 8);
	d->dev_class = dd[4];
	d->dev_subclass = dd[5];
	d->dev_protocol = dd[6];
	d->num_configurations = dd[17];
	d->configuration_value = e->dev.config_len >= 9 ? e->dev.config[5] : 0;
	d->num_interfaces = e->dev.config_len >= 9 ? e->dev.config[4] : 0;
}

/* The interfaces (alternate setting 0) of the configuration, at most `max`. */
static unsigned interfaces(const struct export *e, struct usbip_interface *out, unsigned max)
{
	unsigned n = 0;
	for (const uint8_t *p = NULL; n < max && (p = next_desc(e, p));)
		if (p[1] == 4 && p[0] >= 9 && p[3] == 0)
			out[n++] = (struct usbip_interface){p[5], p[6], p[7]};
	return n;
}

static void reply_devlist(struct server *s, struct conn *c)
{
	uint8_t head[USBIP_OP_COMMON_SIZE + 4];
	usbip_put_op_common(head, USBIP_OP_REP_DEVLIST, USBIP_ST_OK);
	uint32_t ndev = 0;
	for (unsigned p = 1; p <= s->nports; p++)
		ndev += s->ports[p].ready && !s->ports[p].conn;
	head[8] = (uint8_t)(ndev >> 24), head[9] = (uint8_t)(ndev >> 16);
	head[10] = (uint8_t)(ndev >> 8), head[11] = (uint8_t)ndev;
	out_put(c, head, sizeof(head), NULL, 0);
	for (unsigned p = 1; p <= s->nports; p++) {
		struct export *e = &s->ports[p];
		if (!e->ready || e->conn)
			continue;
		struct usbip_device d;
		device_record(s, e, &d);
		struct usbip_interface ifs[32];
		unsigned n = interfaces(e, ifs, 32);
		d.num_interfaces = (uint8_t)n; /* exactly the records that follow (C.1) */
		uint8_t rec[USBIP_DEVICE_SIZE + 32 * USBIP_INTERFACE_SIZE];
		usbip_put_device(rec, &d);
		for (unsigned i = 0; i < n; i++)
			usbip_put_interface(rec + USBIP_DEVICE_SIZE + i * USBIP_INTERFACE_SIZE, &ifs[i]);
		out_put(c, rec, USBIP_DEVICE_SIZE + n * USBIP_INTERFACE_SIZE, NULL, 0);
	}
	c->close_after_flush = true;
}

static struct export *find_busid(struct server *s, const char *busid)
{
	for (unsigned p = 1; p <= s->nports; p++) {
		char b[USBIP_BUSID_SIZE];
		snprintf(b, sizeof(b), "pvusb-%u", p);
		if (strcmp(b, busid) == 0)
			return &s->ports[p];
	}
	return NULL;
}

static void reply_import(struct server *s, struct conn *c, const char *busid)
{
	struct export *e = find_busid(s, busid);
	uint8_t head[USBIP_OP_COMMON_SIZE];
	uint32_t st = !e || !e->ready ? USBIP_ST_NODEV : e->conn ? USBIP_ST_DEV_BUSY : USBIP_ST_OK;
	usbip_put_op_common(head, USBIP_OP_REP_IMPORT, st);
	if (st != USBIP_ST_OK) {
		log_info("usbip: import of '%s' refused: %s", busid,
			 st == USBIP_ST_NODEV ? "no such device" : "already imported");
		out_put(c, head, sizeof(head), NULL, 0);
		c->close_after_flush = true;
		return;
	}
	struct usbip_device d;
	device_record(s, e, &d);
	uint8_t rec[USBIP_DEVICE_SIZE];
	usbip_put_device(rec, &d);
	out_put(c, head, sizeof(head), rec, sizeof(rec));
	e->conn = c;
	c->exp = e;
	c->devid = d.busnum << 16 | d.devnum;
	c->state = C_URBS;
	memset(e->alt, 0, sizeof(e->alt));
	log_info("usbip: %s (port %u, %04x:%04x) imported", busid, e->port, d.id_vendor, d.id_product);
}

/* One request per connection before the URB phase (A.1). */
static int read_request(struct server *s, struct conn *c)
{
	size_t want = c->hdr_need - c->hdr_got;
	ssize_t n = recv(c->fd, c->hdr + c->hdr_got, want, 0);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -ECONNRESET;
	c->hdr_got += (size_t)n;
	if (c->hdr_got < c->hdr_need)
		return 0;
	struct usbip_op_common op;
	if (usbip_get_op_common(c->hdr, &op) < 0)
		return -EPROTO;
	if (op.code == USBIP_OP_REQ_DEVLIST) {
		reply_devlist(s, c);
	} else if (op.code == USBIP_OP_REQ_IMPORT) {
		if (c->hdr_need == USBIP_OP_COMMON_SIZE) {
			c->hdr_need = USBIP_IMPORT_REQ_SIZE; /* the busid follows */
			return 0;
		}
		char busid[USBIP_BUSID_SIZE];
		if (usbip_get_busid(c->hdr + USBIP_OP_COMMON_SIZE, busid) < 0)
			return -EPROTO;
		c->hdr_got = 0;
		reply_import(s, c, busid);
	} else {
		return -EPROTO; /* unknown opcode: no reply, just a close (A.1) */
	}
	return 0;
}

/* ---- connections ---- */

/* Closing, by us or because the socket failed: drop what the device has not
 * seen, cancel what it has (those jobs end in on_urb_done, with no reply).
 * Safe to call again. */
static void conn_close(struct server *s, struct conn *c)
{
	c->state = C_CLOSING;
	if (c->exp && c->exp->conn == c) {
		log_info("usbip: pvusb-%u released", c->exp->port);
		c->exp->conn = NULL;
		c->exp->dirty = true; /* enumerate again for the next client */
	}
	for (struct job *j = c->jobs, *next; j; j = next) {
		next = j->next;
		if (j == c->reading) {
			c->reading = NULL;
			job_free(j);
		} else if (j->waiting) {
			wait_remove(s, j);
			job_free(j);
		} else if (j->in_flight) {
			j->unlinked = true;
			ask_unlink(s, j);
		}
	}
	free(c->payload);
	c->payload = NULL;
}

static void conn_add(struct server *s, int fd)
{
	struct conn *c = s->nconns < MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		log_warn("usbip: too many connections; refusing one");
		close(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	c->fd = fd;
	c->hdr_need = USBIP_OP_COMMON_SIZE;
	s->conns[s->nconns++] = c;
}

/* Free connections that are closed and have no URB left at the device. */
static void reap(struct server *s)
{
	for (unsigned i = 0; i < s->nconns;) {
		struct conn *c = s->conns[i];
		if (c->state != C_CLOSING && c->close_after_flush && c->out_len == 0)
			conn_close(s, c);
		if (c->state == C_CLOSING && c->fd >= 0) {
			conn_close(s, c); /* also when a failed send set C_CLOSING */
			close(c->fd);
			c->fd = -1;
		}
		if (c->state == C_CLOSING && c->njobs == 0) {
			free(c->out);
			free(c);
			s->conns[i] = s->conns[--s->nconns];
			continue;
		}
		i++;
	}
}

static void conn_event(struct server *s, struct conn *c, short revents)
{
	if (c->state == C_CLOSING)
		return;
	if (revents & POLLOUT)
		out_flush(c);
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		int rc = c->state == C_URBS ? read_urbs(s, c) : read_request(s, c);
		if (rc < 0) {
			if (rc == -EPROTO)
				log_warn("usbip: a client broke the protocol; closing its connection");
			conn_close(s, c);
		}
	}
}

/* ---- ports ---- */

static void on_port(struct pvusb_front *f, unsigned port, uint8_t speed, void *arg)
{
	(void)f;
	(void)speed;
	struct server *s = arg;
	if (port >= 1 && port <= s->nports)
		s->ports[port].dirty = true;
}

/* URBs of a closed client still at the device on this port. */
static bool port_busy(const struct server *s, const struct export *e)
{
	for (unsigned i = 0; i < s->nconns; i++)
		if (s->conns[i]->exp == e && s->conns[i]->njobs)
			return true;
	return false;
}

/* What the conn ring said: a device to enumerate, or one gone. A device a
 * client left is enumerated again (fresh address and configuration for the
 * next client) once the URBs that client left behind are answered. */
static void update_port(struct server *s, struct export *e)
{
	uint8_t speed = pvusb_front_port_speed(s->f, e->port);
	if (speed && !e->conn && port_busy(s, e))
		return; /* stays dirty: the loop comes back soon */
	e->dirty = false;
	if (e->conn) {
		if (speed)
			return; /* a reset of the imported device: the client's business */
		log_info("usbip: the device on port %u went away; closing its client", e->port);
		conn_close(s, e->conn);
	}
	e->ready = false;
	if (!speed)
		return;
	int rc = pvusb_front_enumerate(s->f, e->port, (uint8_t)e->port, &e->dev);
	if (rc == -EBUSY) {
		e->dirty = true; /* other clients' URBs fill the ring: try again soon */
		return;
	}
	if (rc < 0) {
		log_warn("usbip: port %u: the device did not enumerate (%s)", e->port, strerror(-rc));
		return;
	}
	e->ready = true;
	log_info("usbip: exporting pvusb-%u: %04x:%04x %s", e->port, e->dev.dev_desc[8] | e->dev.dev_desc[9] << 8,
		 e->dev.dev_desc[10] | e->dev.dev_desc[11] << 8, e->dev.product);
}

/* ---- setup and the loop ---- */

static int listen_on(struct server *s)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	int rc = getaddrinfo(s->o->listen, s->o->port, &hints, &res);
	if (rc != 0) {
		log_err("usbip: cannot resolve %s port %s: %s", s->o->listen ? s->o->listen : "*", s->o->port,
			gai_strerror(rc));
		return -EINVAL;
	}
	int err = 0;
	for (struct addrinfo *a = res; a && s->nlisten < MAX_LISTEN; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (a->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 16) < 0) {
			err = errno;
			close(fd);
			continue;
		}
		s->listen_fd[s->nlisten++] = fd;
	}
	freeaddrinfo(res);
	if (s->nlisten == 0) {
		log_err("usbip: cannot listen on %s port %s: %s", s->o->listen ? s->o->listen : "*", s->o->port,
			strerror(err ? err : EADDRNOTAVAIL));
		return -(err ? err : EADDRNOTAVAIL);
	}
	return 0;
}

static int setup(struct server *s)
{
	char err[256];
	struct pvusb_front_opts fo = {.pool_pages = POOL_BLOCKS * (CHUNK / 4096), .spin_us = -1};
	int rc = pvusb_front_connect(s->o->sock_path, s->o->frontend, s->o->devid, &fo, &s->f, err, sizeof(err));
	if (rc < 0) {
		log_err("usbip: cannot connect to controller %s/%u: %s", s->o->frontend, s->o->devid, err);
		return rc;
	}
	s->nports = pvusb_front_num_ports(s->f);
	if (s->nports > MAX_PORTS)
		s->nports = MAX_PORTS;
	for (unsigned p = 1; p <= s->nports; p++)
		s->ports[p] = (struct export){.port = p, .dirty = true};
	pvusb_front_on_port(s->f, on_port, s);
	if (s->o->pcap_path) {
		s->pcap = fopen(s->o->pcap_path, "we");
		uint8_t gh[USBMON_PCAP_HEADER_SIZE];
		usbmon_put_pcap_header(gh);
		if (!s->pcap || fwrite(gh, 1, sizeof(gh), s->pcap) != sizeof(gh) || fflush(s->pcap) != 0) {
			log_err("usbip: cannot write the capture file %s: %s", s->o->pcap_path, strerror(errno));
			return -errno;
		}
	}
	rc = listen_on(s);
	if (rc < 0)
		return rc;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return s->sig_fd < 0 ? -errno : 0;
}

static void accept_all(struct server *s, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return;
		conn_add(s, fd);
	}
}

/* One pass: wait for the ring, the sockets or a signal, then act. */
static int step(struct server *s)
{
	struct pollfd pfd[1 + MAX_LISTEN + MAX_CONNS];
	struct conn *who[MAX_CONNS];
	unsigned n = 0;
	pfd[n++] = (struct pollfd){.fd = s->sig_fd, .events = POLLIN};
	for (unsigned i = 0; i < s->nlisten; i++)
		pfd[n++] = (struct pollfd){.fd = s->listen_fd[i], .events = POLLIN};
	unsigned first_conn = n;
	for (unsigned i = 0; i < s->nconns; i++) {
		struct conn *c = s->conns[i];
		short ev = 0;
		if (c->state != C_CLOSING && c->njobs < MAX_JOBS_PER_CONN && c->out_len < MAX_OUT_QUEUED &&
		    !c->close_after_flush)
			ev |= POLLIN;
		if (c->out_len)
			ev |= POLLOUT;
		who[n - first_conn] = c;
		pfd[n++] = (struct pollfd){.fd = c->state == C_CLOSING ? -1 : c->fd, .events = ev};
	}
	bool pending = false; /* a port waits for a closed client's URBs to end */
	for (unsigned p = 1; p <= s->nports; p++)
		pending |= s->ports[p].dirty;
	int rc = pvusb_front_wait_fds(s->f, pfd, n, pending ? 20 : -1);
	if (rc == -EPIPE) {
		log_err("usbip: pvusbd closed the controller; stopping");
		return rc;
	}
	if (pfd[0].revents) {
		s->stop = true;
		return 0;
	}
	for (unsigned i = 0; i < s->nlisten; i++)
		if (pfd[1 + i].revents & POLLIN)
			accept_all(s, s->listen_fd[i]);
	for (unsigned i = first_conn; i < n; i++)
		if (pfd[i].revents)
			conn_event(s, who[i - first_conn], pfd[i].revents);
	for (unsigned p = 1; p <= s->nports; p++)
		if (s->ports[p].dirty)
			update_port(s, &s->ports[p]);
	drain_waiting(s);
	retry_unlinks(s);
	reap(s);
	return 0;
}

int usbip_server_run(const struct usbip_server_opts *o)
{
	struct server s = {.o = o, .sig_fd = -1};
	the_server = &s;
	int rc = setup(&s);
	if (rc == 0)
		log_info("usbip: serving controller %s/%u (%u ports) on %s port %s", o->frontend, o->devid, s.nports,
			 o->listen ? o->listen : "every address", o->port);
	while (rc == 0 && !s.stop)
		rc = step(&s);
	for (unsigned i = 0; i < s.nconns; i++)
		conn_close(&s, s.conns[i]);
	/* let the device answer what was unlinked before the ring goes */
	for (int k = 0; k < 100 && s.f && s.nconns; k++) {
		if (pvusb_front_wait(s.f, 20) < 0)
			break;
		drain_waiting(&s);
		retry_unlinks(&s);
		reap(&s);
	}
	for (unsigned i = 0; i < s.nlisten; i++)
		close(s.listen_fd[i]);
	if (s.sig_fd >= 0)
		close(s.sig_fd);
	if (s.f)
		pvusb_front_close(s.f);
	/* what pvusbd did not answer in time: no callback can come any more */
	for (unsigned i = 0; i < s.nconns; i++) {
		while (s.conns[i]->jobs)
			job_free(s.conns[i]->jobs);
		if (s.conns[i]->fd >= 0)
			close(s.conns[i]->fd);
		free(s.conns[i]->out);
		free(s.conns[i]);
	}
	if (s.pcap)
		fclose(s.pcap);
	return rc;
}
