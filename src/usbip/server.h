/* SPDX-License-Identifier: MIT */
/*
 * pvusb-usbipd's server: the devices on one pvusbd controller, exported over
 * USB/IP to Linux's `usbip attach` and vhci-hcd. The server is that
 * controller's frontend (the frontend library on the local transport), so
 * pvusbd does for a USB/IP client exactly what it does for a Xen guest: the
 * address table, SET_CONFIGURATION/SET_INTERFACE/CLEAR_FEATURE(HALT) through
 * the host API, unlink, isochronous. One thread runs everything.
 */
#ifndef PVUSB_USBIP_SERVER_H
#define PVUSB_USBIP_SERVER_H

struct usbip_server_opts {
	const char *sock_path; /* pvusbd's control socket */
	const char *frontend;  /* the controller's frontend name */
	unsigned devid;        /* and its devid */
	const char *listen;    /* address to listen on; NULL: every address */
	const char *port;      /* TCP port, "3240" */
	const char *pcap_path; /* capture every URB there as usbmon records; NULL: none */
};

/* Serve until SIGINT/SIGTERM (0) or a fatal error (negative errno, logged). */
int usbip_server_run(const struct usbip_server_opts *o);

#endif
