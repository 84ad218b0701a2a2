"""The rentable example programs: their real work, their packages, and that they really count
down against a real license agent (temp LICENSE_AGENT_HOME, real CLI, real codes)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from installers import demo_packages
from license_agent import install_store
from license_agent import package_format as pf
from tests.support.installers_agent import AgentHome, have_agent_cli

PROGRAMS = Path(demo_packages.__file__).resolve().parent / "programs"
sys.path.insert(0, str(PROGRAMS / "raster_tool"))
import rastertool  # noqa: E402



@pytest.fixture
def agent_cli() -> None:
    """scripts/venv.sh always installs the license-agent console script: missing is a failure."""
    if not have_agent_cli():
        pytest.fail("license_agent.cli / .client or the license-agent console script is missing "
                    "(run scripts/venv.sh)")


needs_agent = pytest.mark.usefixtures("agent_cli")


def make_page(path: Path, fmt: str = "PNG", specks=((2, 2), (17, 3))) -> None:
    """A 20x12 light-gray page with one dark 4x3 block and isolated dark specks."""
    from PySide6.QtGui import QColor, QImage
    img = QImage(20, 12, QImage.Format.Format_RGB32)
    img.fill(QColor(220, 220, 220))
    for y in range(5, 8):
        for x in range(8, 12):
            img.setPixelColor(x, y, QColor(20, 30, 40))
    for x, y in specks:
        img.setPixelColor(x, y, QColor(10, 10, 10))
    assert img.save(str(path), fmt)


def gray_rows(path: Path) -> list[bytes]:
    return [bytes(r) for r in rastertool._rows(rastertool.load_gray(path))]


# --- the programs' own work ---------------------------------------------------------------------

def test_threshold_and_cleanup_really_process_the_image(tmp_path):
    src = tmp_path / "page.png"
    make_page(src)
    out = rastertool.process(src, tmp_path, "threshold", 128)
    rows = gray_rows(out)
    assert rows[6][9] == 0 and rows[0][0] == 255 and rows[2][2] == 0  # block and speck are black
    assert set(b"".join(rows)) == {0, 255}
    cleaned = gray_rows(rastertool.process(src, tmp_path, "cleanup", 128))
    assert cleaned[2][2] == 255 and cleaned[3][17] == 255   # isolated specks removed
    assert all(cleaned[y][x] == 0 for y in range(5, 8) for x in range(8, 12))  # block kept
    assert sum(row.count(0) for row in cleaned) == 12


def test_ppm_input_gives_a_pgm_grayscale(tmp_path):
    src = tmp_path / "scan.ppm"
    make_page(src, "PPM")
    out = rastertool.process(src, tmp_path, "grayscale", 128)
    assert out.name == "scan.grayscale.pgm" and out.read_bytes().startswith(b"P5")
    assert gray_rows(out)[6][9] < 40 and gray_rows(out)[0][0] > 200


def test_unreadable_image_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable PNG/PPM image"):
        rastertool.process(bad, tmp_path, "cleanup", 128)


def test_demo_packages_are_signed_bound_and_installable(tmp_path):
    key = Ed25519PrivateKey.generate()
    built = demo_packages.build_demo_packages(
        tmp_path / "pk", key, {"Software D": "4", "Software B": "2", "Software C": "3", "Software A": "1",
                               "Pixel Quest": "9", "DraftCAD Lite": "6"})
    assert sorted((b.program, b.product_id) for b in built) == [
        ("dice_game", "3"), ("dice_game", "9"), ("note_viewer", "2"), ("raster_tool", "4"),
        ("shell_wordcount", "1")]
    trusted = pf.trusted_keys_for(key.public_key())
    for b in built:
        installed = install_store.install_package(b.path, tmp_path / "programs", trusted, expected_product_id=b.product_id)
        assert (installed.directory / "product.json").read_text().strip() == f'{{"product_id": "{b.product_id}"}}'
    wc = install_store.installed_program(tmp_path / "programs", "1")
    assert install_store.entry_command(wc)[0] == str(wc.directory / "wordcount.sh")
    # Only products that exist get a package.
    assert [b.program for b in demo_packages.build_demo_packages(tmp_path / "pk2", key, {"Software D": 9})] \
        == ["raster_tool"]


# --- against a real agent -----------------------------------------------------------------------

@pytest.fixture
def agent(tmp_path):
    home = AgentHome(tmp_path / "agent-home")
    home.trust_vendor()
    return home


def run_program(agent: AgentHome, argv: list[str], product_id: str, **kw) -> subprocess.CompletedProcess:
    env = agent.env | {"TOKENRENT_PRODUCT_ID": product_id, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, **kw)


@needs_agent
def test_raster_tool_spends_one_processing_per_image(agent, tmp_path):
    agent.grant("4", "processings", processings=4, low_threshold=2)
    images = []
    for i in range(3):
        images.append(tmp_path / f"p{i}.png")
        make_page(images[-1])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but cut short")
    tool = [sys.executable, str(PROGRAMS / "raster_tool" / "rastertool.py"), "-o", str(tmp_path / "out")]

    r = run_program(agent, tool + [str(images[0]), str(broken), str(images[1])], "4")
    assert r.returncode == 1, r.stderr           # one image failed ...
    assert "broken.png" in r.stderr and "no processing used" in r.stderr
    assert agent.remaining("4") == 2             # ... and only the two good ones were counted
    assert "2 processings left" in r.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.cleanup.png", "p1.cleanup.png"]

    r = run_program(agent, tool + [str(images[2]), str(images[0]), str(images[1])], "4")
    assert r.returncode == 3, (r.stdout, r.stderr)  # two processed, the third refused
    assert agent.remaining("4") == 0
    assert "tokenrent://product/4" in r.stderr
    assert r.stdout.count("->") == 2


@needs_agent
def test_raster_tool_under_a_time_rental_counts_nothing_per_image(agent, tmp_path):
    """ScanClean Pro sells the raster tool by time: images cost nothing while time is left."""
    agent.grant("5", "time", expires_in=timedelta(days=30))
    page = tmp_path / "page.png"
    make_page(page)
    tool = [sys.executable, str(PROGRAMS / "raster_tool" / "rastertool.py"), "-o", str(tmp_path / "out")]
    r = run_program(agent, tool + [str(page), str(page)], "5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("rented until 20") == 2 and "processings left" not in r.stdout
    assert (tmp_path / "out" / "page.cleanup.png").is_file()


@needs_agent
def test_dice_game_runs_through_license_agent_run_and_counts_uses(agent):
    agent.grant("3", "uses", uses=2)
    game = [sys.executable, str(PROGRAMS / "dice_game" / "dicegame.py"), "--auto", "--seed", "7"]
    for left in (1, 0):
        r = run_program(agent, [*agent.agent, "run", "3", "--", *game], "3")
        assert r.returncode == 0, r.stderr
        assert " wins " in r.stdout
        assert agent.remaining("3") == left
    r = run_program(agent, [*agent.agent, "run", "3", "--", *game], "3")
    assert r.returncode == 3 and " wins " not in r.stdout
    assert "tokenrent://product/3" in (r.stdout + r.stderr)


@needs_agent
def test_note_viewer_opens_while_time_is_left_and_refuses_after(agent, tmp_path):
    agent.grant("2", "time", expires_in=timedelta(seconds=4))
    note = tmp_path / "note.txt"
    note.write_text("hello")
    viewer = [sys.executable, str(PROGRAMS / "note_viewer" / "noteviewer.py"), str(note), "--quit-after", "200"]
    r = run_program(agent, viewer, "2")
    assert r.returncode == 0, r.stderr
    assert "rental time left" in r.stdout
    time.sleep(4.5)
    r = run_program(agent, viewer, "2")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "tokenrent://product/2" in r.stderr


@needs_agent
def test_shell_program_counts_down_through_the_cli(agent, tmp_path):
    agent.grant("1", "processings", processings=2)
    files = []
    for i in range(3):
        files.append(tmp_path / f"t{i}.txt")
        files[-1].write_text("one two three\nfour\n")
    script = str(PROGRAMS / "shell_wordcount" / "wordcount.sh")
    r = run_program(agent, ["/bin/sh", script, str(files[0]), str(tmp_path / "missing.txt"), str(files[1])], "1")
    assert r.returncode == 1, r.stderr     # the missing file cost nothing
    assert r.stdout.count("2 lines, 4 words, 19 bytes") == 2
    assert agent.remaining("1") == 0
    r = run_program(agent, ["/bin/sh", script, str(files[2])], "1")
    assert r.returncode == 3 and "2 lines" not in r.stdout
    assert "tokenrent://product/1" in r.stderr


def test_dice_game_window_plays_to_a_winner(qtbot):
    sys.path.insert(0, str(PROGRAMS / "dice_game"))
    import random

    import dicegame
    game = dicegame.GameWindow(random.Random(5))
    qtbot.addWidget(game.widget)
    assert not game.bank_button.isEnabled()        # nothing to bank yet
    for _ in range(500):
        if game.winner:
            break
        if game.turn >= 10:
            game.bank_button.click()
        else:
            game.roll_button.click()
    assert game.winner in ("you", "computer")
    assert max(game.you, game.cpu) >= dicegame.GOAL
    assert not game.roll_button.isEnabled()
    assert "win" in game.news.text()


@needs_agent
def test_windows_open_when_launched_without_arguments(agent, tmp_path):
    """The storefront's Launch starts the entry command as it is: the raster tool and the game
    then open their windows instead of failing for want of arguments."""
    agent.grant("4", "processings", processings=5)
    r = run_program(agent, [sys.executable, str(PROGRAMS / "raster_tool" / "rastertool.py"),
                            "--quit-after", "300"], "4")
    assert r.returncode == 0, r.stderr
    assert agent.remaining("4") == 5                # opening the window costs nothing
    agent.grant("3", "uses", uses=1)
    game = [sys.executable, str(PROGRAMS / "dice_game" / "dicegame.py"), "--gui", "--quit-after", "300"]
    r = run_program(agent, [*agent.agent, "run", "3", "--", *game], "3")
    assert r.returncode == 0, r.stderr
    assert agent.remaining("3") == 0


@needs_agent
def test_shell_program_under_a_permanent_licence_is_always_allowed(agent, tmp_path):
    """Software A is sold outright: every file is counted, nothing is used up."""
    agent.grant("1", "permanent")
    text = tmp_path / "t.txt"
    text.write_text("one two\n")
    script = str(PROGRAMS / "shell_wordcount" / "wordcount.sh")
    for _ in range(3):
        r = run_program(agent, ["/bin/sh", script, str(text)], "1")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"{text}: 1 lines, 2 words, 8 bytes (licensed)"


@needs_agent
def test_hand_packaged_program_learns_its_product_from_the_install(agent, tmp_path):
    """Packaged straight from installers/programs (no product.json), installed the storefront's
    way: the program reads its product id from the install record and counts down."""
    key = agent.vendor_key
    pkg = tmp_path / "wc.trpkg"
    pf.build_package(PROGRAMS / "shell_wordcount", pkg, product_id="12", version="2.0", entry="wordcount.sh",
                     signing_key=key)
    installed = install_store.install_package(pkg, tmp_path / "programs", pf.trusted_keys_for(key.public_key()))
    agent.grant("12", "processings", processings=3)
    text = tmp_path / "doc.txt"
    text.write_text("a b c\n")
    env = {k: v for k, v in agent.env.items() if k != "TOKENRENT_PRODUCT_ID"}
    r = subprocess.run([*install_store.entry_command(installed), str(text)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "1 lines, 3 words" in r.stdout and agent.remaining("12") == 2


def license_of(agent: AgentHome, product_id: str) -> dict:
    return next(row for row in agent.cli_json("status")["licenses"] if row["product_id"] == product_id)


def start_on_a_slow_image(agent: AgentHome, tmp_path: Path, *extra: str):
    """Start the raster tool on an image whose cleanup takes seconds; return once the image is
    under its reservation and its work has begun. Returns (process, out_dir, result_file)."""
    big = tmp_path / "specks.pgm"      # 4 million isolated specks: the cleanup takes seconds
    size = 4000
    big.write_bytes(b"P5 %d %d 255\n" % (size, size) + (bytes([0, 255]) * (size // 2) + bytes([255]) * size)
                    * (size // 2))
    out = tmp_path / "out"
    env = agent.env | {"TOKENRENT_PRODUCT_ID": "4", "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, str(PROGRAMS / "raster_tool" / "rastertool.py"), "-o", str(out),
                             *extra, str(big)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    reserved = 0
    while time.monotonic() < deadline and proc.poll() is None:
        reserved = license_of(agent, "4")["reserved"]
        if reserved:
            break
        time.sleep(0.05)
    if not (reserved == 1 and proc.poll() is None):
        proc.kill()
        proc.wait()
        pytest.fail(f"the image was not under a reservation while processed: {proc.communicate()}")
    time.sleep(0.5)   # out of reserve() and into the image work
    assert proc.poll() is None, proc.communicate()
    return proc, out, out / "specks.cleanup.pgm"


def stop(proc: subprocess.Popen, signum: int) -> tuple[str, str]:
    try:
        proc.send_signal(signum)
        return proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_agent
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopped_mid_image_releases_its_processing(agent, tmp_path, signum):
    """Ctrl-C or SIGTERM while an image is being processed: its reservation is released,
    nothing is counted and no half-written result is left."""
    agent.grant("4", "processings", processings=5)
    proc, out, result = start_on_a_slow_image(agent, tmp_path)
    _, err = stop(proc, signum)
    assert proc.returncode == 128 + signum, err
    assert f"stopped ({signal.Signals(signum).name})" in err and "not counted" in err
    lic = license_of(agent, "4")
    assert (lic["remaining"], lic["reserved"], lic["used"]) == (5, 0, 0)
    assert not result.exists() and (not out.exists() or list(out.iterdir()) == [])


@needs_agent
def test_killed_mid_image_writes_no_result_and_its_processing_lapses_as_used(agent, tmp_path):
    """SIGKILL cannot be caught: no result of that image is ever written (no half result),
    and the processing stays held, then counts as used once its time-to-live has passed
    (the agent's rule, so that killing the program never gets free work)."""
    agent.grant("4", "processings", processings=5)
    ttl = 6
    proc, out, result = start_on_a_slow_image(agent, tmp_path, "--reservation-ttl", str(ttl))
    killed_at = time.monotonic()
    stop(proc, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert not result.exists() and (not out.exists() or list(out.iterdir()) == [])
    lic = license_of(agent, "4")
    assert (lic["remaining"], lic["reserved"], lic["used"]) == (4, 1, 0)   # held: not free to use again
    time.sleep(max(0.0, ttl + 1 - (time.monotonic() - killed_at)))
    lic = license_of(agent, "4")
    assert (lic["remaining"], lic["reserved"], lic["used"]) == (4, 0, 1)   # lapsed: counted


@needs_agent
def test_note_viewer_turns_read_only_when_the_time_runs_out(qtbot, agent, tmp_path):
    """The open window re-asks the agent (every 30 s; here by hand): while time is left it
    edits and warns when little is left; when the time is up the note stays readable but
    read-only, with the store link."""
    import types

    from license_agent import client as sdk
    sys.path.insert(0, str(PROGRAMS / "note_viewer"))
    import noteviewer
    agent.grant("2", "time", expires_in=timedelta(seconds=3), low_threshold=3600)
    real = sdk.Client(agent.home, use_daemon=False)
    try:
        wiring = types.SimpleNamespace(check=real.check, Denied=sdk.Denied, AgentError=sdk.AgentError)
        note_file = tmp_path / "n.txt"
        note_file.write_text("first line\n")
        note = noteviewer.NoteWindow("2", wiring, note_file, real.check("2"))
        qtbot.addWidget(note.window)
        assert not note.editor.isReadOnly() and note.editor.toPlainText() == "first line\n"
        assert "rental time left" in note.status() and "tokenrent://product/2" in note.status()  # low
        note.editor.setPlainText("first line\nsecond line\n")
        note.save()
        assert note_file.read_text() == "first line\nsecond line\n"
        time.sleep(3.5)
        note.recheck()
        assert note.editor.isReadOnly() and not note.save_action.isEnabled()
        assert "read only" in note.status() and "tokenrent://product/2" in note.status()
        assert "second line" in note.editor.toPlainText()       # nothing typed is lost
    finally:
        real.close()
