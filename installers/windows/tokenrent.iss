; Inno Setup script: per-user Windows installer for TokenRent (no administrator rights needed).
; NOT built or tested in this project's CI (Linux only): Inno Setup runs on Windows; and the
; license agent's Windows support (loopback transport, msvcrt locks) has never run on Windows.
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
; license-agent on the user's PATH, so rented programs in any language can call it. The
; uninstaller takes exactly this folder out of the user's Path again (CurUninstallStepChanged
; below), leaving every other entry as it was; ChangesEnvironment=yes tells Explorer both times.
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}\license-agent"; Check: NeedsAddPath; Flags: preservestringtype

[Code]
function AgentDir(): string;
begin
  Result := ExpandConstant('{app}\license-agent');
end;

function SamePathEntry(A, B: string): boolean;
begin
  Result := CompareText(RemoveBackslashUnlessRoot(Trim(A)), RemoveBackslashUnlessRoot(Trim(B))) = 0;
end;

function NeedsAddPath(): boolean;
var
  Path, Rest, Part: string;
  P: Integer;
begin
  Result := True;
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path) then
    exit;
  Rest := Path;
  while Rest <> '' do
  begin
    P := Pos(';', Rest);
    if P = 0 then
    begin
      Part := Rest;
      Rest := '';
    end else begin
      Part := Copy(Rest, 1, P - 1);
      Delete(Rest, 1, P);
    end;
    if SamePathEntry(Part, AgentDir()) then
    begin
      Result := False;
      exit;
    end;
  end;
end;

{ Path without Dir (any case, with or without a trailing backslash) and without empty entries. }
function PathWithout(Path, Dir: string): string;
var
  Rest, Part: string;
  P: Integer;
begin
  Result := '';
  Rest := Path;
  while Rest <> '' do
  begin
    P := Pos(';', Rest);
    if P = 0 then
    begin
      Part := Rest;
      Rest := '';
    end else begin
      Part := Copy(Rest, 1, P - 1);
      Delete(Rest, 1, P);
    end;
    if (Trim(Part) <> '') and not SamePathEntry(Part, Dir) then
    begin
      if Result <> '' then
        Result := Result + ';';
      Result := Result + Part;
    end;
  end;
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Path, Kept: string;
begin
  if CurUninstallStep <> usUninstall then
    exit;
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path) then
    exit;
  Kept := PathWithout(Path, AgentDir());
  if Kept = Path then
    exit;
  if Kept = '' then
    RegDeleteValue(HKEY_CURRENT_USER, 'Environment', 'Path')
  else
    RegWriteExpandStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Kept);
end;
