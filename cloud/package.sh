#!/usr/bin/env bash
# Builds the cloud side's Debian package (release, Swift runtime linked statically); see
# packaging/package.sh for the options. Prints the .deb's path.
exec "$(dirname "$0")/../packaging/package.sh" cloud "$@"
