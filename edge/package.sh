#!/usr/bin/env bash
# Builds the edge side's Debian package (release, Swift runtime linked statically); see
# edge/packaging/package.sh for the options. Prints the .deb's path.
exec "$(dirname "$0")/packaging/package.sh" edge "$@"
