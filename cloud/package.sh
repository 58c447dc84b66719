#!/usr/bin/env bash
# Builds the cloud side's Debian package (release, Swift runtime linked statically); see
# edge/packaging/package.sh (shared by both sides) for the options. Prints the .deb's path.
exec "$(dirname "$0")/../edge/packaging/package.sh" cloud "$@"
