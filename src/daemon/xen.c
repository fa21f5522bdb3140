/* SPDX-License-Identifier: MIT */
/*
 * The xen transport's xenstore side: pvusbd as the `vusb` backend that libxl
 * expects from a kernel usbback (spec D).
 *
 * One watch on our backend directory (/local/domain/<self>/backend/vusb)
 * finds controllers as libxl creates and removes them and sees the
 * toolstack's port/N, online and state writes; one watch per controller on
 * its frontend's state drives the xenbus handshake (D.3). Everything runs
 * on the daemon's epoll thread, so no lock is needed here; the controller's
 * own thread is reached through the pvusb_hc_* calls, which wait for it.
 *
 * The guest is hostile: every value read from the frontend's directory is
 * parsed strictly and checked once; a bad one fails that controller (logged
 * once, backend to Closing) and never the daemon. The backend directory is
 * written by the toolstack in dom0, but is checked the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenstore.h>

#include "core/journal.h"
#include "daemon.h"
#include "util/log.h"
#include "xport/xen.h"

/* xenbus states (spec D.3) */
enum { XB_INITIALISING = 1, XB_INITWAIT = 2, XB_INITIALISED = 3, XB_CONNECTED = 4,
       XB_CLOSING = 5, XB_CLOSED = 6 };

#define XS_PORT_VALUE_MAX 256 /* longer port/N values are refused */
#define MAX_DOMID 0x7fefu     /* DOMID_FIRST_RESERVED - 1 */
#define MAX_EVTCHN 0x1ffffu   /* FIFO event channels: 2^17 ports */

struct xen_ctrl {
	bool used;
	bool bad;        /* its backend directory was unusable: no controller made */
	bool connected;  /* rings mapped and handed to the core */
	bool failed;     /* the frontend's values were refused; wait for it to reset */
	bool resume;     /* Connected by an earlier pvusbd: take over its rings */
	unsigned domid, devid;
	struct pvusbd_hc *h; /* the daemon's table entry */
	struct pvusb_hc *hc; /* h->hc as we made it, to notice removal behind our back */
	struct pvusb_ring_journal *journal; /* while connected, when one could be kept */
	int be_state;        /* what we last wrote to the backend's state */
	char be[96], fe[96];
	char token[48];
	char xs_port[USBIF_MAX_PORTNR + 1][XS_PORT_VALUE_MAX]; /* port/N as last seen or written */
};

struct pvusbd_xen {
	struct xs_handle *xs;
	unsigned self;
	char base[64]; /* /local/domain/<self>/backend/vusb */
	char rings[200]; /* the ring journals' directory: rings/ next to the control socket */
	bool starting; /* the first scan: controllers an earlier pvusbd served */
	struct xen_ctrl ctrl[PVUSBD_MAX_HCS];
};

/* ---- xenstore helpers ---- */

/* A value, NUL-terminated and malloc'ed, or NULL when the node is absent. */
static char *xs_get(struct pvusbd_xen *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *xs_get(struct pvusbd_xen *x, const char *fmt, ...)
{
	char path[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	unsigned len;
	return xs_read(x->xs, XBT_NULL, path, &len);
}

/* Strict decimal: digits only, no sign or blanks, at most `max`. */
static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	if (!s || !*s || strlen(s) > 10)
		return false;
	unsigned long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* Read dir/key as a number within [lo, hi]: 0, -ENOENT absent, -EINVAL bad. */
static int xs_get_uint(struct pvusbd_xen *x, const char *dir, const char *key, unsigned long lo,
		       unsigned long hi, unsigned long *out)
{
	char *v = xs_get(x, "%s/%s", dir, key);
	if (!v)
		return -ENOENT;
	bool ok = parse_uint(v, hi, out) && *out >= lo;
	free(v);
	return ok ? 0 : -EINVAL;
}

/* Write dir/key only while dir still exists: a plain write would re-create
 * a directory the toolstack has just removed. */
static int xs_put_existing(struct pvusbd_xen *x, const char *dir, const char *key, const char *val)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, key);
	for (int tries = 0; tries < 8; tries++) {
		xs_transaction_t t = xs_transaction_start(x->xs);
		if (t == XBT_NULL)
			return -errno;
		unsigned len;
		char *cur = xs_read(x->xs, t, dir, &len);
		if (!cur) {
			xs_transaction_end(x->xs, t, true);
			return -ENOENT;
		}
		free(cur);
		bool ok = xs_write(x->xs, t, path, val, (unsigned)strlen(val));
		if (!ok) {
			int e = errno;
			xs_transaction_end(x->xs, t, true);
			return -e;
		}
		if (xs_transaction_end(x->xs, t, false))
			return 0;
		if (errno != EAGAIN)
			return -errno;
	}
	return -EAGAIN;
}

static void set_be_state(struct pvusbd_xen *x, struct xen_ctrl *c, int state)
{
	char v[4];
	snprintf(v, sizeof(v), "%d", state);
	int rc = xs_put_existing(x, c->be, "state", v);
	if (rc < 0 && rc != -ENOENT)
		log_err("xen: cannot write %s/state = %d: %s", c->be, state, strerror(-rc));
	c->be_state = state;
}

/* ---- controller records ---- */

static struct xen_ctrl *find_ctrl(struct pvusbd_xen *x, unsigned domid, unsigned devid)
{
	for (int i = 0; i < PVUSBD_MAX_HCS; i++)
		if (x->ctrl[i].used && x->ctrl[i].domid == domid && x->ctrl[i].devid == devid)
			return &x->ctrl[i];
	return NULL;
}

/* The table entry, unless a control command destroyed it under us. */
static bool ctrl_alive(const struct xen_ctrl *c)
{
	return c->h && c->h->hc == c->hc && c->hc;
}

static const char *ctrl_name(const struct xen_ctrl *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%u (domain %u)", ctrl_alive(c) ? c->h->frontend : "?", c->devid, c->domid);
	return buf;
}

/* The domain's name for lookups and listings; names that are not plain
 * identifiers fall back to "domain-<domid>". */
static void domain_name(struct pvusbd_xen *x, unsigned domid, char *out, size_t len)
{
	char *n = xs_get(x, "/local/domain/%u/name", domid);
	bool ok = n && *n && strlen(n) < len;
	for (const char *p = n; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		     *p == '-' || *p == '_' || *p == '.';
	if (ok)
		snprintf(out, len, "%s", n);
	else
		snprintf(out, len, "domain-%u", domid);
	free(n);
}

/* ---- the handshake (D.3) ---- */

/* The ring journal of a controller (journal.h): <rings>/<domid>-<devid>. */
static void record_path(struct pvusbd_xen *x, const struct xen_ctrl *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%u-%u", x->rings, c->domid, c->devid);
}

/* `keep`: pvusbd is exiting and leaves the frontend Connected, so the ring
 * journal stays for the next pvusbd to take the rings over; otherwise these
 * rings are done with and their journal goes. */
static void disconnect_keep(struct pvusbd *d, struct xen_ctrl *c, bool keep)
{
	if (!c->connected)
		return;
	c->connected = false;
	if (ctrl_alive(c))
		pvusb_hc_disconnect(c->hc); /* answers everything in flight, unmaps, unbinds */
	pvusb_journal_close(c->journal, !keep); /* the controller has let go of it */
	c->journal = NULL;
	char nm[96];
	log_info("xen: controller %s: frontend disconnected; grant maps live in pvusbd: %llu",
		 ctrl_name(c, nm, sizeof(nm)), (unsigned long long)pvusb_xen_grants_live());
}

static void disconnect(struct pvusbd *d, struct xen_ctrl *c)
{
	disconnect_keep(d, c, false);
}

/* The three values the frontend published, parsed strictly. */
static int read_rings(struct pvusbd_xen *x, struct xen_ctrl *c, struct pvusb_xen_rings *r,
		      char *err, size_t errlen)
{
	unsigned long urb, conn, ev;
	int rc;
	if ((rc = xs_get_uint(x, c->fe, "urb-ring-ref", 0, UINT32_MAX, &urb)) < 0)
		snprintf(err, errlen, "urb-ring-ref is %s", rc == -ENOENT ? "missing" : "not a grant reference");
	else if ((rc = xs_get_uint(x, c->fe, "conn-ring-ref", 0, UINT32_MAX, &conn)) < 0)
		snprintf(err, errlen, "conn-ring-ref is %s", rc == -ENOENT ? "missing" : "not a grant reference");
	else if ((rc = xs_get_uint(x, c->fe, "event-channel", 1, MAX_EVTCHN, &ev)) < 0)
		snprintf(err, errlen, "event-channel is %s", rc == -ENOENT ? "missing" : "not a port number");
	if (rc < 0)
		return rc;
	r->domid = c->domid;
	r->urb_ref = (uint32_t)urb;
	r->conn_ref = (uint32_t)conn;
	r->evtchn = (uint32_t)ev;
	return 0;
}

/* Refuse the frontend: log once, then Closing so that it gives up cleanly
 * instead of waiting on rings nobody serves. */
static void refuse(struct pvusbd_xen *x, struct xen_ctrl *c, const char *why)
{
	char nm[96];
	log_err("xen: controller %s: frontend %s refused: %s", ctrl_name(c, nm, sizeof(nm)), c->fe, why);
	c->failed = true;
	set_be_state(x, c, XB_CLOSING);
}

/* A journal for rings connected afresh (or taken over without one); without
 * one the controller works as well, only a restart of pvusbd could then not
 * take it over while requests are in flight. It starts where the core does,
 * at the published rsp_prod (0 on fresh rings, A.3), and tags the ring page. */
static struct pvusb_ring_journal *new_journal(struct pvusbd_xen *x, struct xen_ctrl *c,
					      struct pvusb_xport *xp, const struct pvusb_journal_ident *id)
{
	char path[256], why[200], nm[96];
	struct pvusb_ring_journal *j;
	record_path(x, c, path, sizeof(path));
	if (pvusb_journal_create(path, id, xp->urb_ring, &j, why, sizeof(why)) == 0)
		return j;
	log_err("xen: controller %s: no ring journal (%s): a restart of pvusbd will not take it "
		"over while requests are in flight", ctrl_name(c, nm, sizeof(nm)), why);
	return NULL;
}

/* A frontend an earlier pvusbd left Connected: what it left in flight is
 * answered from its ring journal and the ports announced empty before the
 * core takes the rings, so the guest enumerates its devices afresh. The
 * journal (the earlier one, or a new one when there was none and nothing
 * was unanswered) is in *j on success. */
static int resume(struct pvusbd_xen *x, struct xen_ctrl *c, struct pvusb_xport *xp,
		  const struct pvusb_journal_ident *id, struct pvusb_ring_journal **j, char *err,
		  size_t errlen)
{
	char nm[96], path[256], why[200];
	struct pvusb_journal_result res;
	record_path(x, c, path, sizeof(path));
	int rc = pvusb_journal_open(path, id, j, why, sizeof(why));
	if (rc < 0) {
		log_warn("xen: controller %s: no ring journal of these rings (%s); resuming only if "
			 "nothing is unanswered", ctrl_name(c, nm, sizeof(nm)), why);
		*j = NULL;
	}
	bool had = *j != NULL;
	rc = pvusb_xen_resume(xp, c->h->num_ports, j, &res, err, errlen);
	if (had && !*j)
		log_warn("xen: controller %s: its ring journal is of rings the frontend has set up afresh "
			 "since; resuming only if nothing is unanswered", ctrl_name(c, nm, sizeof(nm)));
	if (rc == 0 && !*j)
		*j = new_journal(x, c, xp, id);
	if (rc < 0) {
		pvusb_journal_close(*j, false); /* kept: it tells what happened */
		*j = NULL;
		return rc;
	}
	log_info("xen: controller %s: resuming the rings an earlier pvusbd served; %u request(s) "
		 "it had in flight answered -ESHUTDOWN, %u response(s) it had written published",
		 ctrl_name(c, nm, sizeof(nm)), res.answered, res.published - res.answered);
	return 0;
}

/* Not hostile, just not resumable: the guest loses this controller, cleanly. */
static void cannot_resume(struct pvusbd_xen *x, struct xen_ctrl *c, const char *why)
{
	char nm[96];
	log_warn("xen: controller %s: cannot resume the rings an earlier pvusbd served: %s; closing "
		 "it (re-create it with xl usbctrl-detach/usbctrl-attach)", ctrl_name(c, nm, sizeof(nm)), why);
	c->failed = true;
	set_be_state(x, c, XB_CLOSING);
}

static void connect(struct pvusbd *d, struct pvusbd_xen *x, struct xen_ctrl *c)
{
	struct pvusb_xen_rings r = {0};
	struct pvusb_xport *xp;
	char err[200], peer[64];
	int rc = read_rings(x, c, &r, err, sizeof(err));
	if (rc == 0) {
		snprintf(peer, sizeof(peer), "xen:dom%u/%u", c->domid, c->devid);
		rc = pvusb_xen_xport_create(&r, peer, &xp, err, sizeof(err));
	}
	if (rc < 0) {
		refuse(x, c, err);
		return;
	}
	struct pvusb_journal_ident id = {.domid = c->domid, .devid = c->devid, .urb_ref = r.urb_ref,
					 .conn_ref = r.conn_ref, .evtchn = r.evtchn};
	struct pvusb_ring_journal *j = NULL;
	bool resuming = c->resume;
	c->resume = false; /* once: a frontend that starts over gets fresh rings */
	rc = resuming ? resume(x, c, xp, &id, &j, err, sizeof(err)) : 0;
	if (rc < 0) {
		xp->ops->close(xp);
		if (rc == -EBUSY) /* not hostile, just not resumable */
			cannot_resume(x, c, err);
		else
			refuse(x, c, err);
		return;
	}
	if (!resuming)
		j = new_journal(x, c, xp, &id);
	if ((rc = pvusb_hc_set_journal(c->hc, j)) == 0 && (rc = pvusb_hc_connect(c->hc, xp)) < 0)
		pvusb_hc_set_journal(c->hc, NULL);
	if (rc < 0) {
		pvusb_journal_close(j, true);
		xp->ops->close(xp);
		snprintf(err, sizeof(err), "cannot connect the rings: %s", strerror(-rc));
		refuse(x, c, err);
		return;
	}
	c->journal = j;
	c->connected = true;
	set_be_state(x, c, XB_CONNECTED);
}

static bool be_online(struct pvusbd_xen *x, struct xen_ctrl *c)
{
	char *v = xs_get(x, "%s/online", c->be);
	bool off = v && !strcmp(v, "0");
	free(v);
	return !off;
}

/* The frontend's state changed (or its directory went away). */
static void fe_changed(struct pvusbd *d, struct pvusbd_xen *x, struct xen_ctrl *c)
{
	unsigned long s = XB_CLOSED; /* absent or garbage: the frontend is gone */
	char *v = xs_get(x, "%s/state", c->fe);
	if (v && !parse_uint(v, 8, &s)) {
		char nm[96];
		if (!c->failed) /* said once, until the frontend starts over */
			log_err("xen: controller %s: frontend %s refused: state is not a xenbus state (0..8)",
				ctrl_name(c, nm, sizeof(nm)), c->fe);
		c->failed = true;
		s = XB_CLOSED;
	}
	free(v);
	switch (s) {
	case XB_INITIALISED:
	case XB_CONNECTED:
		if (!c->connected && !c->failed && c->be_state >= XB_INITWAIT && c->be_state <= XB_CONNECTED)
			connect(d, x, c);
		break;
	case XB_CLOSING:
		disconnect(d, c);
		if (c->be_state != XB_CLOSING && c->be_state != XB_CLOSED)
			set_be_state(x, c, XB_CLOSING);
		break;
	case XB_CLOSED:
		disconnect(d, c);
		if (c->be_state != XB_CLOSED)
			set_be_state(x, c, XB_CLOSED);
		break;
	case XB_INITIALISING:
	case XB_INITWAIT:
		/* A frontend starting over (D.3 reconnect): serve it afresh, unless
		 * the toolstack is taking the controller away. */
		disconnect(d, c);
		if (c->be_state != XB_INITWAIT && be_online(x, c)) {
			c->failed = false;
			set_be_state(x, c, XB_INITWAIT);
		}
		break;
	default:
		break;
	}
}

/* libxl removes a controller by writing online=0 and state=5 to our
 * directory, then waits up to 10 s for state 6. A domain being destroyed is
 * paused first, so its frontend cannot answer: close on our own. */
static void be_changed(struct pvusbd *d, struct pvusbd_xen *x, struct xen_ctrl *c)
{
	unsigned long s;
	if (be_online(x, c) || xs_get_uint(x, c->be, "state", 0, 8, &s) < 0 || s != XB_CLOSING)
		return;
	/* (also when we wrote Closed before: libxl has just overwritten it) */
	disconnect(d, c);
	set_be_state(x, c, XB_CLOSED);
}

/* ---- ports ---- */

/* The toolstack wrote port/N: put that device on the port, or empty it. */
static void port_changed(struct pvusbd *d, struct pvusbd_xen *x, struct xen_ctrl *c, unsigned port)
{
	char nm[96], err[320];
	if (port < 1 || port > c->h->num_ports)
		return;
	char *v = xs_get(x, "%s/port/%u", c->be, port);
	const char *val = v ? v : "";
	if (strlen(val) >= XS_PORT_VALUE_MAX) {
		log_err("xen: controller %s port %u: device name in xenstore too long; ignored",
			ctrl_name(c, nm, sizeof(nm)), port);
		free(v);
		return;
	}
	if (!strcmp(val, c->xs_port[port])) {
		free(v);
		return; /* our own write, or no change */
	}
	/* Only what came through xenstore is taken away through it: a device
	 * attached with pvusb stays (and a new bus id then finds the port busy). */
	bool from_xs = c->xs_port[port][0] != 0;
	snprintf(c->xs_port[port], sizeof(c->xs_port[port]), "%s", val);
	if (from_xs && c->h->ports[port].device[0] && pvusbd_unassign(d, c->h, port, err, sizeof(err)) < 0)
		log_err("xen: controller %s port %u: %s", ctrl_name(c, nm, sizeof(nm)), port, err);
	struct pvusbd_hc *at;
	unsigned where;
	if (val[0] && pvusbd_assign(d, c->h->frontend, (int)c->devid, port, val, &at, &where, err,
				    sizeof(err)) < 0)
		log_err("xen: controller %s port %u: %s", ctrl_name(c, nm, sizeof(nm)), port, err);
	free(v);
	pvusbd_state_save(d);
}

static void ports_sync(struct pvusbd *d, struct pvusbd_xen *x, struct xen_ctrl *c)
{
	for (unsigned p = 1; p <= c->h->num_ports; p++)
		port_changed(d, x, c, p);
}

/* ---- creating and destroying controllers ---- */

/* Check the backend directory libxl wrote (D.2) before anything is made. */
static int read_be_config(struct pvusbd_xen *x, struct xen_ctrl *c, unsigned long *ver,
			  unsigned long *ports, char *err, size_t errlen)
{
	unsigned long feid;
	char *fe = xs_get(x, "%s/frontend", c->be);
	bool fe_ok = fe && !strcmp(fe, c->fe);
	free(fe);
	if (!fe_ok) {
		snprintf(err, errlen, "frontend is not %s", c->fe);
		return -EINVAL;
	}
	if (xs_get_uint(x, c->be, "frontend-id", 0, MAX_DOMID, &feid) < 0 || feid != c->domid) {
		snprintf(err, errlen, "frontend-id is not %u", c->domid);
		return -EINVAL;
	}
	if (xs_get_uint(x, c->be, "usb-ver", 1, 2, ver) < 0) {
		snprintf(err, errlen, "usb-ver must be 1 or 2");
		return -EINVAL;
	}
	if (xs_get_uint(x, c->be, "num-ports", 1, USBIF_MAX_PORTNR, ports) < 0) {
		snprintf(err, errlen, "num-ports must be 1..%u", USBIF_MAX_PORTNR);
		return -EINVAL;
	}
	return 0;
}

static int make_hc(struct pvusbd *d, struct pvusbd_xen *x, struct xen_ctrl *c, char *err, size_t errlen)
{
	unsigned long ver, ports;
	char name[64];
	int rc = read_be_config(x, c, &ver, &ports, err, errlen);
	if (rc < 0)
		return rc;
	domain_name(x, c->domid, name, sizeof(name));
	c->h = pvusbd_hc_new(d, name, (int)c->devid, (unsigned)ver, (unsigned)ports, err, errlen);
	if (!c->h)
		return -EEXIST;
	snprintf(c->h->transport, sizeof(c->h->transport), "xen");
	c->hc = c->h->hc;
	return 0;
}

/* A fresh backend (state 1) goes to InitWait at once: libxl waits only
 * ~10 s. One an earlier pvusbd connected, with its frontend still Connected,
 * is resumed: xen-hcd never reconnects by itself once it has seen Closing
 * (it only connects from Initialising), so closing would cost the guest its
 * controller. Any other half-done handshake is closed: the guest drops that
 * controller cleanly instead of waiting on rings nobody serves. */
static void initial_state(struct pvusbd_xen *x, struct xen_ctrl *c)
{
	unsigned long s = XB_INITIALISING, fs = 0;
	if (xs_get_uint(x, c->be, "state", 0, 8, &s) < 0)
		s = XB_INITIALISING;
	c->be_state = (int)s;
	if (s <= XB_INITIALISING) {
		set_be_state(x, c, XB_INITWAIT);
	} else if (s == XB_CONNECTED && xs_get_uint(x, c->fe, "state", 0, 8, &fs) == 0 &&
		   fs == XB_CONNECTED && be_online(x, c)) {
		log_info("xen: backend %s was connected by an earlier pvusbd; resuming it", c->be);
		c->resume = true;
	} else if (s == XB_INITIALISED || s == XB_CONNECTED) {
		log_warn("xen: backend %s was connected by an earlier pvusbd; closing it "
			 "(re-create it with xl usbctrl-detach/usbctrl-attach)", c->be);
		c->failed = true;
		set_be_state(x, c, XB_CLOSING);
	}
}

/* The emulated devices the last run had on this controller (the state
 * file's record; port/N names host devices only), on ports port/N left free. */
static void restore_emulated(struct pvusbd *d, struct xen_ctrl *c)
{
	char nm[96], err[320];
	struct pvusbd_hc *at;
	unsigned where;
	for (unsigned p = 1; p <= c->h->num_ports; p++) {
		const char *dev = pvusbd_state_xen_device(c->h->frontend, c->devid, p);
		if (!dev || c->h->ports[p].device[0])
			continue;
		if (pvusbd_assign(d, c->h->frontend, (int)c->devid, p, dev, &at, &where, err, sizeof(err)) < 0)
			log_err("xen: controller %s port %u: cannot restore %s: %s",
				ctrl_name(c, nm, sizeof(nm)), p, dev, err);
		else
			log_info("xen: controller %s port %u: %s restored from the state file",
				 ctrl_name(c, nm, sizeof(nm)), p, dev);
	}
}

static void ctrl_create(struct pvusbd *d, struct pvusbd_xen *x, unsigned domid, unsigned devid)
{
	struct xen_ctrl *c = NULL;
	for (int i = 0; i < PVUSBD_MAX_HCS && !c; i++)
		if (!x->ctrl[i].used)
			c = &x->ctrl[i];
	if (!c) {
		log_err("xen: backend vusb/%u/%u ignored: pvusbd serves at most %d controllers", domid,
			devid, PVUSBD_MAX_HCS);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->used = true;
	c->domid = domid;
	c->devid = devid;
	snprintf(c->be, sizeof(c->be), "%s/%u/%u", x->base, domid, devid);
	snprintf(c->fe, sizeof(c->fe), "/local/domain/%u/device/vusb/%u", domid, devid);
	snprintf(c->token, sizeof(c->token), "fe:%u:%u", domid, devid);
	char err[256];
	if (make_hc(d, x, c, err, sizeof(err)) < 0) {
		log_err("xen: backend %s: %s; no controller made", c->be, err);
		c->bad = true; /* remembered so that later events do not log again */
		return;
	}
	log_info("xen: controller %s/%u for domain %u from %s", c->h->frontend, devid, domid, c->be);
	initial_state(x, c);
	ports_sync(d, x, c);
	if (x->starting)
		restore_emulated(d, c);
	char path[160];
	snprintf(path, sizeof(path), "%s/state", c->fe);
	if (!xs_watch(x->xs, path, c->token)) /* fires once at once: fe_changed runs then */
		log_err("xen: cannot watch %s: %s", path, strerror(errno));
	pvusbd_state_save(d);
}

static void ctrl_destroy(struct pvusbd *d, struct pvusbd_xen *x, struct xen_ctrl *c)
{
	char path[160], nm[96];
	if (!c->bad) {
		snprintf(path, sizeof(path), "%s/state", c->fe);
		xs_unwatch(x->xs, path, c->token);
		disconnect(d, c);
		log_info("xen: controller %s removed", ctrl_name(c, nm, sizeof(nm)));
		if (ctrl_alive(c))
			pvusbd_hc_free(d, c->h); /* closes its devices */
		pvusbd_state_save(d);
	}
	memset(c, 0, sizeof(*c));
}

/* ---- watch events ---- */

static bool dir_exists(struct pvusbd_xen *x, const char *path)
{
	unsigned len;
	char *v = xs_read(x->xs, XBT_NULL, path, &len);
	free(v);
	return v != NULL;
}

/* Something under backend/vusb/<domid>/<devid> changed; `sub` is the rest
 * of the path ("" for the directory itself). */
static void be_event(struct pvusbd *d, struct pvusbd_xen *x, unsigned domid, unsigned devid,
		     const char *sub)
{
	struct xen_ctrl *c = find_ctrl(x, domid, devid);
	char be[96];
	snprintf(be, sizeof(be), "%s/%u/%u", x->base, domid, devid);
	if (!dir_exists(x, be)) {
		if (c)
			ctrl_destroy(d, x, c);
		return;
	}
	if (c && !c->bad && !ctrl_alive(c)) {
		log_warn("xen: controller vusb/%u/%u was destroyed by a control command; making it again",
			 domid, devid);
		c->h = NULL;
		ctrl_destroy(d, x, c);
		c = NULL;
	}
	if (!c) {
		ctrl_create(d, x, domid, devid);
		return;
	}
	unsigned long port;
	if (c->bad)
		return;
	if (!strncmp(sub, "/port/", 6) && parse_uint(sub + 6, USBIF_MAX_PORTNR, &port))
		port_changed(d, x, c, (unsigned)port);
	else if (!strcmp(sub, "/state") || !strcmp(sub, "/online"))
		be_changed(d, x, c);
}

/* The numbered entries of a directory, or none. */
static char **list_dir(struct pvusbd_xen *x, const char *path, unsigned *n)
{
	char **v = xs_directory(x->xs, XBT_NULL, path, n);
	if (!v)
		*n = 0;
	return v;
}

static void scan_domain(struct pvusbd *d, struct pvusbd_xen *x, unsigned domid)
{
	char path[96];
	unsigned n;
	unsigned long devid;
	snprintf(path, sizeof(path), "%s/%u", x->base, domid);
	char **ids = list_dir(x, path, &n);
	for (unsigned i = 0; i < n; i++)
		if (parse_uint(ids[i], INT32_MAX, &devid))
			be_event(d, x, domid, (unsigned)devid, "");
	free(ids);
	for (int i = 0; i < PVUSBD_MAX_HCS; i++) /* those whose directory went */
		if (x->ctrl[i].used && x->ctrl[i].domid == domid)
			be_event(d, x, domid, x->ctrl[i].devid, "");
}

static void scan_all(struct pvusbd *d, struct pvusbd_xen *x)
{
	unsigned n;
	unsigned long domid;
	char **doms = list_dir(x, x->base, &n);
	for (unsigned i = 0; i < n; i++)
		if (parse_uint(doms[i], MAX_DOMID, &domid))
			scan_domain(d, x, (unsigned)domid);
	free(doms);
	for (int i = 0; i < PVUSBD_MAX_HCS; i++)
		if (x->ctrl[i].used)
			be_event(d, x, x->ctrl[i].domid, x->ctrl[i].devid, "");
}

/* Split "<domid>[/<devid>[<sub>]]" (what follows the base path). */
static void base_event(struct pvusbd *d, struct pvusbd_xen *x, const char *rest)
{
	char num[16];
	unsigned long domid, devid;
	if (!*rest) {
		scan_all(d, x);
		return;
	}
	size_t k = strcspn(++rest, "/");
	if (k == 0 || k >= sizeof(num))
		return;
	memcpy(num, rest, k);
	num[k] = 0;
	if (!parse_uint(num, MAX_DOMID, &domid))
		return;
	rest += k;
	if (!*rest) {
		scan_domain(d, x, (unsigned)domid);
		return;
	}
	k = strcspn(++rest, "/");
	if (k == 0 || k >= sizeof(num))
		return;
	memcpy(num, rest, k);
	num[k] = 0;
	if (parse_uint(num, INT32_MAX, &devid))
		be_event(d, x, (unsigned)domid, (unsigned)devid, rest + k);
}

static void fe_event(struct pvusbd *d, struct pvusbd_xen *x, const char *token)
{
	unsigned domid, devid;
	char tail;
	if (sscanf(token, "fe:%u:%u%c", &domid, &devid, &tail) != 2)
		return;
	struct xen_ctrl *c = find_ctrl(x, domid, devid);
	if (c && !c->bad && ctrl_alive(c))
		fe_changed(d, x, c);
}

void pvusbd_xen_event(struct pvusbd *d)
{
	struct pvusbd_xen *x = d->xen;
	char **w;
	if (!x)
		return;
	size_t blen = strlen(x->base);
	while ((w = xs_check_watch(x->xs)) != NULL) {
		const char *path = w[XS_WATCH_PATH], *token = w[XS_WATCH_TOKEN];
		if (!strcmp(token, "be") && !strncmp(path, x->base, blen) &&
		    (path[blen] == 0 || path[blen] == '/'))
			base_event(d, x, path + blen);
		else if (!strncmp(token, "fe:", 3))
			fe_event(d, x, token);
		free(w);
	}
}

/* ---- the daemon's hooks ---- */

/* Ring journals no controller found at start will resume: frontends that
 * went away or started over while no pvusbd ran. Only names of our own
 * form are touched. */
static void prune_journals(struct pvusbd_xen *x)
{
	DIR *dir = opendir(x->rings);
	struct dirent *e;
	if (!dir)
		return;
	while ((e = readdir(dir)) != NULL) {
		char num[16];
		unsigned long domid, devid;
		size_t k = strcspn(e->d_name, "-");
		if (k == 0 || k >= sizeof(num) || e->d_name[k] != '-')
			continue;
		memcpy(num, e->d_name, k);
		num[k] = 0;
		if (!parse_uint(num, MAX_DOMID, &domid) || !parse_uint(e->d_name + k + 1, INT32_MAX, &devid))
			continue;
		struct xen_ctrl *c = find_ctrl(x, (unsigned)domid, (unsigned)devid);
		if (c && c->resume)
			continue;
		if (unlinkat(dirfd(dir), e->d_name, 0) == 0)
			log_info("xen: ring journal %s/%s removed: no connected frontend of it to resume",
				 x->rings, e->d_name);
	}
	closedir(dir);
}

int pvusbd_xen_init(struct pvusbd *d)
{
	struct pvusbd_xen *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->xs = xs_open(0);
	if (!x->xs) {
		int e = errno ? errno : ENOENT;
		log_info("xen: no xenstore here (%s): the xen transport is off", strerror(e));
		free(x);
		return -e;
	}
	unsigned long self = 0;
	unsigned len;
	char *v = xs_read(x->xs, XBT_NULL, "domid", &len); /* relative: our own domain's key */
	if (v && !parse_uint(v, MAX_DOMID, &self))
		self = 0;
	free(v);
	x->self = (unsigned)self;
	snprintf(x->base, sizeof(x->base), "/local/domain/%u/backend/vusb", x->self);
	const char *slash = strrchr(d->sock_path, '/');
	if (slash)
		snprintf(x->rings, sizeof(x->rings), "%.*s/rings", (int)(slash - d->sock_path), d->sock_path);
	else
		snprintf(x->rings, sizeof(x->rings), "rings");
	if (!xs_watch(x->xs, x->base, "be")) { /* fires once at once: the initial scan */
		int e = errno;
		log_err("xen: cannot watch %s: %s; the xen transport is off", x->base, strerror(e));
		xs_close(x->xs);
		free(x);
		return -e;
	}
	d->xen = x;
	log_info("xen: serving vusb backends under %s", x->base);
	/* Now rather than on the watch's first event: the controllers an
	 * earlier pvusbd served get their devices back before the daemon gives
	 * unclaimed host devices back to their drivers. */
	x->starting = true;
	scan_all(d, x);
	x->starting = false;
	pvusbd_state_xen_forget();
	prune_journals(x);
	return xs_fileno(x->xs);
}

bool pvusbd_xen_owns_fd(struct pvusbd *d, int fd)
{
	return d->xen && fd == xs_fileno(d->xen->xs);
}

/* On shutdown every request in flight is answered and the rings let go,
 * but the backends stay Connected and their ring journals stay: a pvusbd
 * started again resumes them (see initial_state), whereas Closing would
 * make xen-hcd drop its controller for good. The journal then shows every
 * request answered, as after a crash with nothing in flight: one takeover
 * for both. The backend directories stay for libxl, as usual. */
void pvusbd_xen_fini(struct pvusbd *d)
{
	struct pvusbd_xen *x = d->xen;
	if (!x)
		return;
	for (int i = 0; i < PVUSBD_MAX_HCS; i++) {
		struct xen_ctrl *c = &x->ctrl[i];
		if (c->used && !c->bad && ctrl_alive(c))
			disconnect_keep(d, c, true);
	}
	xs_close(x->xs);
	free(x);
	d->xen = NULL;
}

struct pvusbd_hc *pvusbd_xen_find_hc(struct pvusbd *d, const char *domid, unsigned devid)
{
	unsigned long id;
	if (!d->xen || !parse_uint(domid, MAX_DOMID, &id))
		return NULL;
	struct xen_ctrl *c = find_ctrl(d->xen, (unsigned)id, devid);
	return c && !c->bad && ctrl_alive(c) ? c->h : NULL;
}

/* A name libxl can resolve: /sys/bus/usb/devices/<busid>/busnum exists. */
static bool sysfs_busid(const char *busid)
{
	char path[128];
	if (!busid || !*busid || strlen(busid) > 32 || strspn(busid, "0123456789-.") != strlen(busid))
		return false;
	snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/busnum", busid);
	return access(path, R_OK) == 0;
}

int pvusbd_xen_port_write(struct pvusbd *d, struct pvusbd_hc *h, unsigned port, const char *busid)
{
	struct pvusbd_xen *x = d->xen;
	struct xen_ctrl *c = NULL;
	for (int i = 0; x && i < PVUSBD_MAX_HCS && !c; i++)
		if (x->ctrl[i].used && !x->ctrl[i].bad && x->ctrl[i].h == h && ctrl_alive(&x->ctrl[i]))
			c = &x->ctrl[i];
	if (!c)
		return 0;
	if (port < 1 || port > h->num_ports)
		return -EINVAL;
	const char *val = sysfs_busid(busid) ? busid : "";
	snprintf(c->xs_port[port], sizeof(c->xs_port[port]), "%s", val); /* so our watch sees no change */
	char key[16];
	snprintf(key, sizeof(key), "port/%u", port);
	int rc = xs_put_existing(x, c->be, key, val);
	if (rc < 0)
		log_err("xen: cannot write %s/%s: %s", c->be, key, strerror(-rc));
	return rc;
}
