/* SPDX-License-Identifier: MIT */
/* Control-socket commands: JSON in, JSON out. Every field read from a
 * client is checked before use; a failed command changes nothing. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "dev/emul.h"
#ifdef PVUSB_HAVE_LIBUSB
#include "dev/hostdev.h"
#endif
#include "pvusb/config.h"
#include "pvusb/local.h"
#include "util/log.h"

static json_object *reply_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static json_object *reply_error(int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(msg));
	json_object_object_add(o, "errno", json_object_new_int(-code));
	return o;
}

static json_object *reply_ok(void)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

/* ---- reading fields ---- */

const char *pvusbd_get_str(json_object *m, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(m, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int pvusbd_get_int(json_object *m, const char *key, long lo, long hi, long def, long *out)
{
	json_object *v;
	if (!json_object_object_get_ex(m, key, &v)) {
		*out = def;
		return 0;
	}
	if (!json_object_is_type(v, json_type_int))
		return -1;
	long x = (long)json_object_get_int64(v);
	if (x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

static bool valid_name(const char *s)
{
	if (!s || !*s || strlen(s) >= 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

struct pvusbd_hc *pvusbd_find_hc(struct pvusbd *d, const char *frontend, unsigned devid)
{
	for (int i = 0; i < PVUSBD_MAX_HCS; i++)
		if (d->hcs[i].hc && d->hcs[i].devid == devid && !strcmp(d->hcs[i].frontend, frontend))
			return &d->hcs[i];
	return NULL; /* a Xen domid is turned into its name once, by frontend_of() */
}

/* On Xen a domain may be named by its id too: a decimal <dom> that is the
 * id of a domain with a xen controller stands for that domain's name. */
static const char *frontend_of(struct pvusbd *d, const char *fe)
{
	if (!fe || !*fe || strspn(fe, "0123456789") != strlen(fe))
		return fe;
	for (unsigned devid = 0; devid < PVUSBD_MAX_HCS; devid++) {
		struct pvusbd_hc *h = pvusbd_xen_find_hc(d, fe, devid);
		if (h)
			return h->frontend;
	}
	return fe;
}

/* The controller named by "frontend" and "controller" (default 0). */
static struct pvusbd_hc *req_hc(struct pvusbd *d, json_object *m, json_object **err)
{
	const char *fe = frontend_of(d, pvusbd_get_str(m, "frontend"));
	long devid;
	if (!valid_name(fe) || pvusbd_get_int(m, "controller", 0, 1000000, 0, &devid) < 0) {
		*err = reply_error(-EINVAL, "expected \"frontend\" (a name) and \"controller\" (a number)");
		return NULL;
	}
	struct pvusbd_hc *h = pvusbd_find_hc(d, fe, (unsigned)devid);
	if (!h)
		*err = reply_error(-ENOENT, "%s has no controller %ld (see 'pvusb usb-list %s')", fe, devid, fe);
	return h;
}

/* ---- commands ---- */

static json_object *cmd_hc_create(struct pvusbd *d, struct pvusbd_req *r)
{
	const char *fe = pvusbd_get_str(r->msg, "frontend");
	long ver, ports, devid;
	char err[256];
	if (!valid_name(fe))
		return reply_error(-EINVAL, "the domain name must be 1-63 of [A-Za-z0-9._-]");
	if (pvusbd_get_int(r->msg, "usb-ver", 1, 2, 2, &ver) < 0)
		return reply_error(-EINVAL, "usb-ver must be 1 or 2");
	if (pvusbd_get_int(r->msg, "ports", 1, USBIF_MAX_PORTNR, 8, &ports) < 0)
		return reply_error(-EINVAL, "ports must be 1..%u", USBIF_MAX_PORTNR);
	if (pvusbd_get_int(r->msg, "controller", -1, 1000000, -1, &devid) < 0)
		return reply_error(-EINVAL, "controller must be a number");
	struct pvusbd_hc *h = pvusbd_hc_new(d, fe, (int)devid, (unsigned)ver, (unsigned)ports, err, sizeof(err));
	if (!h)
		return reply_error(-EEXIST, "%s", err);
	pvusbd_state_save(d);
	json_object *o = reply_ok();
	json_object_object_add(o, "controller", json_object_new_int((int)h->devid));
	return o;
}

static json_object *cmd_hc_destroy(struct pvusbd *d, struct pvusbd_req *r)
{
	json_object *err;
	struct pvusbd_hc *h = req_hc(d, r->msg, &err);
	if (!h)
		return err;
	if (!strcmp(h->transport, "xen")) /* libxl owns its backend directory */
		return reply_error(-EPERM, "controller %u of %s is a Xen controller: remove it with "
				   "'xl usbctrl-detach %s %u'", h->devid, h->frontend, h->frontend, h->devid);
	log_info("controller %s/%u destroyed", h->frontend, h->devid);
	pvusbd_hc_free(d, h);
	pvusbd_state_save(d);
	return reply_ok();
}

/* attach: "controller" and "port" are optional; pvusbd_assign chooses as xl
 * does when they are absent. */
static json_object *cmd_attach(struct pvusbd *d, struct pvusbd_req *r)
{
	const char *fe = frontend_of(d, pvusbd_get_str(r->msg, "frontend")), *name = pvusbd_get_str(r->msg, "device");
	long ctrl, port;
	char err[320];
	if (!valid_name(fe))
		return reply_error(-EINVAL, "the domain name must be 1-63 of [A-Za-z0-9._-]");
	if (!name || !*name || strlen(name) >= sizeof(d->hcs[0].ports[0].device))
		return reply_error(-EINVAL, "expected \"device\": a device name");
	if (pvusbd_get_int(r->msg, "controller", -1, 1000000, -1, &ctrl) < 0 ||
	    pvusbd_get_int(r->msg, "port", 0, USBIF_MAX_PORTNR, 0, &port) < 0)
		return reply_error(-EINVAL, "port must be 1..%u and controller a number", USBIF_MAX_PORTNR);
	if (port && ctrl < 0)
		ctrl = 0; /* a port alone means controller 0 (the CLI asks for both, as xl does) */
	struct pvusbd_hc *h;
	unsigned at;
	int rc = pvusbd_assign(d, fe, (int)ctrl, (unsigned)port, name, &h, &at, err, sizeof(err));
	if (rc < 0)
		return reply_error(rc, "%s", err);
	pvusbd_xen_port_write(d, h, at, h->ports[at].busid); /* xl usb-list shows it */
	pvusbd_state_save(d);
	json_object *o = reply_ok();
	json_object_object_add(o, "controller", json_object_new_int((int)h->devid));
	json_object_object_add(o, "port", json_object_new_int((int)at));
	return o;
}

static json_object *cmd_detach(struct pvusbd *d, struct pvusbd_req *r)
{
	json_object *jerr;
	struct pvusbd_hc *h = req_hc(d, r->msg, &jerr);
	if (!h)
		return jerr;
	long port;
	char err[256];
	if (pvusbd_get_int(r->msg, "port", 1, USBIF_MAX_PORTNR, 0, &port) < 0 || port == 0)
		return reply_error(-EINVAL, "expected \"port\" (1..31)");
	int rc = pvusbd_unassign(d, h, (unsigned)port, err, sizeof(err));
	if (rc < 0)
		return reply_error(rc, "%s", err);
	pvusbd_xen_port_write(d, h, (unsigned)port, NULL);
	pvusbd_state_save(d);
	return reply_ok();
}

static const char *speed_name(uint8_t s)
{
	static const char *const names[] = {"none", "low", "full", "high"};
	return s < 4 ? names[s] : "?";
}

static json_object *describe_hc(struct pvusbd_hc *h)
{
	const struct pvusb_hc_config *cfg = pvusb_hc_config(h->hc);
	struct pvusb_hc_stats st;
	pvusb_hc_stats(h->hc, &st);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "frontend", json_object_new_string(h->frontend));
	json_object_object_add(o, "controller", json_object_new_int((int)h->devid));
	json_object_object_add(o, "usb-ver", json_object_new_int((int)cfg->usb_ver));
	json_object_object_add(o, "ports", json_object_new_int((int)cfg->num_ports));
	json_object_object_add(o, "transport", json_object_new_string(h->transport));
	json_object_object_add(o, "state", json_object_new_string(
		st.broken ? "broken" : st.connected ? "connected" : "waiting"));
	if (st.broken)
		json_object_object_add(o, "error", json_object_new_string(st.broken_reason));
	json_object_object_add(o, "requests", json_object_new_int64((int64_t)st.requests));
	json_object_object_add(o, "responses", json_object_new_int64((int64_t)st.responses));
	json_object_object_add(o, "refused", json_object_new_int64((int64_t)st.refused));
	json_object_object_add(o, "inflight", json_object_new_int((int)st.inflight));
	json_object_object_add(o, "maps-live", json_object_new_int64((int64_t)st.maps_live));
	json_object *ports = json_object_new_array();
	for (unsigned p = 1; p <= cfg->num_ports; p++) {
		struct pvusb_port_info pi;
		pvusb_hc_port_info(h->hc, p, &pi);
		json_object *po = json_object_new_object();
		json_object_object_add(po, "port", json_object_new_int((int)p));
		const struct pvusbd_port *rec = &h->ports[p];
		json_object_object_add(po, "device", rec->device[0] ? json_object_new_string(rec->device) : NULL);
		if (rec->device[0])
			json_object_object_add(po, "state", json_object_new_string(
				rec->missing ? "missing" : pi.gone ? "unplugged" : "attached"));
		if (rec->busid[0])
			json_object_object_add(po, "busid", json_object_new_string(rec->busid));
		if (pi.speed && !rec->missing) {
			char id[10];
			snprintf(id, sizeof(id), "%04x:%04x", pi.vendor, pi.product);
			json_object_object_add(po, "id", json_object_new_string(id));
			json_object_object_add(po, "description", json_object_new_string(pi.dev_desc));
			json_object_object_add(po, "speed", json_object_new_string(speed_name(pi.speed)));
			json_object_object_add(po, "guest-address", json_object_new_int(pi.guest_addr));
		}
		json_object_array_add(ports, po);
	}
	json_object_object_add(o, "port-list", ports);
	return o;
}

static json_object *cmd_list(struct pvusbd *d, struct pvusbd_req *r)
{
	const char *fe = frontend_of(d, pvusbd_get_str(r->msg, "frontend"));
	json_object *o = reply_ok(), *arr = json_object_new_array();
	for (int i = 0; i < PVUSBD_MAX_HCS; i++)
		if (d->hcs[i].hc && (!fe || !strcmp(fe, d->hcs[i].frontend)))
			json_object_array_add(arr, describe_hc(&d->hcs[i]));
	json_object_object_add(o, "controllers", arr);
	return o;
}

static json_object *cmd_hid_input(struct pvusbd *d, struct pvusbd_req *r)
{
	json_object *err;
	struct pvusbd_hc *h = req_hc(d, r->msg, &err);
	if (!h)
		return err;
	long port, x, y, buttons, wheel, mods;
	if (pvusbd_get_int(r->msg, "port", 1, USBIF_MAX_PORTNR, 0, &port) < 0 ||
	    pvusbd_get_int(r->msg, "x", 0, 32767, 0, &x) < 0 || pvusbd_get_int(r->msg, "y", 0, 32767, 0, &y) < 0 ||
	    pvusbd_get_int(r->msg, "buttons", 0, 7, 0, &buttons) < 0 ||
	    pvusbd_get_int(r->msg, "wheel", -127, 127, 0, &wheel) < 0 ||
	    pvusbd_get_int(r->msg, "modifiers", 0, 255, 0, &mods) < 0)
		return reply_error(-EINVAL, "bad input fields");
	struct pvusb_dev *dev = pvusb_hc_port_dev(h->hc, (unsigned)port);
	if (!dev)
		return reply_error(-ENOENT, "port %ld is empty", port);
	json_object *keys;
	int rc;
	if (json_object_object_get_ex(r->msg, "keys", &keys) && json_object_is_type(keys, json_type_array)) {
		uint8_t k[6] = {0};
		for (size_t i = 0; i < 6 && i < json_object_array_length(keys); i++)
			k[i] = (uint8_t)json_object_get_int(json_object_array_get_idx(keys, i));
		rc = emul_keyboard_input(dev, (uint8_t)mods, k);
	} else {
		rc = emul_tablet_input(dev, (uint16_t)x, (uint16_t)y, (uint8_t)buttons, (int8_t)wheel);
	}
	return rc < 0 ? reply_error(rc, "port %ld does not hold that kind of HID device", port) : reply_ok();
}

static void close_fds(struct pvusbd_req *r)
{
	for (int i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	r->nfds = 0;
}

/* PVUSB_LOCAL_COPY=1 (pvusbd.8): serve local frontends through the copying
 * data path that Xen frontends get, so tests without Xen exercise it. */
static bool local_copy_mode(void)
{
	const char *v = getenv("PVUSB_LOCAL_COPY");
	return v && strcmp(v, "1") == 0;
}

static json_object *cmd_frontend_connect(struct pvusbd *d, struct pvusbd_req *r)
{
	const char *fe = pvusbd_get_str(r->msg, "frontend");
	long devid, pages, urb_ref, conn_ref;
	if (!valid_name(fe) || pvusbd_get_int(r->msg, "devid", 0, 1000000, 0, &devid) < 0 ||
	    pvusbd_get_int(r->msg, "pages", 2, PVUSB_LOCAL_MAX_PAGES, 0, &pages) < 0 ||
	    pvusbd_get_int(r->msg, "urb-ring-ref", 0, PVUSB_LOCAL_MAX_PAGES, -1, &urb_ref) < 0 ||
	    pvusbd_get_int(r->msg, "conn-ring-ref", 0, PVUSB_LOCAL_MAX_PAGES, -1, &conn_ref) < 0 ||
	    urb_ref < 0 || conn_ref < 0 || r->nfds != 3)
		return reply_error(-EINVAL, "frontend-connect needs frontend, devid, pages, ring refs and 3 fds");
	struct pvusbd_hc *h = pvusbd_find_hc(d, fe, (unsigned)devid);
	if (!h)
		return reply_error(-ENOENT, "frontend %s has no controller %ld", fe, devid);
	if (h->fe_fd >= 0)
		return reply_error(-EBUSY, "controller %s/%ld already has a frontend", fe, devid);
	struct pvusb_xport *xp;
	char why[160], peer[64];
	snprintf(peer, sizeof(peer), "local:%s", fe);
	int rc = pvusb_local_xport_create(r->fds[0], r->fds[1], r->fds[2], (uint32_t)pages,
					  (uint32_t)urb_ref, (uint32_t)conn_ref, peer, &xp, why, sizeof(why));
	if (rc < 0)
		return reply_error(rc, "%s", why);
	r->nfds = 0; /* the transport owns them now */
	if (local_copy_mode())
		pvusb_local_xport_copy_mode(xp);
	rc = pvusb_hc_connect(h->hc, xp);
	if (rc < 0) {
		xp->ops->close(xp);
		return reply_error(rc, "cannot connect: %s", strerror(-rc));
	}
	h->fe_fd = r->client_fd;
	r->keep_open = true;
	const struct pvusb_hc_config *cfg = pvusb_hc_config(h->hc);
	json_object *o = reply_ok();
	json_object_object_add(o, "usb-ver", json_object_new_int((int)cfg->usb_ver));
	json_object_object_add(o, "num-ports", json_object_new_int((int)cfg->num_ports));
	return o;
}

/* apply: a config file's text, parsed and applied here (the CLI reads the
 * file, so pvusbd never opens paths on a client's behalf). */
static json_object *cmd_apply(struct pvusbd *d, struct pvusbd_req *r)
{
	const char *path = pvusbd_get_str(r->msg, "file"), *text = pvusbd_get_str(r->msg, "text");
	const char *fe = pvusbd_get_str(r->msg, "frontend");
	if (!path || !text)
		return reply_error(-EINVAL, "apply needs \"file\" and \"text\"");
	struct pvusb_cfg *cfg = malloc(sizeof(*cfg));
	char err[512];
	if (!cfg)
		return reply_error(-ENOMEM, "out of memory");
	json_object *reply = NULL;
	if (pvusb_cfg_parse(path, text, cfg, err, sizeof(err)) < 0)
		reply = reply_error(-EINVAL, "%s", err);
	else if (!fe && !cfg->name[0])
		reply = reply_error(-EINVAL, "%s has no name = \"...\"; give the domain: pvusb apply %s <dom>",
				    path, path);
	else if (!valid_name(fe ? fe : cfg->name))
		reply = reply_error(-EINVAL, "the domain name must be 1-63 of [A-Za-z0-9._-]");
	else if (cfg->syntax == PVUSB_CFG_NONE)
		reply = reply_error(-EINVAL, "%s sets up no USB (no usbctrl/usbdev, vusb or usb/usbdevice)", path);
	if (!reply) {
		json_object *done = json_object_new_array();
		int rc = pvusbd_apply(d, path, cfg, fe ? fe : cfg->name, done, err, sizeof(err));
		if (rc < 0) {
			json_object_put(done);
			reply = reply_error(rc, "%s", err);
		} else {
			pvusbd_state_save(d);
			reply = reply_ok();
			json_object_object_add(reply, "done", done);
		}
	}
	free(cfg);
	return reply;
}

#ifdef PVUSB_HAVE_LIBUSB
static json_object *hostdev_json(const struct pvusb_hostdev *h)
{
	char id[10];
	json_object *o = json_object_new_object();
	snprintf(id, sizeof(id), "%04x:%04x", h->vendor, h->product);
	json_object_object_add(o, "busid", json_object_new_string(h->busid));
	json_object_object_add(o, "bus", json_object_new_int(h->bus));
	json_object_object_add(o, "address", json_object_new_int(h->addr));
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "vendor", json_object_new_string(h->vendor_name));
	json_object_object_add(o, "product", json_object_new_string(h->product_name));
	json_object_object_add(o, "serial", json_object_new_string(h->serial));
	json_object_object_add(o, "speed", json_object_new_string(speed_name(h->speed)));
	return o;
}
#endif

/* Host devices that can be assigned: no hubs, none already on a port. */
static json_object *cmd_list_assignable(struct pvusbd *d, struct pvusbd_req *r)
{
	json_object *o = reply_ok(), *arr = json_object_new_array();
#ifdef PVUSB_HAVE_LIBUSB
	struct pvusb_hostdev *list;
	size_t n;
	int rc = pvusb_hostdev_list(&list, &n);
	if (rc < 0) {
		json_object_put(arr);
		json_object_put(o);
		return reply_error(rc, "cannot list host USB devices: %s", strerror(-rc));
	}
	for (size_t i = 0; i < n; i++)
		if (!list[i].is_hub && !pvusbd_busid_assigned(d, list[i].busid))
			json_object_array_add(arr, hostdev_json(&list[i]));
	pvusb_hostdev_free(list);
#endif
	json_object_object_add(o, "devices", arr);
	return o;
}

static json_object *cmd_shutdown(struct pvusbd *d, struct pvusbd_req *r)
{
	d->stopping = true;
	return reply_ok();
}

void pvusbd_frontend_gone(struct pvusbd *d, int fd)
{
	for (int i = 0; i < PVUSBD_MAX_HCS; i++) {
		struct pvusbd_hc *h = &d->hcs[i];
		if (h->hc && h->fe_fd == fd) {
			pvusb_hc_disconnect(h->hc);
			h->fe_fd = -1;
		}
	}
}

void pvusbd_destroy_all(struct pvusbd *d)
{
	for (int i = 0; i < PVUSBD_MAX_HCS; i++)
		if (d->hcs[i].hc)
			pvusbd_hc_free(d, &d->hcs[i]);
}

static const struct {
	const char *name;
	json_object *(*fn)(struct pvusbd *, struct pvusbd_req *);
} commands[] = {
	{"hc-create", cmd_hc_create},
	{"hc-destroy", cmd_hc_destroy},
	{"attach", cmd_attach},
	{"detach", cmd_detach},
	{"list", cmd_list},
	{"hid-input", cmd_hid_input},
	{"apply", cmd_apply},
	{"list-assignable", cmd_list_assignable},
	{"frontend-connect", cmd_frontend_connect},
	{"shutdown", cmd_shutdown},
};

json_object *pvusbd_dispatch(struct pvusbd *d, struct pvusbd_req *r)
{
	const char *cmd = r->msg ? pvusbd_get_str(r->msg, "cmd") : NULL;
	json_object *reply = NULL;
	for (size_t i = 0; cmd && i < sizeof(commands) / sizeof(commands[0]) && !reply; i++)
		if (!strcmp(cmd, commands[i].name))
			reply = commands[i].fn(d, r);
	if (!reply)
		reply = reply_error(-EINVAL, cmd ? "unknown command '%s'" : "not a JSON command%s",
				    cmd ? cmd : "");
	close_fds(r); /* fds a command did not take */
	return reply;
}
