/* SPDX-License-Identifier: MIT */
/*
 * Listing host USB devices and naming them. The list comes from libusb (a
 * private context, so listing never starts the back-end's threads); strings
 * come from sysfs, which reads the kernel's cached copies instead of sending
 * requests to devices that may be busy or assigned.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libusb.h>
#ifdef PVUSB_HAVE_LIBUDEV
#include <libudev.h>
#endif

#include "dev/hostdev.h"
#include "pvusb/devname.h"
#include "pvusb/usbif.h"

static const char *const usbids_paths[] = {
	"/usr/share/misc/usb.ids",
	"/var/lib/usbutils/usb.ids",
	"/usr/share/hwdata/usb.ids",
	"/usr/share/usb.ids",
};

/* ---- sysfs ---- */

int pvusb_hostdev_sysfs_attr(const char *busid, const char *attr, char *buf, size_t len)
{
	char path[160];
	if (len == 0 || strchr(busid, '/') || strchr(attr, '/'))
		return -EINVAL;
	snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/%s", busid, attr);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, len - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = 0;
	return n ? 0 : -ENODATA;
}

/* ---- usb.ids ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* "xxxx  Name": 4 hex digits, whitespace, the name. Returns the name or NULL. */
static const char *id_line(const char *s, uint16_t *id)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval((unsigned char)s[i]);
		if (h < 0)
			return NULL;
		v = v << 4 | (unsigned)h;
	}
	if (s[4] != ' ' && s[4] != '\t')
		return NULL;
	s += 4;
	while (*s == ' ' || *s == '\t')
		s++;
	*id = (uint16_t)v;
	return s;
}

static void copy_name(char *dst, size_t len, const char *src)
{
	size_t n = strcspn(src, "\r\n");
	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

int pvusb_usbids_lookup(const char *path, uint16_t vid, uint16_t pid, char *vendor_name,
			size_t vlen, char *product_name, size_t plen)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	int found = 0;
	bool in_vendor = false;
	while (getline(&line, &cap, f) > 0) {
		uint16_t id;
		const char *name;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (line[0] != '\t') {
			if (in_vendor)
				break; /* the vendor's block ended without the product */
			if ((name = id_line(line, &id)) && id == vid) {
				copy_name(vendor_name, vlen, name);
				found |= 1;
				in_vendor = true;
			}
			continue;
		}
		/* "\tpppp  product"; "\t\tiiii  interface" lines are skipped */
		if (in_vendor && line[1] != '\t' && (name = id_line(line + 1, &id)) && id == pid) {
			copy_name(product_name, plen, name);
			found |= 2;
			break;
		}
	}
	free(line);
	fclose(f);
	return found;
}

/* ---- names ---- */

#ifdef PVUSB_HAVE_LIBUDEV
/* ID_VENDOR_FROM_DATABASE / ID_MODEL_FROM_DATABASE, as udev's usb builtin
 * asks the hwdb. Returns the same bit mask as pvusb_usbids_lookup. */
static int hwdb_lookup(uint16_t vid, uint16_t pid, char *vendor_name, size_t vlen,
		       char *product_name, size_t plen)
{
	struct udev *udev = udev_new();
	if (!udev)
		return 0;
	struct udev_hwdb *hwdb = udev_hwdb_new(udev);
	int found = 0;
	if (hwdb) {
		char modalias[32];
		snprintf(modalias, sizeof(modalias), "usb:v%04Xp%04X*", vid, pid);
		struct udev_list_entry *e;
		udev_list_entry_foreach(e, udev_hwdb_get_properties_list_entry(hwdb, modalias, 0)) {
			const char *key = udev_list_entry_get_name(e), *val = udev_list_entry_get_value(e);
			if (!val || !*val)
				continue;
			if (!strcmp(key, "ID_VENDOR_FROM_DATABASE")) {
				copy_name(vendor_name, vlen, val);
				found |= 1;
			} else if (!strcmp(key, "ID_MODEL_FROM_DATABASE")) {
				copy_name(product_name, plen, val);
				found |= 2;
			}
		}
		udev_hwdb_unref(hwdb);
	}
	udev_unref(udev);
	return found;
}
#endif

void pvusb_hostdev_names(uint16_t vid, uint16_t pid, const char *busid, char *vendor_name,
			 size_t vlen, char *product_name, size_t plen)
{
	char vbuf[128], pbuf[128];
	int found = 0;
#ifdef PVUSB_HAVE_LIBUDEV
	found = hwdb_lookup(vid, pid, vbuf, sizeof(vbuf), pbuf, sizeof(pbuf));
#endif
	for (size_t i = 0; found != 3 && i < sizeof(usbids_paths) / sizeof(usbids_paths[0]); i++) {
		char v2[128], p2[128];
		int r = pvusb_usbids_lookup(usbids_paths[i], vid, pid, v2, sizeof(v2), p2, sizeof(p2));
		if (r < 0)
			continue;
		if ((r & 1) && !(found & 1))
			snprintf(vbuf, sizeof(vbuf), "%s", v2);
		if ((r & 2) && !(found & 2))
			snprintf(pbuf, sizeof(pbuf), "%s", p2);
		found |= r;
		break; /* one usb.ids is enough: they are copies of one list */
	}
	if (!(found & 1) && !(busid && pvusb_hostdev_sysfs_attr(busid, "manufacturer", vbuf, sizeof(vbuf)) == 0))
		snprintf(vbuf, sizeof(vbuf), "%04x", vid);
	if (!(found & 2) && !(busid && pvusb_hostdev_sysfs_attr(busid, "product", pbuf, sizeof(pbuf)) == 0))
		snprintf(pbuf, sizeof(pbuf), "%04x", pid);
	snprintf(vendor_name, vlen, "%s", vbuf);
	snprintf(product_name, plen, "%s", pbuf);
}

/* ---- listing ---- */

static void usb_busid(libusb_device *dev, char *buf, size_t len)
{
	uint8_t ports[PVUSB_DEVNAME_MAX_DEPTH];
	int n = libusb_get_port_numbers(dev, ports, sizeof(ports));
	uint8_t bus = libusb_get_bus_number(dev);
	if (n <= 0)
		snprintf(buf, len, "usb%u", bus); /* a root hub */
	else
		pvusb_devname_buspath(bus, ports, (unsigned)n, buf, len);
}

static void speed_of(libusb_device *dev, uint8_t *usbif_speed, unsigned *mbps)
{
	switch (libusb_get_device_speed(dev)) {
	case LIBUSB_SPEED_LOW: *usbif_speed = USBIF_SPEED_LOW; *mbps = 1; break;
	case LIBUSB_SPEED_FULL: *usbif_speed = USBIF_SPEED_FULL; *mbps = 12; break;
	case LIBUSB_SPEED_HIGH: *usbif_speed = USBIF_SPEED_HIGH; *mbps = 480; break;
	case LIBUSB_SPEED_SUPER: *usbif_speed = USBIF_SPEED_NONE; *mbps = 5000; break;
	case LIBUSB_SPEED_SUPER_PLUS: *usbif_speed = USBIF_SPEED_NONE; *mbps = 10000; break;
	default: *usbif_speed = USBIF_SPEED_NONE; *mbps = 0; break;
	}
}

static void interface_classes(libusb_device *dev, struct pvusb_hostdev *h)
{
	struct libusb_config_descriptor *cfg;
	h->nifaces = 0;
	if (libusb_get_active_config_descriptor(dev, &cfg) != 0)
		return;
	for (unsigned i = 0; i < cfg->bNumInterfaces && h->nifaces < PVUSB_HOSTDEV_MAX_IFACES; i++) {
		const struct libusb_interface *intf = &cfg->interface[i];
		if (intf->num_altsetting > 0)
			h->iface_class[h->nifaces++] = intf->altsetting[0].bInterfaceClass;
	}
	libusb_free_config_descriptor(cfg);
}

static int describe(libusb_device *dev, struct pvusb_hostdev *h)
{
	struct libusb_device_descriptor dd;
	int rc = libusb_get_device_descriptor(dev, &dd);
	if (rc != 0)
		return -EIO;
	memset(h, 0, sizeof(*h));
	usb_busid(dev, h->busid, sizeof(h->busid));
	h->bus = libusb_get_bus_number(dev);
	h->addr = libusb_get_device_address(dev);
	h->vendor = dd.idVendor;
	h->product = dd.idProduct;
	h->dev_class = dd.bDeviceClass;
	h->is_hub = dd.bDeviceClass == LIBUSB_CLASS_HUB;
	speed_of(dev, &h->speed, &h->speed_mbps);
	if (dd.iSerialNumber)
		pvusb_hostdev_sysfs_attr(h->busid, "serial", h->serial, sizeof(h->serial));
	pvusb_hostdev_names(h->vendor, h->product, h->busid, h->vendor_name, sizeof(h->vendor_name),
			    h->product_name, sizeof(h->product_name));
	interface_classes(dev, h);
	return 0;
}

/* Bus paths in numeric order: 1-2 < 1-10, 1-2 < 1-2.1, root hubs first. */
static int busid_cmp(const void *a, const void *b)
{
	const struct pvusb_hostdev *x = a, *y = b;
	if (x->bus != y->bus)
		return x->bus < y->bus ? -1 : 1;
	const char *p = x->busid, *q = y->busid;
	bool xroot = !strncmp(p, "usb", 3), yroot = !strncmp(q, "usb", 3);
	if (xroot || yroot)
		return yroot - xroot;
	p = strchr(p, '-');
	q = strchr(q, '-');
	while (p && q && *p && *q) {
		char *pe, *qe;
		unsigned long u = strtoul(p + 1, &pe, 10), v = strtoul(q + 1, &qe, 10);
		if (u != v)
			return u < v ? -1 : 1;
		p = *pe ? pe : NULL;
		q = *qe ? qe : NULL;
	}
	return (p != NULL) - (q != NULL);
}

int pvusb_hostdev_list(struct pvusb_hostdev **out, size_t *n)
{
	libusb_context *ctx;
	*out = NULL;
	*n = 0;
	if (libusb_init(&ctx) != 0)
		return -EIO;
	libusb_device **devs;
	ssize_t count = libusb_get_device_list(ctx, &devs);
	if (count < 0) {
		libusb_exit(ctx);
		return -EIO;
	}
	struct pvusb_hostdev *list = calloc(count ? (size_t)count : 1, sizeof(*list));
	if (!list) {
		libusb_free_device_list(devs, 1);
		libusb_exit(ctx);
		return -ENOMEM;
	}
	size_t used = 0;
	for (ssize_t i = 0; i < count; i++)
		if (describe(devs[i], &list[used]) == 0)
			used++;
	libusb_free_device_list(devs, 1);
	libusb_exit(ctx);
	qsort(list, used, sizeof(*list), busid_cmp);
	*out = list;
	*n = used;
	return 0;
}

void pvusb_hostdev_free(struct pvusb_hostdev *list)
{
	free(list);
}
