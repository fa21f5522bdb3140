/* SPDX-License-Identifier: MIT */
/*
 * Virtual host controllers: the service thread that owns a controller's
 * rings, ports and address table, and the commands other threads hand it.
 */
#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hc_internal.h"
#include "journal.h"
#include "util/log.h"
#include "util/spin.h"

void hc_wake(struct pvusb_hc *hc)
{
	uint64_t one = 1;
	ssize_t n = write(hc->wake_fd, &one, sizeof(one));
	(void)n; /* an eventfd write only fails when the counter is saturated: still awake */
}

static void drain_fd(int fd)
{
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof(v));
	(void)n; /* non-blocking: EAGAIN just means nothing was pending */
}

/* ---- commands ---- */

static int hc_call(struct pvusb_hc *hc, int (*fn)(struct pvusb_hc *, void *), void *arg)
{
	struct hc_cmd c = {.fn = fn, .arg = arg};
	pthread_mutex_lock(&hc->api_lock);
	pthread_mutex_lock(&hc->cmd_lock);
	hc->cmd = &c;
	__atomic_store_n(&hc->cmd_pending, 1, __ATOMIC_RELEASE);
	hc_wake(hc);
	while (!c.done)
		pthread_cond_wait(&hc->cmd_cond, &hc->cmd_lock);
	pthread_mutex_unlock(&hc->cmd_lock);
	pthread_mutex_unlock(&hc->api_lock);
	return c.rc;
}

static void cmd_finish(struct pvusb_hc *hc, struct hc_cmd *c, int rc)
{
	pthread_mutex_lock(&hc->cmd_lock);
	c->rc = rc;
	c->done = true;
	pthread_cond_broadcast(&hc->cmd_cond);
	pthread_mutex_unlock(&hc->cmd_lock);
}

static void run_command(struct pvusb_hc *hc)
{
	pthread_mutex_lock(&hc->cmd_lock);
	struct hc_cmd *c = hc->cmd;
	hc->cmd = NULL;
	__atomic_store_n(&hc->cmd_pending, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&hc->cmd_lock);
	if (!c)
		return;
	int rc = c->fn(hc, c->arg);
	if (rc == HC_CMD_DEFERRED)
		__atomic_store_n(&hc->deferred, c, __ATOMIC_RELEASE);
	else
		cmd_finish(hc, c, rc);
}

/* ---- finishing drains: detach and disconnect ---- */

static void close_port_device(struct pvusb_hc *hc, unsigned port)
{
	struct hc_port *p = &hc->ports[port];
	struct pvusb_dev *d = p->dev;
	__atomic_store_n(&p->dev, NULL, __ATOMIC_RELEASE); /* no more device events */
	d->core = NULL;
	d->ops->close(d);
	p->detaching = false;
	p->gone = false;
	hc_conn_announce(hc, port, USBIF_SPEED_NONE); /* after every response (E.6) */
}

/* Fresh zero pages for each connection, so nothing one frontend sent is
 * ever in memory that a later one's device reads; mapped lazily, so only
 * the slots' used part costs memory. */
static int stage_alloc(struct pvusb_hc *hc)
{
	size_t len = USB_URB_RING_SIZE * HC_STAGE_SLOT;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	hc->stage = p;
	return 0;
}

static void stage_free(struct pvusb_hc *hc)
{
	if (hc->stage)
		munmap(hc->stage, USB_URB_RING_SIZE * HC_STAGE_SLOT);
	hc->stage = NULL;
}

static void close_transport(struct pvusb_hc *hc)
{
	hc->xp->ops->close(hc->xp);
	hc->xp = NULL;
	stage_free(hc);
	hc->journal = NULL; /* the caller's again: attached for one connection */
	hc->broken = false;
	hc->broken_reason[0] = 0;
	/* a frontend that comes back enumerates from scratch */
	memset(hc->addr_port, 0, sizeof(hc->addr_port));
	for (unsigned i = 1; i <= hc->cfg.num_ports; i++) {
		struct hc_port *p = &hc->ports[i];
		p->guest_addr = 0;
		if (p->dev && !p->detaching)
			p->dev->ops->reset(p->dev);
	}
}

static void finish_drain(struct pvusb_hc *hc)
{
	struct hc_cmd *c = hc->deferred;
	if (!c || !hc_port_drained(hc, (unsigned)hc->drain_port))
		return;
	/* The thread that dropped the last batch reference may still be in
	 * rsp_lock's critical section (its wake); wait for it to leave before
	 * closing what it used. */
	pthread_mutex_lock(&hc->rsp_lock);
	pthread_mutex_unlock(&hc->rsp_lock);
	if (hc->drain_port > 0)
		close_port_device(hc, (unsigned)hc->drain_port);
	else
		close_transport(hc);
	__atomic_store_n(&hc->deferred, NULL, __ATOMIC_RELEASE);
	hc->drain_port = -1;
	cmd_finish(hc, c, 0);
}

/* ---- device hot-plug events (device.h: any thread posts, we apply) ---- */

static void post_dev_event(struct pvusb_dev *d, enum pvusb_dev_event ev, void *arg)
{
	struct pvusb_hc *hc = arg;
	for (unsigned i = 1; i <= hc->cfg.num_ports; i++) {
		if (__atomic_load_n(&hc->ports[i].dev, __ATOMIC_ACQUIRE) != d)
			continue;
		__atomic_store_n(&hc->ports[i].pending_event, 1 + (int)ev, __ATOMIC_RELEASE);
		__atomic_fetch_or(&hc->dev_event_ports, 1u << i, __ATOMIC_RELEASE);
		hc_wake(hc);
		return;
	}
}

static void forget_guest_address(struct pvusb_hc *hc, struct hc_port *p)
{
	if (p->guest_addr)
		hc->addr_port[p->guest_addr] = 0;
	p->guest_addr = 0;
}

/* GONE: the guest sees an empty port, the device stays for its return.
 * BACK: announced again, so the guest resets and re-addresses it. */
static unsigned apply_dev_events(struct pvusb_hc *hc)
{
	uint32_t mask = __atomic_exchange_n(&hc->dev_event_ports, 0, __ATOMIC_ACQ_REL);
	for (unsigned i = 1; mask && i <= hc->cfg.num_ports; i++) {
		struct hc_port *p = &hc->ports[i];
		int ev = (mask & (1u << i)) ? __atomic_exchange_n(&p->pending_event, 0, __ATOMIC_ACQ_REL) : 0;
		if (!ev || !p->dev || p->detaching)
			continue;
		forget_guest_address(hc, p);
		p->gone = ev - 1 == PVUSB_DEV_GONE;
		hc_conn_announce(hc, i, p->gone ? 0 : p->dev->speed);
		log_info("controller %s/%u port %u: %s %s", hc->cfg.frontend, hc->cfg.devid, i,
			 p->dev->name, p->gone ? "unplugged" : "plugged in again");
	}
	return mask != 0;
}

/* ---- the service thread ---- */

static unsigned do_work(struct pvusb_hc *hc)
{
	unsigned n = 0;
	if (__atomic_load_n(&hc->cmd_pending, __ATOMIC_ACQUIRE)) {
		run_command(hc);
		n++;
	}
	if (hc->deferred)
		finish_drain(hc);
	if (__atomic_load_n(&hc->dev_event_ports, __ATOMIC_ACQUIRE))
		n += apply_dev_events(hc);
	n += hc_process_urbs(hc);
	n += hc_conn_flush(hc);
	return n;
}

static bool work_arrived(void *arg)
{
	struct pvusb_hc *hc = arg;
	bool hostile = false;
	if (__atomic_load_n(&hc->cmd_pending, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&hc->dev_event_ports, __ATOMIC_ACQUIRE))
		return true;
	return hc->xp && !hc->broken && (usbif_back_unconsumed(&hc->urb, &hostile) || hostile);
}

/* Poll for work for up to spin_ns before sleeping (util/spin.h). */
static bool spin_for_work(struct pvusb_hc *hc)
{
	return hc->spin_ns > 0 &&
	       pvusb_spin_until(pvusb_now_ns() + (uint64_t)hc->spin_ns, work_arrived, hc);
}

/* Set the event indexes so the next request or returned token wakes us,
 * then sleep unless something arrived meanwhile (A.5). */
static void sleep_for_work(struct pvusb_hc *hc)
{
	struct pollfd pfd[2] = {{.fd = hc->wake_fd, .events = POLLIN}};
	nfds_t nfds = 1;
	if (hc->xp && !hc->broken) {
		bool hostile = false;
		if (usbif_back_final_check(&hc->urb, &hostile))
			return;
		pfd[1].fd = hc->xp->event_fd;
		pfd[1].events = POLLIN;
		nfds = 2;
	}
	if (poll(pfd, nfds, -1) < 0)
		return; /* EINTR: just look again */
	if (pfd[0].revents & POLLIN)
		drain_fd(hc->wake_fd);
	if (nfds == 2 && (pfd[1].revents & POLLIN))
		hc->xp->ops->ack(hc->xp);
}

static void *service_thread(void *arg)
{
	struct pvusb_hc *hc = arg;
	while (!hc->stop) {
		if (do_work(hc))
			continue;
		if (spin_for_work(hc))
			continue;
		sleep_for_work(hc);
	}
	return NULL;
}

/* ---- commands' bodies (service thread) ---- */

struct attach_arg {
	unsigned port;
	struct pvusb_dev *dev;
};

static int cmd_attach(struct pvusb_hc *hc, void *arg)
{
	struct attach_arg *a = arg;
	struct hc_port *p = &hc->ports[a->port];
	if (p->dev)
		return -EBUSY;
	if (a->dev->dev_class == 9)
		return -EMEDIUMTYPE; /* hubs are refused (E.5) */
	if (hc->cfg.usb_ver == USBIF_VER_USB11 && a->dev->speed == USBIF_SPEED_HIGH)
		return -EPROTONOSUPPORT; /* C.2: no high-speed device on USB 1.1 */
	if (a->dev->speed < USBIF_SPEED_LOW || a->dev->speed > USBIF_SPEED_HIGH)
		return -EPROTONOSUPPORT;
	int rc = a->dev->ops->reset(a->dev);
	if (rc < 0)
		return rc;
	a->dev->core = hc;
	a->dev->event_cb = post_dev_event;
	a->dev->event_arg = hc;
	p->gone = false;
	__atomic_store_n(&p->pending_event, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->dev, a->dev, __ATOMIC_RELEASE);
	p->guest_addr = 0;
	hc_conn_announce(hc, a->port, a->dev->speed);
	return 0;
}

static int cmd_detach(struct pvusb_hc *hc, void *arg)
{
	unsigned port = *(unsigned *)arg;
	struct hc_port *p = &hc->ports[port];
	if (!p->dev || p->detaching)
		return -ENOENT;
	pthread_mutex_lock(&hc->rsp_lock);
	p->detaching = true; /* from now on its requests get -ENODEV */
	pthread_mutex_unlock(&hc->rsp_lock);
	forget_guest_address(hc, p);
	hc_cancel_port(hc, port);
	hc->drain_port = (int)port;
	return HC_CMD_DEFERRED; /* finish_drain closes it once every request is answered */
}

static int cmd_connect(struct pvusb_hc *hc, void *arg)
{
	struct pvusb_xport *xp = arg;
	if (hc->xp)
		return -EBUSY;
	if (xp->ops->copy) {
		int rc = stage_alloc(hc);
		if (rc < 0)
			return rc;
	}
	hc->xp = xp;
	hc->broken = false;
	usbif_urb_back_attach(&hc->urb, xp->urb_ring);
	usbif_conn_back_attach(&hc->conn, xp->conn_ring);
	/* A ring a restarted pvusbd resumes already holds responses. The conn
	 * ring is answered strictly in order, one token per response, so its
	 * published rsp_prod is exact; the urb ring's positions are the
	 * journal's when there is one (journal.h). */
	usbif_back_ring_continue(&hc->urb);
	usbif_back_ring_continue(&hc->conn);
	if (hc->journal)
		pvusb_journal_positions(hc->journal, &hc->urb.prod_pvt, &hc->urb.cons);
	hc_conn_reset_told(hc); /* announce every occupied port (C.2 rule 5) */
	log_info("controller %s/%u: frontend %s connected", hc->cfg.frontend, hc->cfg.devid, xp->peer);
	return 0;
}

static int cmd_set_journal(struct pvusb_hc *hc, void *arg)
{
	if (hc->xp)
		return -EBUSY;
	hc->journal = arg;
	return 0;
}

static int cmd_disconnect(struct pvusb_hc *hc, void *arg)
{
	if (!hc->xp)
		return 0;
	log_info("controller %s/%u: frontend %s disconnecting", hc->cfg.frontend, hc->cfg.devid,
		 hc->xp->peer);
	hc_cancel_port(hc, 0);
	hc->drain_port = 0;
	return HC_CMD_DEFERRED;
}

static int cmd_stop(struct pvusb_hc *hc, void *arg)
{
	hc->stop = true;
	return 0;
}

static int cmd_port_info(struct pvusb_hc *hc, void *arg)
{
	struct pvusb_port_info *info = arg;
	const struct hc_port *p = &hc->ports[info->port];
	const struct pvusb_dev *d = p->detaching ? NULL : p->dev;
	info->speed = d ? d->speed : 0;
	info->gone = d && p->gone;
	info->guest_addr = p->guest_addr;
	info->vendor = d ? d->vendor : 0;
	info->product = d ? d->product : 0;
	info->kind = d ? d->ops->kind : NULL;
	snprintf(info->dev_name, sizeof(info->dev_name), "%s", d ? d->name : "");
	snprintf(info->dev_desc, sizeof(info->dev_desc), "%s", d ? d->desc : "");
	return 0;
}

static int cmd_stats(struct pvusb_hc *hc, void *arg)
{
	struct pvusb_hc_stats *st = arg;
	pthread_mutex_lock(&hc->rsp_lock);
	*st = hc->st;
	st->inflight = (uint32_t)__builtin_popcount(hc->busy_mask);
	pthread_mutex_unlock(&hc->rsp_lock);
	st->connected = hc->xp != NULL;
	st->broken = hc->broken;
	snprintf(st->broken_reason, sizeof(st->broken_reason), "%s", hc->broken_reason);
	st->maps_live = hc->xp ? __atomic_load_n(&hc->xp->maps_live, __ATOMIC_RELAXED) : 0;
	return 0;
}

/* ---- public API ---- */

int pvusb_hc_create(const struct pvusb_hc_config *cfg, struct pvusb_hc **out)
{
	if (cfg->usb_ver != USBIF_VER_USB11 && cfg->usb_ver != USBIF_VER_USB20)
		return -EINVAL;
	if (cfg->num_ports < 1 || cfg->num_ports > USBIF_MAX_PORTNR)
		return -EINVAL;
	struct pvusb_hc *hc = calloc(1, sizeof(*hc));
	if (!hc)
		return -ENOMEM;
	hc->slots = calloc(USB_URB_RING_SIZE, sizeof(*hc->slots));
	hc->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!hc->slots || hc->wake_fd < 0) {
		int rc = hc->slots ? -errno : -ENOMEM;
		free(hc->slots);
		free(hc);
		return rc;
	}
	hc->cfg = *cfg;
	hc->spin_ns = pvusb_default_spin_ns(cfg->spin_us);
	hc->drain_port = -1;
	for (unsigned i = 0; i < USB_URB_RING_SIZE; i++)
		hc->slots[i].hc = hc;
	pthread_mutex_init(&hc->api_lock, NULL);
	pthread_mutex_init(&hc->cmd_lock, NULL);
	pthread_mutex_init(&hc->rsp_lock, NULL);
	pthread_cond_init(&hc->cmd_cond, NULL);
	int rc = pthread_create(&hc->thread, NULL, service_thread, hc);
	if (rc) {
		close(hc->wake_fd);
		free(hc->slots);
		free(hc);
		return -rc;
	}
	*out = hc;
	return 0;
}

void pvusb_hc_destroy(struct pvusb_hc *hc)
{
	if (!hc)
		return;
	pvusb_hc_disconnect(hc);
	for (unsigned i = 1; i <= hc->cfg.num_ports; i++)
		pvusb_hc_detach(hc, i);
	hc_call(hc, cmd_stop, NULL);
	pthread_join(hc->thread, NULL);
	pthread_mutex_destroy(&hc->api_lock);
	pthread_mutex_destroy(&hc->cmd_lock);
	pthread_mutex_destroy(&hc->rsp_lock);
	pthread_cond_destroy(&hc->cmd_cond);
	close(hc->wake_fd);
	free(hc->slots);
	free(hc);
}

const struct pvusb_hc_config *pvusb_hc_config(const struct pvusb_hc *hc) { return &hc->cfg; }

int pvusb_hc_attach(struct pvusb_hc *hc, unsigned port, struct pvusb_dev *dev)
{
	if (port < 1 || port > hc->cfg.num_ports)
		return -EINVAL;
	struct attach_arg a = {.port = port, .dev = dev};
	return hc_call(hc, cmd_attach, &a);
}

int pvusb_hc_detach(struct pvusb_hc *hc, unsigned port)
{
	if (port < 1 || port > hc->cfg.num_ports)
		return -EINVAL;
	return hc_call(hc, cmd_detach, &port);
}

int pvusb_hc_connect(struct pvusb_hc *hc, struct pvusb_xport *xp)
{
	return hc_call(hc, cmd_connect, xp);
}

int pvusb_hc_set_journal(struct pvusb_hc *hc, struct pvusb_ring_journal *j)
{
	return hc_call(hc, cmd_set_journal, j);
}

void pvusb_hc_disconnect(struct pvusb_hc *hc)
{
	hc_call(hc, cmd_disconnect, NULL);
}

int pvusb_hc_port_info(struct pvusb_hc *hc, unsigned port, struct pvusb_port_info *info)
{
	if (port < 1 || port > hc->cfg.num_ports)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	info->port = port;
	return hc_call(hc, cmd_port_info, info);
}

void pvusb_hc_stats(struct pvusb_hc *hc, struct pvusb_hc_stats *st)
{
	hc_call(hc, cmd_stats, st);
}

struct pvusb_dev *pvusb_hc_port_dev(struct pvusb_hc *hc, unsigned port)
{
	if (port < 1 || port > hc->cfg.num_ports)
		return NULL;
	return hc->ports[port].dev;
}
