/* SPDX-License-Identifier: MIT */
/*
 * Putting devices on ports. The rules (a device on at most one port of any
 * domain, hubs refused, xl's port choice) live here so that every way in -
 * CLI command, config file, state restore - keeps them. Every function
 * either does all it was asked or changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "pvusb/devname.h"
#ifdef PVUSB_HAVE_LIBUSB
#include "dev/hostdev.h"
#endif
#include "util/log.h"

struct pvusbd_hc *pvusbd_hc_new(struct pvusbd *d, const char *fe, int devid, unsigned usb_ver,
				unsigned ports, char *err, size_t errlen)
{
	if (devid < 0) /* the lowest free number, as libxl numbers devids */
		for (devid = 0; pvusbd_find_hc(d, fe, (unsigned)devid); devid++)
			;
	if (pvusbd_find_hc(d, fe, (unsigned)devid)) {
		snprintf(err, errlen, "%s already has controller %d", fe, devid);
		return NULL;
	}
	struct pvusbd_hc *h = NULL;
	for (int i = 0; i < PVUSBD_MAX_HCS && !h; i++)
		if (!d->hcs[i].hc)
			h = &d->hcs[i];
	if (!h) {
		snprintf(err, errlen, "too many controllers (pvusbd serves at most %d)", PVUSBD_MAX_HCS);
		return NULL;
	}
	struct pvusb_hc_config cfg = {.usb_ver = usb_ver, .num_ports = ports, .devid = (unsigned)devid,
				      .spin_us = -1};
	snprintf(cfg.frontend, sizeof(cfg.frontend), "%s", fe);
	int rc = pvusb_hc_create(&cfg, &h->hc);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create controller: %s", strerror(-rc));
		return NULL;
	}
	snprintf(h->frontend, sizeof(h->frontend), "%s", fe);
	snprintf(h->transport, sizeof(h->transport), "local");
	h->devid = (unsigned)devid;
	h->usb_ver = usb_ver;
	h->num_ports = ports;
	h->fe_fd = -1;
	memset(h->ports, 0, sizeof(h->ports));
	log_info("controller %s/%d created: USB %s, %u ports", fe, devid, usb_ver == 1 ? "1.1" : "2.0",
		 ports);
	return h;
}

void pvusbd_hc_free(struct pvusbd *d, struct pvusbd_hc *h)
{
	if (h->fe_fd >= 0) {
		close(h->fe_fd); /* closing removes it from the epoll set */
		h->fe_fd = -1;
	}
	pvusb_hc_destroy(h->hc); /* closes every device: host devices go back to their drivers */
	h->hc = NULL;
	memset(h->ports, 0, sizeof(h->ports));
}

/* Where a host device (by bus path) is assigned already, if anywhere. */
static const struct pvusbd_hc *find_busid(struct pvusbd *d, const char *busid, unsigned *port)
{
	for (int i = 0; busid[0] && i < PVUSBD_MAX_HCS; i++) {
		const struct pvusbd_hc *h = &d->hcs[i];
		for (unsigned p = 1; h->hc && p <= h->num_ports; p++)
			if (!strcmp(h->ports[p].busid, busid)) {
				*port = p;
				return h;
			}
	}
	return NULL;
}

bool pvusbd_busid_assigned(struct pvusbd *d, const char *busid)
{
	unsigned port;
	return find_busid(d, busid, &port) != NULL;
}

static int refuse_assigned(struct pvusbd *d, const char *busid, char *err, size_t errlen)
{
	unsigned port;
	const struct pvusbd_hc *h = find_busid(d, busid, &port);
	if (!h)
		return 0;
	snprintf(err, errlen, "device %s is already assigned to %s controller %u port %u; "
			      "detach it there first", busid, h->frontend, h->devid, port);
	return -EBUSY;
}

static bool is_xen_domain(struct pvusbd *d, const char *fe)
{
	for (int i = 0; i < PVUSBD_MAX_HCS; i++)
		if (d->hcs[i].hc && !strcmp(d->hcs[i].frontend, fe) && !strcmp(d->hcs[i].transport, "xen"))
			return true;
	return false;
}

static unsigned first_free_port(const struct pvusbd_hc *h)
{
	for (unsigned p = 1; p <= h->num_ports; p++)
		if (!h->ports[p].device[0])
			return p;
	return 0;
}

/* xl's rules: no controller: the first free port of the domain's controllers
 * in devid order (*h NULL when none: the caller makes a default one);
 * a controller without a port: its first free port. */
static int choose_port(struct pvusbd *d, const char *fe, int ctrl, unsigned *port, struct pvusbd_hc **out,
		       char *err, size_t errlen)
{
	*out = NULL;
	if (ctrl >= 0) {
		struct pvusbd_hc *h = pvusbd_find_hc(d, fe, (unsigned)ctrl);
		if (!h) {
			snprintf(err, errlen, "%s has no controller %d (see 'pvusb usb-list %s')", fe, ctrl, fe);
			return -ENOENT;
		}
		if (*port > h->num_ports) {
			snprintf(err, errlen, "controller %d of %s has ports 1..%u", ctrl, fe, h->num_ports);
			return -EINVAL;
		}
		if (*port && h->ports[*port].device[0]) {
			snprintf(err, errlen, "port %u of controller %d already holds %s", *port, ctrl,
				 h->ports[*port].device);
			return -EBUSY;
		}
		if (!*port && !(*port = first_free_port(h))) {
			snprintf(err, errlen, "controller %d of %s has no free port", ctrl, fe);
			return -ENOSPC;
		}
		*out = h;
		return 0;
	}
	for (int i = 0; i < PVUSBD_MAX_HCS; i++) { /* the lowest devid with a free port */
		struct pvusbd_hc *h = &d->hcs[i];
		if (h->hc && !strcmp(h->frontend, fe) && first_free_port(h) && (!*out || h->devid < (*out)->devid))
			*out = h;
	}
	if (*out)
		*port = first_free_port(*out);
	return 0;
}

#ifdef PVUSB_HAVE_LIBUSB
static bool hostdev_matches(const struct pvusb_devname *n, const struct pvusb_hostdev *h)
{
	if (n->kind == PVUSB_DEVNAME_BUSADDR)
		return h->bus == n->bus && h->addr == n->addr;
	return h->vendor == n->vendor && h->product == n->product &&
	       (!n->serial[0] || !strcmp(n->serial, h->serial));
}

/* bus.address and vendor:product[:serial] name a device only through the
 * host's list; an assigned one is refused here, before opening it. */
static int precheck_host(struct pvusbd *d, const struct pvusb_devname *n, char *err, size_t errlen)
{
	struct pvusb_hostdev *list;
	size_t count;
	int rc = 0;
	if (pvusb_hostdev_list(&list, &count) < 0)
		return 0; /* the open will say what is wrong */
	size_t found = count, matches = 0;
	for (size_t i = 0; i < count; i++)
		if (hostdev_matches(n, &list[i]) && matches++ == 0)
			found = i;
	if (matches == 1) /* several: the open lists them as ambiguous */
		rc = refuse_assigned(d, list[found].busid, err, errlen);
	pvusb_hostdev_free(list);
	return rc;
}
#endif

/* Host names are checked before the device is touched: opening it would
 * take it from its driver. */
static int precheck_name(struct pvusbd *d, const char *device, char *err, size_t errlen)
{
	struct pvusb_devname n;
	int rc = pvusb_devname_parse(device, &n, err, errlen);
	if (rc < 0 || n.kind == PVUSB_DEVNAME_EMUL)
		return rc;
	if (n.kind == PVUSB_DEVNAME_BUSPATH) {
		char busid[32];
		pvusb_devname_buspath(n.bus, n.ports, n.nports, busid, sizeof(busid));
		return refuse_assigned(d, busid, err, errlen);
	}
#ifdef PVUSB_HAVE_LIBUSB
	return precheck_host(d, &n, err, errlen);
#else
	return 0;
#endif
}

static const char *attach_error(int rc)
{
	switch (rc) {
	case -EBUSY: return "the port already holds a device";
	case -EMEDIUMTYPE: return "hubs cannot be passed through";
	case -EPROTONOSUPPORT: return "a high-speed device cannot go on a USB 1.1 controller; "
				      "use a version=2 controller";
	case -EINVAL: return "no such port";
	default: return strerror(-rc);
	}
}

/* Open the device and put it on h's port; records it. */
static int open_and_attach(struct pvusbd *d, struct pvusbd_hc *h, unsigned port, const char *device,
			   char *err, size_t errlen)
{
	struct pvusb_dev *dev;
	char why[200] = "";
	int rc = pvusb_dev_open(device, &dev, why, sizeof(why));
	if (rc < 0) {
		snprintf(err, errlen, "cannot open %s: %s", device, why[0] ? why : strerror(-rc));
		return rc;
	}
	rc = refuse_assigned(d, dev->busid, err, errlen);
	if (!rc && dev->dev_class == 9) {
		snprintf(err, errlen, "%s is a hub; hubs cannot be passed through", device);
		rc = -EMEDIUMTYPE;
	}
	if (!rc && (rc = pvusb_hc_attach(h->hc, port, dev)) < 0)
		snprintf(err, errlen, "cannot attach %s to port %u: %s", device, port, attach_error(rc));
	if (rc < 0) {
		dev->ops->close(dev);
		return rc;
	}
	struct pvusbd_port *rec = &h->ports[port];
	snprintf(rec->device, sizeof(rec->device), "%s", device);
	snprintf(rec->busid, sizeof(rec->busid), "%s", dev->busid);
	rec->missing = false;
	log_info("controller %s/%u port %u: attached %s%s%s", h->frontend, h->devid, port, device,
		 dev->busid[0] ? " at " : "", dev->busid);
	return 0;
}

int pvusbd_assign(struct pvusbd *d, const char *fe, int ctrl, unsigned port, const char *device,
		  struct pvusbd_hc **hc_out, unsigned *port_out, char *err, size_t errlen)
{
	struct pvusbd_hc *h = NULL;
	int rc = precheck_name(d, device, err, errlen);
	if (!rc)
		rc = choose_port(d, fe, ctrl, &port, &h, err, errlen);
	if (rc < 0)
		return rc;
	bool made = false;
	if (!h && is_xen_domain(d, fe)) { /* only libxl makes Xen controllers */
		snprintf(err, errlen, "every port of %s's controllers is taken; add a controller with "
				      "'xl usbctrl-attach %s type=pv'", fe, fe);
		return -ENOSPC;
	}
	if (!h) { /* xl: no free port anywhere, so a new default controller */
		if (!(h = pvusbd_hc_new(d, fe, -1, 2, 8, err, errlen)))
			return -ENOSPC;
		made = true;
		port = 1;
	}
	rc = open_and_attach(d, h, port, device, err, errlen);
	if (rc < 0) {
		if (made)
			pvusbd_hc_free(d, h); /* a failed command changes nothing */
		return rc;
	}
	*hc_out = h;
	*port_out = port;
	return 0;
}

int pvusbd_unassign(struct pvusbd *d, struct pvusbd_hc *h, unsigned port, char *err, size_t errlen)
{
	struct pvusbd_port *rec = &h->ports[port];
	if (port < 1 || port > h->num_ports) {
		snprintf(err, errlen, "controller %u of %s has ports 1..%u", h->devid, h->frontend,
			 h->num_ports);
		return -EINVAL;
	}
	if (!rec->device[0]) {
		snprintf(err, errlen, "port %u of controller %u is empty", port, h->devid);
		return -ENOENT;
	}
	if (!rec->missing) {
		int rc = pvusb_hc_detach(h->hc, port);
		if (rc < 0 && rc != -ENOENT) {
			snprintf(err, errlen, "cannot detach port %u: %s", port, strerror(-rc));
			return rc;
		}
	}
	log_info("controller %s/%u port %u: detached %s", h->frontend, h->devid, port, rec->device);
	memset(rec, 0, sizeof(*rec));
	return 0;
}

/* A device recorded as missing: reopen it by its bus path when it had one
 * (bus.address changes on every replug), else by the user's name. */
static bool retry_one(struct pvusbd *d, struct pvusbd_hc *h, unsigned port)
{
	struct pvusbd_port *rec = &h->ports[port];
	char device[sizeof(rec->device)], busid[sizeof(rec->busid)], err[256];
	struct pvusb_devname n;
	snprintf(device, sizeof(device), "%s", rec->device);
	snprintf(busid, sizeof(busid), "%s", rec->busid);
	bool by_busid = busid[0] && pvusb_devname_parse(device, &n, err, sizeof(err)) == 0 &&
			n.kind == PVUSB_DEVNAME_BUSADDR;
	memset(rec, 0, sizeof(*rec)); /* so the busid check does not see itself */
	if (open_and_attach(d, h, port, by_busid ? busid : device, err, sizeof(err)) == 0) {
		snprintf(rec->device, sizeof(rec->device), "%s", device);
		return true;
	}
	snprintf(rec->device, sizeof(rec->device), "%s", device);
	snprintf(rec->busid, sizeof(rec->busid), "%s", busid);
	rec->missing = true;
	return false;
}

void pvusbd_retry_missing(struct pvusbd *d)
{
	bool changed = false;
	for (int i = 0; i < PVUSBD_MAX_HCS; i++) {
		struct pvusbd_hc *h = &d->hcs[i];
		for (unsigned p = 1; h->hc && p <= h->num_ports; p++)
			if (h->ports[p].missing && retry_one(d, h, p))
				changed = true;
	}
	if (changed)
		pvusbd_state_save(d);
}

void pvusbd_restore_port(struct pvusbd *d, struct pvusbd_hc *h, unsigned port, const char *device,
			 const char *busid)
{
	struct pvusbd_port *rec = &h->ports[port];
	snprintf(rec->device, sizeof(rec->device), "%s", device);
	snprintf(rec->busid, sizeof(rec->busid), "%s", busid);
	rec->missing = true;
	if (!retry_one(d, h, port))
		log_warn("controller %s/%u port %u: %s is not present; it goes back on this port "
			 "when it appears", h->frontend, h->devid, port, device);
}
