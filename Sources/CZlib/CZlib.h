// zlib for Swift: gzip request bodies (Content-Encoding: gzip).
#ifndef PGNODE_CZLIB_H
#define PGNODE_CZLIB_H

#include <zlib.h>

/// deflateInit2 (a macro in zlib.h) with gzip framing: window bits 15 + 16.
static inline int pgnode_deflate_init_gzip(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

/// inflateInit2 (a macro in zlib.h) accepting gzip framing.
static inline int pgnode_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 15 + 16);
}

#endif
