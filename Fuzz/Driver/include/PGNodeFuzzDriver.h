#ifndef PGNODE_FUZZ_DRIVER_H
#define PGNODE_FUZZ_DRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, linked by `-sanitize=fuzzer`).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
/// The harnesses' entry (Fuzz/Harnesses/Entry.swift).
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/// What `main` is linked to.
int pgnode_fuzz_main(int argc, char **argv);

#endif
