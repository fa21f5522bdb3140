/* SPDX-License-Identifier: MIT */
/*
 * Polling before sleeping, shared by the backend's service threads and the
 * frontend library. An eventfd wake-up between two processes costs tens of
 * microseconds here, a shared-memory poll a fraction of one, so each side
 * polls for a short budget before it sleeps.
 */
#ifndef PVUSB_SPIN_H
#define PVUSB_SPIN_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t pvusb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void pvusb_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* The polling budget in ns: spin_us when >= 0, else 50 us when this thread
 * may run on two or more CPUs and 0 when only one (spinning then just
 * delays the peer). */
int pvusb_default_spin_ns(int spin_us);

/* Poll ready(arg) until it returns true (then true) or `deadline` passes
 * (then false). Yields every few polls so a peer that shares this CPU runs
 * at once rather than after the whole budget. */
bool pvusb_spin_until(uint64_t deadline, bool (*ready)(void *arg), void *arg);

#endif
