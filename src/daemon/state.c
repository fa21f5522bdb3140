/* SPDX-License-Identifier: MIT */
/*
 * The state file: every controller and assignment, rewritten atomically on
 * every change (temporary file, fsync, rename, fsync of the directory), so
 * that a daemon killed at any moment restarts with the last state it
 * acknowledged. Controllers of the xen transport are recorded for the
 * listing's sake but come back from xenstore, which is their truth.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#ifdef PVUSB_HAVE_LIBUSB
#include "dev/libusb_dev.h"
#endif
#include "util/log.h"
#include "xport/xen.h"

#define STATE_VERSION 1

static json_object *port_json(unsigned port, const struct pvusbd_port *rec)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "port", json_object_new_int((int)port));
	json_object_object_add(o, "device", json_object_new_string(rec->device));
	json_object_object_add(o, "busid", json_object_new_string(rec->busid));
	return o;
}

static json_object *state_json(struct pvusbd *d)
{
	json_object *root = json_object_new_object(), *arr = json_object_new_array();
	json_object_object_add(root, "version", json_object_new_int(STATE_VERSION));
	for (int i = 0; i < PVUSBD_MAX_HCS; i++) {
		const struct pvusbd_hc *h = &d->hcs[i];
		if (!h->hc)
			continue;
		json_object *o = json_object_new_object(), *devs = json_object_new_array();
		json_object_object_add(o, "frontend", json_object_new_string(h->frontend));
		json_object_object_add(o, "controller", json_object_new_int((int)h->devid));
		json_object_object_add(o, "usb-ver", json_object_new_int((int)h->usb_ver));
		json_object_object_add(o, "ports", json_object_new_int((int)h->num_ports));
		json_object_object_add(o, "transport", json_object_new_string(h->transport));
		for (unsigned p = 1; p <= h->num_ports; p++)
			if (h->ports[p].device[0])
				json_object_array_add(devs, port_json(p, &h->ports[p]));
		json_object_object_add(o, "devices", devs);
		json_object_array_add(arr, o);
	}
	json_object_object_add(root, "controllers", arr);
	return root;
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static void fsync_dir(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int pvusbd_state_save(struct pvusbd *d)
{
	if (!d->state_path)
		return 0;
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", d->state_path);
	json_object *root = state_json(d);
	const char *txt = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
	int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		rc = -errno;
	if (!rc)
		rc = write_all(fd, txt, strlen(txt));
	if (!rc)
		rc = write_all(fd, "\n", 1);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (!rc && rename(tmp, d->state_path) < 0)
		rc = -errno;
	json_object_put(root);
	if (rc < 0) {
		unlink(tmp);
		log_err("cannot write the state file %s: %s; the change is live but will not "
			"survive a restart", d->state_path, strerror(-rc));
		return rc;
	}
	fsync_dir(d->state_path);
	return 0;
}

/* ---- loading ---- */

/* A required integer field within [lo, hi], or -1. */
static int jint(json_object *o, const char *k, int lo, int hi)
{
	long x;
	return pvusbd_get_int(o, k, lo, hi, -1, &x) < 0 ? -1 : (int)x;
}

static void load_devices(struct pvusbd *d, struct pvusbd_hc *h, json_object *devs)
{
	size_t n = json_object_is_type(devs, json_type_array) ? json_object_array_length(devs) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(devs, i);
		int port = jint(o, "port", 1, (int)h->num_ports);
		const char *dev = pvusbd_get_str(o, "device"), *busid = pvusbd_get_str(o, "busid");
		if (port < 0 || !dev || !*dev || strlen(dev) >= sizeof(h->ports[0].device) ||
		    (busid && strlen(busid) >= sizeof(h->ports[0].busid)) || h->ports[port].device[0]) {
			log_warn("state file: controller %s/%u: skipping a bad device entry", h->frontend,
				 h->devid);
			continue;
		}
		pvusbd_restore_port(d, h, (unsigned)port, dev, busid ? busid : "");
	}
}

/* Remember every host device the last run held, so that the ones nobody
 * holds after the restore go back to their kernel drivers. */
static void note_held(struct pvusbd *d, json_object *devs)
{
	size_t n = json_object_is_type(devs, json_type_array) ? json_object_array_length(devs) : 0;
	for (size_t i = 0; i < n && d->nheld < PVUSBD_MAX_HELD; i++) {
		const char *busid = pvusbd_get_str(json_object_array_get_idx(devs, i), "busid");
		if (busid && *busid && strlen(busid) < sizeof(d->held[0]))
			snprintf(d->held[d->nheld++], sizeof(d->held[0]), "%s", busid);
	}
}

/*
 * Emulated devices on xen controllers: xenstore's port/N names only host
 * devices, so these come back from here when src/daemon/xen.c finds the
 * controller again at start. Kept apart because the save at the end of the
 * load drops xen controllers (they are not made yet).
 */
struct xen_dev_rec {
	char frontend[64];
	unsigned devid, port;
	char device[sizeof(((struct pvusbd_port *)0)->device)];
};
static struct xen_dev_rec *xen_devs; /* as many as the state file has */
static unsigned n_xen_devs, cap_xen_devs;

static struct xen_dev_rec *xen_dev_new(void)
{
	if (n_xen_devs == cap_xen_devs) {
		unsigned cap = cap_xen_devs ? 2 * cap_xen_devs : 16;
		struct xen_dev_rec *p = realloc(xen_devs, cap * sizeof(*p));
		if (!p)
			return NULL;
		xen_devs = p;
		cap_xen_devs = cap;
	}
	return &xen_devs[n_xen_devs++];
}

static void note_xen_devices(const char *fe, int devid, int ports, json_object *devs)
{
	size_t n = json_object_is_type(devs, json_type_array) ? json_object_array_length(devs) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(devs, i);
		int port = jint(o, "port", 1, ports);
		const char *dev = pvusbd_get_str(o, "device"), *busid = pvusbd_get_str(o, "busid");
		if (port < 0 || !dev || !*dev || strlen(dev) >= sizeof(xen_devs[0].device) || (busid && *busid))
			continue; /* host devices come back from port/N */
		struct xen_dev_rec *r = xen_dev_new();
		if (!r) {
			log_err("state: out of memory: %s/%d port %d not restored", fe, devid, port);
			return;
		}
		snprintf(r->frontend, sizeof(r->frontend), "%s", fe);
		r->devid = (unsigned)devid;
		r->port = (unsigned)port;
		snprintf(r->device, sizeof(r->device), "%s", dev);
	}
}

const char *pvusbd_state_xen_device(const char *frontend, unsigned devid, unsigned port)
{
	for (unsigned i = 0; i < n_xen_devs; i++)
		if (xen_devs[i].devid == devid && xen_devs[i].port == port &&
		    !strcmp(xen_devs[i].frontend, frontend))
			return xen_devs[i].device;
	return NULL;
}

void pvusbd_state_xen_forget(void)
{
	free(xen_devs);
	xen_devs = NULL;
	n_xen_devs = cap_xen_devs = 0;
}

static void load_controller(struct pvusbd *d, json_object *o)
{
	const char *fe = pvusbd_get_str(o, "frontend"), *xport = pvusbd_get_str(o, "transport");
	int devid = jint(o, "controller", 0, 1000000), ver = jint(o, "usb-ver", 1, 2);
	int ports = jint(o, "ports", 1, USBIF_MAX_PORTNR);
	char err[256];
	if (!fe || !*fe || strlen(fe) >= 64 || devid < 0 || ver < 0 || ports < 0) {
		log_warn("state file: skipping a bad controller entry");
		return;
	}
	json_object *held;
	if (json_object_object_get_ex(o, "devices", &held))
		note_held(d, held);
	if (xport && !strcmp(xport, "xen") && json_object_object_get_ex(o, "devices", &held))
		note_xen_devices(fe, devid, ports, held);
	if (xport && strcmp(xport, "local"))
		return; /* xen controllers come back from xenstore */
	struct pvusbd_hc *h = pvusbd_hc_new(d, fe, devid, (unsigned)ver, (unsigned)ports, err, sizeof(err));
	if (!h) {
		log_warn("state file: controller %s/%d: %s", fe, devid, err);
		return;
	}
	json_object *devs;
	if (json_object_object_get_ex(o, "devices", &devs))
		load_devices(d, h, devs);
}

int pvusbd_state_load(struct pvusbd *d)
{
	if (!d->state_path)
		return 0;
	json_object *root = json_object_from_file(d->state_path);
	if (!root) {
		if (access(d->state_path, F_OK) == 0) {
			log_err("state file %s is not valid JSON; starting empty and keeping it as %s.bad",
				d->state_path, d->state_path);
			char bad[4096];
			snprintf(bad, sizeof(bad), "%s.bad", d->state_path);
			rename(d->state_path, bad);
		}
		return 0;
	}
	json_object *arr;
	if (jint(root, "version", STATE_VERSION, STATE_VERSION) < 0 ||
	    !json_object_object_get_ex(root, "controllers", &arr) || !json_object_is_type(arr, json_type_array)) {
		log_err("state file %s has an unknown layout; ignoring it", d->state_path);
		json_object_put(root);
		return -EINVAL;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		load_controller(d, json_object_array_get_idx(arr, i));
	json_object_put(root);
	log_info("restored state from %s", d->state_path);
	return pvusbd_state_save(d); /* drop whatever could not be restored */
}

void pvusbd_state_give_back(struct pvusbd *d)
{
#ifdef PVUSB_HAVE_LIBUSB
	for (unsigned i = 0; i < d->nheld; i++) {
		if (pvusbd_busid_assigned(d, d->held[i]))
			continue;
		int rc = pvusb_libusb_reattach_drivers(d->held[i]);
		if (rc > 0)
			log_info("%s: given back to its kernel drivers (held by the last run, no longer "
				 "assigned)", d->held[i]);
	}
#endif
	d->nheld = 0;
}
