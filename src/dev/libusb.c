/* SPDX-License-Identifier: MIT */
/*
 * Real host devices through libusb-1.0 (spec E.2, E.3, E.5, E.6).
 *
 * Threads:
 *  - a controller's service thread calls submit, cancel, reset and close
 *    (device.h);
 *  - one libusb event thread for the whole process, started by the first
 *    open, runs libusb's transfer callbacks (our completions) and hot-plug
 *    callbacks;
 *  - one worker thread runs what may block: the synchronous libusb calls that
 *    stand in for SET_CONFIGURATION, SET_INTERFACE and
 *    CLEAR_FEATURE(ENDPOINT_HALT), and hot-plug handling (drop a vanished
 *    device, reopen one that came back, tell the core). Hot-plug callbacks
 *    only queue work for it: libusb forbids blocking calls inside them, and
 *    the core's event_cb has no business running on libusb's thread.
 *
 * Lock order: be.lock (device list, job queue, worker_refs)
 *             -> lu_dev.lock (handle, slots, gone)
 *             -> the core's rsp_lock (taken inside pvusb_xfer_complete).
 * libusb_submit_transfer and libusb_cancel_transfer are called with
 * lu_dev.lock held: libusb runs our transfer callback without holding any
 * lock those two take, so the callback may take lu_dev.lock. Calls that block
 * (open, claim, set_configuration, reset, close) run with none of our locks.
 *
 * The event thread runs each round of libusb event handling inside a
 * completion batch (device.h) and ends it holding none of our locks: batch
 * end takes rsp_lock, so it must not run under be.lock or lu_dev.lock.
 *
 * Who may use a device handle: submits under lu_dev.lock; the worker (sync
 * requests, hot-plug); reset() between h_users++ and h_users--. Only
 * drop_handle() closes it, after every transfer has completed and h_users is
 * 0, so no other thread can be inside libusb with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dev/hostdev.h"
#include "dev/libusb_dev.h"
#include "pvusb/devname.h"
#include "util/log.h"

#define LU_SLOTS USB_URB_RING_SIZE  /* a device sits on one port: at most 16 in flight */
#define LU_CTRL_MAX 65535u          /* wLength is 16 bits */
#define LU_MAX_IFACES 32            /* libusb's claimed-interface mask is 32 bits */
#define LU_DMEM_MIN 1024u           /* smaller transfers: usbfs's own buffer costs nothing */

enum slot_state { SLOT_FREE, SLOT_SUBMITTED, SLOT_SYNC };
enum job_kind { JOB_SYNC, JOB_CHECK, JOB_LEFT, JOB_ARRIVED };

struct lu_dev;
struct lu_slot;

struct lu_job {
	struct lu_job *next;
	enum job_kind kind;
	bool queued;
	struct lu_dev *dev;   /* SYNC, CHECK */
	struct lu_slot *slot; /* SYNC */
	libusb_device *udev;  /* LEFT, ARRIVED: holds a reference */
};

/* One transfer in flight; preallocated so the URB path does not allocate
 * (only a first large control/bounce or a larger iso count grows it). */
struct lu_slot {
	struct lu_dev *dev;
	struct libusb_transfer *t;
	int iso_cap;        /* iso packets t was allocated with */
	uint8_t *bounce;
	size_t bounce_cap;
	bool bounced;       /* the data went through bounce, not zero copy */
	uint8_t *dmem;      /* usbfs memory (libusb_dev_mem_alloc) of the handle, or NULL */
	size_t dmem_cap;
	bool via_dmem;      /* bulk/interrupt data goes through dmem */
	enum slot_state state;
	bool cancelled;     /* the guest unlinked it */
	struct pvusb_xfer *x;
	struct lu_job job;  /* JOB_SYNC */
};

struct lu_dev {
	struct pvusb_dev base; /* first: a struct pvusb_dev * is a struct lu_dev * */
	pthread_mutex_t lock;
	pthread_cond_t idle;       /* usb_inflight or h_users dropped to 0 */
	libusb_device_handle *h;   /* NULL while gone */
	libusb_device *udev;       /* the device under h (a reference), NULL while gone */
	bool gone;                 /* read without the lock by the worker: atomics */
	unsigned usb_inflight;     /* slots SUBMITTED to libusb */
	unsigned h_users;          /* reset() using h outside the lock */
	uint32_t claimed;          /* interfaces we claimed (bit = bInterfaceNumber) */
	uint32_t detached;         /* interfaces whose kernel driver we detached */
	bool dmem_off;             /* usbfs memory refused for this handle: do not ask again */
	struct lu_slot slots[LU_SLOTS];
	struct pvusb_devname want; /* how the user named it: finds it again after a replug */

	/* under be.lock */
	struct lu_dev *next;
	unsigned worker_refs;      /* the worker is using it outside be.lock */
	bool closing;
	bool shut;                 /* given back by pvusb_libusb_shutdown */
	struct lu_job check;       /* JOB_CHECK: did the device vanish? */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a job was queued, or worker_refs dropped */
	libusb_context *ctx;
	bool running;
	int stop_events;     /* libusb_handle_events_completed's flag */
	bool stop_worker;
	pthread_t event_thread, worker_thread;
	bool have_hotplug;
	libusb_hotplug_callback_handle hotplug;
	struct lu_dev *devs;
	struct lu_job *head, *tail;
} be = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* usbfs memory held by the whole process. usbfs counts it against
 * usbfs_memory_mb (16 MiB by default) together with every ordinary transfer
 * in flight, so it takes at most half of that: past the cap, slots keep the
 * ordinary path rather than make other transfers fail with ENOMEM. */
#define LU_DMEM_CAP (8u << 20)
static size_t be_dmem_total; /* atomic */

static struct lu_dev *to_lu(struct pvusb_dev *d) { return (struct lu_dev *)d; }

static bool dev_gone(struct lu_dev *d) { return __atomic_load_n(&d->gone, __ATOMIC_ACQUIRE); }
static void set_gone(struct lu_dev *d, bool v) { __atomic_store_n(&d->gone, v, __ATOMIC_RELEASE); }

/* ---- result mapping (E.3) ---- */

int32_t pvusb_libusb_xfer_status(int st)
{
	switch (st) {
	case LIBUSB_TRANSFER_COMPLETED: return USBIF_STATUS_OK;
	case LIBUSB_TRANSFER_STALL: return USBIF_STATUS_STALL;
	case LIBUSB_TRANSFER_NO_DEVICE: return USBIF_STATUS_NODEV;
	case LIBUSB_TRANSFER_OVERFLOW: return USBIF_STATUS_BABBLE;
	case LIBUSB_TRANSFER_ERROR:
	case LIBUSB_TRANSFER_TIMED_OUT:
	case LIBUSB_TRANSFER_CANCELLED: return USBIF_STATUS_IOERROR;
	default: return USBIF_STATUS_SHUTDOWN;
	}
}

int32_t pvusb_libusb_error_status(int err)
{
	switch (err) {
	case LIBUSB_SUCCESS: return USBIF_STATUS_OK;
	case LIBUSB_ERROR_PIPE: return USBIF_STATUS_STALL;
	/* no such interface, alternate setting or endpoint: a real device
	 * would stall the request */
	case LIBUSB_ERROR_NOT_FOUND:
	case LIBUSB_ERROR_INVALID_PARAM: return USBIF_STATUS_STALL;
	case LIBUSB_ERROR_NO_DEVICE: return USBIF_STATUS_NODEV;
	case LIBUSB_ERROR_OVERFLOW: return USBIF_STATUS_BABBLE;
	case LIBUSB_ERROR_IO:
	case LIBUSB_ERROR_TIMEOUT: return USBIF_STATUS_IOERROR;
	default: return USBIF_STATUS_SHUTDOWN;
	}
}

/* ---- isochronous packing ---- */

int pvusb_iso_layout(const struct pvusb_xfer *x, uint32_t *total, int *packed)
{
	uint64_t sum = 0;
	int in_order = 1;
	for (uint32_t k = 0; k < x->npackets; k++) {
		if (x->iso[k].offset != sum)
			in_order = 0;
		sum += x->iso[k].length;
	}
	if (sum > x->length)
		return -EINVAL;
	*total = (uint32_t)sum;
	*packed = in_order;
	return 0;
}

void pvusb_iso_pack(const struct pvusb_xfer *x, uint8_t *dst)
{
	size_t pos = 0;
	for (uint32_t k = 0; k < x->npackets; k++) {
		pvusb_xfer_copy_from(x, x->iso[k].offset, dst + pos, x->iso[k].length);
		pos += x->iso[k].length;
	}
}

uint32_t pvusb_iso_unpack(struct pvusb_xfer *x, const uint8_t *src,
			  const struct libusb_iso_packet_descriptor *pk, int32_t *errors)
{
	uint32_t total = 0;
	size_t pos = 0;
	*errors = 0;
	for (uint32_t k = 0; k < x->npackets; k++) {
		struct usbif_iso_desc *d = &x->iso[k];
		uint32_t got = pk[k].actual_length < d->length ? pk[k].actual_length : d->length;
		int32_t st = pvusb_libusb_xfer_status(pk[k].status);
		if (src && got)
			got = (uint32_t)pvusb_xfer_copy_to(x, d->offset, src + pos, got);
		d->actual_length = got;
		d->status = st;
		*errors += st != 0;
		total += got;
		pos += d->length; /* libusb's packet k starts after the asked lengths */
	}
	return total;
}

/* A 1 ms frame counter for isochronous responses: libusb does not report the
 * host controller's frame, and the guest only uses it as information.
 * Taken when the transfer is submitted, so it says where it started. */
static uint16_t frame_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint16_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* ---- worker jobs ---- */

static void queue_job_locked(struct lu_job *j)
{
	j->next = NULL;
	j->queued = true;
	if (be.tail)
		be.tail->next = j;
	else
		be.head = j;
	be.tail = j;
	pthread_cond_broadcast(&be.cond);
}

static void unqueue_job_locked(struct lu_job *j)
{
	struct lu_job **pp = &be.head, *prev = NULL;
	for (; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp != j)
			continue;
		*pp = j->next;
		if (be.tail == j)
			be.tail = prev;
		j->queued = false;
		return;
	}
}

/* A transfer said NO_DEVICE: have the worker check, in case no hot-plug
 * event tells us (libusb hot-plug needs udevd). */
static void queue_check(struct lu_dev *d)
{
	pthread_mutex_lock(&be.lock);
	if (!d->check.queued && !d->closing && be.running)
		queue_job_locked(&d->check);
	pthread_mutex_unlock(&be.lock);
}

/* ---- taking interfaces from the host and giving them back (E.5) ---- */

/* Detach the kernel driver of every interface of the active configuration
 * and claim it. Failures are logged: the guest then sees the device's
 * requests to that interface fail, which beats refusing the whole device. */
static void take_interfaces(struct lu_dev *d, libusb_device_handle *h)
{
	struct libusb_config_descriptor *cfg;
	uint32_t claimed = 0, detached = 0;
	if (libusb_get_active_config_descriptor(libusb_get_device(h), &cfg) != 0)
		return; /* unconfigured: nothing to take */
	for (unsigned i = 0; i < cfg->bNumInterfaces; i++) {
		if (cfg->interface[i].num_altsetting < 1)
			continue;
		int ifnum = cfg->interface[i].altsetting[0].bInterfaceNumber;
		if (ifnum >= LU_MAX_IFACES)
			continue;
		if (libusb_kernel_driver_active(h, ifnum) == 1) {
			int rc = libusb_detach_kernel_driver(h, ifnum);
			if (rc == 0)
				detached |= 1u << ifnum;
			else
				log_warn("libusb %s: cannot detach the kernel driver of interface %d: %s",
					 d->base.busid, ifnum, libusb_strerror(rc));
		}
		int rc = libusb_claim_interface(h, ifnum);
		if (rc == 0)
			claimed |= 1u << ifnum;
		else
			log_warn("libusb %s: cannot claim interface %d: %s", d->base.busid, ifnum,
				 libusb_strerror(rc));
	}
	libusb_free_config_descriptor(cfg);
	pthread_mutex_lock(&d->lock);
	d->claimed |= claimed;
	d->detached |= detached;
	pthread_mutex_unlock(&d->lock);
}

static void release_interfaces(libusb_device_handle *h, uint32_t claimed)
{
	for (int i = 0; i < LU_MAX_IFACES; i++)
		if (claimed & (1u << i))
			libusb_release_interface(h, i);
}

/* Release, then let the kernel probe drivers again (USBDEVFS_CONNECT). Also
 * for interfaces that had no driver when we took them: the kernel would
 * have probed them anyway had we not been there. */
static void give_back_interfaces(libusb_device_handle *h, uint32_t claimed, uint32_t detached)
{
	release_interfaces(h, claimed);
	for (int i = 0; i < LU_MAX_IFACES; i++) {
		if (!((claimed | detached) & (1u << i)))
			continue;
		int rc = libusb_attach_kernel_driver(h, i);
		if (rc != 0 && rc != LIBUSB_ERROR_NOT_FOUND && rc != LIBUSB_ERROR_NO_DEVICE)
			log_warn("libusb: cannot give interface %d back to its kernel driver: %s", i,
				 libusb_strerror(rc));
	}
}

/* ---- closing a handle: unplug, close, shutdown ---- */

static void wait_idle_locked(struct lu_dev *d)
{
	unsigned waited = 0;
	while (d->usb_inflight || d->h_users) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		if (pthread_cond_timedwait(&d->idle, &d->lock, &ts) == ETIMEDOUT && ++waited % 5 == 0)
			log_warn("libusb %s: still waiting for %u transfers to end", d->base.busid,
				 d->usb_inflight);
	}
}

/* usbfs memory belongs to the handle: given back before it closes. */
static void free_dmem(struct lu_dev *d, libusb_device_handle *h)
{
	for (unsigned i = 0; i < LU_SLOTS; i++) {
		struct lu_slot *s = &d->slots[i];
		if (!s->dmem)
			continue;
		libusb_dev_mem_free(h, s->dmem, s->dmem_cap);
		__atomic_sub_fetch(&be_dmem_total, s->dmem_cap, __ATOMIC_RELAXED);
		s->dmem = NULL;
		s->dmem_cap = 0;
	}
}

/* Refuse new transfers, end those in flight, close the handle. Returns
 * whether there was a handle. give_back: hand the interfaces to the kernel
 * (not for an unplugged device: its interfaces are gone). */
static bool drop_handle(struct lu_dev *d, bool give_back)
{
	pthread_mutex_lock(&d->lock);
	libusb_device_handle *h = d->h;
	if (!h) {
		pthread_mutex_unlock(&d->lock);
		return false;
	}
	set_gone(d, true);
	for (unsigned i = 0; i < LU_SLOTS; i++)
		if (d->slots[i].state == SLOT_SUBMITTED)
			libusb_cancel_transfer(d->slots[i].t);
	wait_idle_locked(d);
	libusb_device *udev = d->udev;
	uint32_t claimed = d->claimed, detached = d->detached;
	d->h = NULL;
	d->udev = NULL;
	d->claimed = d->detached = 0;
	d->dmem_off = false;
	pthread_mutex_unlock(&d->lock);

	free_dmem(d, h); /* idle and no handle: no transfer can use it */
	if (give_back)
		give_back_interfaces(h, claimed, detached);
	libusb_close(h);
	libusb_unref_device(udev);
	return true;
}

/* ---- the worker: synchronous requests (E.2) ---- */

static bool is_host_stack_request(const uint8_t *setup)
{
	uint8_t rt = setup[0], req = setup[1];
	return (rt == 0x00 && req == USB_REQ_SET_CONFIGURATION) ||
	       (rt == 0x01 && req == USB_REQ_SET_INTERFACE) ||
	       (rt == 0x02 && req == USB_REQ_CLEAR_FEATURE && usbif_le16(setup + 2) == USB_ENDPOINT_HALT);
}

/* The host's USB stack must know the configuration: release, set, take the
 * new configuration's interfaces (its kernel drivers probed them). */
static int32_t set_configuration(struct lu_dev *d, libusb_device_handle *h, uint8_t value)
{
	pthread_mutex_lock(&d->lock);
	uint32_t claimed = d->claimed;
	d->claimed = 0;
	pthread_mutex_unlock(&d->lock);
	release_interfaces(h, claimed);
	int rc = libusb_set_configuration(h, value ? value : -1);
	take_interfaces(d, h);
	if (rc != 0)
		log_warn("libusb %s: SET_CONFIGURATION %u: %s", d->base.busid, value, libusb_strerror(rc));
	return pvusb_libusb_error_status(rc);
}

static int32_t host_stack_request(struct lu_dev *d, libusb_device_handle *h, const uint8_t *setup)
{
	uint16_t value = usbif_le16(setup + 2), index = usbif_le16(setup + 4);
	switch (setup[1]) {
	case USB_REQ_SET_CONFIGURATION:
		return set_configuration(d, h, (uint8_t)value);
	case USB_REQ_SET_INTERFACE:
		return pvusb_libusb_error_status(libusb_set_interface_alt_setting(h, index, value));
	default: /* CLEAR_FEATURE(ENDPOINT_HALT): the host resets its data toggle too */
		return pvusb_libusb_error_status(libusb_clear_halt(h, (uint8_t)index));
	}
}

static void run_sync(struct lu_dev *d, struct lu_slot *s)
{
	struct pvusb_xfer *x = s->x;
	pthread_mutex_lock(&d->lock);
	bool cancelled = s->cancelled;
	libusb_device_handle *h = d->h; /* only the worker (this thread) closes it */
	pthread_mutex_unlock(&d->lock);

	int32_t status;
	if (cancelled)
		status = USBIF_STATUS_CONNRESET;
	else if (!h)
		status = USBIF_STATUS_NODEV;
	else
		status = host_stack_request(d, h, x->setup);

	pthread_mutex_lock(&d->lock);
	s->state = SLOT_FREE;
	s->x = NULL;
	pthread_mutex_unlock(&d->lock);
	x->status = status;
	x->actual_length = 0;
	pvusb_xfer_complete(x);
}

/* ---- the worker: hot-plug (E.6) ---- */

static void announce(struct lu_dev *d, enum pvusb_dev_event ev)
{
	pvusb_dev_event_cb cb = d->base.event_cb;
	if (cb)
		cb(&d->base, ev, d->base.event_arg);
}

static void go_away(struct lu_dev *d)
{
	if (!drop_handle(d, false))
		return;
	log_info("libusb %s (%s): unplugged; waiting for it to come back", d->base.name,
		 d->base.busid);
	announce(d, PVUSB_DEV_GONE);
}

/* A transfer said NO_DEVICE: ask the device something harmless. */
static void run_check(struct lu_dev *d)
{
	pthread_mutex_lock(&d->lock);
	libusb_device_handle *h = d->h;
	pthread_mutex_unlock(&d->lock);
	if (!h)
		return;
	uint8_t status[2];
	int rc = libusb_control_transfer(h, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_STATUS, 0, 0, status,
					 sizeof(status), 1000);
	if (rc == LIBUSB_ERROR_NO_DEVICE)
		go_away(d);
}

static void usb_busid(libusb_device *udev, char *buf, size_t len)
{
	uint8_t ports[PVUSB_DEVNAME_MAX_DEPTH];
	int n = libusb_get_port_numbers(udev, ports, sizeof(ports));
	if (n <= 0)
		snprintf(buf, len, "usb%u", libusb_get_bus_number(udev));
	else
		pvusb_devname_buspath(libusb_get_bus_number(udev), ports, (unsigned)n, buf, len);
}

static int usbif_speed_of(libusb_device *udev)
{
	switch (libusb_get_device_speed(udev)) {
	case LIBUSB_SPEED_LOW: return USBIF_SPEED_LOW;
	case LIBUSB_SPEED_FULL: return USBIF_SPEED_FULL;
	case LIBUSB_SPEED_HIGH: return USBIF_SPEED_HIGH;
	default: return USBIF_SPEED_NONE;
	}
}

/* Is a device that just arrived the one `d` was? Same vendor:product
 * (and serial when given) for a device named so, else the same bus path. */
static bool is_returning(const struct lu_dev *d, const struct libusb_device_descriptor *dd,
			 const char *busid)
{
	if (d->want.kind != PVUSB_DEVNAME_VIDPID)
		return strcmp(busid, d->base.busid) == 0;
	if (dd->idVendor != d->want.vendor || dd->idProduct != d->want.product)
		return false;
	if (!d->want.serial[0])
		return true;
	char serial[128];
	return pvusb_hostdev_sysfs_attr(busid, "serial", serial, sizeof(serial)) == 0 &&
	       strcmp(serial, d->want.serial) == 0;
}

static void describe(struct lu_dev *d, const struct libusb_device_descriptor *dd)
{
	char vname[128], pname[128];
	pvusb_hostdev_names(dd->idVendor, dd->idProduct, d->base.busid, vname, sizeof(vname), pname,
			    sizeof(pname));
	/* each half cut so that both fit in desc[128] */
	snprintf(d->base.desc, sizeof(d->base.desc), "%.63s %.63s", vname, pname);
}

static void come_back(struct lu_dev *d, libusb_device *udev, const struct libusb_device_descriptor *dd,
		      const char *busid)
{
	int speed = usbif_speed_of(udev);
	if (speed == USBIF_SPEED_NONE) {
		log_warn("libusb %s: came back at %s at a speed usbif cannot carry; left alone",
			 d->base.name, busid);
		return;
	}
	libusb_device_handle *h;
	int rc = libusb_open(udev, &h);
	if (rc != 0) {
		log_warn("libusb %s: came back at %s but cannot be opened: %s", d->base.name, busid,
			 libusb_strerror(rc));
		return;
	}
	snprintf(d->base.busid, sizeof(d->base.busid), "%s", busid);
	take_interfaces(d, h);
	if (dd->idVendor != d->base.vendor || dd->idProduct != d->base.product)
		describe(d, dd);
	pthread_mutex_lock(&d->lock);
	d->h = h;
	d->udev = libusb_ref_device(udev);
	d->base.speed = (uint8_t)speed;
	d->base.vendor = dd->idVendor;
	d->base.product = dd->idProduct;
	d->base.dev_class = dd->bDeviceClass;
	set_gone(d, false);
	pthread_mutex_unlock(&d->lock);
	log_info("libusb %s: back at %s", d->base.name, busid);
	announce(d, PVUSB_DEV_BACK);
}

/* Find an open device matching `pred` and pin it for the worker. */
static struct lu_dev *pin_device(libusb_device *udev, const struct libusb_device_descriptor *dd,
				 const char *busid)
{
	pthread_mutex_lock(&be.lock);
	struct lu_dev *d = be.devs;
	for (; d; d = d->next) {
		if (d->closing || d->shut)
			continue;
		if (dd ? (dev_gone(d) && !d->udev && is_returning(d, dd, busid)) : d->udev == udev)
			break;
	}
	if (d)
		d->worker_refs++;
	pthread_mutex_unlock(&be.lock);
	return d;
}

static void unpin_device(struct lu_dev *d)
{
	pthread_mutex_lock(&be.lock);
	if (--d->worker_refs == 0)
		pthread_cond_broadcast(&be.cond);
	pthread_mutex_unlock(&be.lock);
}

static void handle_left(libusb_device *udev)
{
	struct lu_dev *d = pin_device(udev, NULL, NULL);
	if (!d)
		return;
	go_away(d);
	unpin_device(d);
}

static void handle_arrived(libusb_device *udev)
{
	struct libusb_device_descriptor dd;
	char busid[32];
	if (libusb_get_device_descriptor(udev, &dd) != 0 || dd.bDeviceClass == LIBUSB_CLASS_HUB)
		return;
	usb_busid(udev, busid, sizeof(busid));
	struct lu_dev *d = pin_device(udev, &dd, busid);
	if (!d)
		return;
	come_back(d, udev, &dd, busid);
	unpin_device(d);
}

static void run_job(struct lu_job *j)
{
	switch (j->kind) {
	case JOB_SYNC:
		run_sync(j->dev, j->slot);
		break;
	case JOB_CHECK:
		run_check(j->dev);
		break;
	case JOB_LEFT:
	case JOB_ARRIVED:
		if (j->kind == JOB_LEFT)
			handle_left(j->udev);
		else
			handle_arrived(j->udev);
		libusb_unref_device(j->udev);
		free(j);
		break;
	}
}

static void *worker_main(void *arg)
{
	pthread_mutex_lock(&be.lock);
	for (;;) {
		while (!be.head && !be.stop_worker)
			pthread_cond_wait(&be.cond, &be.lock);
		struct lu_job *j = be.head;
		if (!j)
			break; /* stopping, and nothing left to do */
		be.head = j->next;
		if (!be.head)
			be.tail = NULL;
		j->queued = false;
		struct lu_dev *d = j->dev;
		if (d)
			d->worker_refs++;
		pthread_mutex_unlock(&be.lock);
		run_job(j);
		pthread_mutex_lock(&be.lock);
		if (d && --d->worker_refs == 0)
			pthread_cond_broadcast(&be.cond);
	}
	pthread_mutex_unlock(&be.lock);
	return NULL;
}

/* libusb's thread: queue, never block (and the device is gone already). */
static int LIBUSB_CALL on_hotplug(libusb_context *ctx, libusb_device *udev, libusb_hotplug_event ev,
				  void *arg)
{
	struct lu_job *j = calloc(1, sizeof(*j));
	if (!j) {
		log_err("libusb: out of memory: a hot-plug event is lost");
		return 0;
	}
	j->kind = ev == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED ? JOB_ARRIVED : JOB_LEFT;
	j->udev = libusb_ref_device(udev);
	pthread_mutex_lock(&be.lock);
	queue_job_locked(j);
	pthread_mutex_unlock(&be.lock);
	return 0;
}

/* ---- the event thread and starting/stopping ---- */

static void *event_main(void *arg)
{
	while (!__atomic_load_n(&be.stop_events, __ATOMIC_ACQUIRE)) {
		/* every completion of one round goes out with one publish and
		 * at most one notify per controller (device.h) */
		pvusb_xfer_batch_begin();
		libusb_handle_events_completed(be.ctx, &be.stop_events);
		pvusb_xfer_batch_end();
	}
	return NULL;
}

static void stop_event_thread(void)
{
	__atomic_store_n(&be.stop_events, 1, __ATOMIC_RELEASE);
	libusb_interrupt_event_handler(be.ctx);
	pthread_join(be.event_thread, NULL);
}

static int start_locked(char *err, size_t errlen)
{
	if (be.running)
		return 0;
	int rc = libusb_init(&be.ctx);
	if (rc != 0) {
		snprintf(err, errlen, "libusb cannot start: %s", libusb_strerror(rc));
		return -EIO;
	}
	be.stop_events = 0;
	be.stop_worker = false;
	be.have_hotplug = libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG) &&
			  libusb_hotplug_register_callback(
				  be.ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
				  0, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
				  LIBUSB_HOTPLUG_MATCH_ANY, on_hotplug, NULL, &be.hotplug) == 0;
	if (!be.have_hotplug)
		log_warn("libusb: no hot-plug events; an unplugged device is noticed only by its "
			 "failing transfers and is not taken back when it returns");
	if (pthread_create(&be.event_thread, NULL, event_main, NULL) != 0) {
		libusb_exit(be.ctx);
		snprintf(err, errlen, "libusb: cannot start the event thread");
		return -EAGAIN;
	}
	if (pthread_create(&be.worker_thread, NULL, worker_main, NULL) != 0) {
		stop_event_thread();
		libusb_exit(be.ctx);
		snprintf(err, errlen, "libusb: cannot start the worker thread");
		return -EAGAIN;
	}
	pthread_setname_np(be.event_thread, "pvusb-libusb");
	pthread_setname_np(be.worker_thread, "pvusb-lu-work");
	be.running = true;
	return 0;
}

/* Give back one device that is still open, for shutdown; NULL when none. */
static struct lu_dev *pin_next_to_shut(void)
{
	pthread_mutex_lock(&be.lock);
	struct lu_dev *d = be.devs;
	while (d && (d->shut || d->closing))
		d = d->next;
	if (d) {
		d->shut = true;
		d->worker_refs++;
	}
	pthread_mutex_unlock(&be.lock);
	return d;
}

void pvusb_libusb_shutdown(void)
{
	pthread_mutex_lock(&be.lock);
	bool running = be.running;
	pthread_mutex_unlock(&be.lock);
	if (!running)
		return;
	if (be.have_hotplug)
		libusb_hotplug_deregister_callback(be.ctx, be.hotplug); /* no new jobs */
	pthread_mutex_lock(&be.lock);
	be.stop_worker = true; /* it finishes what is queued first */
	pthread_cond_broadcast(&be.cond);
	pthread_mutex_unlock(&be.lock);
	pthread_join(be.worker_thread, NULL);

	struct lu_dev *d;
	while ((d = pin_next_to_shut())) {
		if (drop_handle(d, true))
			log_info("libusb %s (%s): given back to the host", d->base.name, d->base.busid);
		unpin_device(d);
	}
	stop_event_thread();
	pthread_mutex_lock(&be.lock);
	libusb_exit(be.ctx);
	be.ctx = NULL;
	be.running = false;
	pthread_mutex_unlock(&be.lock);
}

/* ---- device operations ---- */

static struct lu_slot *free_slot_locked(struct lu_dev *d)
{
	for (unsigned i = 0; i < LU_SLOTS; i++)
		if (d->slots[i].state == SLOT_FREE)
			return &d->slots[i];
	return NULL;
}

static bool ensure_bounce(struct lu_slot *s, size_t n)
{
	if (n <= s->bounce_cap)
		return true;
	size_t cap = n < 4096 ? 4096 : n;
	uint8_t *b = malloc(cap);
	if (!b)
		return false;
	free(s->bounce);
	s->bounce = b;
	s->bounce_cap = cap;
	return true;
}

static bool ensure_iso(struct lu_slot *s, uint32_t npackets)
{
	if (npackets <= (uint32_t)s->iso_cap)
		return true;
	struct libusb_transfer *t = libusb_alloc_transfer((int)npackets);
	if (!t)
		return false;
	libusb_free_transfer(s->t);
	s->t = t;
	s->iso_cap = (int)npackets;
	return true;
}

static void LIBUSB_CALL on_transfer_done(struct libusb_transfer *t);

/* Control: libusb wants SETUP and data in one buffer, so it always bounces.
 * wLength is clipped to the buffer the guest gave. */
static int prepare_control(struct lu_dev *d, struct lu_slot *s, struct pvusb_xfer *x)
{
	uint32_t wlen = usbif_le16(x->setup + 6);
	if (wlen > x->length)
		wlen = x->length;
	if (!ensure_bounce(s, LIBUSB_CONTROL_SETUP_SIZE + wlen))
		return USBIF_STATUS_SHUTDOWN;
	memcpy(s->bounce, x->setup, LIBUSB_CONTROL_SETUP_SIZE);
	s->bounce[6] = (uint8_t)wlen;
	s->bounce[7] = (uint8_t)(wlen >> 8);
	if (!(x->setup[0] & USB_DIR_IN) && wlen)
		pvusb_xfer_copy_from(x, 0, s->bounce + LIBUSB_CONTROL_SETUP_SIZE, wlen);
	s->bounced = true;
	/* No libusb timeout (QEMU gives 10 s): the guest times out its own
	 * requests by unlinking them, as with kernel usbback, and a libusb
	 * timeout costs two timerfd_settime calls per control transfer (armed
	 * at submit, disarmed at completion) on the round trip's hot path. */
	libusb_fill_control_transfer(s->t, d->h, s->bounce, on_transfer_done, s, 0);
	return 0;
}

/*
 * A slot's usbfs memory, grown to n bytes; false when usbfs has none for us
 * (old kernel, usbfs_memory_mb, our cap). d->lock held. Grows at most to the
 * largest transfer a request can carry (64 KiB), so the URB path allocates
 * only while the first transfers of each size arrive.
 */
static bool ensure_dmem(struct lu_dev *d, struct lu_slot *s, size_t n)
{
	if (n <= s->dmem_cap)
		return true;
	size_t cap = (n + 16383) & ~(size_t)16383, grow = cap - s->dmem_cap;
	if (d->dmem_off)
		return false;
	if (__atomic_add_fetch(&be_dmem_total, grow, __ATOMIC_RELAXED) > LU_DMEM_CAP) {
		__atomic_sub_fetch(&be_dmem_total, grow, __ATOMIC_RELAXED);
		return false;
	}
	uint8_t *m = libusb_dev_mem_alloc(d->h, cap);
	if (!m) {
		__atomic_sub_fetch(&be_dmem_total, grow, __ATOMIC_RELAXED);
		d->dmem_off = true;
		return false;
	}
	if (s->dmem)
		libusb_dev_mem_free(d->h, s->dmem, s->dmem_cap);
	s->dmem = m;
	s->dmem_cap = cap;
	return true;
}

/*
 * Bulk and interrupt. Given ordinary memory, usbfs allocates and zeroes a
 * kernel buffer for every transfer and copies through it; with its own
 * mapped memory (dmem) it moves the data in place. So the data goes through
 * the slot's dmem with one copy here, which costs less than that kernel
 * allocation, zeroing and copy (README, gadget benchmark). Without dmem:
 * straight from the guest's pages when they are one run (libusb never
 * writes an OUT buffer, so a read-only mapping is fine), else the bounce.
 */
static int prepare_bulk(struct lu_dev *d, struct lu_slot *s, struct pvusb_xfer *x)
{
	uint8_t ep = (uint8_t)(x->endpoint | (x->in ? LIBUSB_ENDPOINT_IN : 0));
	uint8_t *buf = x->contig;
	s->bounced = false;
	s->via_dmem = x->length >= LU_DMEM_MIN && ensure_dmem(d, s, x->length);
	if (s->via_dmem) {
		buf = s->dmem;
		if (!x->in)
			pvusb_xfer_copy_from(x, 0, buf, x->length);
	} else if (!buf && x->length) {
		if (!ensure_bounce(s, x->length))
			return USBIF_STATUS_SHUTDOWN;
		if (!x->in)
			pvusb_xfer_copy_from(x, 0, s->bounce, x->length);
		buf = s->bounce;
		s->bounced = true;
	}
	if (x->type == USBIF_PIPE_TYPE_BULK)
		libusb_fill_bulk_transfer(s->t, d->h, ep, buf, (int)x->length, on_transfer_done, s, 0);
	else
		libusb_fill_interrupt_transfer(s->t, d->h, ep, buf, (int)x->length, on_transfer_done, s, 0);
	return 0;
}

/* Isochronous: zero copy when the guest's packets already lie back to back
 * in one run; otherwise gather (OUT) / scatter (IN) through the bounce. */
static int prepare_iso(struct lu_dev *d, struct lu_slot *s, struct pvusb_xfer *x)
{
	uint8_t ep = (uint8_t)(x->endpoint | (x->in ? LIBUSB_ENDPOINT_IN : 0));
	uint32_t total;
	int packed;
	if (pvusb_iso_layout(x, &total, &packed) < 0 || x->npackets > INT32_MAX)
		return USBIF_STATUS_INVAL; /* overlapping packets: no device reads that */
	if (!ensure_iso(s, x->npackets))
		return USBIF_STATUS_SHUTDOWN;
	uint8_t *buf = x->contig;
	s->bounced = !(packed && buf);
	if (s->bounced) {
		if (!ensure_bounce(s, total))
			return USBIF_STATUS_SHUTDOWN;
		if (!x->in)
			pvusb_iso_pack(x, s->bounce);
		buf = s->bounce;
	}
	libusb_fill_iso_transfer(s->t, d->h, ep, buf, (int)total, (int)x->npackets, on_transfer_done, s, 0);
	for (uint32_t k = 0; k < x->npackets; k++)
		s->t->iso_packet_desc[k].length = x->iso[k].length;
	/* the frame the transfer starts in, as Linux reports urb->start_frame
	 * (libusb does not tell the controller's own frame number) */
	x->rsp_start_frame = frame_now();
	return 0;
}

static int prepare(struct lu_dev *d, struct lu_slot *s, struct pvusb_xfer *x)
{
	int rc;
	s->via_dmem = false;
	switch (x->type) {
	case USBIF_PIPE_TYPE_CTRL:
		if (x->endpoint != 0)
			return USBIF_STATUS_INVAL;
		rc = prepare_control(d, s, x);
		break;
	case USBIF_PIPE_TYPE_ISOC:
		rc = prepare_iso(d, s, x);
		break;
	default:
		rc = prepare_bulk(d, s, x);
		break;
	}
	if (x->type != USBIF_PIPE_TYPE_ISOC)
		s->t->num_iso_packets = 0; /* the transfer may have been an iso one before */
	s->t->flags = 0;
	return rc;
}

static int32_t submit_error(struct lu_dev *d, int rc)
{
	if (rc == LIBUSB_ERROR_NO_DEVICE) {
		queue_check(d);
		return USBIF_STATUS_NODEV;
	}
	if (rc == LIBUSB_ERROR_BUSY || rc == LIBUSB_ERROR_NOT_FOUND || rc == LIBUSB_ERROR_INVALID_PARAM)
		return USBIF_STATUS_INVAL; /* interface not ours, no such endpoint, wrong type */
	return pvusb_libusb_error_status(rc);
}

/* SET_CONFIGURATION, SET_INTERFACE, CLEAR_FEATURE(HALT): the worker does it. */
static int submit_sync(struct lu_dev *d, struct pvusb_xfer *x)
{
	pthread_mutex_lock(&d->lock);
	struct lu_slot *s = d->h ? free_slot_locked(d) : NULL;
	if (!s) {
		int32_t st = d->h ? USBIF_STATUS_SHUTDOWN : USBIF_STATUS_NODEV;
		pthread_mutex_unlock(&d->lock);
		return st;
	}
	s->state = SLOT_SYNC;
	s->cancelled = false;
	s->x = x;
	x->dev_priv = s;
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_lock(&be.lock);
	queue_job_locked(&s->job);
	pthread_mutex_unlock(&be.lock);
	return 0;
}

static int lu_submit(struct pvusb_dev *pd, struct pvusb_xfer *x)
{
	struct lu_dev *d = to_lu(pd);
	if (x->type == USBIF_PIPE_TYPE_CTRL && is_host_stack_request(x->setup))
		return submit_sync(d, x);

	pthread_mutex_lock(&d->lock);
	if (!d->h) {
		pthread_mutex_unlock(&d->lock);
		return USBIF_STATUS_NODEV;
	}
	struct lu_slot *s = free_slot_locked(d);
	int rc = s ? prepare(d, s, x) : USBIF_STATUS_SHUTDOWN;
	if (rc < 0) {
		pthread_mutex_unlock(&d->lock);
		return rc;
	}
	s->state = SLOT_SUBMITTED;
	s->cancelled = false;
	s->x = x;
	x->dev_priv = s;
	d->usb_inflight++;
	int lrc = libusb_submit_transfer(s->t);
	if (lrc != 0) {
		s->state = SLOT_FREE;
		s->x = NULL;
		x->dev_priv = NULL;
		if (--d->usb_inflight == 0)
			pthread_cond_broadcast(&d->idle);
	}
	pthread_mutex_unlock(&d->lock);
	return lrc != 0 ? submit_error(d, lrc) : 0;
}

/* Lengths from libusb are trusted only up to what we asked for. */
static void collect_results(struct lu_slot *s, struct pvusb_xfer *x, const struct libusb_transfer *t)
{
	uint32_t got = t->actual_length > 0 ? (uint32_t)t->actual_length : 0;
	x->status = pvusb_libusb_xfer_status(t->status);
	switch (x->type) {
	case USBIF_PIPE_TYPE_CTRL: {
		uint32_t asked = (uint32_t)t->length - LIBUSB_CONTROL_SETUP_SIZE;
		if (got > asked)
			got = asked;
		if (x->setup[0] & USB_DIR_IN)
			got = (uint32_t)pvusb_xfer_copy_to(x, 0, s->bounce + LIBUSB_CONTROL_SETUP_SIZE, got);
		x->actual_length = got;
		break;
	}
	case USBIF_PIPE_TYPE_ISOC:
		x->actual_length = pvusb_iso_unpack(x, x->in && s->bounced ? s->bounce : NULL,
						    t->iso_packet_desc, &x->error_count);
		break;
	default:
		if (got > x->length)
			got = x->length;
		if (x->in && (s->bounced || s->via_dmem) && got)
			got = (uint32_t)pvusb_xfer_copy_to(x, 0, s->via_dmem ? s->dmem : s->bounce, got);
		x->actual_length = got;
		break;
	}
}

/* libusb's event thread. Exactly one completion per submitted transfer. */
static void LIBUSB_CALL on_transfer_done(struct libusb_transfer *t)
{
	struct lu_slot *s = t->user_data;
	struct lu_dev *d = s->dev;
	struct pvusb_xfer *x = s->x;
	collect_results(s, x, t);

	pthread_mutex_lock(&d->lock);
	bool no_device = t->status == LIBUSB_TRANSFER_NO_DEVICE;
	if (t->status != LIBUSB_TRANSFER_COMPLETED && (no_device || dev_gone(d)))
		x->status = USBIF_STATUS_NODEV; /* E.6 */
	else if (t->status == LIBUSB_TRANSFER_CANCELLED && s->cancelled)
		x->status = USBIF_STATUS_CONNRESET; /* device.h: the guest's unlink */
	bool check = no_device && !dev_gone(d);
	s->state = SLOT_FREE;
	s->x = NULL;
	if (--d->usb_inflight == 0)
		pthread_cond_broadcast(&d->idle);
	pthread_mutex_unlock(&d->lock);

	if (check)
		queue_check(d); /* before completing: close() cannot free d until then */
	pvusb_xfer_complete(x);
}

static void lu_cancel(struct pvusb_dev *pd, struct pvusb_xfer *x)
{
	struct lu_dev *d = to_lu(pd);
	pthread_mutex_lock(&d->lock);
	struct lu_slot *s = x->dev_priv;
	if (s && s >= d->slots && s < d->slots + LU_SLOTS && s->x == x && s->state != SLOT_FREE &&
	    !s->cancelled) {
		s->cancelled = true;
		if (s->state == SLOT_SUBMITTED)
			libusb_cancel_transfer(s->t); /* the callback still comes, once */
		/* SLOT_SYNC: the worker answers CONNRESET if it has not started */
	}
	pthread_mutex_unlock(&d->lock);
}

static int lu_reset(struct pvusb_dev *pd)
{
	struct lu_dev *d = to_lu(pd);
	pthread_mutex_lock(&d->lock);
	libusb_device_handle *h = d->h;
	if (h)
		d->h_users++;
	pthread_mutex_unlock(&d->lock);
	if (!h)
		return 0; /* gone: it comes back fresh, or not at all */

	int rc = libusb_reset_device(h); /* libusb claims our interfaces again */

	pthread_mutex_lock(&d->lock);
	if (--d->h_users == 0)
		pthread_cond_broadcast(&d->idle);
	pthread_mutex_unlock(&d->lock);
	if (rc == LIBUSB_ERROR_NOT_FOUND || rc == LIBUSB_ERROR_NO_DEVICE) {
		/* re-enumerated or unplugged: hot-plug (or the check) takes over */
		queue_check(d);
		return 0;
	}
	if (rc != 0) {
		log_warn("libusb %s: reset failed: %s", d->base.busid, libusb_strerror(rc));
		return -EIO;
	}
	return 0;
}

static void free_dev(struct lu_dev *d)
{
	if (d->udev)
		libusb_unref_device(d->udev); /* reserved by open, never got a handle */
	for (unsigned i = 0; i < LU_SLOTS; i++) {
		libusb_free_transfer(d->slots[i].t);
		free(d->slots[i].bounce);
	}
	pthread_cond_destroy(&d->idle);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static void lu_close(struct pvusb_dev *pd)
{
	struct lu_dev *d = to_lu(pd);
	pthread_mutex_lock(&be.lock);
	for (struct lu_dev **pp = &be.devs; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	d->closing = true;
	if (d->check.queued)
		unqueue_job_locked(&d->check);
	while (d->worker_refs)
		pthread_cond_wait(&be.cond, &be.lock);
	pthread_mutex_unlock(&be.lock);
	if (drop_handle(d, true))
		log_info("libusb %s (%s): given back to the host", d->base.name, d->base.busid);
	free_dev(d);
}

static const struct pvusb_dev_ops libusb_dev_ops = {
	.kind = "libusb",
	.submit = lu_submit,
	.cancel = lu_cancel,
	.reset = lu_reset,
	.close = lu_close,
};

/* ---- opening ---- */

static struct lu_dev *alloc_dev(void)
{
	struct lu_dev *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->idle, &ca);
	pthread_condattr_destroy(&ca);
	d->base.ops = &libusb_dev_ops;
	d->check.kind = JOB_CHECK;
	d->check.dev = d;
	for (unsigned i = 0; i < LU_SLOTS; i++) {
		struct lu_slot *s = &d->slots[i];
		s->dev = d;
		s->job.kind = JOB_SYNC;
		s->job.dev = d;
		s->job.slot = s;
		s->t = libusb_alloc_transfer(0);
		if (!s->t) {
			free_dev(d);
			return NULL;
		}
	}
	return d;
}

static bool name_matches(const struct pvusb_devname *n, libusb_device *udev,
			 const struct libusb_device_descriptor *dd)
{
	uint8_t ports[PVUSB_DEVNAME_MAX_DEPTH];
	int np;
	switch (n->kind) {
	case PVUSB_DEVNAME_BUSPATH:
		np = libusb_get_port_numbers(udev, ports, sizeof(ports));
		return libusb_get_bus_number(udev) == n->bus && np == n->nports &&
		       memcmp(ports, n->ports, (size_t)np) == 0;
	case PVUSB_DEVNAME_BUSADDR:
		return libusb_get_bus_number(udev) == n->bus && libusb_get_device_address(udev) == n->addr;
	case PVUSB_DEVNAME_VIDPID:
		if (dd->idVendor != n->vendor || dd->idProduct != n->product)
			return false;
		if (n->serial[0]) {
			char busid[32], serial[128];
			usb_busid(udev, busid, sizeof(busid));
			return pvusb_hostdev_sysfs_attr(busid, "serial", serial, sizeof(serial)) == 0 &&
			       strcmp(serial, n->serial) == 0;
		}
		return true;
	default:
		return false;
	}
}

/* Bus paths in bus, then port order, so that error messages are stable. */
static bool path_before(libusb_device *a, libusb_device *b)
{
	uint8_t pa[PVUSB_DEVNAME_MAX_DEPTH], pb[PVUSB_DEVNAME_MAX_DEPTH];
	if (libusb_get_bus_number(a) != libusb_get_bus_number(b))
		return libusb_get_bus_number(a) < libusb_get_bus_number(b);
	int na = libusb_get_port_numbers(a, pa, sizeof(pa)), nb = libusb_get_port_numbers(b, pb, sizeof(pb));
	for (int i = 0; i < na && i < nb; i++)
		if (pa[i] != pb[i])
			return pa[i] < pb[i];
	return na < nb;
}

static void list_candidates(libusb_device **hits, unsigned n, char *buf, size_t len)
{
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && path_before(hits[j], hits[j - 1]); j--) {
			libusb_device *t = hits[j];
			hits[j] = hits[j - 1];
			hits[j - 1] = t;
		}
	size_t used = 0;
	buf[0] = 0;
	for (unsigned i = 0; i < n && used + 1 < len; i++) {
		char busid[32];
		usb_busid(hits[i], busid, sizeof(busid));
		int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", busid);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* The one device `n` names, with a reference, or an error for the user. */
static int find_device(const struct pvusb_devname *n, const char *name, libusb_device **out,
		       char *err, size_t errlen)
{
	libusb_device **list, *hits[8];
	unsigned nhits = 0;
	ssize_t count = libusb_get_device_list(be.ctx, &list);
	if (count < 0) {
		snprintf(err, errlen, "libusb cannot list the host's devices: %s",
			 libusb_strerror((int)count));
		return -EIO;
	}
	for (ssize_t i = 0; i < count; i++) {
		struct libusb_device_descriptor dd;
		if (libusb_get_device_descriptor(list[i], &dd) == 0 && name_matches(n, list[i], &dd) &&
		    nhits < sizeof(hits) / sizeof(hits[0]))
			hits[nhits++] = list[i];
	}
	int rc = 0;
	if (nhits == 0) {
		snprintf(err, errlen, "no host USB device '%s' (list them with `lsusb -t`; "
			 "names: bus path 1-2.3, bus.address 1.6, vendor:product[:serial])", name);
		rc = -ENOENT;
	} else if (nhits > 1) {
		char paths[160];
		list_candidates(hits, nhits, paths, sizeof(paths));
		snprintf(err, errlen, "'%s' matches %u devices, at bus paths %s: name one by its bus "
			 "path, or add its serial (vendor:product:serial)", name, nhits, paths);
		rc = -EEXIST;
	} else
		*out = libusb_ref_device(hits[0]);
	libusb_free_device_list(list, 1);
	return rc;
}

static int check_assignable(libusb_device *udev, const struct libusb_device_descriptor *dd,
			    const char *busid, char *err, size_t errlen)
{
	if (dd->bDeviceClass == LIBUSB_CLASS_HUB) {
		snprintf(err, errlen, "%s is a USB hub (%04x:%04x); hubs cannot be assigned, only the "
			 "devices behind them", busid, dd->idVendor, dd->idProduct);
		return -EMEDIUMTYPE;
	}
	if (usbif_speed_of(udev) == USBIF_SPEED_NONE) {
		snprintf(err, errlen, "%s runs at a speed PVUSB cannot carry (SuperSpeed or unknown; "
			 "usbif stops at high speed): plug it into a USB 2 port", busid);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

/* Already held by this process (assigned elsewhere, or gone and waiting)? */
static bool held_locked(libusb_device *udev, const char *busid)
{
	for (struct lu_dev *d = be.devs; d; d = d->next)
		if (d->udev == udev || (dev_gone(d) && !strcmp(d->base.busid, busid)))
			return true;
	return false;
}

static int open_handle(libusb_device *udev, const char *busid, libusb_device_handle **h, char *err,
		       size_t errlen)
{
	int rc = libusb_open(udev, h);
	if (rc == 0)
		return 0;
	snprintf(err, errlen, "cannot open %s: %s%s", busid, libusb_strerror(rc),
		 rc == LIBUSB_ERROR_ACCESS ? " (pvusbd needs root, or write access to /dev/bus/usb)" : "");
	return rc == LIBUSB_ERROR_ACCESS ? -EACCES : rc == LIBUSB_ERROR_NO_DEVICE ? -ENODEV : -EIO;
}

static void fill_identity(struct lu_dev *d, const char *name, libusb_device *udev,
			  const struct libusb_device_descriptor *dd, const char *busid)
{
	snprintf(d->base.name, sizeof(d->base.name), "%s", name);
	snprintf(d->base.busid, sizeof(d->base.busid), "%s", busid);
	d->base.speed = (uint8_t)usbif_speed_of(udev);
	d->base.vendor = dd->idVendor;
	d->base.product = dd->idProduct;
	d->base.dev_class = dd->bDeviceClass;
	describe(d, dd);
}

static int open_found(const struct pvusb_devname *n, const char *name, libusb_device *udev,
		      struct pvusb_dev **out, char *err, size_t errlen)
{
	struct libusb_device_descriptor dd;
	char busid[32];
	usb_busid(udev, busid, sizeof(busid));
	int rc = libusb_get_device_descriptor(udev, &dd) == 0 ? 0 : -EIO;
	if (rc == 0)
		rc = check_assignable(udev, &dd, busid, err, errlen);
	if (rc < 0)
		return rc;
	struct lu_dev *d = alloc_dev();
	if (!d)
		return -ENOMEM;
	d->want = *n;
	fill_identity(d, name, udev, &dd, busid);

	pthread_mutex_lock(&be.lock);
	bool held = held_locked(udev, busid);
	if (!held) { /* reserve it: in the list without a handle, not gone */
		d->udev = libusb_ref_device(udev);
		d->next = be.devs;
		be.devs = d;
	}
	pthread_mutex_unlock(&be.lock);
	if (held) {
		snprintf(err, errlen, "%s is already assigned by this daemon", busid);
		free_dev(d);
		return -EBUSY;
	}
	libusb_device_handle *h;
	rc = open_handle(udev, busid, &h, err, errlen);
	if (rc < 0) {
		lu_close(&d->base); /* no handle: only unlinks and frees */
		return rc;
	}
	take_interfaces(d, h);
	pthread_mutex_lock(&d->lock);
	d->h = h;
	pthread_mutex_unlock(&d->lock);
	log_info("libusb %s: took %s (%04x:%04x %s)", name, busid, dd.idVendor, dd.idProduct,
		 d->base.desc);
	*out = &d->base;
	return 0;
}

int pvusb_libusb_open(const char *name, struct pvusb_dev **out, char *err, size_t errlen)
{
	struct pvusb_devname n;
	int rc = pvusb_devname_parse(name, &n, err, errlen);
	if (rc < 0)
		return rc;
	if (n.kind == PVUSB_DEVNAME_EMUL) {
		snprintf(err, errlen, "'%s' is not a host device name", name);
		return -ENOENT;
	}
	pthread_mutex_lock(&be.lock);
	rc = start_locked(err, errlen);
	pthread_mutex_unlock(&be.lock);
	if (rc < 0)
		return rc;
	libusb_device *udev;
	rc = find_device(&n, name, &udev, err, errlen);
	if (rc < 0)
		return rc;
	rc = open_found(&n, name, udev, out, err, errlen);
	libusb_unref_device(udev);
	return rc;
}

/* ---- giving drivers back after a crash ---- */

/* The kernel's own way: ask the bus to probe drivers for an interface. */
static int sysfs_probe(const char *intf)
{
	int fd = open("/sys/bus/usb/drivers_probe", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, intf, strlen(intf));
	int rc = w < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int interface_has_driver(const char *intf)
{
	char path[128], link[256];
	snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/driver", intf);
	return readlink(path, link, sizeof(link)) > 0;
}

/* One interface without a driver: USBDEVFS_CONNECT (any handle may ask),
 * else /sys/bus/usb/drivers_probe. 1 when it has a driver now. */
static int rebind_interface(libusb_device_handle *h, const char *busid, int cfgval, int ifnum)
{
	char intf[48];
	snprintf(intf, sizeof(intf), "%s:%d.%d", busid, cfgval, ifnum);
	if (interface_has_driver(intf))
		return 0;
	int rc = libusb_attach_kernel_driver(h, ifnum);
	if (rc == LIBUSB_ERROR_NOT_FOUND)
		return 0; /* no kernel driver wants it */
	if (rc != 0)
		sysfs_probe(intf);
	return interface_has_driver(intf);
}

int pvusb_libusb_reattach_drivers(const char *busid)
{
	struct pvusb_devname n;
	char err[160];
	if (pvusb_devname_parse(busid, &n, err, sizeof(err)) < 0 || n.kind != PVUSB_DEVNAME_BUSPATH)
		return -EINVAL;
	libusb_context *ctx; /* a private one: no threads needed for this */
	if (libusb_init(&ctx) != 0)
		return -EIO;
	libusb_device **list;
	ssize_t count = libusb_get_device_list(ctx, &list);
	libusb_device *udev = NULL;
	for (ssize_t i = 0; i < count; i++) {
		struct libusb_device_descriptor dd;
		if (libusb_get_device_descriptor(list[i], &dd) == 0 && name_matches(&n, list[i], &dd))
			udev = list[i];
	}
	int rc = -ENOENT;
	libusb_device_handle *h;
	struct libusb_config_descriptor *cfg = NULL;
	if (udev && (rc = libusb_open(udev, &h)) != 0)
		rc = rc == LIBUSB_ERROR_ACCESS ? -EACCES : -EIO;
	else if (udev) {
		rc = 0;
		if (libusb_get_active_config_descriptor(udev, &cfg) == 0) {
			for (unsigned i = 0; i < cfg->bNumInterfaces; i++)
				if (cfg->interface[i].num_altsetting > 0)
					rc += rebind_interface(h, busid, cfg->bConfigurationValue,
							       cfg->interface[i].altsetting[0].bInterfaceNumber);
			libusb_free_config_descriptor(cfg);
		}
		libusb_close(h);
	}
	if (count >= 0)
		libusb_free_device_list(list, 1);
	libusb_exit(ctx);
	if (rc > 0)
		log_info("libusb %s: gave %d interface(s) back to kernel drivers", busid, rc);
	return rc;
}
