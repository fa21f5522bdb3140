/* SPDX-License-Identifier: MIT */
#ifndef PVUSB_SOCK_H
#define PVUSB_SOCK_H

/* Connect a SOCK_SEQPACKET Unix socket (close-on-exec) to `path`: the
 * daemon's control socket. Returns the fd or a negative errno. */
int pvusb_unix_connect(const char *path);

#endif
