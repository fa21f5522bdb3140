/* SPDX-License-Identifier: MIT */
/* The fuzz harnesses' invariant checks: a broken one names itself and
 * traps, so libFuzzer keeps the input that broke it. */
#ifndef PVUSB_FUZZ_INVARIANT_H
#define PVUSB_FUZZ_INVARIANT_H

#include <stdio.h>

#define FAIL(what)                                                                         \
	do {                                                                               \
		fprintf(stderr, "%s: invariant violated: %s (%s:%d)\n", FUZZ_NAME, what,   \
			__FILE__, __LINE__);                                                \
		__builtin_trap();                                                          \
	} while (0)
#define REQUIRE(cond)                                                                      \
	do {                                                                               \
		if (!(cond))                                                               \
			FAIL(#cond);                                                       \
	} while (0)

#endif
