#ifndef EDGE_SYNC_CZLIB_SHIM_H
#define EDGE_SYNC_CZLIB_SHIM_H

#include <zlib.h>

/// `deflateInit` and `inflateInit` are macros that Swift cannot call; these wrap them.
static inline int czlib_deflate_init(z_streamp stream, int level) {
    return deflateInit(stream, level);
}

static inline int czlib_inflate_init(z_streamp stream) {
    return inflateInit(stream);
}

#endif
