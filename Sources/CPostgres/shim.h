#ifndef EDGE_SYNC_CPOSTGRES_SHIM_H
#define EDGE_SYNC_CPOSTGRES_SHIM_H

#include <libpq-fe.h>

/// A notice processor that drops notices ("relation already exists, skipping" and the like), so
/// libpq never writes them to the collector's stderr behind the structured log's back.
static inline void cpostgres_ignore_notice(void *argument, const char *message) {
    (void)argument;
    (void)message;
}

static inline void cpostgres_silence_notices(PGconn *connection) {
    PQsetNoticeProcessor(connection, cpostgres_ignore_notice, NULL);
}

#endif
