/* SPDX-License-Identifier: MIT */
/*
 * xen-usbfs-check: run in the Xen machine's domU (a busybox ramdisk, hence
 * static and libusb-free) against pvusb's emulated sourcesink, which no
 * kernel driver claims. Through usbfs it moves verified data over the
 * xen-hcd rings: bulk IN checked against the pattern (k % maxpacket) % 63,
 * bulk OUT with that pattern (the sink fails the transfer on a wrong byte),
 * and the vendor control loopback (0x5b writes, 0x5c reads back).
 *
 *   xen-usbfs-check [MIB [VID:PID [PERIOD]]]
 *
 * MIB each way (default 4); the device (default 1209:7500, pvusb's emulated
 * one; 1d6b:0104 is a dom0 f_sourcesink gadget, which has no control
 * loopback); PERIOD: the IN pattern restarts every PERIOD bytes (default 0 =
 * every maxpacket, as pvusb's sourcesink and f_sourcesink make it).
 *
 * Prints one "USBFS-CHECK: ..." line per part and exits 0 when all pass.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/usbdevice_fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define XFER 32768 /* 8 pages: well inside xen-hcd's 16 segments */

static int read_sys(const char *dev, const char *attr, char *buf, size_t len)
{
	char path[300];
	snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/%s", dev, attr);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, (int)len, f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static char want_vid[8] = "1209", want_pid[8] = "7500";

/* The sysfs name of the first want_vid:want_pid device, or -1. */
static int find_sourcesink(char *name, size_t len)
{
	DIR *dir = opendir("/sys/bus/usb/devices");
	struct dirent *de;
	char v[16], p[16];
	int rc = -1;
	while (dir && rc < 0 && (de = readdir(dir))) {
		if (read_sys(de->d_name, "idVendor", v, sizeof(v)) < 0 ||
		    read_sys(de->d_name, "idProduct", p, sizeof(p)) < 0)
			continue;
		if (!strcmp(v, want_vid) && !strcmp(p, want_pid)) {
			snprintf(name, len, "%s", de->d_name);
			rc = 0;
		}
	}
	if (dir)
		closedir(dir);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Byte k of the pattern: (k % period) % 63. */
static void fill(unsigned char *b, size_t n, unsigned period)
{
	for (size_t k = 0; k < n; k++)
		b[k] = (unsigned char)((k % period) % 63);
}

static int bulk(int fd, unsigned ep, void *buf, unsigned len)
{
	struct usbdevfs_bulktransfer bt = {.ep = ep, .len = len, .timeout = 10000, .data = buf};
	return ioctl(fd, USBDEVFS_BULK, &bt);
}

static int check_in(int fd, unsigned period, unsigned mib)
{
	static unsigned char buf[XFER], want[XFER];
	fill(want, sizeof(want), period);
	unsigned n = mib * 1048576u / XFER;
	double t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		int got = bulk(fd, 0x81, buf, XFER);
		if (got != XFER || memcmp(buf, want, XFER)) {
			printf("USBFS-CHECK: FAIL bulk IN transfer %u: %d (%s)%s\n", i, got,
			       got < 0 ? strerror(errno) : "short", got == XFER ? ", pattern wrong" : "");
			return 1;
		}
	}
	printf("USBFS-CHECK: PASS bulk IN %u MiB verified, %.2f MB/s\n", mib,
	       (double)n * XFER / 1e6 / (now_s() - t0));
	return 0;
}

static int check_out(int fd, unsigned mps, unsigned mib)
{
	static unsigned char buf[XFER];
	fill(buf, sizeof(buf), mps);
	unsigned n = mib * 1048576u / XFER;
	double t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		int put = bulk(fd, 0x02, buf, XFER);
		if (put != XFER) {
			printf("USBFS-CHECK: FAIL bulk OUT transfer %u: %d (%s)\n", i, put,
			       put < 0 ? strerror(errno) : "short");
			return 1;
		}
	}
	printf("USBFS-CHECK: PASS bulk OUT %u MiB accepted by the sink, %.2f MB/s\n", mib,
	       (double)n * XFER / 1e6 / (now_s() - t0));
	return 0;
}

static int check_control(int fd)
{
	unsigned char out[512], in[512];
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (unsigned char)(i * 7 + 3);
	struct usbdevfs_ctrltransfer w = {.bRequestType = 0x40, .bRequest = 0x5b, .wLength = sizeof(out),
					  .timeout = 5000, .data = out};
	struct usbdevfs_ctrltransfer r = {.bRequestType = 0xc0, .bRequest = 0x5c, .wLength = sizeof(in),
					  .timeout = 5000, .data = in};
	int a = ioctl(fd, USBDEVFS_CONTROL, &w);
	int b = a == (int)sizeof(out) ? ioctl(fd, USBDEVFS_CONTROL, &r) : -1;
	if (a != (int)sizeof(out) || b != (int)sizeof(in) || memcmp(in, out, sizeof(in))) {
		printf("USBFS-CHECK: FAIL control loopback: write %d, read %d\n", a, b);
		return 1;
	}
	printf("USBFS-CHECK: PASS control loopback 512 bytes\n");
	return 0;
}

int main(int argc, char **argv)
{
	unsigned mib = argc > 1 ? (unsigned)atoi(argv[1]) : 4;
	unsigned period = argc > 3 ? (unsigned)atoi(argv[3]) : 0;
	char name[256], v[16], path[64];
	if (argc > 2 && sscanf(argv[2], "%4[0-9a-f]:%4[0-9a-f]", want_vid, want_pid) != 2) {
		printf("USBFS-CHECK: FAIL bad VID:PID '%s'\n", argv[2]);
		return 1;
	}
	if (mib == 0 || find_sourcesink(name, sizeof(name)) < 0) {
		printf("USBFS-CHECK: FAIL no %s:%s device in /sys/bus/usb/devices\n", want_vid, want_pid);
		return 1;
	}
	unsigned bus = 0, dev = 0, mps = 512;
	if (read_sys(name, "busnum", v, sizeof(v)) == 0)
		bus = (unsigned)atoi(v);
	if (read_sys(name, "devnum", v, sizeof(v)) == 0)
		dev = (unsigned)atoi(v);
	if (read_sys(name, "ep_81/wMaxPacketSize", v, sizeof(v)) == 0)
		mps = (unsigned)strtoul(v, NULL, 16);
	snprintf(path, sizeof(path), "/dev/bus/usb/%03u/%03u", bus, dev);
	int fd = open(path, O_RDWR);
	unsigned intf = 0;
	if (fd < 0 || mps == 0 || ioctl(fd, USBDEVFS_CLAIMINTERFACE, &intf) < 0) {
		printf("USBFS-CHECK: FAIL cannot open and claim %s (%s): %s\n", name, path, strerror(errno));
		return 1;
	}
	printf("USBFS-CHECK: device %s at %s, bulk maxpacket %u\n", name, path, mps);
	bool emulated = !strcmp(want_vid, "1209"); /* only pvusb's has the control loopback */
	int bad = (emulated ? check_control(fd) : 0) + check_in(fd, period ? period : mps, mib) +
		  check_out(fd, mps, mib);
	close(fd);
	return bad ? 1 : 0;
}
