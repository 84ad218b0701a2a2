#!/bin/sh
# Install TokenRent for the current user, no root needed:
#   programs   $PREFIX/lib/tokenrent/{tokenrent,license-agent}/   (PREFIX defaults to ~/.local)
#   commands   $PREFIX/bin/tokenrent, $PREFIX/bin/license-agent
#   menu entry $XDG_DATA_HOME/applications/tokenrent.desktop, also the tokenrent:// URL handler
# Running it again upgrades in place: the new copy is unpacked beside the old one and swapped in.
# Undo with $PREFIX/lib/tokenrent/uninstall.sh, which finds the install from its own location
# (your licences and agent state are kept).
# Set x-scheme-handler/tokenrent=tokenrent.desktop under [Default Applications], keeping the rest.
register_url_handler() {
    list=$1
    mkdir -p "$(dirname "$list")"
    [ -f "$list" ] || printf '[Default Applications]\n' > "$list"
    grep -q '^\[Default Applications\]' "$list" || printf '\n[Default Applications]\n' >> "$list"
    awk '
        /^x-scheme-handler\/tokenrent=/ { next }
        { print }
        /^\[Default Applications\]/ { print "x-scheme-handler/tokenrent=tokenrent.desktop;" }
    ' "$list" > "$list.tmp" && mv "$list.tmp" "$list"
}

main() {
    set -eu
    here=$(cd "$(dirname "$0")" && pwd)
    prefix=${PREFIX:-$HOME/.local}
    # An absolute prefix: the command links must not depend on where install.sh was started.
    mkdir -p "$prefix"
    prefix=$(cd "$prefix" && pwd)
    data_home=${XDG_DATA_HOME:-$HOME/.local/share}
    libdir=$prefix/lib/tokenrent
    bindir=$prefix/bin
    appdir=$data_home/applications
    icondir=$data_home/icons/hicolor/scalable/apps

    apps=""
    for app in tokenrent license-agent; do
        [ -x "$here/$app/$app" ] && apps="$apps $app"
    done
    if [ -z "$apps" ]; then
        echo "install.sh: no programs next to this script (expected tokenrent/ and license-agent/)" >&2
        exit 2
    fi

    mkdir -p "$prefix/lib" "$bindir"
    rm -rf "$libdir.new" "$libdir.old"
    mkdir "$libdir.new"
    for app in $apps; do
        cp -R "$here/$app" "$libdir.new/$app"
    done
    cp "$here/uninstall.sh" "$here/VERSION" "$libdir.new/"
    # Upgrade: what the previous install put outside $libdir, to drop what this one no longer has.
    previous=""
    [ -f "$libdir/installed-files" ] && previous=$(cat "$libdir/installed-files")
    if [ -d "$libdir" ]; then mv "$libdir" "$libdir.old"; fi
    mv "$libdir.new" "$libdir"
    rm -rf "$libdir.old"

    : > "$libdir/installed-files"
    for app in $apps; do
        ln -sfn "$libdir/$app/$app" "$bindir/$app"
        echo "$bindir/$app" >> "$libdir/installed-files"
    done

    case " $apps " in *" tokenrent "*)
        mkdir -p "$appdir" "$icondir"
        sed "s|@BINDIR@|$bindir|g" "$here/share/tokenrent.desktop" > "$appdir/tokenrent.desktop"
        cp "$here/share/tokenrent.svg" "$icondir/tokenrent.svg"
        echo "$appdir/tokenrent.desktop" >> "$libdir/installed-files"
        echo "$icondir/tokenrent.svg" >> "$libdir/installed-files"
        # Make TokenRent the handler of tokenrent:// links (store links from the agent's warnings):
        # with xdg-mime where it is installed, else in mimeapps.list directly (what xdg-mime does).
        if command -v xdg-mime >/dev/null 2>&1; then
            xdg-mime default tokenrent.desktop x-scheme-handler/tokenrent || true
        else
            register_url_handler "${XDG_CONFIG_HOME:-$HOME/.config}/mimeapps.list"
        fi
        if command -v update-desktop-database >/dev/null 2>&1; then
            update-desktop-database "$appdir" >/dev/null 2>&1 || true
        fi
    ;; esac

    # e.g. an agent-only bundle over a full install: the storefront's link and menu entry go.
    printf '%s\n' "$previous" | while IFS= read -r path; do
        [ -n "$path" ] || continue
        grep -qxF "$path" "$libdir/installed-files" && continue
        if [ -L "$path" ]; then
            case "$(readlink "$path")" in "$libdir"/*) rm -f "$path" ;; esac
        elif [ -f "$path" ]; then
            rm -f "$path"
            case "$path" in */tokenrent.desktop)
                mimeapps=${XDG_CONFIG_HOME:-$HOME/.config}/mimeapps.list
                if [ -f "$mimeapps" ]; then
                    sed -i '/^x-scheme-handler\/tokenrent=tokenrent.desktop;*$/d' "$mimeapps" || true
                fi
            ;; esac
        fi
    done

    echo "TokenRent $(cat "$libdir/VERSION") installed in $libdir:$apps"
    case ":$PATH:" in *":$bindir:"*) ;; *)
        echo "note: $bindir is not on your PATH; add it, e.g. in ~/.profile: PATH=\"$bindir:\$PATH\"" ;;
    esac
}
main "$@"
exit $?
