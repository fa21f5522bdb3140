/* SPDX-License-Identifier: MIT */
/*
 * Host USB devices as the toolstack lists them (`list-assignable`), and the
 * human names of a vendor:product pair. Names come from the udev hwdb, then
 * from usb.ids, then from the device's own iManufacturer/iProduct strings.
 * Nothing here claims or changes a device.
 */
#ifndef PVUSB_DEV_HOSTDEV_H
#define PVUSB_DEV_HOSTDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PVUSB_HOSTDEV_MAX_IFACES 32

struct pvusb_hostdev {
	char busid[32];        /* bus path "2-4.3.3"; root hubs are "usbN" */
	uint8_t bus, addr;
	uint16_t vendor, product;
	char serial[128];      /* "" when the device has none */
	uint8_t dev_class;     /* bDeviceClass */
	bool is_hub;           /* bDeviceClass 9: never assignable (E.5) */
	uint8_t speed;         /* enum usbif_speed; USBIF_SPEED_NONE when usbif cannot carry it */
	unsigned speed_mbps;   /* 1 (1.5), 12, 480, 5000, 10000, 20000; 0 unknown */
	char vendor_name[128]; /* never empty: falls back to "vvvv" in hex */
	char product_name[128];
	unsigned nifaces;      /* interfaces of the active configuration */
	uint8_t iface_class[PVUSB_HOSTDEV_MAX_IFACES]; /* bInterfaceClass of alt 0 of each */
};

/* Every USB device the host sees, root hubs included, sorted by bus path.
 * 0 with *out (free with pvusb_hostdev_free) and *n, or a negative errno. */
int pvusb_hostdev_list(struct pvusb_hostdev **out, size_t *n);
void pvusb_hostdev_free(struct pvusb_hostdev *list);

/* The names of vid:pid. busid (may be NULL) lets the device's own strings
 * from sysfs fill what the databases do not know. Never fails: the last
 * resort is the number in hex. */
void pvusb_hostdev_names(uint16_t vid, uint16_t pid, const char *busid, char *vendor_name,
			 size_t vlen, char *product_name, size_t plen);

/* Look vid:pid up in a usb.ids file. Returns a bit mask: 1 vendor found,
 * 2 product found (the names are written only when found), or -errno when
 * the file cannot be read. */
int pvusb_usbids_lookup(const char *path, uint16_t vid, uint16_t pid, char *vendor_name,
			size_t vlen, char *product_name, size_t plen);

/* One sysfs attribute of a host device (/sys/bus/usb/devices/<busid>/<attr>),
 * without its trailing newline. 0 or -errno. */
int pvusb_hostdev_sysfs_attr(const char *busid, const char *attr, char *buf, size_t len);

#endif
