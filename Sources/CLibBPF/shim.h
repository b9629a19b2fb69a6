/* libbpf (libbpf-dev), as the Probes target uses it. */
#ifndef PGNODE_CLIBBPF_SHIM_H
#define PGNODE_CLIBBPF_SHIM_H

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdio.h>

#endif
