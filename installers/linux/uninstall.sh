#!/bin/sh
# Remove what install.sh put in place (the commands, the menu entry and URL handler, the
# programs). Your licences, agent state and installed rented programs are NOT removed: they
# live in your user data folder, and deleting the agent state by hand does not give back uses
# (the agent detects it). The whole script is one function, so it may delete its own folder.
main() {
    set -eu
    prefix=${PREFIX:-$HOME/.local}
    libdir=$prefix/lib/tokenrent
    config_home=${XDG_CONFIG_HOME:-$HOME/.config}
    if [ ! -d "$libdir" ]; then
        echo "uninstall.sh: TokenRent is not installed in $libdir" >&2
        exit 1
    fi
    if [ -f "$libdir/installed-files" ]; then
        while IFS= read -r path; do
            [ -n "$path" ] || continue
            # Only remove command links that still point into our folder.
            if [ -L "$path" ]; then
                case "$(readlink "$path")" in "$libdir"/*) rm -f "$path" ;; esac
            elif [ -f "$path" ]; then
                rm -f "$path"
            fi
        done < "$libdir/installed-files"
    fi
    if [ -f "$config_home/mimeapps.list" ]; then
        sed -i '/^x-scheme-handler\/tokenrent=tokenrent.desktop;*$/d' "$config_home/mimeapps.list" || true
    fi
    rm -rf "$libdir"
    echo "TokenRent removed from $prefix (user data kept)"
}
main "$@"
exit $?
