#ifndef EDGE_SYNC_CZLIB_SHIM_H
#define EDGE_SYNC_CZLIB_SHIM_H

#include <zlib.h>

/// `inflateInit` is a macro that Swift cannot call; this wraps it.
static inline int czlib_inflate_init(z_streamp stream) {
    return inflateInit(stream);
}

#endif
