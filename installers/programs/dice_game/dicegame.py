"""Pig, the dice game, against the computer: first to 50 points wins.

Rented by number of uses: the game does not talk to the license agent itself. The storefront
(or a desktop shortcut) starts it as

    license-agent run PRODUCT_ID -- python3 dicegame.py [--gui]

so the agent spends one use before the game starts, and refuses to start it when none are left.

Each turn you roll a die as often as you like ("r") and bank the sum ("b"); rolling a 1 loses
the turn's points. `--auto` lets a simple strategy play for you (used by tests and demos).
"""
from __future__ import annotations

import argparse
import random
import sys

GOAL = 50


def computer_turn(rng: random.Random, score: int, out) -> int:
    turn = 0
    while turn < 15 and score + turn < GOAL:
        roll = rng.randint(1, 6)
        if roll == 1:
            print("  computer rolls 1 and loses the turn", file=out)
            return 0
        turn += roll
    print(f"  computer banks {turn}", file=out)
    return turn


def play(rng: random.Random, ask, out) -> str:
    you = cpu = 0
    while True:
        turn = 0
        while True:
            choice = ask(f"you {you} + {turn} this turn, computer {cpu}: [r]oll or [b]ank? ", you, turn)
            if choice is None:
                print("bye", file=out)
                return "quit"
            if choice == "b":
                break
            roll = rng.randint(1, 6)
            print(f"  you roll {roll}", file=out)
            if roll == 1:
                turn = 0
                break
            turn += roll
        you += turn
        if you >= GOAL:
            print(f"you win {you} to {cpu}", file=out)
            return "you"
        cpu += computer_turn(rng, cpu, out)
        if cpu >= GOAL:
            print(f"the computer wins {cpu} to {you}", file=out)
            return "computer"


class GameWindow:
    """The same game in a window (for the storefront's Launch, which has no terminal)."""

    def __init__(self, rng: random.Random):
        from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget
        self.rng = rng
        self.you = self.cpu = self.turn = 0
        self.winner: str | None = None
        self.widget = QWidget()
        self.widget.setWindowTitle("Pig Dice Game")
        self.score = QLabel()
        self.news = QLabel("Roll the die; bank before you roll a 1.")
        self.news.setWordWrap(True)
        self.roll_button = QPushButton("&Roll")
        self.bank_button = QPushButton("&Bank")
        self.roll_button.clicked.connect(self.roll)
        self.bank_button.clicked.connect(self.bank)
        buttons = QHBoxLayout()
        buttons.addWidget(self.roll_button)
        buttons.addWidget(self.bank_button)
        layout = QVBoxLayout(self.widget)
        layout.addWidget(self.score)
        layout.addWidget(self.news)
        layout.addLayout(buttons)
        self._show()

    def _show(self) -> None:
        self.score.setText(f"You {self.you} (+{self.turn} this turn)   Computer {self.cpu}   Goal {GOAL}")
        done = self.winner is not None
        self.roll_button.setEnabled(not done)
        self.bank_button.setEnabled(not done and self.turn > 0)

    def roll(self) -> None:
        value = self.rng.randint(1, 6)
        if value == 1:
            self.turn = 0
            self.news.setText("You rolled 1: the turn's points are lost.")
            self._computer()
        else:
            self.turn += value
            self.news.setText(f"You rolled {value}.")
        self._show()

    def bank(self) -> None:
        self.you += self.turn
        self.turn = 0
        if self.you >= GOAL:
            self.winner = "you"
            self.news.setText(f"You win {self.you} to {self.cpu}!")
        else:
            self._computer()
        self._show()

    def _computer(self) -> None:
        import io
        out = io.StringIO()
        self.cpu += computer_turn(self.rng, self.cpu, out)
        text = out.getvalue().strip()
        if self.cpu >= GOAL:
            self.winner = "computer"
            text += f" - the computer wins {self.cpu} to {self.you}."
        self.news.setText(self.news.text() + " " + text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dicegame", description="Pig, the dice game")
    ap.add_argument("--seed", type=int, help="repeatable dice")
    ap.add_argument("--auto", action="store_true", help="bank at 12 or more, for demos")
    ap.add_argument("--gui", action="store_true", help="play in a window")
    ap.add_argument("--quit-after", type=int, metavar="MS", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)

    if args.gui:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        app = QApplication.instance() or QApplication(sys.argv[:1])
        game = GameWindow(rng)
        game.widget.show()
        if args.quit_after is not None:
            QTimer.singleShot(args.quit_after, app.quit)
        app.exec()
        import shiboken6
        shiboken6.delete(game.widget)  # before the QApplication goes
        return 0

    def ask(prompt: str, you: int, turn: int):
        if args.auto:
            return "b" if turn >= 12 or you + turn >= GOAL else "r"
        print(prompt, end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            return None
        return "b" if line.strip().lower().startswith("b") else "r"

    play(rng, ask, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
