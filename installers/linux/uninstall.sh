#!/bin/sh
# Remove what install.sh put in place (the commands, the menu entry and URL handler, the
# programs). Your licences, agent state and installed rented programs are NOT removed: they
# live in your user data folder, and deleting the agent state by hand does not give back uses
# (the agent detects it). The whole script is one function, so it may delete its own folder.
#
# The installed copy ($PREFIX/lib/tokenrent/uninstall.sh) removes the install it sits in,
# whatever PREFIX was: no need to repeat it. The copy in the unpacked bundle removes
# ${PREFIX:-~/.local}/lib/tokenrent.
main() {
    set -eu
    here=$(cd "$(dirname "$0")" && pwd)
    if [ -f "$here/installed-files" ] && [ "$(basename "$here")" = tokenrent ]; then
        libdir=$here                       # the installed copy: its own folder is the install
    else
        libdir=${PREFIX:-$HOME/.local}/lib/tokenrent
    fi
    prefix=$(dirname "$(dirname "$libdir")")
    config_home=${XDG_CONFIG_HOME:-$HOME/.config}
    if [ ! -f "$libdir/installed-files" ]; then
        echo "uninstall.sh: TokenRent is not installed in $libdir" >&2
        exit 1
    fi
    real_libdir=$(cd "$libdir" && pwd -P)
    while IFS= read -r path; do
        [ -n "$path" ] || continue
        if [ -L "$path" ]; then
            # Only remove command links that still point into this install (by any path to it).
            target=$(readlink "$path")
            target_dir=$(cd "$(dirname "$target")" 2>/dev/null && pwd -P) || target_dir=""
            case "$target_dir/" in "$real_libdir"/*) rm -f "$path" ;; esac
        elif [ -f "$path" ]; then
            rm -f "$path"
        fi
    done < "$libdir/installed-files"
    if [ -f "$config_home/mimeapps.list" ]; then
        sed -i '/^x-scheme-handler\/tokenrent=tokenrent.desktop;*$/d' "$config_home/mimeapps.list" || true
    fi
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database "${XDG_DATA_HOME:-$HOME/.local/share}/applications" >/dev/null 2>&1 || true
    fi
    rm -rf "$libdir"
    echo "TokenRent removed from $prefix (user data kept)"
}
main "$@"
exit $?
