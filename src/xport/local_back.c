/* SPDX-License-Identifier: MIT */
/* The local transport, backend side: grant references are page indexes into
 * the frontend's sealed memfd, checked before every use. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pvusb/local.h"

struct local_xport {
	struct pvusb_xport xp;
	int memfd, kick_be, kick_fe;
	uint32_t pages;
	uint8_t *rw; /* the whole memfd, writable */
	uint8_t *ro; /* the same pages again, read-only: OUT buffers come from here */
};

static struct local_xport *to_local(struct pvusb_xport *xp) { return (struct local_xport *)xp; }

static int local_map(struct pvusb_xport *xp, const struct usbif_request_segment *seg, unsigned n,
		     bool writable, struct pvusb_map *m, struct pvusb_iov *iov)
{
	struct local_xport *lx = to_local(xp);
	uint8_t *base = writable ? lx->rw : lx->ro;
	for (unsigned i = 0; i < n; i++)
		if (seg[i].gref >= lx->pages)
			return -EINVAL; /* not one of the frontend's pages */
	for (unsigned i = 0; i < n; i++) {
		iov[i].base = base + (size_t)seg[i].gref * USBIF_PAGE_SIZE + seg[i].offset;
		iov[i].len = seg[i].length;
	}
	m->handle = NULL;
	m->addr = iov[0].base;
	m->nseg = n;
	m->writable = writable;
	__atomic_add_fetch(&xp->maps_live, n, __ATOMIC_RELAXED);
	return 0;
}

static void local_unmap(struct pvusb_xport *xp, struct pvusb_map *m)
{
	__atomic_sub_fetch(&xp->maps_live, m->nseg, __ATOMIC_RELAXED);
	m->nseg = 0;
}

/* The copy operation (xport.h), for a local frontend served the way Xen
 * frontends are: every page index checked before any byte moves. */
static int local_copy(struct pvusb_xport *xp, const struct usbif_request_segment *seg, unsigned n,
		      void *buf, size_t len, bool to_guest)
{
	struct local_xport *lx = to_local(xp);
	uint8_t *p = buf;
	for (unsigned i = 0; i < n; i++)
		if (seg[i].gref >= lx->pages)
			return -EFAULT;
	for (unsigned i = 0; i < n && len > 0; i++) {
		size_t chunk = seg[i].length < len ? seg[i].length : len;
		uint8_t *page = lx->rw + (size_t)seg[i].gref * USBIF_PAGE_SIZE + seg[i].offset;
		memcpy(to_guest ? page : p, to_guest ? p : page, chunk);
		p += chunk;
		len -= chunk;
	}
	return 0;
}

static void local_notify(struct pvusb_xport *xp)
{
	uint64_t one = 1;
	ssize_t n = write(to_local(xp)->kick_fe, &one, sizeof(one));
	(void)n; /* a saturated eventfd is still signalled */
}

static void local_ack(struct pvusb_xport *xp)
{
	uint64_t v;
	ssize_t n = read(to_local(xp)->kick_be, &v, sizeof(v));
	(void)n;
}

static void local_close(struct pvusb_xport *xp)
{
	struct local_xport *lx = to_local(xp);
	size_t len = (size_t)lx->pages * USBIF_PAGE_SIZE;
	munmap(lx->rw, len);
	munmap(lx->ro, len);
	close(lx->memfd);
	close(lx->kick_be);
	close(lx->kick_fe);
	free(lx);
}

static const struct pvusb_xport_ops local_ops = {
	.name = "local",
	.map = local_map,
	.unmap = local_unmap,
	.notify = local_notify,
	.ack = local_ack,
	.close = local_close,
};

static const struct pvusb_xport_ops local_copy_ops = {
	.name = "local",
	.map = local_map,
	.unmap = local_unmap,
	.copy = local_copy,
	.notify = local_notify,
	.ack = local_ack,
	.close = local_close,
};

void pvusb_local_xport_copy_mode(struct pvusb_xport *xp)
{
	xp->ops = &local_copy_ops;
}

/* The memfd must be exactly `pages` long and unable to shrink, or a hostile
 * frontend could truncate it under us and turn our accesses into SIGBUS. */
static int check_memfd(int memfd, uint32_t pages, char *err, size_t errlen)
{
	struct stat st;
	if (pages < 2 || pages > PVUSB_LOCAL_MAX_PAGES) {
		snprintf(err, errlen, "pages must be 2..%u", PVUSB_LOCAL_MAX_PAGES);
		return -EINVAL;
	}
	if (fstat(memfd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != (uint64_t)pages * USBIF_PAGE_SIZE) {
		snprintf(err, errlen, "shared memory is not %u pages long", pages);
		return -EINVAL;
	}
	int seals = fcntl(memfd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		snprintf(err, errlen, "shared memory must be a memfd sealed with F_SEAL_SHRINK");
		return -EPERM;
	}
	return 0;
}

/* Both fds must be eventfds, and non-blocking: the frontend shares them and
 * could drain or saturate them to make a read or write block us forever. */
static int check_eventfd(int fd, char *err, size_t errlen)
{
	char path[64], target[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0 || (target[n] = 0, strcmp(target, "anon_inode:[eventfd]") != 0)) {
		snprintf(err, errlen, "the kick fds must be eventfds");
		return -EINVAL;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "cannot make an eventfd non-blocking");
		return -errno;
	}
	return 0;
}

int pvusb_local_xport_create(int memfd, int kick_be, int kick_fe, uint32_t pages, uint32_t urb_ref,
			     uint32_t conn_ref, const char *peer, struct pvusb_xport **out, char *err,
			     size_t errlen)
{
	int rc = check_memfd(memfd, pages, err, errlen);
	if (rc == 0)
		rc = check_eventfd(kick_be, err, errlen);
	if (rc == 0)
		rc = check_eventfd(kick_fe, err, errlen);
	if (rc < 0)
		return rc;
	if (urb_ref >= pages || conn_ref >= pages || urb_ref == conn_ref) {
		snprintf(err, errlen, "ring references must be two distinct pages below %u", pages);
		return -EINVAL;
	}
	struct local_xport *lx = calloc(1, sizeof(*lx));
	if (!lx)
		return -ENOMEM;
	size_t len = (size_t)pages * USBIF_PAGE_SIZE;
	lx->rw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	lx->ro = mmap(NULL, len, PROT_READ, MAP_SHARED, memfd, 0);
	if (lx->rw == MAP_FAILED || lx->ro == MAP_FAILED) {
		rc = -errno;
		snprintf(err, errlen, "cannot map shared memory: %s", strerror(errno));
		if (lx->rw != MAP_FAILED)
			munmap(lx->rw, len);
		if (lx->ro != MAP_FAILED)
			munmap(lx->ro, len);
		free(lx);
		return rc;
	}
	lx->memfd = memfd;
	lx->kick_be = kick_be;
	lx->kick_fe = kick_fe;
	lx->pages = pages;
	lx->xp.ops = &local_ops;
	lx->xp.urb_ring = lx->rw + (size_t)urb_ref * USBIF_PAGE_SIZE;
	lx->xp.conn_ring = lx->rw + (size_t)conn_ref * USBIF_PAGE_SIZE;
	lx->xp.event_fd = kick_be;
	snprintf(lx->xp.peer, sizeof(lx->xp.peer), "%s", peer);
	*out = &lx->xp;
	return 0;
}
