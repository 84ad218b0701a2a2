"""The Windows (Inno Setup) and macOS (dmg) installer scripts cannot be built or run here: they
are built on those systems. What CAN be checked on Linux is that they agree with the build and
with themselves: the folders they ship are the ones `python -m installers build` makes, and
what the Windows installer adds to the user's PATH its uninstaller takes out again."""
from __future__ import annotations

import re
from pathlib import Path

from installers import freeze

INSTALLERS = Path(freeze.__file__).resolve().parent
ISS = (INSTALLERS / "windows" / "tokenrent.iss").read_text(encoding="utf-8")


def section(name: str) -> str:
    match = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[[A-Za-z]+\]\n|\Z)", ISS, re.S | re.M)
    assert match, f"no [{name}] section in tokenrent.iss"
    return match.group(1)


def pascal_function(name: str) -> str:
    match = re.search(rf"^(function|procedure) {name}\b.*?^end;", section("Code"), re.S | re.M)
    assert match, f"no {name} in [Code]"
    return match.group(0)


def test_windows_installer_ships_the_folders_the_build_makes():
    files = section("Files")
    for app in (freeze.STOREFRONT_NAME, freeze.AGENT_NAME):
        assert f'Source: "{{#Root}}\\dist\\{app}\\*"; DestDir: "{{app}}\\{app}"' in files, app


def test_windows_uninstall_takes_the_agent_off_the_path_it_was_put_on():
    (path_entry,) = [line for line in section("Registry").splitlines()
                     if 'Subkey: "Environment"' in line and not line.startswith(";")]
    added = re.search(r'ValueData: "\{olddata\};([^"]+)"', path_entry).group(1)
    assert added == f"{{app}}\\{freeze.AGENT_NAME}"
    assert "Check: NeedsAddPath" in path_entry          # never added twice
    # The same folder, by one function, for adding and for removing.
    assert f"ExpandConstant('{added}')" in pascal_function("AgentDir")
    assert "AgentDir()" in pascal_function("NeedsAddPath")
    uninstall = pascal_function("CurUninstallStepChanged")
    assert "usUninstall" in uninstall and "PathWithout(Path, AgentDir())" in uninstall
    assert "RegWriteExpandStringValue(HKEY_CURRENT_USER, 'Environment', 'Path'" in uninstall
    without = pascal_function("PathWithout")
    assert "SamePathEntry(Part, Dir)" in without       # every other entry is kept as it was
    assert "ChangesEnvironment=yes" in section("Setup")


def test_windows_url_protocol_key_is_removed_on_uninstall():
    registry = [line for line in section("Registry").splitlines() if line.startswith("Root:")]
    root_keys = [line for line in registry if 'Subkey: "Software\\Classes\\tokenrent";' in line]
    assert any("uninsdeletekey" in line for line in root_keys), root_keys
    assert all(line.startswith("Root: HKCU;") for line in registry)   # per user, no admin rights


def test_macos_dmg_script_uses_the_app_the_spec_makes():
    spec = (INSTALLERS / "specs" / "tokenrent.spec").read_text()
    dmg = (INSTALLERS / "macos" / "make-dmg.sh").read_text()
    app_name = re.search(r'name="([^"]+\.app)"', spec).group(1)
    assert f'app="$root/dist/{app_name}"' in dmg
    assert f'"$root/dist/{freeze.AGENT_NAME}"' in dmg
    assert "CFBundleURLSchemes" in spec and freeze.URL_SCHEME == "tokenrent"
