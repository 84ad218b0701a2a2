#!/bin/sh
# macOS: after `python -m installers build` (on a Mac) has made dist/TokenRent.app and
# dist/license-agent/, put both into one disk image. The storefront's Info.plist (see
# installers/specs/tokenrent.spec) claims the tokenrent:// URL scheme; the agent goes inside
# the app bundle so that the storefront finds it, and can be linked onto the PATH by the user:
#     ln -s /Applications/TokenRent.app/Contents/Resources/license-agent/license-agent /usr/local/bin/
# Sign and notarize before shipping (codesign --deep --options runtime, xcrun notarytool).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml" | head -n 1)
app="$root/dist/TokenRent.app"
[ -d "$app" ] || { echo "make-dmg.sh: build first: python -m installers build" >&2; exit 2; }
rm -rf "$app/Contents/Resources/license-agent"
cp -R "$root/dist/license-agent" "$app/Contents/Resources/license-agent"
stage=$(mktemp -d)
cp -R "$app" "$stage/"
ln -s /Applications "$stage/Applications"
hdiutil create -volname "TokenRent $version" -srcfolder "$stage" -ov -format UDZO \
    "$root/dist/tokenrent-$version-macos.dmg"
rm -rf "$stage"
