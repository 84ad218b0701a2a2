; Inno Setup script: per-user Windows installer for TokenRent (no administrator rights needed).
; Build on Windows after `python -m installers build` has made dist\tokenrent and dist\license-agent:
;     iscc /DAppVersion=0.1.0 installers\windows\tokenrent.iss
; Output: dist\tokenrent-<version>-windows-setup.exe
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define Root "..\.."

[Setup]
AppId={{6F2B7B1E-5C1D-4C71-9B8E-7D0E6A1B2C3D}
AppName=TokenRent
AppVersion={#AppVersion}
AppPublisher=TokenRent
DefaultDirName={localappdata}\Programs\TokenRent
DefaultGroupName=TokenRent
PrivilegesRequired=lowest
OutputDir={#Root}\dist
OutputBaseFilename=tokenrent-{#AppVersion}-windows-setup
Compression=lzma2
SolidCompression=yes
ChangesEnvironment=yes
UninstallDisplayIcon={app}\tokenrent\tokenrent.exe

[Files]
Source: "{#Root}\dist\tokenrent\*"; DestDir: "{app}\tokenrent"; Flags: recursesubdirs ignoreversion
Source: "{#Root}\dist\license-agent\*"; DestDir: "{app}\license-agent"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{group}\TokenRent"; Filename: "{app}\tokenrent\tokenrent.exe"
Name: "{userdesktop}\TokenRent"; Filename: "{app}\tokenrent\tokenrent.exe"; Tasks: desktopicon

[Tasks]
Name: desktopicon; Description: "Create a desktop icon"; Flags: unchecked

[Registry]
; tokenrent:// store links (the agent's "buy more" links) open the storefront.
Root: HKCU; Subkey: "Software\Classes\tokenrent"; ValueType: string; ValueName: ""; ValueData: "URL:TokenRent store link"; Flags: uninsdeletekey
Root: HKCU; Subkey: "Software\Classes\tokenrent"; ValueType: string; ValueName: "URL Protocol"; ValueData: ""
Root: HKCU; Subkey: "Software\Classes\tokenrent\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\tokenrent\tokenrent.exe,0"
Root: HKCU; Subkey: "Software\Classes\tokenrent\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\tokenrent\tokenrent.exe"" ""%1"""
; license-agent on the user's PATH, so rented programs in any language can call it.
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}\license-agent"; Check: NeedsAddPath(ExpandConstant('{app}\license-agent'))

[Code]
function NeedsAddPath(Dir: string): boolean;
var
  Path: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;
