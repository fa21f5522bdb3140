/* SPDX-License-Identifier: MIT */
/*
 * The `local` transport: the same rings as Xen, in shared memory.
 *
 * The frontend owns one memfd of `pages` 4 KiB pages, sealed against
 * shrinking (F_SEAL_SHRINK), holding both ring pages and the data pages. A
 * "grant reference" is a page index into it; the backend checks every index
 * against `pages` before it touches memory, and maps read-only whatever a
 * request only lets it read. Two eventfds play the event channel, one per
 * direction.
 *
 * Handshake, over the daemon's Unix socket (SOCK_SEQPACKET): the frontend
 * sends one JSON message
 *   {"cmd":"frontend-connect","frontend":NAME,"devid":N,"pages":P,
 *    "urb-ring-ref":R1,"conn-ring-ref":R2}
 * with three fds in SCM_RIGHTS: memfd, kick-backend eventfd, kick-frontend
 * eventfd. The reply is {"ok":true,"usb-ver":V,"num-ports":N} or
 * {"ok":false,"error":TEXT}. The socket then stays open: closing it is the
 * frontend going away (xenbus Closing).
 */
#ifndef PVUSB_LOCAL_H
#define PVUSB_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include "xport.h"

#define PVUSB_LOCAL_MAX_PAGES 16384u /* 64 MiB of shared memory per frontend */
#define PVUSB_DEFAULT_SOCKET "/run/pvusb/pvusbd.sock"

/* Backend side: validate and map what a frontend sent. Takes ownership of
 * the three fds on success only. */
int pvusb_local_xport_create(int memfd, int kick_be, int kick_fe, uint32_t pages, uint32_t urb_ref,
			     uint32_t conn_ref, const char *peer, struct pvusb_xport **out, char *err,
			     size_t errlen);

/* Serve this frontend as Xen frontends are served: request data copied in
 * and out of the core's staging memory (xport.h: copy) instead of used in
 * place. Call before pvusb_hc_connect(). pvusbd does it for every local
 * frontend when PVUSB_LOCAL_COPY=1, so the Xen data path runs in tests
 * that have no Xen. */
void pvusb_local_xport_copy_mode(struct pvusb_xport *xp);

#endif
